/**
 * Every limit of the server side, with its default. The README's option table
 * is written from this file; keep them together.
 */
import { createError } from '../errors.js'
import { busyPollOption } from './busy-poll.js'
import type { SspRequest } from './request.js'
import type { ServerConnection } from './server-connection.js'

export type Posture = 'strict' | 'interop'

/**
 * Called once per accepted request, in request order per connection. Return
 * nothing when done with it, or a promise: the request then occupies a place
 * in the application queue until the promise settles.
 */
export type RequestHandler = (req: SspRequest, conn: ServerConnection) => void | PromiseLike<unknown>

export interface TlsServerOptions {
  cert: string | Buffer
  key: string | Buffer
  ca?: string | Buffer | Array<string | Buffer>
  /** Mutual TLS: ask for a client certificate and refuse connections without a trusted one. */
  requestClientCert?: boolean
}

export interface WireServerOptions {
  /** 'strict' (default): every deviation from the binding is refused. 'interop': ssp-notes section 3 deviations are accepted and counted. */
  posture?: Posture
  onRequest?: RequestHandler
  /** Bytes of request target, header names and values (plus 4 per line). Over it: 431. Default 16 KiB. */
  maxHeaderBytes?: number
  /** Header lines per request. Over it: 431. Default 64. */
  maxHeaderCount?: number
  /** Body bytes per request (declared or received). Over it: 413. Default 1 MiB. */
  maxBodyBytes?: number
  /** From a request's first byte to the end of its head. Over it: 408, close. Default 10 s. */
  headersTimeout?: number
  /** From a request's first byte to its last. Over it: 408, close. Default 30 s. */
  requestTimeout?: number
  /** No byte received (and not paused by us). Over it: close. Default 120 s. */
  idleTimeout?: number
  /** Requests of one connection held by the application (handler promise pending) at once; more: reading stops. Default 256. */
  maxPipelineDepth?: number
  /** Requests held by the application across all connections (the application queue); more: reading stops. Default 4096. */
  maxInflight?: number
  /** Unsent answer bytes per connection before reading stops until the peer reads. Default 256 KiB. */
  maxWriteBuffer?: number
  /** Open connections; more are closed at once and counted. Default 10,000. */
  maxConnections?: number
  /** After the server ends a connection, bytes it still reads (waiting for the FIN) before destroying it. Default 64 KiB. */
  lingerBytes?: number
  /** After the server ends a connection, ms before it is destroyed if the peer has not closed. Default 2 s. */
  lingerTimeout?: number
  /** TLS only: ms for a TCP connection to complete its handshake; then destroyed. Default 10 s. */
  handshakeTimeout?: number
  /** Bytes of partially received requests held across all connections; over it the largest holders get 503. Default 64 MiB. */
  maxBufferedBytes?: number
  /** Granularity of the timeout sweep in ms. Default 250. */
  timerResolution?: number
  /** How long close() waits for the application to finish held requests. Default 5 s. */
  closeTimeout?: number
  /**
   * After each read, keep the event loop polling (not sleeping) for this many µs,
   * so the next pipelined batch is read without a wake-up (src/wire/busy-poll.ts).
   * 0 to 1,000,000. Default 0 (off).
   */
  busyPollMicros?: number
  tls?: TlsServerOptions
}

export interface ResolvedServerOptions extends Required<Omit<WireServerOptions, 'tls' | 'onRequest'>> {
  tls: TlsServerOptions | undefined
  onRequest: RequestHandler
}

export const SERVER_DEFAULTS = {
  posture: 'strict',
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 64,
  maxBodyBytes: 1024 * 1024,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  idleTimeout: 120_000,
  maxPipelineDepth: 256,
  maxInflight: 4096,
  maxWriteBuffer: 256 * 1024,
  maxConnections: 10_000,
  lingerBytes: 64 * 1024,
  lingerTimeout: 2_000,
  handshakeTimeout: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  timerResolution: 250,
  closeTimeout: 5_000,
  busyPollMicros: 0
} as const satisfies Omit<ResolvedServerOptions, 'tls' | 'onRequest'>

const noop: RequestHandler = () => undefined

export function resolveServerOptions (o: WireServerOptions = {}): ResolvedServerOptions {
  const r: ResolvedServerOptions = { ...SERVER_DEFAULTS, tls: undefined, onRequest: noop }
  for (const key of Object.keys(SERVER_DEFAULTS) as Array<keyof typeof SERVER_DEFAULTS>) {
    const v = o[key]
    if (v === undefined) continue
    if (key === 'posture') {
      if (v !== 'strict' && v !== 'interop') throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `posture must be 'strict' or 'interop', got ${String(v)}` })
      r.posture = v
    } else if (key === 'busyPollMicros') {
      r.busyPollMicros = busyPollOption(v)
    } else {
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
        throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${key} must be a positive integer, got ${String(v)}` })
      }
      r[key] = v
    }
  }
  if (o.onRequest !== undefined) r.onRequest = o.onRequest
  r.tls = o.tls
  return r
}
