/**
 * The one definition of a redirect (spec 5.5): 301, 302, 303, 307 or 308
 * carrying a Location. The wire client, the conformance lab and the test
 * instruments all ask this module, so that "is this a redirect?" has one
 * answer everywhere (a 300 or 304 is not one; neither is a 307 without
 * Location, which is an unusable answer).
 */

/** The redirection codes spec 5.5 refers to (RFC 2616 plus 307/308). */
export function isRedirectStatus (status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308
}

/**
 * The Location to follow when an answer is a redirect, else undefined.
 * Where following is allowed at all (the first SendSecretToken on a fresh
 * connection) is the caller's rule, not this one.
 */
export function redirectLocation (status: number | undefined, location: string | undefined): string | undefined {
  if (status === undefined || !isRedirectStatus(status) || location === undefined || location === '') return undefined
  return location
}

/**
 * Where a redirect leads: `location` resolved against the URL that answered,
 * or undefined when it is not a usable http(s) URL (the caller fails the
 * request as "unusable Location"). The client, the lab and the fault server
 * resolve through this one function, so a relative Location, a `ftp:` one or
 * garbage mean the same everywhere.
 */
export function redirectTarget (location: string, from: URL | string): URL | undefined {
  let next: URL
  try {
    next = new URL(location, from)
  } catch {
    return undefined
  }
  return next.protocol === 'http:' || next.protocol === 'https:' ? next : undefined
}
