/**
 * `WireClient`: one outbound HTTP/1.1 connection to a peer, pipelining SSP
 * POSTs (spec 5.1) and matching each dummy `200` to the oldest unacknowledged
 * request.
 *
 * The pipeline is ONE array of request records with three indices, as in
 * undici's client-h1:
 *
 *     queue: [ done, not yet called back | written, unanswered | not written ]
 *             ^doneIdx                   ^runningIdx           ^pendingIdx
 *
 * Answers advance `runningIdx` from inside the llhttp callbacks (bookkeeping
 * only); callers' callbacks run afterwards, outside WebAssembly, in order. A
 * called-back slot is cleared at once (the record, its body and callback are
 * garbage); the array itself is compacted every 256 completions.
 *
 * Request heads are one constant prefix per target (request line, Host,
 * Content-Type, the `x-wv-transactionid` name) plus the variable fields.
 * All requests ready in a tick are written into ONE `Buffer.allocUnsafe`:
 * heads, string bodies (encoded straight into it) and Buffer bodies up to
 * COPY_BODY_MAX, so a batch is one socket write. Larger Buffer bodies go out
 * uncopied as their own chunks between that buffer's pieces, in one cork
 * (one writev).
 *
 * Redirection (spec 5.5) is followed only for the first request of a fresh
 * connection marked `setup`; while such a request is in flight nothing else is
 * written behind it (the "setup barrier"), so no other request can reach a
 * server that is about to redirect us elsewhere.
 */
import { channel } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import * as net from 'node:net'
import * as tls from 'node:tls'
import { createError, type ErrorCode, type SspError } from '../errors.js'
import { CONTENT_TYPE_12, CONTENT_TYPE_13, isIdString } from './header-bytes.js'
import { MAX_BUSY_POLL_MICROS, pollAfterIo } from './busy-poll.js'
import { any, boolean, integer, object, oneOf, resolveOptions, string, type OptionSpec } from '../options-check.js'
import { isRedirectStatus, redirectTarget } from './redirect.js'
import { postHeadStart } from './request-head.js'
import { ResponseFramer, type ResponseSink } from './response-framer.js'

export interface WireClientOptions {
  /** Requests written and not yet answered, at most. Default 16. */
  pipelineDepth?: number
  /** Requests waiting to be written, at most; beyond that `write` fails with SSP_ERR_QUEUE_FULL. Default 1024. */
  maxQueued?: number
  /** `write()` returns false once this many requests wait to be written. Default `pipelineDepth`. */
  queueHighWater?: number
  /** Stop writing while the socket buffers more than this many bytes. Default 64 KiB. */
  highWaterMark?: number
  /** SSP version of the peer: '1.2' selects the 1.2 content type spelling (spec 5.4). Default '1.3'. */
  version?: '1.3' | '1.2'
  /** Send ids outside `1*(ALPHA / DIGIT / "_")` (interop/conformance tooling). Control characters are always refused. */
  allowAnyIds?: boolean
  /** Redirect hops followed for one set-up request. Default 5. */
  maxRedirects?: number
  /** TCP (and TLS handshake) must complete within this many ms. Default 10 000. */
  connectTimeout?: number
  /** First reconnection delay after a failure, ms. Default 100. */
  reconnectDelay?: number
  /** Cap of the exponential reconnection delay, ms. Default 10 000. */
  maxReconnectDelay?: number
  /** Consecutive failed connection attempts tolerated before queued requests fail with SSP_ERR_CONNECT. Default 10. */
  maxReconnectAttempts?: number
  /**
   * Failed attempts tolerated before the **first** connection ever succeeds, after which
   * queued requests fail with SSP_ERR_CONNECT. Default `maxReconnectAttempts`; an SSP node
   * uses 1, so that a peer that is not there fails a set-up within `connectTimeout`
   * instead of after minutes of retries.
   */
  initialConnectAttempts?: number
  /** `close()` waits at most this long for outstanding requests, ms. Default 10 000. */
  closeTimeout?: number
  /** Limit on a response's header section. Default 16 KiB. */
  maxResponseHeaderBytes?: number
  /** Limit on a response body (read and discarded). Default 1 MiB. */
  maxResponseBodyBytes?: number
  /**
   * After each write of requests and each read of answers, keep the event loop
   * polling (not sleeping) for this many µs, so answers are read without a
   * wake-up (src/wire/busy-poll.ts). 0 to 1,000,000. Default 0 (off).
   */
  busyPollMicros?: number
  /**
   * With busyPollMicros only: write as soon as this many requests wait, instead of
   * once at the end of the turn. The peer is polling, so it starts on them while
   * this process produces the rest, and the two work in parallel rather than in
   * turn. Default half of pipelineDepth up to a depth of 16, a quarter above
   * (at least 1); 0 = once per turn.
   */
  busyPollBatch?: number
  // ---- https:// only
  ca?: tls.ConnectionOptions['ca']
  cert?: tls.ConnectionOptions['cert']
  key?: tls.ConnectionOptions['key']
  servername?: string
  rejectUnauthorized?: boolean
  /** Anything else for `tls.connect` (merged first; the options above win). */
  tls?: tls.ConnectionOptions
}

/** Defaults of the numeric options (queueHighWater defaults to pipelineDepth, initialConnectAttempts to maxReconnectAttempts + 1). */
export const CLIENT_DEFAULTS = {
  pipelineDepth: 16,
  maxQueued: 1024,
  highWaterMark: 64 * 1024,
  version: '1.3',
  allowAnyIds: false,
  maxRedirects: 5,
  connectTimeout: 10_000,
  reconnectDelay: 100,
  maxReconnectDelay: 10_000,
  maxReconnectAttempts: 10,
  closeTimeout: 10_000,
  maxResponseHeaderBytes: 16 * 1024,
  maxResponseBodyBytes: 1024 * 1024,
  busyPollMicros: 0
} as const

/** Every option of WireClientOptions with its check (the SSP node checks its nested `client` options with it). */
export const CLIENT_SPEC: OptionSpec = {
  pipelineDepth: integer(1),
  maxQueued: integer(0),
  queueHighWater: integer(1),
  highWaterMark: integer(0),
  version: oneOf('1.3', '1.2'),
  allowAnyIds: boolean,
  maxRedirects: integer(0),
  connectTimeout: integer(1),
  reconnectDelay: integer(0),
  maxReconnectDelay: integer(0),
  maxReconnectAttempts: integer(0),
  initialConnectAttempts: integer(1),
  closeTimeout: integer(0),
  maxResponseHeaderBytes: integer(64),
  maxResponseBodyBytes: integer(0),
  busyPollMicros: integer(0, MAX_BUSY_POLL_MICROS),
  busyPollBatch: integer(0),
  // TLS material is checked by node:tls
  ca: any,
  cert: any,
  key: any,
  servername: string,
  rejectUnauthorized: boolean,
  tls: object
}

/**
 * A request body: a string (encoded as UTF-8 into the batch's buffer), a Buffer,
 * or Buffers written in order after the head. Up to 16 KiB (COPY_BODY_MAX) a
 * Buffer body is copied into the batch's buffer; a larger one is never copied
 * (the node sends a large primitive inside its envelope as pieces this way).
 */
export type WireBody = Buffer | string | readonly Buffer[]

/** What a failed request hands back so the layer above can resend it. */
export interface WireRequestInfo {
  body: WireBody
  transactionId: string
  sessionId: string | undefined
  setup: boolean
}

/** Errors given to request callbacks carry the request. */
export type WireRequestError = SspError & { request?: WireRequestInfo }

export type WireCallback = (err: WireRequestError | null, status: number) => void

export interface WireClientStats {
  requests: number
  acknowledged: number
  failed: number
  bytesOut: number
  bytesIn: number
  /** Socket reads (data events) on the client's connections. */
  reads: number
  /** Writes to the socket: one per flush, however many requests it carries (a corked writev). */
  writes: number
  connects: number
  reconnects: number
  redirectsFollowed: number
  redirectsRefused: number
  unacknowledged: number
  /** Non-request errors that had no 'error' listener. */
  errors: number
}

export interface WireConnectEvent { url: string, reconnect: boolean, resumed: boolean }
export interface WireDisconnectEvent { url: string, error: Error | undefined, unacknowledged: number }
export interface WireRedirectEvent { from: string, to: string, status: number }

const chConnect = channel('ssp-transport:client:connect')
const chDisconnect = channel('ssp-transport:client:disconnect')
const chRedirect = channel('ssp-transport:client:redirect')

// ---- connection states
const C_IDLE = 0
const C_CONNECTING = 1
const C_CONNECTED = 2
const C_BACKOFF = 3

const COMPACT_AT = 256

const SID_FIELD = Buffer.from('\r\nx-wv-sessionid: ', 'latin1')
const CL_FIELD = Buffer.from('\r\nContent-Length: ', 'latin1')
const SID_FIELD_LEN = SID_FIELD.length
/**
 * Buffer bodies (or pieces) up to this size in all are copied into the batch's
 * one buffer; larger ones are written as they are (zero-copy). At 1 MiB a copy
 * was ~27 % of the sending node's CPU; below 16 KiB it costs less than a
 * writev entry of its own (native-notes.md §10, §11).
 */
const COPY_BODY_MAX = 16 * 1024
const CL_FIELD_LEN = CL_FIELD.length

/**
 * The buffer every plain-TCP client connection of the process reads into
 * (`net.connect`'s `onread`). One is enough: a read's callback parses it
 * completely before the next read can start, and the response framer keeps no
 * view of its input (the one string it keeps, a Location, is copied out).
 * 64 KiB, what libuv asks for per read anyway.
 */
let sharedReadBuffer: Buffer | undefined
function readBuffer (): Buffer {
  sharedReadBuffer ??= Buffer.allocUnsafe(64 * 1024)
  return sharedReadBuffer
}

/** Buffer's own (undocumented, stable since Node 0.x) encoders: no argument parsing. */
interface FastBuffer {
  latin1Write (s: string, off: number, len: number): number
  utf8Write (s: string, off: number, len: number): number
}

class WireRequest {
  body: WireBody
  /** Encoded body length (Content-Length). */
  bodyLen: number
  transactionId: string
  sessionId: string | undefined
  setup: boolean
  callback: WireCallback
  status = 0
  error: WireRequestError | null = null
  redirects = 0
  visited: string[] | undefined = undefined
  /** Digits of Content-Length, counted when the flush sizes the request (headBytes) for writeHead. */
  clDigits = 1

  constructor (body: WireBody, bodyLen: number, tid: string, sid: string | undefined, setup: boolean, cb: WireCallback) {
    this.body = body
    this.bodyLen = bodyLen
    this.transactionId = tid
    this.sessionId = sid
    this.setup = setup
    this.callback = cb
  }
}

/** Encoded length of a body (its Content-Length), or -1 when it is none of the WireBody shapes. */
export function wireBodyLength (body: unknown): number {
  if (typeof body === 'string') return Buffer.byteLength(body, 'utf8')
  if (Buffer.isBuffer(body)) return body.length
  if (!Array.isArray(body)) return -1
  let n = 0
  for (let i = 0; i < body.length; i++) {
    const b: unknown = body[i]
    if (!Buffer.isBuffer(b)) return -1
    n += b.length
  }
  return n
}

function requestInfo (req: WireRequest): WireRequestInfo {
  return { body: req.body, transactionId: req.transactionId, sessionId: req.sessionId, setup: req.setup }
}

function requestError (req: WireRequest, code: ErrorCode, detail?: { message?: string, status?: number, scr?: string, cause?: unknown }): WireRequestError {
  const err: WireRequestError = createError(code, detail)
  err.request = requestInfo(req)
  return err
}

/** Error codes OpenSSL and Node give to certificate and handshake failures. */
function isTlsFailure (err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code !== 'string') return false
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT|SIGN|ISSUER|HOSTNAME/.test(code)
}

/** Id outside the grammar but still safe on the wire: no CTL, latin1 only. */
function isSafeId (s: string): boolean {
  const n = s.length
  if (n === 0) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x21 || c === 0x7f || c > 0xff) return false
  }
  return true
}

/** One TCP (or TLS) connection; a new one per (re)connection. */
class Connection implements ResponseSink {
  readonly client: WireClient
  readonly sock: net.Socket
  readonly secure: boolean
  readonly framer: ResponseFramer
  /** The URL this connection was opened to. */
  readonly url: string
  timer: NodeJS.Timeout | undefined = undefined
  tcpUp = false
  connected = false
  /** Requests written on this connection. */
  written = 0
  /** Final (non-1xx) responses received on this connection. */
  answered = 0
  /** The peer answered `Connection: close`: nothing more is written or parsed. */
  peerClosing = false
  /** Location of a redirect to follow, set from inside the parser. */
  redirectTo: string | undefined = undefined
  redirectStatus = 0
  fault: SspError | undefined = undefined
  lastError: Error | undefined = undefined

  constructor (client: WireClient, sock: net.Socket, secure: boolean, url: string, opts: Required<Pick<WireClientOptions, 'maxResponseHeaderBytes' | 'maxResponseBodyBytes'>>) {
    this.client = client
    this.sock = sock
    this.secure = secure
    this.url = url
    this.framer = new ResponseFramer(this, { maxHeaderBytes: opts.maxResponseHeaderBytes, maxBodyBytes: opts.maxResponseBodyBytes })
    sock.on('connect', this.onTcp)
    if (secure) {
      sock.on('secureConnect', this.onReady)
      sock.on('session', this.onSession)
    } else {
      sock.on('connect', this.onReady)
    }
    sock.on('data', this.onData)
    sock.on('end', this.onEnd)
    sock.on('error', this.onError)
    sock.on('close', this.onClose)
    sock.on('drain', this.onDrain)
  }

  private readonly onTcp = (): void => { this.tcpUp = true }
  private readonly onReady = (): void => { this.client._connected(this) }
  private readonly onSession = (session: Buffer): void => { this.client._session(this, session) }
  private readonly onData = (chunk: Buffer): void => { this.client._data(this, chunk) }
  private readonly onEnd = (): void => { this.client._end(this) }
  private readonly onError = (err: Error): void => { this.lastError ??= err }
  private readonly onClose = (): void => { this.client._lost(this, this.lastError) }
  private readonly onDrain = (): void => { this.client._flush() }

  onResponse (status: number, keepAlive: boolean, location: string | undefined, bodyBytes: number): boolean {
    return this.client._response(this, status, keepAlive, location, bodyBytes)
  }

  onResponseError (code: ErrorCode, detail: string | undefined): void {
    this.fault = createError(code, detail === undefined ? undefined : { message: detail })
  }
}

export class WireClient extends EventEmitter {
  readonly stats: WireClientStats = {
    requests: 0,
    acknowledged: 0,
    failed: 0,
    bytesOut: 0,
    bytesIn: 0,
    reads: 0,
    writes: 0,
    connects: 0,
    reconnects: 0,
    redirectsFollowed: 0,
    redirectsRefused: 0,
    unacknowledged: 0,
    errors: 0
  }

  private target: URL
  private secure = false
  private head: Buffer = Buffer.alloc(0)
  private headLen = 0
  /**
   * `\r\nx-wv-sessionid: <sid>\r\nContent-Length: ` for the session id written
   * last, as bytes: a client's requests carry one session in the steady state,
   * so the id is not encoded again per request (native-notes section 12).
   */
  private sidLineOf: string | undefined = undefined
  private sidLine: Buffer = CL_FIELD
  private readonly contentType: string

  private readonly depth: number
  private readonly maxQueued: number
  private readonly queueHigh: number
  private readonly hwm: number
  private readonly allowAnyIds: boolean
  private readonly maxRedirects: number
  private readonly connectTimeout: number
  private readonly reconnectDelay: number
  private readonly maxReconnectDelay: number
  private readonly maxReconnectAttempts: number
  private readonly initialConnectAttempts: number
  private readonly closeTimeout: number
  private readonly busyPollMicros: number
  /** Waiting requests that make `write` flush at once (busy polling), or Infinity: once per turn. */
  private readonly flushAt: number
  private readonly limits: { maxResponseHeaderBytes: number, maxResponseBodyBytes: number }
  private readonly tlsOptions: tls.ConnectionOptions
  /** The URL the client was created with: where it goes back to when a redirect is forgotten. */
  private readonly origin: URL

  // ---- pipeline
  /** Slots before doneIdx are cleared (undefined) once called back: a finished request keeps nothing alive. */
  private queue: Array<WireRequest | undefined> = []
  private doneIdx = 0
  private runningIdx = 0
  private pendingIdx = 0
  private dispatching = false
  private barrier = false
  private needDrain = false
  private flushScheduled = false

  // ---- connection
  private conn: Connection | null = null
  private state = C_IDLE
  private failures = 0
  private everConnected = false
  private backoffTimer: NodeJS.Timeout | undefined = undefined
  private tlsSession: Buffer | undefined = undefined
  private tlsSessionHost = ''
  private connectWaiters: Array<{ resolve: () => void, reject: (err: SspError) => void }> = []

  // ---- shutdown
  private closeCalled = false
  private destroyed = false
  private closePromise: Promise<void> | undefined = undefined
  private closeResolve: (() => void) | undefined = undefined
  private closeTimer: NodeJS.Timeout | undefined = undefined

  constructor (url: string | URL, options: WireClientOptions = {}) {
    super()
    const target = new URL(url)
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unsupported protocol ${target.protocol}` })
    }
    const o = resolveOptions(options, CLIENT_SPEC, CLIENT_DEFAULTS)
    this.depth = o.pipelineDepth
    this.maxQueued = o.maxQueued
    this.queueHigh = options.queueHighWater ?? this.depth
    this.hwm = o.highWaterMark
    this.maxRedirects = o.maxRedirects
    this.connectTimeout = o.connectTimeout
    this.reconnectDelay = o.reconnectDelay
    this.maxReconnectDelay = o.maxReconnectDelay
    this.maxReconnectAttempts = o.maxReconnectAttempts
    this.initialConnectAttempts = options.initialConnectAttempts ?? this.maxReconnectAttempts + 1
    this.closeTimeout = o.closeTimeout
    this.busyPollMicros = o.busyPollMicros
    // Measured at depths 16 and 64 (section 12): half the depth up to 16, a quarter above.
    const batch = options.busyPollBatch ?? Math.max(1, this.depth <= 16 ? this.depth >> 1 : this.depth >> 2)
    this.flushAt = this.busyPollMicros === 0 || batch === 0 ? Infinity : batch
    this.limits = { maxResponseHeaderBytes: o.maxResponseHeaderBytes, maxResponseBodyBytes: o.maxResponseBodyBytes }
    this.contentType = o.version === '1.2' ? CONTENT_TYPE_12 : CONTENT_TYPE_13
    this.allowAnyIds = o.allowAnyIds
    const t: tls.ConnectionOptions = { ...options.tls, ALPNProtocols: ['http/1.1'] }
    if (options.ca !== undefined) t.ca = options.ca
    if (options.cert !== undefined) t.cert = options.cert
    if (options.key !== undefined) t.key = options.key
    if (options.servername !== undefined) t.servername = options.servername
    if (options.rejectUnauthorized !== undefined) t.rejectUnauthorized = options.rejectUnauthorized
    this.tlsOptions = t
    this.target = target
    this.origin = target
    this.setTarget(target)
  }

  /** The peer URL requests currently go to (changes when a set-up redirect is followed). */
  get url (): string { return this.target.href }

  /**
   * Forget the redirects followed so far: later connections go to the URL
   * the client was created with. A redirect answers one set-up (spec 5.5);
   * the SSP node calls this when that set-up fails or its session ends, so
   * a redirect target that has gone away is not where the next set-up goes.
   * The open connection, if any, is kept (a live session may still use it).
   */
  forgetRedirect (): void {
    if (this.target.href !== this.origin.href) this.setTarget(this.origin)
  }
  /** Requests written and not yet answered. */
  get inFlight (): number { return this.pendingIdx - this.runningIdx }
  /** Requests waiting to be written. */
  get queued (): number { return this.queue.length - this.pendingIdx }
  get connected (): boolean { return this.state === C_CONNECTED }
  /** close() or destroy() was called: no new request is taken. */
  get closing (): boolean { return this.closeCalled }
  /** Done: every request finished and the connection ended (or destroy()ed). */
  get closed (): boolean { return this.destroyed }

  /** A snapshot of the counters (a copy; `stats` is the live object). */
  getStats (): WireClientStats & { inFlight: number, queued: number } {
    return { ...this.stats, inFlight: this.inFlight, queued: this.queued }
  }

  /** Open the connection now (it is otherwise opened by the first write). */
  connect (): Promise<void> {
    if (this.closeCalled) return Promise.reject(createError('SSP_ERR_CLIENT_CLOSED'))
    if (this.state === C_CONNECTED) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.connectWaiters.push({ resolve, reject })
      if (this.state === C_IDLE) this.open()
    })
  }

  /**
   * Queue one POST. The callback runs once, with the peer's 2xx status or an
   * error (SspError with `.request` for anything the caller may resend).
   * Returns false when the caller should wait for 'drain'.
   */
  write (body: WireBody, transactionId: string, sessionId: string | undefined, setup: boolean, callback: WireCallback): boolean {
    const bodyLen = wireBodyLength(body)
    if (bodyLen < 0) return this.reject(callback, createError('SSP_ERR_INVALID_ARGUMENT', { message: 'body must be a Buffer, a string or an array of Buffers' }))
    if (typeof transactionId !== 'string' || !(this.allowAnyIds ? isSafeId(transactionId) : isIdString(transactionId))) {
      return this.reject(callback, createError('SSP_ERR_INVALID_ID', { message: 'x-wv-transactionid' }))
    }
    if (sessionId !== undefined && (typeof sessionId !== 'string' || !(this.allowAnyIds ? isSafeId(sessionId) : isIdString(sessionId)))) {
      return this.reject(callback, createError('SSP_ERR_INVALID_ID', { message: 'x-wv-sessionid' }))
    }
    if (this.closeCalled) return this.reject(callback, createError('SSP_ERR_CLIENT_CLOSED'))
    const waiting = this.queue.length - this.pendingIdx
    if (waiting >= this.maxQueued) {
      this.needDrain = true
      return this.reject(callback, createError('SSP_ERR_QUEUE_FULL'))
    }
    this.queue.push(new WireRequest(body, bodyLen, transactionId, sessionId, setup === true, callback))
    this.stats.requests++
    if (this.state === C_CONNECTED) {
      // Busy polling: the peer is awake, so a part batch goes now and it starts on it
      // while this turn produces the rest (native-notes section 12).
      if (waiting + 1 >= this.flushAt && this.pendingIdx - this.runningIdx < this.depth) this._flush(true)
      if (!this.flushScheduled) {
        this.flushScheduled = true
        process.nextTick(this.flushTick)
      }
    } else if (this.state === C_IDLE) {
      this.open()
    }
    if (waiting + 1 >= this.queueHigh) {
      this.needDrain = true
      return false
    }
    return true
  }

  /** Promise form of `write`. */
  send (body: WireBody, opts: { transactionId: string, sessionId?: string | undefined, setup?: boolean }): Promise<{ status: number }> {
    return new Promise((resolve, reject) => {
      this.write(body, opts.transactionId, opts.sessionId, opts.setup === true, (err, status) => {
        if (err !== null) reject(err)
        else resolve({ status })
      })
    })
  }

  /**
   * Graceful: refuse new requests, let queued and in-flight ones finish
   * (at most `closeTimeout` ms, then `destroy()`), then end the connection.
   */
  close (): Promise<void> {
    if (this.closePromise !== undefined) return this.closePromise
    this.closeCalled = true
    this.closePromise = new Promise<void>((resolve) => { this.closeResolve = resolve })
    this.rejectConnectWaiters(createError('SSP_ERR_CLIENT_CLOSED'))
    if (this.queue.length > this.doneIdx) {
      this.closeTimer = setTimeout(() => { this.destroy(createError('SSP_ERR_CLIENT_CLOSED', { message: 'closeTimeout expired' })) }, this.closeTimeout)
    }
    this.maybeFinishClose()
    return this.closePromise
  }

  /** Immediate: unanswered requests fail with SSP_ERR_UNACKNOWLEDGED, queued ones with SSP_ERR_CLIENT_CLOSED. */
  destroy (err?: Error): void {
    if (this.destroyed) return
    this.destroyed = true
    this.closeCalled = true
    if (this.backoffTimer !== undefined) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined }
    if (this.closeTimer !== undefined) { clearTimeout(this.closeTimer); this.closeTimer = undefined }
    this.rejectConnectWaiters(createError('SSP_ERR_CLIENT_CLOSED'))
    const conn = this.conn
    if (conn !== null) this.teardown(conn, err, 'SSP_ERR_UNACKNOWLEDGED', err)
    this.failQueued('SSP_ERR_CLIENT_CLOSED', err)
    this.state = C_IDLE
    this.dispatch()
    this.finishClose()
  }

  // ------------------------------------------------------------------ target and head

  private setTarget (url: URL): void {
    this.target = url
    this.secure = url.protocol === 'https:'
    const prefix = `${postHeadStart(url, this.contentType)}x-wv-transactionid: `
    this.head = Buffer.from(prefix, 'latin1')
    this.headLen = this.head.length
  }

  /** Bytes of a request's head (and its string body): what `writeHead` writes. */
  private headBytes (req: WireRequest): number {
    const sid = req.sessionId
    let digits = 1
    for (let v = req.bodyLen; v >= 10; v = Math.floor(v / 10)) digits++
    req.clDigits = digits
    return this.headLen + req.transactionId.length + (sid === undefined ? 0 : SID_FIELD_LEN + sid.length) +
      CL_FIELD_LEN + digits + 4 + (typeof req.body === 'string' ? req.bodyLen : 0)
  }

  /** Write a request's head (and a string body) into `buf` at `off` (sized by headBytes first); returns the offset after it. */
  private writeHead (req: WireRequest, buf: Buffer, off: number): number {
    const tid = req.transactionId
    const sid = req.sessionId
    const bodyLen = req.bodyLen
    buf.set(this.head, off)
    off += this.headLen
    // The id by a plain loop: for a short string cheaper than a native latin1Write, and
    // the same bytes (a Uint8Array store keeps the low 8 bits, as latin1 does).
    for (let i = 0; i < tid.length; i++) buf[off + i] = tid.charCodeAt(i)
    off += tid.length
    if (sid !== this.sidLineOf) {
      this.sidLineOf = sid
      this.sidLine = sid === undefined ? CL_FIELD : Buffer.concat([SID_FIELD, Buffer.from(sid, 'latin1'), CL_FIELD])
    }
    buf.set(this.sidLine, off)
    off += this.sidLine.length
    const digits = req.clDigits
    let v = bodyLen
    for (let i = off + digits - 1; i >= off; i--) {
      buf[i] = 0x30 + (v % 10)
      v = Math.floor(v / 10)
    }
    off += digits
    buf[off++] = 0x0d
    buf[off++] = 0x0a
    buf[off++] = 0x0d
    buf[off++] = 0x0a
    if (typeof req.body === 'string' && bodyLen > 0) off += (buf as unknown as FastBuffer).utf8Write(req.body, off, bodyLen)
    return off
  }

  // ------------------------------------------------------------------ writing

  private readonly flushTick = (): void => {
    this.flushScheduled = false
    this._flush()
  }

  /**
   * @internal Write what the depth and the socket allow. Pass one picks the
   * requests and sizes them; pass two writes their heads, string bodies and
   * Buffer bodies up to COPY_BODY_MAX into ONE buffer, so a batch of small
   * requests is one socket write (no writev of a chunk per request). Larger
   * bodies go out uncopied between the batch buffer's pieces, in one cork.
   */
  _flush (inWrite = false): void {
    const conn = this.conn
    if (conn === null || !conn.connected || conn.peerClosing || this.barrier) return
    const sock = conn.sock
    const queue = this.queue
    const from = this.pendingIdx
    let to = from
    let copied = 0
    // What the socket holds, plus what this flush adds: resumed by the socket's
    // 'drain', which only comes once the socket's own writableHighWaterMark was
    // crossed, hence the max.
    let backlog = sock.writableLength
    while (to < queue.length && to - this.runningIdx < this.depth) {
      if (backlog > this.hwm && backlog >= sock.writableHighWaterMark) break
      const req = queue[to++]!
      const head = this.headBytes(req)
      const own = typeof req.body === 'string' ? 0 : req.bodyLen
      copied += own <= COPY_BODY_MAX ? head + own : head
      backlog += head + own
      if (req.setup && conn.written === 0 && to === from + 1) { this.barrier = true; break }
    }
    // From inside write() (a part batch) 'drain' waits for the turn's flush: never emitted within write().
    if (to === from) { if (!inWrite) this.maybeDrain(); return }
    this.pendingIdx = to
    const buf = Buffer.allocUnsafe(copied)
    let off = 0
    let mark = 0
    let corked = false
    for (let i = from; i < to; i++) {
      const req = queue[i]!
      const start = off
      off = this.writeHead(req, buf, off)
      let out = off - start
      const body = req.body
      if (typeof body !== 'string' && req.bodyLen > 0) {
        out += req.bodyLen
        if (req.bodyLen <= COPY_BODY_MAX) {
          if (Buffer.isBuffer(body)) { buf.set(body, off); off += body.length } else for (let j = 0; j < body.length; j++) { buf.set(body[j]!, off); off += body[j]!.length }
        } else {
          if (!corked) { sock.cork(); corked = true }
          sock.write(buf.subarray(mark, off))
          mark = off
          if (Buffer.isBuffer(body)) sock.write(body)
          else for (let j = 0; j < body.length; j++) sock.write(body[j]!)
        }
      }
      conn.written++
      this.stats.bytesOut += out
    }
    if (off > mark) sock.write(mark === 0 ? buf : buf.subarray(mark, off))
    if (corked) sock.uncork()
    this.stats.writes++
    if (this.busyPollMicros !== 0) pollAfterIo(this.busyPollMicros)
    if (!inWrite) this.maybeDrain()
  }

  private maybeDrain (): void {
    if (this.needDrain && !this.closeCalled && this.queue.length - this.pendingIdx < this.queueHigh) {
      this.needDrain = false
      this.emit('drain')
    }
  }

  private reject (callback: WireCallback, err: SspError): boolean {
    this.stats.failed++
    process.nextTick(callback, err, 0)
    return !this.needDrain
  }

  // ------------------------------------------------------------------ reading

  /** @internal */
  _data (conn: Connection, chunk: Buffer): void {
    if (conn !== this.conn) return
    this.stats.bytesIn += chunk.length
    this.stats.reads++
    conn.framer.push(chunk)
    if (this.busyPollMicros !== 0) pollAfterIo(this.busyPollMicros)
    this.afterParse(conn)
  }

  /**
   * @internal The peer half-closed: a body running to EOF completes here.
   * Nothing more is written; the connection is dropped on 'close', which
   * follows (the socket does not allow half-open) and comes after any 'error'
   * (a TLS alert can be read after the FIN).
   */
  _end (conn: Connection): void {
    if (conn !== this.conn) return
    conn.peerClosing = true
    conn.framer.finish()
    if (conn.fault !== undefined || conn.redirectTo !== undefined) this.afterParse(conn)
    else this.dispatch()
  }

  /** @internal Called from inside llhttp: bookkeeping only. */
  _response (conn: Connection, status: number, keepAlive: boolean, location: string | undefined, _bodyBytes: number): boolean {
    if (status < 200) return true // 1xx informational: skipped
    const first = conn.answered === 0
    conn.answered++
    if (this.runningIdx === this.pendingIdx) {
      conn.fault = createError('SSP_ERR_HTTP_RESPONSE', { message: `response ${status} without a request` })
      return false
    }
    const req = this.queue[this.runningIdx]!
    if (status < 300) {
      req.status = status
      this.stats.acknowledged++
    } else if (isRedirectStatus(status)) {
      if (req.setup && first && location !== undefined && location !== '') {
        // Followed after the parser returns; the request stays in flight until then.
        conn.redirectTo = location
        conn.redirectStatus = status
        return false
      }
      if (req.setup && first) {
        req.error = requestError(req, 'SSP_ERR_HTTP_STATUS', { message: `${status} without Location`, status })
      } else {
        req.error = requestError(req, 'SSP_ERR_REDIRECT_NOT_ALLOWED', { status, scr: 'S-011' })
        this.stats.redirectsRefused++
      }
      this.stats.failed++
    } else {
      req.error = requestError(req, 'SSP_ERR_HTTP_STATUS', { message: String(status), status })
      this.stats.failed++
    }
    req.status = status
    this.runningIdx++
    if (this.barrier && first) this.barrier = false
    if (!keepAlive) {
      conn.peerClosing = true
      return false
    }
    return true
  }

  private afterParse (conn: Connection): void {
    if (conn !== this.conn) return
    if (conn.fault !== undefined) {
      const fault = conn.fault
      this.nonRequestError(fault)
      this.teardown(conn, fault, 'SSP_ERR_UNACKNOWLEDGED', fault)
    } else if (conn.redirectTo !== undefined) {
      this.followRedirect(conn, conn.redirectTo, conn.redirectStatus)
    } else if (conn.peerClosing) {
      // `Connection: close` answered: what is still in flight will not be answered.
      this.teardown(conn, undefined, 'SSP_ERR_UNACKNOWLEDGED', undefined)
    }
    this.dispatch()
    if (this.conn === conn) this._flush()
  }

  private followRedirect (conn: Connection, location: string, status: number): void {
    const req = this.queue[this.runningIdx]!
    const from = this.target
    const next = redirectTarget(location, from)
    let err: WireRequestError | undefined
    if (next === undefined) {
      err = requestError(req, 'SSP_ERR_HTTP_RESPONSE', { message: `unusable Location ${JSON.stringify(location)}`, status })
    } else {
      req.visited ??= [from.href]
      if (req.visited.includes(next.href)) {
        err = requestError(req, 'SSP_ERR_REDIRECT_LOOP', { message: `${from.href} -> ${next.href}`, status })
      } else if (req.redirects >= this.maxRedirects) {
        err = requestError(req, 'SSP_ERR_TOO_MANY_REDIRECTS', { message: `more than ${this.maxRedirects}`, status })
      }
    }
    if (err !== undefined || next === undefined) {
      // The chain failed: later traffic goes back to where it started.
      const origin = req.visited?.[0]
      req.error = err ?? null
      req.status = status
      this.stats.failed++
      this.runningIdx++
      this.barrier = false
      if (origin !== undefined && origin !== this.target.href) this.setTarget(new URL(origin))
      this.teardown(conn, undefined, 'SSP_ERR_UNACKNOWLEDGED', undefined)
      return
    }
    req.visited!.push(next.href)
    req.redirects++
    // Back to "not written": it is sent again, first, on the new connection.
    this.pendingIdx = this.runningIdx
    this.barrier = false
    this.stats.redirectsFollowed++
    this.teardown(conn, undefined, 'SSP_ERR_UNACKNOWLEDGED', undefined, false)
    this.setTarget(next)
    const ev: WireRedirectEvent = { from: from.href, to: next.href, status }
    if (chRedirect.hasSubscribers) chRedirect.publish({ client: this, ...ev })
    this.emit('redirect', ev)
    if (!this.destroyed && this.state === C_IDLE) this.open(true)
  }

  // ------------------------------------------------------------------ callbacks

  /** Call back completed requests, in order, outside the parser. */
  private dispatch (): void {
    if (this.dispatching) return
    this.dispatching = true
    try {
      while (this.doneIdx < this.runningIdx) {
        const i = this.doneIdx++
        const req = this.queue[i]!
        // Released before the callback runs: its body and callback are not
        // held until the next compaction.
        this.queue[i] = undefined
        req.callback(req.error, req.status)
      }
    } finally {
      this.dispatching = false
    }
    if (this.doneIdx === this.queue.length) {
      // Drained: keep nothing (bodies, callbacks) alive while the client idles.
      this.queue.length = 0
      this.doneIdx = this.runningIdx = this.pendingIdx = 0
    } else if (this.doneIdx >= COMPACT_AT) {
      const n = this.doneIdx
      this.queue.splice(0, n)
      this.doneIdx = 0
      this.runningIdx -= n
      this.pendingIdx -= n
    }
    if (this.closeCalled) this.maybeFinishClose()
  }

  /**
   * Fail requests not yet written (callers settle those in flight first; any
   * left are handed back as unacknowledged), and move them all into the
   * completed range so that dispatch calls them back, in order.
   */
  private failQueued (code: ErrorCode, cause: unknown, message?: string): void {
    const queue = this.queue
    for (let i = this.runningIdx; i < queue.length; i++) {
      const req = queue[i]!
      const c = i < this.pendingIdx ? 'SSP_ERR_UNACKNOWLEDGED' : code
      if (c === 'SSP_ERR_UNACKNOWLEDGED') this.stats.unacknowledged++
      req.error = requestError(req, c, {
        ...(cause === undefined ? {} : { cause }),
        ...(message === undefined || c !== code ? {} : { message })
      })
      this.stats.failed++
    }
    this.runningIdx = this.pendingIdx = queue.length
  }

  private nonRequestError (err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else this.stats.errors++
  }

  // ------------------------------------------------------------------ connection lifecycle

  private open (redirect = false): void {
    if (this.destroyed) return
    const url = this.target
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const port = url.port === '' ? (this.secure ? 443 : 80) : Number(url.port)
    let sock: net.Socket
    if (this.secure) {
      const o: tls.ConnectionOptions = { ...this.tlsOptions, host, port }
      if (o.servername === undefined && net.isIP(host) === 0) o.servername = host
      if (this.tlsSession !== undefined && this.tlsSessionHost === url.host) o.session = this.tlsSession
      sock = tls.connect(o)
    } else {
      // Plain TCP reads into one process-wide buffer (`onread`), not a fresh Buffer per
      // read through the stream: the responses are parsed and dropped within the
      // callback, so nothing keeps a view of it (native-notes section 12).
      // (`conn` is set below, before any read can arrive: reads start after the connect.)
      sock = net.connect({
        host,
        port,
        onread: { buffer: readBuffer(), callback: (nread: number, buf: Uint8Array): boolean => { this._data(conn, (buf as Buffer).subarray(0, nread)); return true } }
      })
    }
    const conn: Connection = new Connection(this, sock, this.secure, url.href, this.limits)
    this.conn = conn
    this.state = C_CONNECTING
    this.stats.connects++
    if (this.everConnected && !redirect) this.stats.reconnects++
    conn.timer = setTimeout(() => {
      if (!conn.connected) sock.destroy(createError('SSP_ERR_CONNECT', { message: `no connection within ${this.connectTimeout} ms` }))
    }, this.connectTimeout)
  }

  /** @internal */
  _connected (conn: Connection): void {
    if (conn !== this.conn) return
    if (conn.timer !== undefined) { clearTimeout(conn.timer); conn.timer = undefined }
    conn.connected = true
    this.state = C_CONNECTED
    const sock = conn.sock
    sock.setNoDelay(true)
    sock.setKeepAlive(true, 60_000)
    const reconnect = this.everConnected
    this.everConnected = true
    const resumed = conn.secure && (sock as tls.TLSSocket).isSessionReused()
    const ev: WireConnectEvent = { url: this.target.href, reconnect, resumed }
    if (chConnect.hasSubscribers) chConnect.publish({ client: this, ...ev })
    this.emit('connect', ev)
    const waiters = this.connectWaiters
    if (waiters.length > 0) {
      this.connectWaiters = []
      for (const w of waiters) w.resolve()
    }
    if (conn === this.conn) this._flush()
  }

  /** @internal */
  _session (conn: Connection, session: Buffer): void {
    if (conn !== this.conn) return
    this.tlsSession = session
    this.tlsSessionHost = this.target.host
  }

  /** @internal The socket closed (or failed). */
  _lost (conn: Connection, err: Error | undefined): void {
    if (conn !== this.conn) return
    this.teardown(conn, err, 'SSP_ERR_UNACKNOWLEDGED', err)
    this.dispatch()
  }

  /**
   * Drop `conn`: requests in flight fail with `inFlightCode` (or SSP_ERR_TLS
   * for a handshake/certificate failure, which also fails everything queued),
   * then reconnect if there is work left.
   */
  private teardown (conn: Connection, err: Error | undefined, inFlightCode: ErrorCode, cause: unknown, reconnect = true): void {
    if (conn !== this.conn) return
    this.conn = null
    this.state = C_IDLE
    this.barrier = false
    if (conn.timer !== undefined) { clearTimeout(conn.timer); conn.timer = undefined }
    conn.framer.destroy()
    if (!conn.sock.destroyed) conn.sock.destroy()

    // What went wrong, if anything.
    let fatal: SspError | undefined
    let connectFailed = false
    if (!conn.connected) {
      if (conn.secure && conn.tcpUp && isTlsFailure(err)) fatal = createError('SSP_ERR_TLS', { cause: err, message: err?.message ?? '' })
      else connectFailed = true
    } else if (conn.secure && conn.answered === 0 && isTlsFailure(err)) {
      // e.g. TLS 1.3: the server refuses our (missing) certificate after the handshake.
      fatal = createError('SSP_ERR_TLS', { cause: err, message: err?.message ?? '' })
    }

    const inFlight = this.pendingIdx - this.runningIdx
    if (inFlight > 0) {
      const queue = this.queue
      for (let i = this.runningIdx; i < this.pendingIdx; i++) {
        const req = queue[i]!
        if (fatal !== undefined) {
          req.error = requestError(req, 'SSP_ERR_TLS', { message: fatal.message, cause: err })
        } else {
          req.error = requestError(req, inFlightCode, cause === undefined ? undefined : { cause })
          if (inFlightCode === 'SSP_ERR_UNACKNOWLEDGED') this.stats.unacknowledged++
        }
        this.stats.failed++
      }
      this.runningIdx = this.pendingIdx
    }

    if (conn.connected) {
      const ev: WireDisconnectEvent = { url: conn.url, error: err, unacknowledged: fatal === undefined ? inFlight : 0 }
      if (chDisconnect.hasSubscribers) chDisconnect.publish({ client: this, ...ev })
      this.emit('disconnect', ev)
    }
    if (this.destroyed) return

    if (fatal !== undefined) {
      this.failures = 0
      this.rejectConnectWaiters(fatal)
      if (this.queue.length > this.pendingIdx) this.failQueued('SSP_ERR_TLS', err)
      else this.nonRequestError(fatal)
      return
    }
    if (connectFailed || conn.answered === 0 || conn.fault !== undefined) this.failures++
    else this.failures = 0

    if (!reconnect) return
    const work = this.queue.length > this.pendingIdx || this.connectWaiters.length > 0
    if (!work) return
    if (this.failures > this.maxReconnectAttempts || (!this.everConnected && this.failures >= this.initialConnectAttempts)) {
      const e = createError('SSP_ERR_CONNECT', { message: `${this.target.href}: ${err?.message ?? 'connection failed'}`, cause: err })
      this.failures = 0
      this.rejectConnectWaiters(e)
      // Say where and why (ECONNREFUSED, a timeout...): an operator reads this line first.
      this.failQueued('SSP_ERR_CONNECT', err, `${this.target.href}: ${err?.message ?? 'connection failed'}`)
      return
    }
    this.scheduleReconnect()
  }

  private scheduleReconnect (): void {
    if (this.failures === 0) {
      this.open()
      return
    }
    const base = Math.min(this.maxReconnectDelay, this.reconnectDelay * 2 ** Math.min(this.failures - 1, 30))
    const delay = Math.round(base / 2 + Math.random() * base / 2) // jitter: [base/2, base]
    this.state = C_BACKOFF
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined
      if (this.state === C_BACKOFF) {
        this.state = C_IDLE
        this.open()
      }
    }, delay)
  }

  private rejectConnectWaiters (err: SspError): void {
    const waiters = this.connectWaiters
    if (waiters.length === 0) return
    this.connectWaiters = []
    for (const w of waiters) w.reject(err)
  }

  private maybeFinishClose (): void {
    if (!this.closeCalled || this.destroyed || this.dispatching) return
    if (this.doneIdx < this.queue.length) return
    this.destroyed = true
    if (this.backoffTimer !== undefined) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined }
    const conn = this.conn
    if (conn !== null) {
      this.conn = null
      this.state = C_IDLE
      if (conn.timer !== undefined) clearTimeout(conn.timer)
      conn.framer.destroy()
      if (conn.connected) {
        conn.sock.end()
        const ev: WireDisconnectEvent = { url: conn.url, error: undefined, unacknowledged: 0 }
        if (chDisconnect.hasSubscribers) chDisconnect.publish({ client: this, ...ev })
        this.emit('disconnect', ev)
      } else {
        conn.sock.destroy()
      }
    }
    this.finishClose()
  }

  private finishClose (): void {
    if (this.closeTimer !== undefined) { clearTimeout(this.closeTimer); this.closeTimer = undefined }
    if (this.closeResolve !== undefined) {
      const r = this.closeResolve
      this.closeResolve = undefined
      r()
    }
  }
}
