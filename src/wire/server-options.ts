/**
 * Every limit of the server side, with its default. The README's option table
 * is written from this file; keep them together.
 */
import { checkOptions, func, integer, object, oneOf, type OptionSpec } from '../options-check.js'
import { MAX_BUSY_POLL_MICROS } from './busy-poll.js'
import type { Posture, RequestHandler } from './server-connection.js'

export type { Posture, RequestHandler } from './server-connection.js'

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
  maxInFlight?: number
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
  maxInFlight: 4096,
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

const positive = integer(1)

/** The server's limits (also the node's nested `server` options, which leave out posture, onRequest and tls). */
export const SERVER_LIMITS_SPEC: OptionSpec = {
  maxHeaderBytes: positive,
  maxHeaderCount: positive,
  maxBodyBytes: positive,
  headersTimeout: positive,
  requestTimeout: positive,
  idleTimeout: positive,
  maxPipelineDepth: positive,
  maxInFlight: positive,
  maxWriteBuffer: positive,
  maxConnections: positive,
  lingerBytes: positive,
  lingerTimeout: positive,
  handshakeTimeout: positive,
  maxBufferedBytes: positive,
  timerResolution: positive,
  closeTimeout: positive,
  busyPollMicros: integer(0, MAX_BUSY_POLL_MICROS)
}

const SERVER_SPEC: OptionSpec = {
  ...SERVER_LIMITS_SPEC,
  posture: oneOf('strict', 'interop'),
  onRequest: func,
  // node:tls checks the TLS material itself
  tls: object
}

const noop: RequestHandler = () => undefined

/** Checks every option (unknown keys refused by name) and merges them over SERVER_DEFAULTS, once. */
export function resolveServerOptions (o: WireServerOptions = {}): Readonly<ResolvedServerOptions> {
  checkOptions(o, SERVER_SPEC)
  const r: ResolvedServerOptions = { ...SERVER_DEFAULTS, tls: undefined, onRequest: noop }
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (r as unknown as Record<string, unknown>)[k] = v
  // Readonly by type, not frozen: limits are read at each use (the timeout sweep), and tests tighten them live.
  return r
}
