/**
 * Byte-level checks on header bytes, so the fast path never makes strings.
 * Everything here works on (buffer, offset, length) and allocates nothing.
 */

/** Content-type classes (spec 5.4). */
export const ContentType = {
  OTHER: 0,
  /** `application/vnd.wv.ssp+xml` (1.3) */
  SSP13: 1,
  /** `application/vnd.wv.ssp.xml` (1.2) */
  SSP12: 2
} as const
export type ContentTypeClass = typeof ContentType[keyof typeof ContentType]

export const CONTENT_TYPE_13 = 'application/vnd.wv.ssp+xml'
export const CONTENT_TYPE_12 = 'application/vnd.wv.ssp.xml'

/** 1 for ALPHA / DIGIT / "_" (spec 5.6 `alphanum`), else 0. */
const ALPHANUM = new Uint8Array(256)
for (let c = 0x30; c <= 0x39; c++) ALPHANUM[c] = 1
for (let c = 0x41; c <= 0x5a; c++) ALPHANUM[c] = 1
for (let c = 0x61; c <= 0x7a; c++) ALPHANUM[c] = 1
ALPHANUM[0x5f] = 1

/** Does buf[off, off+len) match `1*(ALPHA / DIGIT / "_")`? */
export function isIdBytes (buf: Uint8Array, off: number, len: number): boolean {
  if (len <= 0) return false
  const end = off + len
  for (let i = off; i < end; i++) {
    if (ALPHANUM[buf[i]!] === 0) return false
  }
  return true
}

/** The same check for an outgoing id given as a string. */
export function isIdString (s: string): boolean {
  const n = s.length
  if (n === 0) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7f || ALPHANUM[c] === 0) return false
  }
  return true
}

/**
 * Compare buf[off, off+len) with a lower-case ASCII name, ignoring ASCII case.
 * `name` is given as bytes so the comparison is a plain loop.
 */
export function equalsLower (buf: Uint8Array, off: number, len: number, name: Uint8Array): boolean {
  if (len !== name.length) return false
  for (let i = 0; i < len; i++) {
    // OR-ing 0x20 lower-cases letters; header names are tokens, so no other
    // byte can alias a letter this way except '@'/'`' style pairs, which are
    // not token characters and llhttp has already rejected.
    if ((buf[off + i]! | 0x20) !== name[i]) return false
  }
  return true
}

/** Optional whitespace (SP / HTAB). llhttp drops it before a value; after one it is ours to trim. */
export const isOws = (c: number): boolean => c === 0x20 || c === 0x09

const SSP_PREFIX = Buffer.from('application/vnd.wv.ssp', 'latin1')
const XML = Buffer.from('xml', 'latin1')

/**
 * Classify a Content-Type value: case-insensitive, surrounding whitespace
 * ignored, parameters (`; charset=UTF-8`) allowed.
 */
export function classifyContentType (buf: Uint8Array, off: number, len: number): ContentTypeClass {
  let st = off
  const e = off + len
  while (st < e && isOws(buf[st]!)) st++
  // Both spellings are 26 bytes long: the media type must end right there
  // (end of value, ';' before parameters, or whitespace). No scan needed.
  const n = SSP_PREFIX.length
  const end = st + n + 4
  if (end > e) return ContentType.OTHER
  if (end < e) {
    const c = buf[end]!
    if (c !== 0x3b && !isOws(c)) return ContentType.OTHER
  }
  for (let i = 0; i < n; i++) {
    if ((buf[st + i]! | 0x20) !== SSP_PREFIX[i]) return ContentType.OTHER
  }
  for (let i = 0; i < 3; i++) {
    if ((buf[st + n + 1 + i]! | 0x20) !== XML[i]) return ContentType.OTHER
  }
  const sep = buf[st + n]
  if (sep === 0x2b) return ContentType.SSP13
  if (sep === 0x2e) return ContentType.SSP12
  return ContentType.OTHER
}

/** Parse a decimal Content-Length value already validated by llhttp. */
export function parseDecimal (buf: Uint8Array, off: number, len: number): number {
  let v = 0
  const end = off + len
  for (let i = off; i < end; i++) {
    const c = buf[i]!
    if (c >= 0x30 && c <= 0x39) v = v * 10 + (c - 0x30)
  }
  return v
}

/** Trim OWS: returns [start, end). */
export function trimOws (buf: Uint8Array, off: number, len: number): [number, number] {
  let s = off
  let e = off + len
  while (s < e && isOws(buf[s]!)) s++
  while (e > s && isOws(buf[e - 1]!)) e--
  return [s, e]
}

/**
 * Find a header in a raw header block (the bytes from the request target to
 * the end of the last header value, as kept by the framer). Slow path: only
 * used when the application asks for a header by name.
 */
export function findHeader (head: Buffer, start: number, end: number, name: string): string | undefined {
  const lname = Buffer.from(name.toLowerCase(), 'latin1')
  // skip the request line (target and version)
  let p = head.indexOf(0x0a, start)
  if (p < 0 || p >= end) return undefined
  p++
  while (p < end) {
    let eol = head.indexOf(0x0a, p)
    if (eol < 0 || eol > end) eol = end
    const colon = head.indexOf(0x3a, p)
    if (colon > p && colon < eol && equalsLower(head, p, colon - p, lname)) {
      let ve = eol
      if (ve > p && head[ve - 1] === 0x0d) ve--
      const [vs, vend] = trimOws(head, colon + 1, ve - colon - 1)
      return head.toString('latin1', vs, vend)
    }
    p = eol + 1
  }
  return undefined
}
