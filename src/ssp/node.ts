/**
 * An SSP node: one object that is a federation server's SSP face.
 *
 * Dispatch of an incoming POST uses its headers only: the session id names
 * the session, and the transaction id decides whether the POST is the
 * response half of one of our pending transactions (ids we generated) or a
 * new request from the peer. The XML body is passed on untouched. Only set-up
 * messages (no session yet) are parsed, and, in the interop posture, the
 * envelope of a POST that lacks the id headers (counted as a fallback).
 */
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { checkServerIdentity, type TLSSocket } from 'node:tls'
import { channel } from 'node:diagnostics_channel'
import { createError, isSspError, type SspError } from '../errors.js'
import { WireClient, wireBodyLength, type WireBody, type WireRequestError } from '../wire/client.js'
import type { SspRequest } from '../wire/request.js'
import type { ServerConnection } from '../wire/server-connection.js'
import { WireServer, type WireServerStats } from '../wire/server.js'
import { chainResolvers, normalizePeer, srvResolver, type PeerEntry, type Resolver } from './directory.js'
import { TransactionIds } from './ids.js'
import { backoffDelay } from './backoff.js'
import { EnvelopeWriter, fastTransactionRange, primitiveName, primitiveView, type Primitive } from './envelope.js'
import { EnvelopeKind, Mode, parseSetup, peekEnvelopeIds, type PeekedTransaction } from './messages.js'
import {
  resolveNodeOptions, TransactionKind, type ResolvedNodeOptions, type SspNodeEvents, type IncomingHandler, type IncomingTransaction, type ListenSpec,
  type RawBody, type SspNodeOptions
} from './options.js'
import { Peer, Role, Session } from './session.js'
import { SetupCoordinator, type SetupHost } from './setup.js'

const chSession = channel('ssp-transport:node:session')
const chSessionEnd = channel('ssp-transport:node:session-end')
const chSetupError = channel('ssp-transport:node:setup-error')
const chSetupRefused = channel('ssp-transport:node:setup-refused')
/** Where a set-up message's root and SetupTransaction must begin (the cheap pre-check before XML parsing). */
const SETUP_PEEK_BYTES = 1024

/**
 * Mutual TLS: does the certificate the peer presented on `conn` name `domain`
 * (subjectAltName dNSName, or the CN when there is none)? True on plain TCP and
 * on TLS listeners that do not ask for a client certificate: nothing to check.
 */
function certificateNames (conn: ServerConnection, domain: string): boolean {
  const sock = conn.socket as Partial<TLSSocket>
  if (typeof sock.getPeerCertificate !== 'function') return true
  const cert = sock.getPeerCertificate()
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return true
  return checkServerIdentity(domain, cert) === undefined
}

/**
 * The Transaction of `body` that `tid` names (the first one when `tid` is
 * undefined or not found); undefined when the body has no Session envelope.
 */
function transactionOf (body: Buffer, tid: string | undefined): Pick<PeekedTransaction, 'contentStart' | 'contentEnd'> | undefined {
  // The common shape (one Transaction, as this package and Baraza write it) without visiting the primitive's tags.
  const fast = tid === undefined ? undefined : fastTransactionRange(body, tid)
  if (fast !== undefined) return fast
  const ids = peekEnvelopeIds(body)
  if (ids.kind !== EnvelopeKind.SESSION) return undefined
  for (const t of ids.transactions) if (t.transactionId === tid) return t
  return ids.transactions[0]
}

/** The primitive of a received body, found on first use (dispatch never needs it). */
class BodyPrimitive {
  readonly body: Buffer
  readonly transactionId: string
  private view: Buffer | undefined = undefined
  private name: string | undefined = undefined

  constructor (body: Buffer, transactionId: string) {
    this.body = body
    this.transactionId = transactionId
  }

  get primitive (): Buffer {
    if (this.view === undefined) {
      const t = transactionOf(this.body, this.transactionId)
      this.view = t === undefined ? this.body.subarray(0, 0) : primitiveView(this.body, t)
    }
    return this.view
  }

  get primitiveName (): string {
    if (this.name === undefined) this.name = primitiveName(this.primitive)
    return this.name
  }
}

/** The response half of one of our transactions. */
export class Answer extends BodyPrimitive {
  readonly peer: string
  /** Session id as it came in the answer's header (undefined when the peer sent none). */
  readonly sessionId: string | undefined
  /** Microseconds from request() to the dummy 200 (undefined if the answer overtook it). */
  readonly ackMicros: number | undefined
  /** Microseconds from request() to the response half. */
  readonly rttMicros: number

  /** @internal */
  constructor (peer: string, transactionId: string, sessionId: string | undefined, body: Buffer, ackMicros: number | undefined, rttMicros: number) {
    super(body, transactionId)
    this.peer = peer
    this.sessionId = sessionId
    this.ackMicros = ackMicros
    this.rttMicros = rttMicros
  }
}

/** An incoming request as the handler sees it (see IncomingTransaction). */
class Incoming extends BodyPrimitive implements IncomingTransaction {
  readonly peer: string
  readonly kind: TransactionKind
  readonly sessionId: string
  readonly peerSessionId: string

  constructor (session: Session, kind: TransactionKind, transactionId: string, body: Buffer) {
    super(body, transactionId)
    this.peer = session.peer.domain
    this.kind = kind
    this.sessionId = session.id
    this.peerSessionId = session.peerId
  }
}

/**
 * What the node caches on an inbound connection: the session last seen there,
 * by the id it came with. One per connection, overwritten in place when the
 * traffic switches sessions (pair reuse carries two), so a switch allocates nothing.
 */
class SessionHint {
  constructor (public session: Session, public sid: string) {}
}

/** One request being served: what its answer POST needs until the answer's 200. */
class Served {
  readonly session: Session
  readonly tid: string
  readonly conn: ServerConnection
  answer: WireBody = ''
  attempt = 0

  constructor (session: Session, tid: string, conn: ServerConnection) {
    this.session = session
    this.tid = tid
    this.conn = conn
  }
}

export interface RequestOptions {
  /** Send as a notification in the session where we are the provider (the peer must have set it up). */
  notification?: boolean
  /** Override the node's transactionTimeout (ms). */
  timeout?: number
}

export interface NodeStats {
  sessions: number
  setupsInProgress: number
  pending: number
  /** Incoming requests handed to the handler whose answer has not been acknowledged (or abandoned) yet. */
  serving: number
  sent: number
  answered: number
  failed: number
  /** `failed` by the code of the error the transaction failed with (`SSP_ERR_TRANSACTION_TIMEOUT`, ...). */
  failedByCode: Record<string, number>
  timedOut: number
  resent: number
  lateAnswers: number
  incomingRequests: number
  incomingNotifications: number
  duplicates: number
  answersSent: number
  answerFailures: number
  handlerErrors: number
  unknownSession: number
  crossPeerRefused: number
  /** Set-up messages or session traffic refused because the peer's certificate does not name the peer (mutual TLS). */
  peerIdentityRefused: number
  setupFailures: number
  /** Session-less POSTs dropped before XML parsing: over maxSetupBodyBytes, or not shaped like a set-up message. */
  setupRefused: number
  /** Peers' step 1s refused (connection closed, nothing POSTed) over maxSetupsPerPeer or maxPendingSetups. */
  setupsRateLimited: number
  /** Set-ups started again after their POST was cut off (see `setupRetries`). */
  setupRetries: number
  /** Set-up steps 3-7 POSTed again after the peer closed on them (see `setupStepRetries`). */
  setupStepRetries: number
  /**
   * POSTs (ours and our answers) the peer closed the connection on without a 200: a
   * refusal or a lost connection. Each is resent after a jittered, capped backoff.
   */
  unacknowledged: number
  /** Raw mode: outgoing bodies whose envelope ids differ from the headers (strict refuses them, SSP_ERR_ENVELOPE_MISMATCH). */
  envelopeMismatches: number
  /** Bytes on every connection of this node, both directions (POSTs and 200s, in and out). */
  bytesIn: number
  bytesOut: number
  /**
   * Socket reads and writes on every connection of this node: per transaction they show
   * the batching (at depth 16, one read and one write per connection per batch).
   */
  reads: number
  writes: number
  /** Interop fallbacks and accepted deviations of this layer, by kind (the wire's are in `wire.interop`). */
  interop: Record<string, number>
  wire: WireServerStats[]
}

class PendingTx {
  readonly tid: string
  readonly session: Session
  readonly body: WireBody
  /** Body bytes, counted against maxPendingBytesPerPeer while pending. */
  readonly bytes: number
  readonly start = performance.now()
  readonly createdAt = Date.now()
  readonly deadline: number
  ackAt = 0
  attempts = 0
  settled = false
  /** The resend budget ran out with the last POST unacknowledged. */
  unacknowledged = false
  readonly resolve: (a: Answer) => void
  readonly reject: (e: Error) => void
  readonly onAck: (err: WireRequestError | null) => void
  resendTimer: NodeJS.Timeout | undefined = undefined

  constructor (node: SspNode, tid: string, session: Session, body: WireBody, bytes: number, timeout: number,
    resolve: (a: Answer) => void, reject: (e: Error) => void) {
    this.tid = tid
    this.session = session
    this.body = body
    this.bytes = bytes
    this.deadline = this.createdAt + timeout
    this.resolve = resolve
    this.reject = reject
    this.onAck = (err) => node.acked(this, err)
  }
}

/** Typed listeners for the node's events (the payloads are SspNodeEvents'). */
export interface SspNode {
  on<K extends keyof SspNodeEvents>(event: K, listener: (e: SspNodeEvents[K]) => void): this
  once<K extends keyof SspNodeEvents>(event: K, listener: (e: SspNodeEvents[K]) => void): this
  off<K extends keyof SspNodeEvents>(event: K, listener: (e: SspNodeEvents[K]) => void): this
  emit<K extends keyof SspNodeEvents>(event: K, payload: SspNodeEvents[K]): boolean
}

export class SspNode extends EventEmitter {
  readonly domain: string
  readonly tids = new TransactionIds()
  readonly interop: boolean
  /** `node`: the node writes the SSP envelope around primitives; `raw`: the application writes whole messages. */
  readonly envelope: 'node' | 'raw'

  /** The options, checked and merged over NODE_DEFAULTS once, in the constructor. */
  readonly options: ResolvedNodeOptions
  private readonly handler: IncomingHandler | undefined
  private readonly resolver: Resolver
  private readonly servers: WireServer[] = []
  private readonly serverUrls: string[] = []
  private readonly peers = new Map<string, Peer>()
  /** The static part of the peer directory (options.peers and addPeer). */
  private readonly directory = new Map<string, PeerEntry>()
  /** Sessions by our id and by the peer's id (real peers send their own; ssp-notes 3). */
  private readonly sessions = new Map<string, Session>()
  private readonly sessionsByPeerId = new Map<string, Session>()
  private readonly pending = new Map<string, PendingTx>()
  private readonly setup: SetupCoordinator
  private sweep: NodeJS.Timeout | undefined = undefined
  /** Pending transactions whose timeout is not transactionTimeout (a per-call `timeout`). */
  private otherTimeouts = 0
  private closing: Promise<void> | undefined = undefined
  private serving = 0
  private readonly c = {
    sent: 0, answered: 0, failed: 0, timedOut: 0, resent: 0, lateAnswers: 0,
    incomingRequests: 0, incomingNotifications: 0, duplicates: 0, answersSent: 0, answerFailures: 0,
    handlerErrors: 0, unknownSession: 0, crossPeerRefused: 0, peerIdentityRefused: 0, setupFailures: 0, setupRetries: 0,
    setupStepRetries: 0, unacknowledged: 0, envelopeMismatches: 0, setupRefused: 0, setupsRateLimited: 0
  }
  /** Rate limit of the setup-refused channel: at most one event per second, with the count since the last. */
  private setupRefusedAt = 0
  private setupRefusedQuiet = 0

  private readonly interopCounts: Record<string, number> = {}
  /** Failed transactions by error code (the failure path only: never touched by an answered one). */
  private readonly failedByCode: Record<string, number> = {}

  constructor (options: SspNodeOptions) {
    super()
    this.options = resolveNodeOptions(options)
    this.domain = this.options.domain.toLowerCase()
    this.interop = this.options.posture === 'interop'
    this.envelope = this.options.envelope
    this.handler = this.options.handler
    for (const [d, v] of Object.entries(this.options.peers ?? {})) this.directory.set(d.toLowerCase(), normalizePeer(d, v))
    const rs: Resolver[] = [async (d) => this.directory.get(d)]
    const resolver = this.options.resolver
    if (resolver !== false) rs.push(resolver ?? srvResolver())
    this.resolver = chainResolvers(...rs)
    const node = this
    const host: SetupHost = {
      domain: this.domain,
      tids: this.tids,
      interop: this.interop,
      timeToLive: this.options.timeToLive,
      setupTimeout: this.options.setupTimeout,
      setupStepRetries: this.options.setupStepRetries,
      countStepRetry: () => { node.c.setupStepRetries++ },
      maxSetupsPerPeer: this.options.maxSetupsPerPeer,
      maxPendingSetups: this.options.maxPendingSetups,
      countRateLimited: () => { node.c.setupsRateLimited++ },
      redirect: this.options.redirect,
      clientsFor: (peer, role) => node.clientsFor(peer, role),
      resolvePeer: (peer) => node.resolvePeer(peer),
      post: (client, body, tid, setup) => new Promise<void>((resolve, reject) => {
        client.write(body, tid, undefined, setup, (err) => { if (err === null) resolve(); else reject(err) })
      }),
      sessionUp: (peer, role, id, peerId, clients, ttl) => node.sessionUp(peer, role, id, peerId, clients, ttl),
      setupFailed: (peer, role, clients, err) => node.setupFailed(peer, role, clients, err),
      admit: (conn, domain, role) => node.admit(conn, domain, role),
      peerFor: (domain) => node.peerFor(domain),
      countDeviation: (kind) => node.countInterop(kind)
    }
    this.setup = new SetupCoordinator(host)
  }

  /** Start every listener. Resolves with their URLs. */
  async start (): Promise<string[]> {
    const specs: ListenSpec[] = this.options.listen ?? [{ port: 0, host: '127.0.0.1' }]
    for (const spec of specs) {
      const server = new WireServer({
        busyPollMicros: this.options.busyPollMicros,
        ...this.options.server,
        posture: this.interop ? 'interop' : 'strict',
        tls: spec.tls,
        onRequest: (req, conn) => this.onIncoming(req, conn)
      })
      server.on('connectionClose', (conn: ServerConnection) => {
        if (conn.context instanceof Peer) conn.context.inbound.delete(conn)
      })
      const addr = await server.listen(spec.port ?? 0, spec.host ?? '127.0.0.1')
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      this.servers.push(server)
      this.serverUrls.push(`${server.secure ? 'https' : 'http'}://${host}:${addr.port}${spec.path ?? '/'}`)
    }
    const every = Math.max(10, Math.min(250, Math.floor(this.options.transactionTimeout / 4)))
    this.sweep = setInterval(() => this.checkTimeouts(), every)
    this.sweep.unref()
    return this.urls
  }

  get urls (): string[] { return [...this.serverUrls] }

  /** Add or replace a static directory entry (e.g. once a peer's port is known). */
  addPeer (domain: string, entry: string | PeerEntry): void {
    const d = domain.toLowerCase()
    this.directory.set(d, normalizePeer(domain, entry))
    const p = this.peers.get(d)
    if (p !== undefined && p.requestor === undefined && p.provider === undefined) p.entry = undefined
  }

  /** The session of the given role with a peer, if up. */
  session (peer: string, role: Role = Role.REQUESTOR): Session | undefined {
    const p = this.peers.get(peer.toLowerCase())
    return role === Role.REQUESTOR ? p?.requestor : p?.provider
  }

  /** Set up (or reuse) the session where we are the requestor towards `peer`. */
  connect (peer: string): Promise<Session> {
    if (this.closing !== undefined) return Promise.reject(createError('SSP_ERR_NODE_CLOSED'))
    return this.sessionFor(this.peerFor(peer))
  }

  /**
   * Send one transaction request and resolve with its response half.
   * Waits (bounded) for the session to be set up when it is not yet.
   *
   * With `envelope: 'node'` (default) `body` is the primitive (e.g.
   * `<SendMessageRequest …>…</SendMessageRequest>`) and the node writes the
   * `WV-SSP-Message`/`Session`/`Transaction` around it with the ids of the
   * `x-wv-*` headers. With `envelope: 'raw'` it is the whole message, or a
   * function that builds it from the ids the node chose.
   */
  request (peerDomain: string, body: Primitive | RawBody, opts?: RequestOptions): Promise<Answer> {
    if (this.closing !== undefined) return Promise.reject(createError('SSP_ERR_NODE_CLOSED'))
    const peer = this.peerFor(peerDomain)
    // (No `= {}` default: that is an object per call on the hot path.)
    const timeout = opts?.timeout ?? this.options.transactionTimeout
    if (opts?.notification === true) {
      const s = peer.provider
      if (s === undefined || s.ended) return Promise.reject(createError('SSP_ERR_SESSION_CLOSED', { message: `no session provided to ${peer.domain}` }))
      return this.transact(s, body, timeout)
    }
    const s = peer.requestor
    if (s !== undefined && !s.ended) return this.transact(s, body, timeout)
    return this.sessionFor(peer).then((session) => this.transact(session, body, timeout))
  }

  getStats (): NodeStats {
    let bytesIn = this.retired.bytesIn
    let bytesOut = this.retired.bytesOut
    let reads = this.retired.reads
    let writes = this.retired.writes
    for (const c of this.allClients) {
      const s = c.stats
      bytesIn += s.bytesIn
      bytesOut += s.bytesOut
      reads += s.reads
      writes += s.writes
      if (c.closed && c.inFlight === 0) {
        // Fold closed clients into the totals so the set stays small.
        this.retired.bytesIn += s.bytesIn
        this.retired.bytesOut += s.bytesOut
        this.retired.reads += s.reads
        this.retired.writes += s.writes
        this.allClients.delete(c)
      }
    }
    const wire = this.servers.map((s) => s.getStats())
    for (const w of wire) {
      bytesIn += w.bytesIn
      bytesOut += w.bytesOut
      reads += w.reads
      writes += w.writes
    }
    return {
      ...this.c,
      bytesIn,
      bytesOut,
      reads,
      writes,
      sessions: this.sessions.size,
      setupsInProgress: this.setup.inProgress,
      pending: this.pending.size,
      serving: this.serving,
      failedByCode: { ...this.failedByCode },
      interop: { ...this.interopCounts },
      wire
    }
  }

  /** End a session explicitly; its pending transactions fail with SSP_ERR_SESSION_CLOSED. */
  endSession (peer: string, role: Role = Role.REQUESTOR): void {
    const s = this.session(peer, role)
    if (s !== undefined) this.end(s, createError('SSP_ERR_SESSION_CLOSED', { message: 'closed by the application' }))
  }

  /**
   * Graceful shutdown: refuse new transactions, let in-flight ones (ours and
   * the peer's being served) finish for at most closeTimeout, fail the rest
   * with SSP_ERR_NODE_CLOSED, then close every connection and listener.
   */
  close (): Promise<void> {
    if (this.closing !== undefined) return this.closing
    this.closing = (async () => {
      const err = createError('SSP_ERR_NODE_CLOSED')
      this.setup.abortAll(err)
      for (const p of this.peers.values()) this.failWaiting(p, err)
      const limit = Date.now() + this.options.closeTimeout
      while ((this.pending.size > 0 || this.serving > 0) && Date.now() < limit) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      for (const p of this.pending.values()) this.settleFail(p, err)
      for (const s of [...this.sessions.values()]) this.end(s, createError('SSP_ERR_SESSION_CLOSED', { message: 'node closing' }))
      const clients = new Set<WireClient>()
      for (const p of this.peers.values()) for (const c of p.shared ?? []) clients.add(c)
      for (const c of this.orphanClients) clients.add(c)
      await Promise.all([...clients].map((c) => c.close().catch(() => {})))
      await Promise.all(this.servers.map((s) => s.close()))
      if (this.sweep !== undefined) clearInterval(this.sweep)
    })()
    return this.closing
  }

  // ------------------------------------------------------------------ incoming

  private onIncoming (req: SspRequest, conn: ServerConnection): void | Promise<void> {
    // The session last seen on this connection, compared as header bytes: a
    // connection carries one session's traffic in the steady state, so most
    // requests skip the id's string and the two Map lookups (native-notes §11).
    let hint = conn.hint as SessionHint | undefined
    if (hint !== undefined && hint.session.ended) {
      // Drop it: an ended session (and its dedupe window) is not kept alive by an idle connection.
      conn.hint = hint = undefined
    }
    let session: Session
    let sid: string
    if (hint !== undefined && req.sessionIdEquals(hint.sid)) {
      session = hint.session
      sid = hint.sid
    } else {
      const s = req.sessionId
      if (s === undefined) return this.onSessionless(req, conn)
      const found = this.sessions.get(s) ?? this.sessionsByPeerId.get(s)
      if (found === undefined || found.ended) {
        this.c.unknownSession++
        return
      }
      session = found
      sid = s
    }
    // A session id is honoured only on connections of the peer that owns it.
    const bound = conn.context
    if (bound !== session.peer) {
      if (bound !== undefined) {
        this.c.crossPeerRefused++
        return
      }
      if (!this.admit(conn, session.peer.domain, session.role)) return
      conn.context = session.peer
      session.peer.inbound.add(conn)
    }
    if (hint === undefined) conn.hint = new SessionHint(session, sid)
    else if (hint.session !== session || hint.sid !== sid) { hint.session = session; hint.sid = sid }
    const tid = req.transactionId
    if (tid === undefined) return this.fromEnvelope(req, session, conn)
    // Every pending transaction has one of our ids: a peer's own id is served without a lookup.
    if (this.tids.owns(tid)) {
      const p = this.pending.get(tid)
      if (p !== undefined && p.session.peer === session.peer) this.answered(p, req.body, sid)
      // Otherwise one of our ids no longer pending: an answer after timeout or a duplicate answer.
      else this.c.lateAnswers++
      return
    }
    this.serve(session, tid, req.body, conn)
  }

  /** No session id: a set-up message, or (interop) a POST whose ids are only in the body. */
  private onSessionless (req: SspRequest, conn: ServerConnection): void | Promise<void> {
    if (this.interop && req.transactionId === undefined) {
      const ids = peekEnvelopeIds(req.body)
      if (ids.kind === EnvelopeKind.SESSION && ids.sessionId !== undefined) {
        const session = this.sessions.get(ids.sessionId) ?? this.sessionsByPeerId.get(ids.sessionId)
        if (session !== undefined && (conn.context === session.peer || (conn.context === undefined && this.admit(conn, session.peer.domain, session.role)))) {
          this.countInterop('idsFromBody')
          return this.fromEnvelope(req, session, conn)
        }
        this.c.unknownSession++
        return
      }
      if (ids.kind === EnvelopeKind.SETUP) this.countInterop('setupWithoutHeaders')
    }
    if (this.refuseSetupBody(req.body)) return
    let msg
    try {
      msg = parseSetup(req.body)
    } catch (err) {
      this.countInterop(isSspError(err) ? err.code : 'SSP_ERR_XML')
      return
    }
    this.setup.onMessage(msg, conn)
  }

  /**
   * Interop fallback: the ids come from the body's envelope. A peer may batch
   * several Transactions in one Session: every Response among them settles
   * its pending transaction; a Request is served (once, keyed by its id).
   */
  private fromEnvelope (req: SspRequest, session: Session, conn: ServerConnection): void {
    const ids = peekEnvelopeIds(req.body)
    this.countInterop('transactionIdFromBody')
    let serving = false
    for (const t of ids.transactions) {
      if (t.transactionId === undefined) continue
      const p = this.pending.get(t.transactionId)
      if (p !== undefined && t.mode !== Mode.REQUEST) {
        this.answered(p, req.body, req.sessionId)
      } else if (t.mode === Mode.REQUEST && !serving) {
        serving = true
        this.serve(session, t.transactionId, req.body, conn)
      }
    }
  }

  /** A new request (or notification) from the peer: hand it to the application, POST the answer back. */
  private serve (session: Session, tid: string, body: Buffer, conn: ServerConnection): void {
    if (session.recent.check(tid)) {
      // Resent after a lost 200: the application has it already.
      this.c.duplicates++
      return
    }
    const kind = session.role === Role.PROVIDER ? TransactionKind.REQUEST : TransactionKind.NOTIFICATION
    if (kind === TransactionKind.REQUEST) this.c.incomingRequests++
    else this.c.incomingNotifications++
    const handler = this.handler
    if (handler === undefined) return
    // The request keeps its place in the wire server's queue (maxPipelineDepth,
    // maxInFlight) until the answer's 200: retain() now, release() in served().
    // One record per served request and no promise: a synchronous handler
    // answers in this turn, its answer POST flushed with the others of the turn.
    conn.retain()
    this.serving++
    const job = new Served(session, tid, conn)
    let answer: Buffer | string | PromiseLike<Buffer | string>
    try {
      answer = handler(new Incoming(session, kind, tid, body))
    } catch {
      this.c.handlerErrors++
      this.served(job)
      return
    }
    if (typeof answer === 'object' && answer !== null && typeof (answer as PromiseLike<unknown>).then === 'function') {
      (answer as PromiseLike<unknown>).then((a) => { this.deliver(job, a) }, () => { this.c.handlerErrors++; this.served(job) })
    } else {
      this.deliver(job, answer)
    }
  }

  /** The handler's answer: POST it (anything but a Buffer or a string is the application's error: counted, nothing sent). */
  private deliver (job: Served, a: unknown): void {
    if (typeof a !== 'string' && !Buffer.isBuffer(a)) {
      this.c.handlerErrors++
      this.served(job)
      return
    }
    const session = job.session
    if (this.envelope === 'node') {
      job.answer = session.writer.response(job.tid, a)
    } else {
      try {
        this.checkRawIds(session, job.tid, a, Mode.RESPONSE)
      } catch {
        // Strict: an answer whose envelope names other ids than its headers is not sent.
        this.c.handlerErrors++
        this.served(job)
        return
      }
      job.answer = a
    }
    this.postAnswer(job)
  }

  /** A served request is finished (answered and acknowledged, or abandoned): its place frees up. */
  private served (job: Served): void {
    this.serving--
    job.conn.release()
  }

  /** POST the response half; the request is served on its 200 or on giving up. */
  private postAnswer (job: Served): void {
    const session = job.session
    if (session.ended) {
      this.c.answerFailures++
      this.served(job)
      return
    }
    session.pickClient().write(job.answer, job.tid, session.id, false, (err) => { this.answerWritten(job, err) })
  }

  private answerWritten (job: Served, err: SspError | null): void {
    if (err === null) {
      this.c.answersSent++
      this.served(job)
    } else if (err.code === 'SSP_ERR_UNACKNOWLEDGED' && job.attempt < this.options.maxResends) {
      // Lost or refused (a peer that does not know the session closes without an
      // answer): again after a backoff, never in a tight loop.
      this.c.unacknowledged++
      this.c.resent++
      const delay = resendDelay(++job.attempt)
      if (delay === 0) this.postAnswer(job)
      else setTimeout(() => { this.postAnswer(job) }, delay).unref()
    } else {
      this.c.answerFailures++
      this.served(job)
    }
  }

  // ------------------------------------------------------------------ our transactions

  /** The bytes of one of our requests: the envelope around a primitive, or the application's own message (raw). */
  private requestBody (session: Session, tid: string, body: Primitive | RawBody): WireBody {
    if (this.envelope === 'node') {
      if (typeof body !== 'string' && !Buffer.isBuffer(body)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'request body must be a string or a Buffer' })
      return session.writer.request(tid, body)
    }
    const whole = typeof body === 'function' ? body({ transactionId: tid, sessionId: session.id, peerSessionId: session.peerId }) : body
    if (typeof whole !== 'string' && !Buffer.isBuffer(whole)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'request body must be a string or a Buffer' })
    this.checkRawIds(session, tid, whole, Mode.REQUEST)
    return whole
  }

  /**
   * Raw mode: the ids in the application's envelope must be the ones the node
   * puts in the headers (S-005, S-006). Strict refuses a mismatch; interop
   * counts it and sends the message as it is.
   */
  private checkRawIds (session: Session, tid: string, body: Buffer | string, mode: Mode): void {
    const ids = peekEnvelopeIds(typeof body === 'string' ? Buffer.from(body) : body)
    const t = ids.transactions.find((x) => x.transactionId === tid)
    let problem: string | undefined
    let scr = 'S-005'
    if (ids.kind !== EnvelopeKind.SESSION) problem = 'the body has no Session envelope'
    else if (t === undefined) problem = `no Transaction in the body carries transactionID ${tid} of x-wv-transactionid`
    else if (t.mode !== mode) problem = `Transaction ${tid} has mode ${String(t.mode)}, not ${mode}`
    else if (ids.sessionId !== session.id) {
      problem = `Session sessionID ${String(ids.sessionId)} differs from x-wv-sessionid ${session.id}`
      scr = 'S-006'
    }
    if (problem === undefined) return
    this.c.envelopeMismatches++
    if (this.interop) return
    throw createError('SSP_ERR_ENVELOPE_MISMATCH', { message: `${problem} (${scr})`, scr })
  }

  private transact (session: Session, input: Primitive | RawBody, timeout: number): Promise<Answer> {
    const peer = session.peer
    if (peer.pending >= this.options.maxPendingPerPeer) {
      return Promise.reject(createError('SSP_ERR_PEER_LIMIT', { message: `${peer.domain}: maxPendingPerPeer transactions in flight` }))
    }
    const tid = this.tids.next()
    let body: WireBody
    try {
      body = this.requestBody(session, tid, input)
    } catch (err) {
      return Promise.reject(err)
    }
    const bytes = wireBodyLength(body)
    if (peer.pendingBytes + bytes > this.options.maxPendingBytesPerPeer) {
      return Promise.reject(createError('SSP_ERR_PEER_LIMIT', { message: `${peer.domain}: maxPendingBytesPerPeer bytes in flight` }))
    }
    return new Promise<Answer>((resolve, reject) => {
      const p = new PendingTx(this, tid, session, body, bytes, timeout, resolve, reject)
      this.pending.set(tid, p)
      if (timeout !== this.options.transactionTimeout) this.otherTimeouts++
      session.pending++
      peer.pending++
      peer.pendingBytes += p.bytes
      this.c.sent++
      this.writeTx(p)
    })
  }

  private writeTx (p: PendingTx): void {
    p.resendTimer = undefined
    if (p.settled) return
    p.attempts++
    p.session.pickClient().write(p.body, p.tid, p.session.id, false, p.onAck)
  }

  /** @internal the dummy 200 for one of our POSTs, or its failure. */
  acked (p: PendingTx, err: WireRequestError | null): void {
    if (p.settled) return
    if (err === null) {
      p.ackAt = performance.now()
      return
    }
    if (err.code === 'SSP_ERR_UNACKNOWLEDGED' && !p.session.ended) {
      // The connection died before the 200: the POST may or may not have been
      // delivered. At-least-once on the wire: resend (the receiver drops the
      // duplicate) while the transaction's deadline allows and the resend
      // budget lasts. Once the budget is spent it is not failed early: its
      // answer may still come, and the deadline ends it with a typed timeout.
      this.c.unacknowledged++
      if (p.attempts <= this.options.maxResends && Date.now() < p.deadline) {
        this.c.resent++
        const delay = resendDelay(p.attempts)
        if (delay === 0) this.writeTx(p)
        else {
          p.resendTimer = setTimeout(() => this.writeTx(p), delay)
          p.resendTimer.unref()
        }
      } else {
        p.unacknowledged = true
      }
      return
    }
    this.settleFail(p, err)
    if (err.code === 'SSP_ERR_CONNECT' || err.code === 'SSP_ERR_TLS') this.end(p.session, err)
  }

  /** Take a transaction out of the pending set, once; false when it was settled already. */
  private settle (p: PendingTx): boolean {
    if (p.settled) return false
    p.settled = true
    if (p.resendTimer !== undefined) clearTimeout(p.resendTimer)
    this.pending.delete(p.tid)
    p.session.pending--
    if (p.deadline - p.createdAt !== this.options.transactionTimeout) this.otherTimeouts--
    p.session.peer.pending--
    p.session.peer.pendingBytes -= p.bytes
    return true
  }

  private answered (p: PendingTx, body: Buffer, sid: string | undefined): void {
    if (!this.settle(p)) return
    this.c.answered++
    const now = performance.now()
    p.resolve(new Answer(p.session.peer.domain, p.tid, sid, body, p.ackAt === 0 ? undefined : (p.ackAt - p.start) * 1000, (now - p.start) * 1000))
  }

  private settleFail (p: PendingTx, err: Error): void {
    if (!this.settle(p)) return
    this.c.failed++
    const c = (err as { code?: unknown }).code
    const code = typeof c === 'string' ? c : 'ERROR'
    this.failedByCode[code] = (this.failedByCode[code] ?? 0) + 1
    p.reject(err)
  }

  private checkTimeouts (): void {
    const now = Date.now()
    // The table is in creation order. When every pending transaction has the
    // node's transactionTimeout, it is in deadline order too: stop at the first
    // one not yet due instead of visiting them all every sweep.
    const ordered = this.otherTimeouts === 0
    for (const p of this.pending.values()) {
      if (p.deadline <= now) {
        this.c.timedOut++
        const note = p.unacknowledged ? ' (its last POST was never acknowledged: it may or may not have been delivered)' : ''
        this.settleFail(p, createError('SSP_ERR_TRANSACTION_TIMEOUT', { message: `${p.tid} to ${p.session.peer.domain}${note}` }))
      } else if (ordered) {
        break
      }
    }
    for (const s of this.sessions.values()) {
      if (s.expiresAt <= now) this.end(s, createError('SSP_ERR_SESSION_CLOSED', { message: 'timeToLive expired' }))
    }
  }

  // ------------------------------------------------------------------ sessions and peers

  private peerFor (domain: string): Peer {
    const d = domain.toLowerCase()
    let p = this.peers.get(d)
    if (p === undefined) {
      p = new Peer(d)
      this.peers.set(d, p)
    }
    return p
  }

  private async resolvePeer (peer: Peer): Promise<PeerEntry> {
    if (peer.entry !== undefined) return peer.entry
    const e = await this.resolver(peer.domain)
    if (e === undefined) throw createError('SSP_ERR_UNKNOWN_PEER', { message: peer.domain })
    peer.entry = e
    return e
  }

  private sessionFor (peer: Peer): Promise<Session> {
    const s = peer.requestor
    if (s !== undefined && !s.ended) return Promise.resolve(s)
    if (peer.waiting.length >= this.options.maxWaitingPerPeer) {
      return Promise.reject(createError('SSP_ERR_PEER_LIMIT', { message: `${peer.domain}: maxWaitingPerPeer transactions wait for the session` }))
    }
    const wait = new Promise<Session>((resolve, reject) => peer.waiting.push({ resolve, reject }))
    if (peer.waiting.length === 1) this.startSetup(peer, 0)
    return wait
  }

  /**
   * Set up the session the requests in `peer.waiting` wait for. A set-up whose POST
   * was cut off before its 200 (the connection died: nothing says whether the peer
   * saw it) starts again from step 1, up to `setupRetries` times; any other failure,
   * or the last one, fails the waiting requests.
   */
  private startSetup (peer: Peer, attempt: number): void {
    this.setup.initiate(peer).then((session) => {
      for (const w of peer.waiting.splice(0)) w.resolve(session)
    }, (err: SspError) => {
      const retries = this.options.setupRetries
      if (isSspError(err) && err.code === 'SSP_ERR_UNACKNOWLEDGED' && attempt < retries && this.closing === undefined && peer.waiting.length > 0) {
        this.c.setupRetries++
        const delay = backoffDelay(attempt, 100, 1000)
        setTimeout(() => {
          // The node closed meanwhile (its close failed the waiting requests), or nobody waits any more.
          if (this.closing !== undefined || peer.waiting.length === 0) return
          this.startSetup(peer, attempt + 1)
        }, delay)
        return
      }
      this.failWaiting(peer, err)
    })
  }

  private failWaiting (peer: Peer, err: Error): void {
    for (const w of peer.waiting.splice(0)) w.reject(err)
  }

  /** Every outbound client not yet folded into `retired` (for byte counts). */
  private readonly allClients = new Set<WireClient>()
  private readonly retired = { bytesIn: 0, bytesOut: 0, reads: 0, writes: 0 }

  /** Outbound clients no session owns yet (set-up in progress without pair reuse). */
  private readonly orphanClients = new Set<WireClient>()

  private clientsFor (peer: Peer, _role: Role): WireClient[] {
    if (this.options.pairReuse && peer.shared !== undefined) return peer.shared
    const entry = peer.entry!
    const n = this.options.pairs
    const clients: WireClient[] = []
    for (let i = 0; i < n; i++) {
      const c = new WireClient(entry.url, {
        busyPollMicros: this.options.busyPollMicros,
        // A peer that is not there fails the set-up now (SSP_ERR_CONNECT), not after minutes of retries.
        initialConnectAttempts: 1,
        ...this.options.client,
        ...(entry.pipelineDepth === undefined ? {} : { pipelineDepth: entry.pipelineDepth }),
        version: entry.version ?? '1.3',
        allowAnyIds: this.interop
      })
      // Connection events are reported through diagnostics_channel by the client; a listener here keeps
      // a failing peer from ever becoming an unhandled 'error'.
      c.on('error', () => {})
      clients.push(c)
      this.orphanClients.add(c)
      this.allClients.add(c)
    }
    if (this.options.pairReuse) peer.shared = clients
    return clients
  }

  private sessionUp (peer: Peer, role: Role, id: string, peerId: string, clients: WireClient[], ttl: number): Session {
    const old = role === Role.REQUESTOR ? peer.requestor : peer.provider
    const s = new Session(id, peerId, role, peer, clients, ttl, this.options.dedupeWindow,
      new EnvelopeWriter(id, peer.entry?.version ?? '1.3'))
    if (role === Role.REQUESTOR) peer.requestor = s
    else peer.provider = s
    // Ended only once the new session holds its place: under pair reuse both use the
    // same clients, which end() would otherwise close as no longer used.
    if (old !== undefined) this.end(old, createError('SSP_ERR_SESSION_CLOSED', { message: 'replaced by a new set-up' }))
    this.sessions.set(id, s)
    this.sessionsByPeerId.set(peerId, s)
    for (const c of clients) this.orphanClients.delete(c)
    // Extra pairs (S-009) connect now that the session exists.
    for (let i = 1; i < clients.length; i++) clients[i]!.connect().catch(() => {})
    if (chSession.hasSubscribers) chSession.publish({ node: this, session: s })
    this.emit('session', { peer: peer.domain, role, id, peerId })
    return s
  }

  private setupFailed (peer: Peer, role: Role, clients: WireClient[] | undefined, err: SspError): void {
    this.c.setupFailures++
    if (chSetupError.hasSubscribers) chSetupError.publish({ node: this, peer: peer.domain, role, error: err })
    this.emit('setupError', { peer: peer.domain, role, error: err })
    // The requests waiting for a set-up we initiated are failed (or the set-up retried) by startSetup.
    // Close what the failed set-up opened, unless a live session uses it or the set-up in
    // the other role (both sides may start one at once: Baraza does when it has a message
    // for us) still needs it.
    if (clients !== undefined && peer.requestor === undefined && peer.provider === undefined && !this.setup.has(peer.domain)) {
      for (const c of clients) { c.destroy(); this.orphanClients.delete(c) }
      if (peer.shared === clients) peer.shared = undefined
      for (const conn of peer.inbound) conn.close()
      peer.entry = undefined
    } else if (clients !== undefined) {
      // Kept for a live session: a redirect this set-up followed does not outlive it (issue 13.3).
      for (const c of clients) c.forgetRedirect()
    }
    // A peer-initiated set-up that failed leaves nothing behind (a stream of set-ups
    // claiming made-up domains must not grow the peer table): once the current event
    // is done (a restarted set-up registers itself synchronously), forget the peer if
    // nothing refers to it.
    if (role === Role.PROVIDER) {
      queueMicrotask(() => {
        if (peer.requestor !== undefined || peer.provider !== undefined || peer.waiting.length > 0 || peer.pending > 0) return
        if (this.setup.has(peer.domain) || this.peers.get(peer.domain) !== peer) return
        for (const conn of peer.inbound) conn.close()
        this.peers.delete(peer.domain)
      })
    }
  }

  /**
   * May `conn` speak for `domain`? Not if it already speaks for another peer (one
   * connection, one peer), nor, with mutual TLS, if the certificate presented on it
   * does not name that domain (SSP_ERR_PEER_IDENTITY). A refused connection is closed.
   */
  private admit (conn: ServerConnection, domain: string, role: Role): boolean {
    const d = domain.toLowerCase()
    const bound = conn.context
    if (bound instanceof Peer && bound.domain !== d) {
      this.c.crossPeerRefused++
      conn.close()
      return false
    }
    if (certificateNames(conn, d)) return true
    this.c.peerIdentityRefused++
    const err = createError('SSP_ERR_PEER_IDENTITY', { message: `connection ${conn.id} claims ${d}` })
    if (chSetupError.hasSubscribers) chSetupError.publish({ node: this, peer: d, role, error: err })
    this.emit('setupError', { peer: d, role, error: err })
    conn.close()
    return false
  }

  private end (s: Session, err: SspError): void {
    if (s.ended) return
    s.ended = true
    this.sessions.delete(s.id)
    if (this.sessionsByPeerId.get(s.peerId) === s) this.sessionsByPeerId.delete(s.peerId)
    const peer = s.peer
    if (peer.requestor === s) peer.requestor = undefined
    if (peer.provider === s) peer.provider = undefined
    // Visit the table only when this session has transactions in it.
    if (s.pending > 0) for (const p of this.pending.values()) if (p.session === s) this.settleFail(p, err)
    const stillUsed = (peer.requestor?.clients === s.clients) || (peer.provider?.clients === s.clients)
    if (!stillUsed) {
      for (const c of s.clients) c.close().catch(() => {})
      if (peer.shared === s.clients) peer.shared = undefined
    } else {
      // Shared with the session in the other role (pair reuse): a redirect followed while setting
      // this one up ends with it; the next connection goes to the directory's URL (issue 13.3).
      for (const c of s.clients) c.forgetRedirect()
    }
    // What the directory (or DNS) said is looked up again for the next set-up once no session
    // with the peer is left; the static directory itself (options, addPeer) is not touched.
    if (peer.requestor === undefined && peer.provider === undefined && !this.setup.has(peer.domain)) peer.entry = undefined
    if (chSessionEnd.hasSubscribers) chSessionEnd.publish({ node: this, session: s, error: err })
    this.emit('sessionEnd', { peer: peer.domain, role: s.role, id: s.id, reason: err.code })
  }

  /**
   * A session-less POST is parsed as set-up XML on the event loop: only a
   * small body that looks like one (WV-SSP-Message, then SetupTransaction,
   * near the start) gets that far. The rest are counted, and published on
   * 'ssp-transport:node:setup-refused' at most once a second (no log line per request).
   */
  private refuseSetupBody (body: Buffer): boolean {
    const max = this.options.maxSetupBodyBytes
    let reason: string | undefined
    if (body.length > max) {
      reason = 'maxSetupBodyBytes'
    } else {
      const peek = body.subarray(0, SETUP_PEEK_BYTES)
      const root = peek.indexOf('WV-SSP-Message')
      if (root < 0 || peek.indexOf('SetupTransaction', root) < 0) reason = 'not a set-up message'
    }
    if (reason === undefined) return false
    this.c.setupRefused++
    this.setupRefusedQuiet++
    const now = Date.now()
    if (chSetupRefused.hasSubscribers && now - this.setupRefusedAt >= 1000) {
      chSetupRefused.publish({ reason, bytes: body.length, refused: this.setupRefusedQuiet, total: this.c.setupRefused })
      this.setupRefusedAt = now
      this.setupRefusedQuiet = 0
    }
    return true
  }

  private countInterop (kind: string): void {
    this.interopCounts[kind] = (this.interopCounts[kind] ?? 0) + 1
  }
}

/**
 * Delay before resend number `attempt` (1-based) of a POST its connection
 * died on: the first goes at once (a connection cut by a fault), later ones
 * back off (50 ms doubling, capped at 2 s, jittered to 50-100 %), so a peer
 * that refuses by closing is not re-POSTed to in a tight loop. The
 * transaction deadline bounds the total.
 */
export function resendDelay (attempt: number): number {
  if (attempt <= 1) return 0
  return backoffDelay(attempt - 2, 50, 2000)
}

export function createNode (options: SspNodeOptions): SspNode {
  return new SspNode(options)
}
