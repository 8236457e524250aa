/** Options of an SSP node, with defaults. The README's node option table follows this file. */
import { createError, type ErrorCode, type SspError } from '../errors.js'
import { boolean, checkOptions, func, integer, nested, object, oneOf, resolveOptions, string, type OptionSpec, type Resolved } from '../options-check.js'
import { MAX_BUSY_POLL_MICROS } from '../wire/busy-poll.js'
import { CLIENT_SPEC, type WireClientOptions } from '../wire/client.js'
import type { ServerConnection } from '../wire/server-connection.js'
import { SERVER_LIMITS_SPEC, type Posture, type TlsServerOptions, type WireServerOptions } from '../wire/server-options.js'
import type { Resolver, StaticPeers } from './directory.js'
import type { Role } from './session.js'

export interface ListenSpec {
  port?: number
  host?: string
  /** Present: this listener speaks HTTPS (S-003). */
  tls?: TlsServerOptions
  /** Advertised URL path. Default `/`. */
  path?: string
}

export const TransactionKind = {
  /** A service request in the session where we are the provider. */
  REQUEST: 'request',
  /** A notification request from the provider, in the session where we are the requestor. */
  NOTIFICATION: 'notification'
} as const
export type TransactionKind = typeof TransactionKind[keyof typeof TransactionKind]

/** An incoming request, as the application's handler sees it. */
export interface IncomingTransaction {
  /** The peer's domain. */
  readonly peer: string
  readonly kind: TransactionKind
  /** The request's transaction id (header, or the body's when the peer sent no header). */
  readonly transactionId: string
  /** Our id of the session the request came in. */
  readonly sessionId: string
  /** The peer's id of that session. */
  readonly peerSessionId: string
  /** The whole message exactly as received (a view of the socket read, no copy). */
  readonly body: Buffer
  /**
   * The primitive inside this request's `Transaction` element (e.g.
   * `<SendMessageRequest …>…</SendMessageRequest>`), whitespace trimmed: a
   * view of `body`, found on first use. Empty when the body has no Session
   * envelope.
   */
  readonly primitive: Buffer
  /** Local name of the primitive's element (`SendMessageRequest`), '' when there is none. */
  readonly primitiveName: string
}

/**
 * The application: returns the answer. With `envelope: 'node'` (default) that
 * is the answer primitive (e.g. `<SendMessageResponse><Status code="200"/></SendMessageResponse>`),
 * which the node wraps as `Transaction mode="Response"` with the request's
 * transaction id in a `Session` naming our id; with `envelope: 'raw'` it is
 * the whole message. The node POSTs it back on a connection it originated.
 */
export type IncomingHandler = (tx: IncomingTransaction) => Buffer | string | PromiseLike<Buffer | string>

/** The ids the node chose for an outgoing request, for an application that writes whole messages (raw mode). */
export interface EnvelopeIds {
  readonly transactionId: string
  /** Our id of the session: what the node puts in `x-wv-sessionid`, and what `Session sessionID` must say. */
  readonly sessionId: string
  /** The peer's id of the session. */
  readonly peerSessionId: string
}

/** Raw mode: a whole message, or a function that writes it with the node's ids. */
export type RawBody = Buffer | string | ((ids: EnvelopeIds) => Buffer | string)

/** `session`: a session with a peer is up (set-up finished, either side initiated). */
export interface SessionEvent {
  /** The peer's domain. */
  readonly peer: string
  /** Our role in the session: `requestor` (we send requests) or `provider` (we serve them). */
  readonly role: Role
  /** Our id of the session. */
  readonly id: string
  /** The peer's id of the session. */
  readonly peerId: string
}

/** `sessionEnd`: a session ended (closed, expired, its connections lost). */
export interface SessionEndEvent {
  readonly peer: string
  readonly role: Role
  readonly id: string
  /** Why, as an error code (e.g. SSP_ERR_SESSION_CLOSED). */
  readonly reason: ErrorCode
}

/** `setupError`: a set-up failed or was refused (either side initiated). */
export interface SetupErrorEvent {
  readonly peer: string
  readonly role: Role
  readonly error: SspError
}

/** The node's events and their payloads: `node.on('session', (e) => e.peer)`. */
export interface SspNodeEvents {
  session: SessionEvent
  sessionEnd: SessionEndEvent
  setupError: SetupErrorEvent
}

export interface SspNodeOptions {
  /** This server's IMPS domain, e.g. `a.example`. */
  domain: string
  /** Listeners; default one HTTP listener on 127.0.0.1, port chosen free. */
  listen?: ListenSpec[]
  /** Static peer directory: domain → URL (or { url, version }). Consulted before DNS SRV. */
  peers?: StaticPeers
  /** Resolver used after the static map. Default DNS SRV `_imps-server._tcp.<domain>`; `false` for none. */
  resolver?: Resolver | false
  posture?: Posture
  /**
   * Who writes the SSP envelope (`WV-SSP-Message`/`Session`/`Transaction`):
   * `node` (default): requests and handler answers are primitives and the node
   * wraps them with the ids of the x-wv-* headers; `raw`: the application
   * writes whole messages, and the node checks (strict: refuses with
   * SSP_ERR_ENVELOPE_MISMATCH) or counts (interop: `envelopeMismatches`) that
   * the body's ids are the headers'.
   */
  envelope?: 'node' | 'raw'
  handler?: IncomingHandler
  /** Server-side redirection (spec 5.5): consulted only for the first SendSecretToken on a new connection. */
  redirect?: (peer: string, connection: ServerConnection) => string | undefined
  /** S-008: one connection pair for both sessions with a peer. Default true. */
  pairReuse?: boolean
  /** S-009: outbound connections per peer (per session without reuse). Default 1. */
  pairs?: number
  /** Session timeToLive offered, in seconds. Default 3600. */
  timeToLive?: number
  /** Set-up must finish within this many ms. Default 10,000. */
  setupTimeout?: number
  /**
   * A set-up we initiated whose POST was cut off before its 200 (SSP_ERR_UNACKNOWLEDGED:
   * the connection died) is started again, from step 1 on a new connection, this many
   * times (jittered backoff from 100 ms) before the requests waiting for it fail. Default 2.
   */
  setupRetries?: number
  /**
   * A set-up step after step 1 (steps 3-7) on which the peer closed the connection
   * instead of answering 200 is POSTed again, this many times (jittered delay from
   * 100 ms, doubling) within the set-up deadline. Baraza refuses a step 4 that comes
   * within about a millisecond of its own step 3 that way. Default 3.
   */
  setupStepRetries?: number
  /** A transaction fails with SSP_ERR_TRANSACTION_TIMEOUT after this many ms without its response half. Default 30,000. */
  transactionTimeout?: number
  /** Our transactions in flight per peer. Default 10,000. */
  maxPendingPerPeer?: number
  /** Body bytes of our transactions in flight per peer. Default 64 MiB. */
  maxPendingBytesPerPeer?: number
  /** Body bytes of a session-less POST (a set-up message) the node parses; larger or not shaped like a set-up: dropped, counted in setupRefused. Default 16 KiB. */
  maxSetupBodyBytes?: number
  /**
   * Set-ups a peer may start with us (its step 1s) per claimed domain in 10 s; more: the connection is closed,
   * nothing is POSTed to the claimed domain, counted in setupsRateLimited. Default 10.
   */
  maxSetupsPerPeer?: number
  /** Peer-initiated set-ups in progress at once, all domains together; more: refused as above. Default 64. */
  maxPendingSetups?: number
  /** Transactions waiting for a session to come up, per peer. Default 10,000. */
  maxWaitingPerPeer?: number
  /** Times a POST is resent after its connection died before the 200, within the transaction deadline. Default 100. Once spent, the transaction waits for its answer until the deadline (then SSP_ERR_TRANSACTION_TIMEOUT). */
  maxResends?: number
  /** Incoming transaction ids remembered per session to drop resent duplicates. Default 4096. */
  dedupeWindow?: number
  /** close(): how long to drain in-flight transactions, in ms. Default 10,000. */
  closeTimeout?: number
  /**
   * Busy polling for both halves of every connection pair: after the node's socket
   * I/O the event loop keeps polling for this many µs instead of sleeping
   * (src/wire/busy-poll.ts; `client.busyPollMicros` / `server.busyPollMicros`
   * override it per side). 0 to 1,000,000. Default 0 (off).
   */
  busyPollMicros?: number
  /** Outbound client options (pipeline depth, TLS trust and client certificate, reconnect backoff...). */
  client?: Omit<WireClientOptions, 'version'>
  /** Inbound server limits (see WireServerOptions). */
  server?: Omit<WireServerOptions, 'posture' | 'onRequest' | 'tls'>
}

export const NODE_DEFAULTS = {
  posture: 'strict',
  envelope: 'node',
  pairReuse: true,
  pairs: 1,
  timeToLive: 3600,
  setupTimeout: 10_000,
  setupRetries: 2,
  setupStepRetries: 3,
  transactionTimeout: 30_000,
  maxPendingPerPeer: 10_000,
  maxPendingBytesPerPeer: 64 * 1024 * 1024,
  maxSetupBodyBytes: 16 * 1024,
  maxSetupsPerPeer: 10,
  maxPendingSetups: 64,
  maxWaitingPerPeer: 10_000,
  maxResends: 100,
  dedupeWindow: 4096,
  closeTimeout: 10_000,
  busyPollMicros: 0
} as const

const DOMAIN = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/

const positive = integer(1)
const count = integer(0)

// the node sets `version` per peer (from the directory entry)
const { version: _version, ...NODE_CLIENT_SPEC } = CLIENT_SPEC

const LISTEN_SPEC: OptionSpec = { port: integer(0, 65535), host: string, tls: object, path: string }

/** Every option of SspNodeOptions with its check; `server` and `client` are checked key by key here, at construction. */
const NODE_SPEC: OptionSpec = {
  domain: (v, name) => {
    if (typeof v !== 'string' || !DOMAIN.test(v)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${name} must be a DNS name, got ${String(v)}` })
  },
  listen: (v, name) => {
    if (!Array.isArray(v)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${name} must be an array` })
    v.forEach((spec, i) => { checkOptions(spec, LISTEN_SPEC, `${name}[${i}].`) })
  },
  // entries are checked by normalizePeer in the constructor
  peers: object,
  resolver: (v, name) => {
    if (v !== false && typeof v !== 'function') throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${name} must be a function or false` })
  },
  posture: oneOf('strict', 'interop'),
  envelope: oneOf('node', 'raw'),
  handler: func,
  redirect: func,
  pairReuse: boolean,
  pairs: positive,
  timeToLive: positive,
  setupTimeout: positive,
  setupRetries: count,
  setupStepRetries: count,
  transactionTimeout: positive,
  maxPendingPerPeer: positive,
  maxPendingBytesPerPeer: positive,
  maxWaitingPerPeer: positive,
  maxResends: count,
  dedupeWindow: count,
  maxSetupBodyBytes: positive,
  maxSetupsPerPeer: positive,
  maxPendingSetups: positive,
  closeTimeout: positive,
  busyPollMicros: integer(0, MAX_BUSY_POLL_MICROS),
  client: nested(NODE_CLIENT_SPEC),
  server: nested(SERVER_LIMITS_SPEC)
}

export type ResolvedNodeOptions = Resolved<typeof NODE_DEFAULTS, SspNodeOptions>

/** Checks every option, nested ones included (unknown keys refused by name), and merges them over NODE_DEFAULTS, once. */
export function resolveNodeOptions (o: SspNodeOptions): ResolvedNodeOptions {
  if (typeof o !== 'object' || o === null) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'options must be an object' })
  if (o.domain === undefined) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'domain must be a DNS name, got undefined' })
  return resolveOptions(o, NODE_SPEC, NODE_DEFAULTS)
}
