/**
 * Precomputed answer bytes. The dummy 200 (spec 5.1: empty body, status OK)
 * is written for a whole read's worth of requests as ONE view of a slab of
 * repeated 200s, so acknowledging N pipelined requests costs one write and no
 * byte building.
 */
import { ERRORS, type ErrorCode } from '../errors.js'

export const ACK = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1')
export const ACK_CLOSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 'latin1')
export const ACK_LEN = ACK.length
/** The interim answer to `Expect: 100-continue` (RFC 9110 15.2.1). */
export const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')

let slab = Buffer.alloc(0)
let slabCount = 0

/** A view of n consecutive 200s. The slab only grows (doubling), once per size. */
export function acks (n: number): Buffer {
  if (n > slabCount) {
    let count = Math.max(64, slabCount)
    while (count < n) count *= 2
    const next = Buffer.allocUnsafe(count * ACK_LEN)
    for (let i = 0; i < count; i++) ACK.copy(next, i * ACK_LEN)
    slab = next
    slabCount = count
  }
  return slab.subarray(0, n * ACK_LEN)
}

const REASONS: Record<number, string> = {
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported'
}

const errorReplies = new Map<ErrorCode, Buffer>()

/**
 * The answer to a refused request: its status, the stable error code in
 * `X-SSP-Error` (so a conformance lab can tell refusals apart), and
 * `Connection: close`, because the connection closes after it.
 */
export function errorReply (code: ErrorCode): Buffer {
  let b = errorReplies.get(code)
  if (b === undefined) {
    const status = ERRORS[code].status
    const extra = status === 405 ? 'Allow: POST\r\n' : ''
    b = Buffer.from(
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${extra}X-SSP-Error: ${code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      'latin1')
    errorReplies.set(code, b)
  }
  return b
}

/** A redirect answer (spec 5.5); only the SSP layer's set-up path asks for one. */
export function redirectReply (status: 301 | 302 | 303 | 307 | 308, location: string): Buffer {
  if (/[\r\n]/.test(location)) throw new TypeError('Location must not contain CR or LF')
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status]!}\r\nLocation: ${location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    'latin1')
}
