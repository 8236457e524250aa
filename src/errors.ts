/**
 * Every failure this package reports is an `SspError` with a stable `code`.
 * Codes never change meaning once published; the README lists them all.
 *
 * One table (`ERRORS`) holds each code's default message and, for errors the
 * server answers on the wire, the HTTP status it answers with. Everything goes
 * through `createError`, as in ws, so a code can be grepped to its one origin.
 */

export const ERRORS = {
  // ---- wire, server side: each is answered with its status, then the connection closes
  SSP_ERR_HTTP_PARSE: { status: 400, message: 'malformed HTTP/1.1 request' },
  SSP_ERR_HTTP_VERSION: { status: 505, message: 'only HTTP/1.1 is accepted' },
  SSP_ERR_METHOD: { status: 405, message: 'SSP messages travel only as POST' },
  SSP_ERR_CONTENT_TYPE: { status: 415, message: 'Content-Type is not an SSP content type' },
  SSP_ERR_TRANSACTION_ID_MISSING: { status: 400, message: 'x-wv-transactionid header missing' },
  SSP_ERR_TRANSACTION_ID_INVALID: { status: 400, message: 'x-wv-transactionid does not match 1*(ALPHA / DIGIT / "_")' },
  SSP_ERR_SESSION_ID_INVALID: { status: 400, message: 'x-wv-sessionid does not match 1*(ALPHA / DIGIT / "_")' },
  SSP_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'request header section exceeds maxHeaderBytes' },
  SSP_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body exceeds maxBodyBytes' },
  SSP_ERR_HEADERS_TIMEOUT: { status: 408, message: 'request head not received within headersTimeout' },
  SSP_ERR_REQUEST_TIMEOUT: { status: 408, message: 'request not complete within requestTimeout' },
  SSP_ERR_IDLE_TIMEOUT: { status: 0, message: 'connection idle for longer than idleTimeout' },
  SSP_ERR_WRITE_STALLED: { status: 0, message: 'peer does not read its answers (write buffer over maxWriteBuffer for longer than idleTimeout)' },
  SSP_ERR_SOCKET: { status: 0, message: 'socket error' },
  SSP_ERR_SERVER_CLOSING: { status: 503, message: 'server is shutting down' },
  SSP_ERR_HOST_MISSING: { status: 400, message: 'request without a Host header (RFC 9112 3.2)' },
  SSP_ERR_EXPECTATION: { status: 417, message: 'Expect header other than 100-continue' },
  SSP_ERR_SERVER_BUSY: { status: 503, message: 'partially received requests exceed the server-wide maxBufferedBytes' },
  SSP_ERR_LINGER: { status: 0, message: 'peer kept the connection open after the server ended it (over lingerBytes or lingerTimeout)' },
  SSP_ERR_HANDSHAKE_TIMEOUT: { status: 0, message: 'TLS handshake not complete within handshakeTimeout' },

  // ---- wire, client side
  SSP_ERR_INVALID_ID: { status: 0, message: 'outgoing id does not match 1*(ALPHA / DIGIT / "_")' },
  SSP_ERR_INVALID_ARGUMENT: { status: 0, message: 'invalid argument' },
  SSP_ERR_CONNECT: { status: 0, message: 'could not connect to peer' },
  SSP_ERR_TLS: { status: 0, message: 'TLS handshake failed' },
  SSP_ERR_HTTP_STATUS: { status: 0, message: 'peer answered with an error status' },
  SSP_ERR_HTTP_RESPONSE: { status: 0, message: 'peer sent a malformed HTTP/1.1 response' },
  SSP_ERR_UNACKNOWLEDGED: { status: 0, message: 'connection lost before the request was acknowledged' },
  SSP_ERR_REDIRECT_NOT_ALLOWED: { status: 0, message: 'redirect outside set-up steps 1 and 3 (IMPS-SSP-Transport-S-011, spec 5.5)' },
  SSP_ERR_REDIRECT_LOOP: { status: 0, message: 'redirect loop' },
  SSP_ERR_TOO_MANY_REDIRECTS: { status: 0, message: 'too many redirects' },
  SSP_ERR_QUEUE_FULL: { status: 0, message: 'send queue full' },
  SSP_ERR_CLIENT_CLOSED: { status: 0, message: 'client closed' },
  SSP_ERR_RESPONSE_HEADERS_TOO_LARGE: { status: 0, message: 'peer response header section exceeds maxResponseHeaderBytes' },
  SSP_ERR_RESPONSE_BODY_TOO_LARGE: { status: 0, message: 'peer response body exceeds maxResponseBodyBytes' },

  // ---- SSP layer
  SSP_ERR_UNKNOWN_PEER: { status: 0, message: 'peer domain not in the directory' },
  SSP_ERR_SETUP_DIGEST: { status: 0, message: 'peer sent a wrong password digest during set-up' },
  SSP_ERR_SETUP_TIMEOUT: { status: 0, message: 'session set-up did not finish in time' },
  SSP_ERR_SETUP_PROTOCOL: { status: 0, message: 'unexpected message during session set-up' },
  SSP_ERR_TRANSACTION_TIMEOUT: { status: 0, message: 'no answer to the transaction in time' },
  SSP_ERR_SESSION_CLOSED: { status: 0, message: 'session closed' },
  SSP_ERR_NODE_CLOSED: { status: 0, message: 'node closed' },
  SSP_ERR_PEER_LIMIT: { status: 0, message: 'per-peer limit reached' },
  SSP_ERR_XML: { status: 0, message: 'SSP message is not well-formed' },
  SSP_ERR_ENVELOPE_MISMATCH: { status: 0, message: 'the ids in the message body differ from its x-wv-* headers' },
  SSP_ERR_PEER_IDENTITY: { status: 0, message: 'peer certificate does not match the domain it claims' },

  // ---- operating the node (CLI and embedding)
  SSP_ERR_LISTEN: { status: 0, message: 'could not listen on the address (in use, not permitted, not local)' },
  SSP_ERR_FILE: { status: 0, message: 'a file named by an option could not be read or is not valid' },
  SSP_ERR_PEER_LOST: { status: 0, message: 'the peer stopped answering during the run' },
  SSP_ERR_INTERNAL: { status: 0, message: 'unexpected error (run with --verbose for the stack)' }
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

export class SspError extends Error {
  override readonly name = 'SspError'
  readonly code: ErrorCode
  /** HTTP status: what the server answered with, or what the peer answered with (client side). 0 when none. */
  readonly status: number
  /** SCR item the failure is reported against, where there is one (e.g. `S-011`). */
  readonly scr: string | undefined

  constructor (code: ErrorCode, message: string, status: number, scr: string | undefined, cause: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.status = status
    this.scr = scr
  }
}

export interface ErrorDetail {
  message?: string
  status?: number
  scr?: string
  cause?: unknown
}

/**
 * Refusals made at the rate of an overload, one per request refused: their stack is
 * always the engine's own write path and tells the application nothing, and capturing
 * it costs ~7 µs per error against ~0.5 µs without (12 frames deep; measured in
 * bench/framing.mjs's hot-path group, "error: queue full"). Under overload that was
 * 29 % of a full node's CPU (native-notes.md, section 10). These carry no stack.
 */
const WITHOUT_STACK: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['SSP_ERR_QUEUE_FULL', 'SSP_ERR_PEER_LIMIT'])

/** The one place errors are made. */
export function createError (code: ErrorCode, detail?: ErrorDetail): SspError {
  const entry = ERRORS[code]
  const message = detail?.message === undefined ? entry.message : `${entry.message}: ${detail.message}`
  if (!WITHOUT_STACK.has(code)) return new SspError(code, message, detail?.status ?? entry.status, detail?.scr, detail?.cause)
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new SspError(code, message, detail?.status ?? entry.status, detail?.scr, detail?.cause)
  } finally {
    Error.stackTraceLimit = limit
  }
}

export function isSspError (err: unknown): err is SspError {
  return err instanceof SspError
}
