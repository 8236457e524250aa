/**
 * One accepted connection: socket in, framer, answers out.
 *
 * Answer order is the request order by construction: requests are handed to
 * the application as the framer completes them, each hand-over adds one owed
 * 200, and the owed 200s are written once at the end of the read, before any
 * refusal, which is always the last answer on the connection.
 *
 * Backpressure: a request that cannot be handed over (application queue or
 * this connection's share of it full) is held, not acknowledged; the framer
 * pauses right after it and the socket stops reading, so TCP pushes back on
 * the peer. The held request is handed over when a place frees up.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { channel } from 'node:diagnostics_channel'
import { createError, type ErrorCode, type SspError } from '../errors.js'
import { acks, ACK, ACK_CLOSE, ACK_LEN, CONTINUE, errorReply, redirectReply } from './replies.js'
import { FramerState, RequestFramer, type FramerSink } from './request-framer.js'
import type { SspRequest } from './request.js'
import { pollAfterIo } from './busy-poll.js'
import { WireStats, type WireStatsSnapshot } from './stats.js'

export type Posture = 'strict' | 'interop'

/**
 * Called once per accepted request, in request order per connection. Return
 * nothing when done with it, or a promise: the request then occupies a place
 * in the application queue until the promise settles.
 */
export type RequestHandler = (req: SspRequest, conn: ServerConnection) => void | PromiseLike<unknown>

/**
 * What a connection reads of its server's resolved options. server-options.ts
 * resolves them (its ResolvedServerOptions is one of these); this file does not
 * import it, so the dependency goes one way.
 */
export interface ConnectionOptions {
  readonly posture: Posture
  readonly onRequest: RequestHandler
  readonly maxHeaderBytes: number
  readonly maxHeaderCount: number
  readonly maxBodyBytes: number
  readonly headersTimeout: number
  readonly requestTimeout: number
  readonly idleTimeout: number
  readonly maxPipelineDepth: number
  readonly maxInFlight: number
  readonly maxWriteBuffer: number
  readonly lingerBytes: number
  readonly lingerTimeout: number
  readonly maxBufferedBytes: number
  readonly busyPollMicros: number
}

/** Why reading is paused (bit set). */
const PAUSE_QUEUE = 1
const PAUSE_WRITE = 2

const chRequest = channel('ssp-transport:server:request')
const chReject = channel('ssp-transport:server:reject')
const chClose = channel('ssp-transport:server:close')

/** What a connection needs from its server (kept narrow so tests can drive a connection alone). */
export interface ConnectionHost {
  readonly options: ConnectionOptions
  readonly stats: WireStats
  /** Coarse clock (ms), advanced by the server's timeout sweep. */
  readonly now: number
  inFlight: number
  /** Queue this connection to be woken when the application queue has room. */
  waitForRoom (conn: ServerConnection): void
  /** A held request finished: maybe wake waiting connections. */
  released (): void
  connectionClosed (conn: ServerConnection): void
  /** Bytes of partially received requests held by all connections (see maxBufferedBytes). */
  bufferedBytes: number
  /** bufferedBytes went over maxBufferedBytes: refuse the largest holders. */
  overBudget (): void
}

let nextId = 1

export class ServerConnection implements FramerSink {
  readonly id = nextId++
  readonly socket: Socket | TLSSocket
  readonly stats = new WireStats()
  /** Free slot for the layer above (the SSP node keeps its peer state here). */
  context: unknown = undefined
  /** A second free slot for the layer above (the SSP node caches the session last seen here). */
  hint: unknown = undefined

  private readonly host: ConnectionHost
  private readonly opts: ConnectionOptions
  private readonly framer: RequestFramer
  /** Requests of this connection the application holds (handler promise pending). */
  private inFlightCount = 0
  private held: SspRequest | undefined = undefined
  private owed = 0
  private closeAfterAcks = false
  private refusal: ErrorCode | undefined = undefined
  /** A request of this connection was refused (stays set after the refusal is written). */
  private refused = false
  private redirect: Buffer | undefined = undefined
  private paused = 0
  private closing = false
  closed = false
  /** host.now when the current request began, its head ended (0: none open), and when a byte last came in. */
  private requestStart = 0
  private headStart = 0
  private lastRead = 0
  /** host.now when reading was paused (valid while paused !== 0): pauses are not counted against timeouts. */
  private pausedAt = 0
  /** host.now when we ended our side, and the bytes read since (the closing state is bounded by both). */
  private closingAt = 0
  private lingerRead = 0
  /** This connection's share of host.bufferedBytes (the framer's retainedBytes at the last count). */
  private retained = 0
  private readonly settled: () => void
  private readonly settledFailed: () => void
  /** release() calls not yet applied (they run on a microtask, outside any parser). */
  private releases = 0
  private readonly applyReleases: () => void
  private flushScheduled = false
  private readonly flushLater: () => void
  /** The first socket error, published with the close event. */
  private socketError: SspError | undefined = undefined
  /** Write callback: a chunk reached the kernel, so the write buffer shrank. */
  private readonly written: () => void

  constructor (socket: Socket | TLSSocket, host: ConnectionHost) {
    this.socket = socket
    this.host = host
    this.opts = host.options
    this.lastRead = host.now
    this.framer = new RequestFramer(this, {
      interop: this.opts.posture === 'interop',
      maxHeaderBytes: this.opts.maxHeaderBytes,
      maxHeaderCount: this.opts.maxHeaderCount,
      maxBodyBytes: this.opts.maxBodyBytes,
      requireHost: true
    })
    this.flushLater = () => {
      this.flushScheduled = false
      if (!this.closed) this.flush()
    }
    this.settled = () => {
      this.inFlightCount--
      this.host.inFlight--
      if (this.held !== undefined) this.wake()
      this.host.released()
    }
    this.settledFailed = () => {
      this.stats.handlerErrors++
      this.host.stats.handlerErrors++
      this.settled()
    }
    this.applyReleases = () => {
      let n = this.releases
      this.releases = 0
      while (n-- > 0) this.settled()
    }
    // 'drain' alone is not enough: it only fires once writableLength crossed the
    // socket's own highWaterMark, which may be above maxWriteBuffer.
    this.written = () => { this.onDrain() }
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => this.onDrain())
    socket.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(err))
    socket.on('close', () => this.onClose())
  }

  get remoteAddress (): string | undefined { return this.socket.remoteAddress }
  get remotePort (): number | undefined { return this.socket.remotePort }
  /** Requests held by the application for this connection. */
  get inFlight (): number { return this.inFlightCount }

  /** A snapshot of this connection's counters (`stats` is the live object). */
  getStats (): WireStatsSnapshot & { inFlight: number, bufferedBytes: number } {
    return { ...this.stats.snapshot(), inFlight: this.inFlightCount, bufferedBytes: this.retained }
  }
  /** Bytes of the partially received request (and paused input) this connection holds. */
  get bufferedBytes (): number { return this.retained }

  /**
   * Answer the request being handed over (call it from inside the handler)
   * with a redirect instead of a 200; the connection closes after it. The SSP
   * layer uses this only for the first SendSecretToken on a new connection.
   */
  redirectCurrent (location: string, status: 301 | 302 | 303 | 307 | 308 = 307): void {
    this.redirect = redirectReply(status, location)
  }

  /**
   * Keep the request being handed over (call it from inside the handler) in
   * the application's hands until release(): it counts against
   * maxPipelineDepth and maxInFlight like a pending handler promise, without
   * the promise. Each retain() needs exactly one release().
   */
  retain (): void {
    this.inFlightCount++
    this.host.inFlight++
  }

  /**
   * The application is done with a retained request. Safe to call from
   * anywhere (inside another connection's parser callback too): the place is
   * freed on a microtask, so no parser is resumed while llhttp runs.
   */
  release (): void {
    if (this.releases++ === 0) queueMicrotask(this.applyReleases)
  }

  /** Close now: owed answers are flushed, held requests dropped. */
  close (): void {
    if (this.closed) return
    this.stopParsing()
    this.flush()
    this.end()
  }

  /** Closed by the server's shutdown: stop taking requests, flush, end. */
  shutdown (): void { this.close() }

  // ------------------------------------------------------------------ socket events

  private onData (chunk: Buffer): void {
    const n = chunk.length
    this.stats.bytesIn += n
    this.host.stats.bytesIn += n
    this.stats.reads++
    this.host.stats.reads++
    this.lastRead = this.host.now
    if (this.closing) {
      this.linger(n)
      return
    }
    this.framer.push(chunk)
    if (this.framer.retainedBytes !== this.retained) this.account()
    if (this.opts.busyPollMicros !== 0) pollAfterIo(this.opts.busyPollMicros)
    if (this.owed === 1 || this.refusal !== undefined || this.closeAfterAcks || this.held !== undefined ||
        this.socket.writableLength > this.opts.maxWriteBuffer) {
      // One request in this read (an unpipelined peer: nothing to coalesce;
      // deferring cost ~7 % of tx/s at depth 1, bench/e2e.mjs --depths 1 with
      // --ref), or ending, holding or over the write budget: answer now, so
      // the refusal, the close and the read pause are not a turn late.
      this.flush()
    } else if (!this.flushScheduled) {
      // The 200s of this read go out at the end of the event-loop turn (the
      // check phase, right after the poll phase that read them), in one write
      // with those of any other read of the turn, after the application's own
      // writes of the turn: the answer POSTs and next requests it wrote on its
      // outbound connections (their flush runs on nextTick, earlier). So the
      // peer gets everything of this turn within one writev of each other and
      // wakes once for the lot; answering at once, before the application's
      // writes, woke it twice per batch (bench/e2e.mjs: sleeps per transaction).
      this.flushScheduled = true
      setImmediate(this.flushLater)
    }
  }

  private onDrain (): void {
    if ((this.paused & PAUSE_WRITE) !== 0 && this.socket.writableLength <= this.opts.maxWriteBuffer) {
      this.resumeReading(PAUSE_WRITE)
    }
  }

  private onSocketError (err: NodeJS.ErrnoException): void {
    this.stats.countError('SSP_ERR_SOCKET')
    this.host.stats.countError('SSP_ERR_SOCKET')
    // Reported with the 'close' that always follows: one close event per connection.
    this.socketError ??= createError('SSP_ERR_SOCKET', { message: err.code ?? err.message, cause: err })
  }

  private onClose (): void {
    if (this.closed) return
    this.closed = true
    // A refused request is counted once, under its error code, not also as incomplete.
    if (this.framer.inMessage && !this.refused) {
      this.stats.incompleteRequests++
      this.host.stats.incompleteRequests++
    }
    if (this.held !== undefined) {
      this.held = undefined
      this.stats.unacknowledgedDropped++
      this.host.stats.unacknowledgedDropped++
    }
    this.framer.destroy()
    if (this.retained !== 0) {
      this.host.bufferedBytes -= this.retained
      this.retained = 0
    }
    this.host.connectionClosed(this)
    if (chClose.hasSubscribers) {
      chClose.publish(this.socketError === undefined ? { connection: this } : { connection: this, error: this.socketError })
    }
  }

  // ------------------------------------------------------------------ framer sink

  onMessageBegin (): void {
    const now = this.host.now
    this.requestStart = now
    this.headStart = now
  }

  onHeadersComplete (): void {
    this.headStart = 0
  }

  onRequest (req: SspRequest): boolean {
    this.requestStart = 0
    this.stats.requests++
    this.host.stats.requests++
    if (req.deviations !== 0) {
      this.stats.countDeviations(req.deviations)
      this.host.stats.countDeviations(req.deviations)
    }
    if (!this.hasRoom()) {
      this.hold(req)
      return false
    }
    this.handOver(req)
    return true
  }

  onContinue (): void {
    // After every earlier answer of the pipeline (a held request pauses the
    // framer before the next head, so no earlier 200 can still be missing).
    this.flushOwed()
    this.write(CONTINUE)
  }

  onReject (code: ErrorCode, detail: string | undefined): void {
    this.requestStart = 0
    this.headStart = 0
    this.stats.countError(code)
    this.host.stats.countError(code)
    if (chReject.hasSubscribers) chReject.publish({ connection: this, code, detail })
    // The refusal keeps its place: it goes out after every earlier answer,
    // including one still held for backpressure.
    this.refusal = code
    this.refused = true
  }

  // ------------------------------------------------------------------ hand-over and answers

  private hasRoom (): boolean {
    return this.inFlightCount < this.opts.maxPipelineDepth && this.host.inFlight < this.opts.maxInFlight
  }

  private hold (req: SspRequest): void {
    this.held = req
    this.pauseReading(PAUSE_QUEUE)
    if (this.host.inFlight >= this.opts.maxInFlight) this.host.waitForRoom(this)
  }

  /** Room again (called by settle or by the server): hand over the held request, parse on. */
  wake (): void {
    const req = this.held
    if (req === undefined || this.closed || this.closing || !this.hasRoom()) return
    this.held = undefined
    this.handOver(req)
    this.resumeReading(PAUSE_QUEUE)
    if (this.framer.state === FramerState.PAUSED) this.framer.resume()
    if (this.framer.retainedBytes !== this.retained) this.account()
    this.flush()
  }

  /**
   * Refused for the server-wide budget of partial request bytes (called by the
   * server, outside any parser callback): 503, close, its bytes released.
   */
  refuseBuffered (): void {
    if (this.closed || this.closing || this.refused) return
    this.stopParsing()
    this.onReject('SSP_ERR_SERVER_BUSY', `${this.retained} bytes of a partial request`)
    this.account()
    this.flush()
  }

  /** Bring host.bufferedBytes up to date with what the framer holds; over the budget, the server acts. */
  private account (): void {
    const r = this.framer.retainedBytes
    const host = this.host
    host.bufferedBytes += r - this.retained
    const grew = r > this.retained
    this.retained = r
    if (grew && host.bufferedBytes > this.opts.maxBufferedBytes) host.overBudget()
  }

  private handOver (req: SspRequest): void {
    if (chRequest.hasSubscribers) chRequest.publish({ connection: this, request: req })
    let r: void | PromiseLike<unknown> = undefined
    try {
      r = this.opts.onRequest(req, this)
    } catch {
      this.stats.handlerErrors++
      this.host.stats.handlerErrors++
    }
    if (r !== undefined && r !== null && typeof r.then === 'function') {
      this.inFlightCount++
      this.host.inFlight++
      // Through a native promise: a foreign thenable may call back synchronously,
      // and settling from inside the parser's callback could resume a parser
      // (this one or another connection's) while llhttp is running.
      // Promise.resolve returns a native promise itself, at no cost.
      Promise.resolve(r).then(this.settled, this.settledFailed)
    }
    if (this.redirect !== undefined) {
      // A redirect answers this request and ends the connection (spec 5.5).
      this.flushOwedThen(this.redirect)
      this.redirect = undefined
      this.stopParsing()
      this.end()
      return
    }
    this.owed++
    if (!req.keepAlive) this.closeAfterAcks = true
  }

  private flushOwed (): void {
    const n = this.owed
    if (n === 0) return
    this.owed = 0
    this.stats.acknowledged += n
    this.host.stats.acknowledged += n
    if (this.closeAfterAcks) {
      // The last 200 says the connection closes (the peer asked for it); still one write.
      if (n === 1) {
        this.write(ACK_CLOSE)
      } else {
        const out = Buffer.allocUnsafe((n - 1) * ACK_LEN + ACK_CLOSE.length)
        acks(n - 1).copy(out, 0)
        ACK_CLOSE.copy(out, (n - 1) * ACK_LEN)
        this.write(out)
      }
    } else {
      this.write(n === 1 ? ACK : acks(n))
    }
  }

  /** One write: the owed 200s, then `last` (a refusal or a redirect, which ends the connection). */
  private flushOwedThen (last: Buffer): void {
    const n = this.owed
    if (n === 0) {
      this.write(last)
      return
    }
    this.owed = 0
    this.stats.acknowledged += n
    this.host.stats.acknowledged += n
    const out = Buffer.allocUnsafe(n * ACK_LEN + last.length)
    acks(n).copy(out, 0)
    last.copy(out, n * ACK_LEN)
    this.write(out)
  }

  /** End of a read or of a wake-up: one write for all owed 200s, then a refusal if any. */
  private flush (): void {
    if (this.closing) return
    if (this.owed > 0) {
      if (this.refusal !== undefined && this.held === undefined) {
        // One write: the 200s and the refusal after them.
        this.flushOwedThen(errorReply(this.refusal))
        this.refusal = undefined
        this.end()
        return
      }
      this.flushOwed()
    }
    if (this.held === undefined) {
      if (this.refusal !== undefined) {
        this.write(errorReply(this.refusal))
        this.refusal = undefined
        this.end()
        return
      }
      if (this.closeAfterAcks) {
        this.end()
        return
      }
    }
    if (this.socket.writableLength > this.opts.maxWriteBuffer) this.pauseReading(PAUSE_WRITE)
  }

  private write (b: Buffer): void {
    const n = b.length
    this.stats.bytesOut += n
    this.host.stats.bytesOut += n
    this.stats.writes++
    this.host.stats.writes++
    this.socket.write(b, this.written)
  }

  /** Safe from inside a framer callback: the parser itself is freed on close. */
  private stopParsing (): void {
    this.framer.stop()
  }

  private end (): void {
    if (this.closing) return
    this.closing = true
    this.closingAt = this.host.now
    this.stopParsing()
    this.socket.end()
    // Read on (into the stopped framer) so the peer's FIN is seen and the
    // socket closes; a paused socket would stay half-open until a timeout.
    if (this.paused !== 0) {
      this.paused = 0
      this.socket.resume()
    }
  }

  /** Read while closing: only to see the FIN, and only up to lingerBytes. */
  private linger (n: number): void {
    this.lingerRead += n
    if (this.lingerRead > this.opts.lingerBytes) this.cutLinger()
  }

  private cutLinger (): void {
    if (this.socket.destroyed) return
    this.stats.countError('SSP_ERR_LINGER')
    this.host.stats.countError('SSP_ERR_LINGER')
    if (!this.socket.destroyed) this.socket.destroy()
  }

  private pauseReading (why: number): void {
    if (this.paused === 0) {
      this.pausedAt = this.host.now
      this.socket.pause()
      this.stats.backpressurePauses++
      this.host.stats.backpressurePauses++
    }
    this.paused |= why
  }

  private resumeReading (why: number): void {
    if (this.paused === 0) return
    this.paused &= ~why
    if (this.paused !== 0) return
    // Our pause does not count against the request's timeouts: shift their start.
    const d = this.host.now - this.pausedAt
    if (d > 0) {
      if (this.headStart !== 0) this.headStart += d
      if (this.requestStart !== 0) this.requestStart += d
    }
    if (!this.closing) this.socket.resume()
  }

  // ------------------------------------------------------------------ timeouts (driven by the server's sweep)

  /** Called by the server's sweep with the current coarse time. */
  checkTimeouts (now: number): void {
    if (this.closed) return
    const o = this.opts
    if (this.closing) {
      // We ended our side; the peer has lingerTimeout to close its side (and to
      // read what we sent), however much it keeps sending below lingerBytes.
      if (now - this.closingAt >= o.lingerTimeout) this.cutLinger()
      else if (now - this.lastRead >= o.idleTimeout) this.socket.destroy()
      return
    }
    // While we hold reading paused, the request's clocks stand still (see resumeReading).
    if (this.paused === 0 && this.headStart !== 0 && now - this.headStart >= o.headersTimeout) {
      this.timeout('SSP_ERR_HEADERS_TIMEOUT')
    } else if (this.paused === 0 && this.requestStart !== 0 && now - this.requestStart >= o.requestTimeout) {
      this.timeout('SSP_ERR_REQUEST_TIMEOUT')
    } else if ((this.paused & PAUSE_QUEUE) === 0 && now - this.lastRead >= o.idleTimeout) {
      const code = this.socket.writableLength > 0 ? 'SSP_ERR_WRITE_STALLED' : 'SSP_ERR_IDLE_TIMEOUT'
      this.stats.countError(code)
      this.host.stats.countError(code)
      this.stopParsing()
      this.closing = true
      this.socket.destroy()
    }
  }

  private timeout (code: ErrorCode): void {
    this.stopParsing()
    this.onReject(code, undefined)
    this.flush()
  }
}
