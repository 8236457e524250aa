/**
 * Session set-up (ssp-notes section 2), both as initiator and as responder.
 *
 *   initiator A                               responder B
 *   1 SendSecretToken(Request, A's secret)  ─▶   (on A's connection)
 *                                           ◀─ 3 SendSecretToken(Response, B's secret)   (on B's connection)
 *   4 LoginRequest(Request, md5(B's secret)) ─▶
 *                                           ◀─ 5 LoginRequest(Response, md5(A's secret))
 *   6 LoginResponse(Request, A's session id) ─▶
 *                                           ◀─ 7 LoginResponse(Response, B's session id)
 *
 * Set-up messages are parsed as XML (never on the transaction fast path).
 * Each side POSTs only on connections it originated (S-007), so every arrow
 * above is a POST answered by a dummy 200.
 */
import { createError, type SspError } from '../errors.js'
import { backoffDelay } from './backoff.js'
import type { WireClient } from '../wire/client.js'
import type { ServerConnection } from '../wire/server-connection.js'
import type { PeerEntry } from './directory.js'
import { newSessionId, type TransactionIds } from './ids.js'
import { buildSetup, Mode, SetupKind, type ParsedSetupMessage, type SetupMessage } from './messages.js'
import { SetupInitiator, SetupResponder, type SetupPolicy } from './setup-engine.js'
import { Peer, Role, type Session } from './session.js'

export interface SetupHost {
  readonly domain: string
  readonly tids: TransactionIds
  readonly interop: boolean
  /** Session timeToLive we offer, in seconds. */
  readonly timeToLive: number
  readonly setupTimeout: number
  /** Times a set-up step after step 1 is POSTed again when the peer closed the connection instead of answering 200. */
  readonly setupStepRetries: number
  /** Outbound clients for a session of this role with this peer (created when missing). */
  clientsFor (peer: Peer, role: Role): WireClient[]
  resolvePeer (peer: Peer): Promise<PeerEntry>
  /** POST a set-up message; resolves on the dummy 200. */
  post (client: WireClient, body: Buffer, tid: string, setup: boolean): Promise<void>
  sessionUp (peer: Peer, role: Role, id: string, peerId: string, clients: WireClient[], ttlSeconds: number): Session
  setupFailed (peer: Peer, role: Role, clients: WireClient[] | undefined, err: SspError): void
  peerFor (domain: string): Peer
  /** Consulted for the first SendSecretToken on a new inbound connection (spec 5.5). */
  redirect: ((peer: string, conn: ServerConnection) => string | undefined) | undefined
  countDeviation (kind: string): void
  /** Responder set-ups (a peer's step 1) started per claimed domain per window of SETUP_WINDOW_MS. */
  readonly maxSetupsPerPeer: number
  /** Responder set-ups in progress at once, all domains together. */
  readonly maxPendingSetups: number
  /** A step 1 refused by maxSetupsPerPeer / maxPendingSetups (counted as setupsRateLimited). */
  countRateLimited (): void
  /** A set-up step POSTed again after the peer closed on it (counted as setupStepRetries). */
  countStepRetry (): void
  /** May this connection speak for this domain (one peer per connection; mutual TLS identity)? Closes it if not. */
  admit (conn: ServerConnection, domain: string, role: Role): boolean
}

/** One set-up in progress: the engine's state machine plus what this node needs around it. */
interface Exchange {
  readonly peer: Peer
  readonly role: Role
  /** Initiator: made once the peer is resolved and step 1 leaves. Responder: made from step 1. */
  engine: SetupInitiator | SetupResponder | undefined
  clients: WireClient[] | undefined
  done: boolean
  timer: NodeJS.Timeout
  resolve: (s: Session) => void
  reject: (e: SspError) => void
}

/** The window of maxSetupsPerPeer, ms. */
export const SETUP_WINDOW_MS = 10_000
/** Domains remembered in one window; a step 1 for a new domain beyond that waits for the next window. */
const SETUP_WINDOW_DOMAINS = 4096

export class SetupCoordinator {
  private readonly host: SetupHost
  /**
   * Responder set-ups started in the current window, by claimed domain. A
   * forged step 1 makes us resolve the claimed domain and POST our step 3
   * there: without a bound, anyone could make us POST at a third party as
   * fast as they can send. Cleared whole when the window rolls over.
   */
  private readonly started = new Map<string, number>()
  private windowStart = 0
  /** The node's posture, as the set-up engine's policy. */
  private readonly policy: SetupPolicy
  /** Set-ups we initiated (we will be the requestor), by peer domain. */
  private readonly outgoing = new Map<string, Exchange>()
  /** Set-ups the peer initiated (we will be the provider), by peer domain. */
  private readonly incoming = new Map<string, Exchange>()

  constructor (host: SetupHost) {
    this.host = host
    this.policy = {
      domain: host.domain,
      timeToLive: host.timeToLive,
      // Interop: a step 3 with a transaction id of its own, session ids like `5@a.example` (ssp-notes 3).
      // Strict: refused, since the peer's session id goes into our x-wv-sessionid headers (S-012).
      accept: { foreignStep3Tid: host.interop, anySessionId: host.interop },
      onAccepted: (kind) => host.countDeviation(kind)
    }
  }

  /** Steps 1, 4, 6 as initiator. Resolves when step 7 arrives. */
  initiate (peer: Peer): Promise<Session> {
    const existing = this.outgoing.get(peer.domain)
    if (existing !== undefined) {
      return new Promise((resolve, reject) => {
        const { resolve: r0, reject: j0 } = existing
        existing.resolve = (s) => { r0(s); resolve(s) }
        existing.reject = (e) => { j0(e); reject(e) }
      })
    }
    return new Promise<Session>((resolve, reject) => {
      const ex = this.exchange(peer, Role.REQUESTOR, resolve, reject)
      this.outgoing.set(peer.domain, ex)
      this.host.resolvePeer(peer).then((entry) => {
        if (ex.done) return
        ex.clients = this.host.clientsFor(peer, Role.REQUESTOR)
        const engine = new SetupInitiator(this.policy, peer.domain, { transactionId: this.host.tids.next(), sessionId: this.newSessionId() })
        ex.engine = engine
        return this.send(ex, entry, engine.step1(), true)
      }).catch((err: SspError) => this.fail(ex, err))
    })
  }

  /** An incoming set-up message (no session id header). */
  onMessage (msg: ParsedSetupMessage, conn: ServerConnection): void {
    const h = this.host
    if (msg.kind === SetupKind.SEND_SECRET_TOKEN) {
      if (!h.admit(conn, msg.domain, msg.mode === Mode.REQUEST ? Role.PROVIDER : Role.REQUESTOR)) return
      // Steps 1 and 3 are the only places a redirect may answer (spec 5.5).
      if (h.redirect !== undefined && conn.stats.requests === 1) {
        const to = h.redirect(msg.domain, conn)
        if (to !== undefined) {
          conn.redirectCurrent(to)
          return
        }
      }
      if (msg.mode === Mode.REQUEST && !this.mayRespond(msg.domain.toLowerCase())) {
        // Refused like a peer at its limit would be: the connection closes, nothing is POSTed.
        h.countRateLimited()
        conn.close()
        return
      }
      const peer = h.peerFor(msg.domain)
      this.bind(peer, conn)
      if (msg.mode === Mode.REQUEST) this.onToken(peer, msg)
      else this.answer(peer, msg)
      return
    }
    const peer = conn.context instanceof Peer
      ? conn.context
      : msg.kind === SetupKind.LOGIN_REQUEST ? h.peerFor(msg.domain) : this.loginResponsePeer(msg)
    if (peer === undefined) return
    if (!h.admit(conn, peer.domain, msg.mode === Mode.REQUEST ? Role.PROVIDER : Role.REQUESTOR)) return
    if (msg.mode === Mode.REQUEST) this.request(peer, msg)
    else this.answer(peer, msg)
  }

  /**
   * A LoginResponse (no domain in it) on a connection no set-up message came
   * on: a peer that opens a new connection per POST (ssp-notes 3). Step 7
   * echoes the transaction id of our step 6; step 6 carries the one of step 1
   * (one id for the initiator's steps 1, 4, 6) or, interop only, goes to the
   * one set-up waiting for it, if there is exactly one.
   */
  private loginResponsePeer (msg: ParsedSetupMessage): Peer | undefined {
    const table = msg.mode === Mode.RESPONSE ? this.outgoing : this.incoming
    for (const ex of table.values()) if (ex.engine?.awaits(msg) === true) return ex.peer
    if (msg.mode === Mode.RESPONSE || !this.host.interop) return undefined
    const waiting = [...this.incoming.values()].filter((ex) => ex.engine?.awaited === 6)
    return waiting.length === 1 ? waiting[0]!.peer : undefined
  }

  /** May a step 1 claiming `domain` start a responder set-up now (maxSetupsPerPeer, maxPendingSetups)? Counts it if so. */
  private mayRespond (domain: string): boolean {
    const now = Date.now()
    if (now - this.windowStart >= SETUP_WINDOW_MS) {
      this.started.clear()
      this.windowStart = now
    }
    // A step 1 that replaces the domain's own set-up in progress does not add one.
    if (!this.incoming.has(domain) && this.incoming.size >= this.host.maxPendingSetups) return false
    const n = this.started.get(domain)
    if (n === undefined && this.started.size >= SETUP_WINDOW_DOMAINS) return false
    if ((n ?? 0) >= this.host.maxSetupsPerPeer) return false
    this.started.set(domain, (n ?? 0) + 1)
    return true
  }

  /** Fail every set-up in progress (node closing). */
  abortAll (err: SspError): void {
    for (const ex of [...this.outgoing.values(), ...this.incoming.values()]) this.fail(ex, err)
  }

  get inProgress (): number { return this.outgoing.size + this.incoming.size }

  /** Is a set-up with this peer in progress, in either role? */
  has (domain: string): boolean { return this.outgoing.has(domain) || this.incoming.has(domain) }

  // ------------------------------------------------------------------ responder: steps 2, 3, 5, 7

  private onToken (peer: Peer, msg: ParsedSetupMessage): void {
    const old = this.incoming.get(peer.domain)
    if (old !== undefined) this.fail(old, createError('SSP_ERR_SETUP_PROTOCOL', { message: `${peer.domain} started a new set-up` }))
    const ex = this.exchange(peer, Role.PROVIDER, () => {}, () => {})
    const engine = new SetupResponder(this.policy, msg, { sessionId: this.newSessionId() }, peer.domain)
    ex.engine = engine
    this.incoming.set(peer.domain, ex)
    // Step 2: find the peer's server; step 3: our secret, on our own connection.
    this.host.resolvePeer(peer).then((entry) => {
      if (ex.done) return
      ex.clients = this.host.clientsFor(peer, Role.PROVIDER)
      this.reply(ex, engine.step3(), 0, true)
    }).catch((err: SspError) => this.fail(ex, err))
  }

  /** Steps 4 and 6 arriving at the responder. */
  private request (peer: Peer, msg: ParsedSetupMessage): void {
    const ex = this.incoming.get(peer.domain)
    const engine = ex?.engine
    if (ex === undefined || !(engine instanceof SetupResponder) || !this.due(engine, msg)) return this.unexpected(peer, msg)
    try {
      if (engine.awaited === 4) {
        this.reply(ex, engine.onStep4(msg))
      } else {
        const { step7, result } = engine.onStep6(msg)
        this.reply(ex, step7)
        this.done(ex, this.host.sessionUp(peer, Role.PROVIDER, result.sessionId, result.peerSessionId, ex.clients ?? [], result.timeToLive))
      }
    } catch (err) {
      this.fail(ex, err as SspError)
    }
  }

  // ------------------------------------------------------------------ initiator: steps 3, 5, 7 arriving

  private answer (peer: Peer, msg: ParsedSetupMessage): void {
    const ex = this.outgoing.get(peer.domain)
    const engine = ex?.engine
    if (ex === undefined || !(engine instanceof SetupInitiator) || !this.due(engine, msg)) return this.unexpected(peer, msg)
    try {
      if (engine.awaited === 3) {
        this.reply(ex, engine.onStep3(msg))
      } else if (engine.awaited === 5) {
        this.reply(ex, engine.onStep5(msg))
      } else {
        const result = engine.onStep7(msg)
        this.done(ex, this.host.sessionUp(peer, Role.REQUESTOR, result.sessionId, result.peerSessionId, ex.clients ?? [], result.timeToLive))
      }
    } catch (err) {
      this.fail(ex, err as SspError)
    }
  }

  /** The step the engine waits for, by kind (step 6 and 7 found by domain here are not held to the transaction id). */
  private due (engine: SetupInitiator | SetupResponder, msg: ParsedSetupMessage): boolean {
    if (engine.awaits(msg)) return true
    const step = engine.awaited
    return (step === 6 || step === 7) && msg.kind === SetupKind.LOGIN_RESPONSE && msg.mode === (step === 6 ? Mode.REQUEST : Mode.RESPONSE)
  }

  // ------------------------------------------------------------------ plumbing

  private newSessionId (): string {
    return newSessionId(this.host.interop ? this.host.domain : undefined)
  }

  private exchange (peer: Peer, role: Role, resolve: (s: Session) => void, reject: (e: SspError) => void): Exchange {
    const ex: Exchange = {
      peer,
      role,
      engine: undefined,
      clients: undefined,
      done: false,
      timer: setTimeout(() => this.fail(ex, createError('SSP_ERR_SETUP_TIMEOUT', { message: `${peer.domain} as ${role}` })), this.host.setupTimeout),
      resolve,
      reject
    }
    ex.timer.unref()
    return ex
  }

  private bind (peer: Peer, conn: ServerConnection): void {
    if (conn.context === undefined) {
      conn.context = peer
      peer.inbound.add(conn)
    }
  }

  private send (ex: Exchange, entry: PeerEntry, msg: SetupMessage, setup: boolean): Promise<void> {
    const client = ex.clients![0]!
    // Secrets go as plain printable text unless the peer is known to take base64: Baraza
    // keeps a decoded secret as a C string, so a binary one is cut at its first NUL.
    const body = buildSetup(msg, { version: entry.version ?? '1.3', secretEncoding: entry.secretEncoding ?? 'plain' })
    return this.host.post(client, body, msg.transactionId, setup)
  }

  /**
   * Steps 3-7. A peer that closes the connection instead of answering 200 has
   * refused the step (SSP_ERR_UNACKNOWLEDGED); Baraza does so to a step 4 that
   * follows its own step 3 before its database commit. Such a step is POSTed
   * again after a short jittered delay (100 ms, doubling), at most
   * `setupStepRetries` times and never past the set-up deadline.
   */
  private reply (ex: Exchange, msg: SetupMessage, attempt = 0, firstOnConnection = false): void {
    const entry = ex.peer.entry
    if (entry === undefined || ex.clients === undefined) {
      this.fail(ex, createError('SSP_ERR_SETUP_PROTOCOL', { message: 'no connection to answer on' }))
      return
    }
    // The step the engine waits for once this one is sent: a change means answered meanwhile.
    const stage = ex.engine?.awaited
    const current = (): boolean => !ex.done && ex.engine?.awaited === stage
    this.send(ex, entry, msg, firstOnConnection).catch((err: SspError) => {
      if (!current()) return // answered meanwhile (the close came after the answer) or failed
      if (err.code === 'SSP_ERR_UNACKNOWLEDGED' && attempt < this.host.setupStepRetries) {
        this.host.countStepRetry()
        const delay = backoffDelay(attempt, 100, Infinity)
        const timer = setTimeout(() => { if (current()) this.reply(ex, msg, attempt + 1, firstOnConnection) }, delay)
        timer.unref()
        return
      }
      this.fail(ex, err)
    })
  }

  private unexpected (peer: Peer, msg: ParsedSetupMessage): void {
    this.host.countDeviation('unexpectedSetupMessage')
    const ex = (msg.mode === Mode.REQUEST ? this.incoming : this.outgoing).get(peer.domain)
    if (ex !== undefined) {
      this.fail(ex, createError('SSP_ERR_SETUP_PROTOCOL', { message: `unexpected ${msg.kind} (${msg.mode}) from ${peer.domain}` }))
    }
  }

  private done (ex: Exchange, s: Session): void {
    ex.done = true
    clearTimeout(ex.timer)
    this.forget(ex)
    ex.resolve(s)
  }

  private fail (ex: Exchange, err: SspError): void {
    if (ex.done) return
    ex.done = true
    clearTimeout(ex.timer)
    this.forget(ex)
    this.host.setupFailed(ex.peer, ex.role, ex.clients, err)
    ex.reject(err)
  }

  private forget (ex: Exchange): void {
    const m = ex.role === Role.REQUESTOR ? this.outgoing : this.incoming
    if (m.get(ex.peer.domain) === ex) m.delete(ex.peer.domain)
  }
}
