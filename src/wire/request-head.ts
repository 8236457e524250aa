/**
 * How an SSP POST's head begins, in one place: the engine's client builds its
 * per-target prefix from it (client.ts), and the conformance lab's serializer
 * writes the same lines (conformance/http.ts `buildPost`), so what the lab
 * sends is laid out as the engine's own requests are.
 */

/** The request target for `url`: its path (`/` when empty) and query. */
export function requestTarget (url: URL): string {
  return (url.pathname === '' ? '/' : url.pathname) + url.search
}

/** `POST <target> HTTP/1.1`, `Host`, and `Content-Type` when given: each line with its CRLF. */
export function postHeadStart (url: URL, contentType: string | undefined): string {
  const head = `POST ${requestTarget(url)} HTTP/1.1\r\nHost: ${url.host}\r\n`
  return contentType === undefined ? head : `${head}Content-Type: ${contentType}\r\n`
}
