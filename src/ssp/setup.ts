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
import { isIdString } from '../wire/header-bytes.js'
import type { ServerConnection } from '../wire/server-connection.js'
import type { PeerEntry } from './directory.js'
import { newSessionId, type TransactionIds } from './ids.js'
import {
  buildSetup, digestMatches, Mode, newPrintableSecret, passwordDigest, SetupKind, type ParsedSetupMessage, type SetupMessage
} from './messages.js'
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
  /** A set-up step POSTed again after the peer closed on it (counted as setupStepRetries). */
  countStepRetry (): void
  /** May this connection speak for this domain (one peer per connection; mutual TLS identity)? Closes it if not. */
  admit (conn: ServerConnection, domain: string, role: Role): boolean
}

const Stage = {
  /** Initiator: waiting for step 3. Responder: waiting for step 4. */
  TOKEN: 1,
  /** Initiator: waiting for step 5. Responder: waiting for step 6. */
  LOGIN: 2,
  /** Initiator: waiting for step 7. */
  LOGIN_RESPONSE: 3,
  DONE: 4
} as const
type StageValue = typeof Stage[keyof typeof Stage]

interface Exchange {
  readonly peer: Peer
  readonly role: Role
  readonly ourSecret: Buffer
  peerSecret: Buffer | undefined
  clients: WireClient[] | undefined
  /** Transaction id of the step we wait an answer to (initiator) or of step 1 (responder). */
  tid: string
  stage: StageValue
  /** Our session id, offered in step 6 or 7. */
  readonly sessionId: string
  timer: NodeJS.Timeout
  resolve: (s: Session) => void
  reject: (e: SspError) => void
}

export class SetupCoordinator {
  private readonly host: SetupHost
  /** Set-ups we initiated (we will be the requestor), by peer domain. */
  private readonly outgoing = new Map<string, Exchange>()
  /** Set-ups the peer initiated (we will be the provider), by peer domain. */
  private readonly incoming = new Map<string, Exchange>()

  constructor (host: SetupHost) {
    this.host = host
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
        if (ex.stage === Stage.DONE) return
        ex.clients = this.host.clientsFor(peer, Role.REQUESTOR)
        ex.tid = this.host.tids.next()
        return this.send(ex, entry, {
          kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: ex.tid, domain: this.host.domain, secret: ex.ourSecret
        }, true)
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
      const peer = h.peerFor(msg.domain)
      this.bind(peer, conn)
      if (msg.mode === Mode.REQUEST) this.onToken(peer, msg)
      else this.onTokenAnswer(peer, msg)
      return
    }
    const peer = conn.context instanceof Peer
      ? conn.context
      : msg.kind === SetupKind.LOGIN_REQUEST ? h.peerFor(msg.domain) : this.loginResponsePeer(msg)
    if (peer === undefined) return
    if (!h.admit(conn, peer.domain, msg.mode === Mode.REQUEST ? Role.PROVIDER : Role.REQUESTOR)) return
    if (msg.kind === SetupKind.LOGIN_REQUEST) {
      if (msg.mode === Mode.REQUEST) this.onLogin(peer, msg)
      else this.onLoginAnswer(peer, msg)
    } else {
      if (msg.mode === Mode.REQUEST) this.onLoginResponse(peer, msg)
      else this.onLoginResponseAnswer(peer, msg)
    }
  }

  /**
   * A LoginResponse (no domain in it) on a connection no set-up message came
   * on: a peer that opens a new connection per POST (ssp-notes 3). Step 7
   * echoes the transaction id of our step 6; step 6 (interop only) goes to the
   * one set-up waiting for it, if there is exactly one.
   */
  private loginResponsePeer (msg: ParsedSetupMessage): Peer | undefined {
    if (msg.mode === Mode.RESPONSE) {
      for (const ex of this.outgoing.values()) if (ex.stage === Stage.LOGIN_RESPONSE && ex.tid === msg.transactionId) return ex.peer
      return undefined
    }
    // Step 6 carries the transaction id of step 1 (one id for the initiator's steps 1, 4, 6).
    for (const ex of this.incoming.values()) if (ex.stage === Stage.LOGIN && ex.tid === msg.transactionId) return ex.peer
    if (!this.host.interop) return undefined
    const waiting = [...this.incoming.values()].filter((ex) => ex.stage === Stage.LOGIN)
    return waiting.length === 1 ? waiting[0]!.peer : undefined
  }

  /**
   * Strict posture: the peer's session id goes into our x-wv-sessionid
   * headers, so one outside the 5.6 grammar fails the set-up (S-012) rather
   * than bring up a session every POST of which would fail SSP_ERR_INVALID_ID.
   */
  private badSessionId (ex: Exchange, id: string): boolean {
    if (this.host.interop || isIdString(id)) return false
    this.fail(ex, createError('SSP_ERR_SETUP_PROTOCOL', {
      message: `${ex.peer.domain} named the session ${JSON.stringify(id)}, outside 1*(ALPHA / DIGIT / "_") (S-012)`, scr: 'S-012'
    }))
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

  private onToken (peer: Peer, msg: ParsedSetupMessage & { kind: 'SendSecretToken' }): void {
    const old = this.incoming.get(peer.domain)
    if (old !== undefined) this.fail(old, createError('SSP_ERR_SETUP_PROTOCOL', { message: `${peer.domain} started a new set-up` }))
    const ex = this.exchange(peer, Role.PROVIDER, () => {}, () => {})
    ex.peerSecret = msg.secret
    ex.tid = msg.transactionId
    this.incoming.set(peer.domain, ex)
    // Step 2: find the peer's server; step 3: our secret, on our own connection.
    this.host.resolvePeer(peer).then((entry) => {
      if (ex.stage === Stage.DONE) return
      ex.clients = this.host.clientsFor(peer, Role.PROVIDER)
      this.reply(ex, {
        kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.RESPONSE, transactionId: msg.transactionId, domain: this.host.domain, secret: ex.ourSecret
      }, 0, true)
    }).catch((err: SspError) => this.fail(ex, err))
  }

  private onLogin (peer: Peer, msg: ParsedSetupMessage & { kind: 'LoginRequest' }): void {
    const ex = this.incoming.get(peer.domain)
    if (ex === undefined || ex.stage !== Stage.TOKEN || ex.peerSecret === undefined) return this.unexpected(peer, msg)
    if (!digestMatches(ex.ourSecret, msg.digest)) {
      this.fail(ex, createError('SSP_ERR_SETUP_DIGEST', { message: `${peer.domain} (step 4)` }))
      return
    }
    ex.stage = Stage.LOGIN
    this.reply(ex, {
      kind: SetupKind.LOGIN_REQUEST, mode: Mode.RESPONSE, transactionId: msg.transactionId, domain: this.host.domain,
      digest: passwordDigest(ex.peerSecret), timeToLive: this.host.timeToLive
    })
  }

  private onLoginResponse (peer: Peer, msg: ParsedSetupMessage & { kind: 'LoginResponse' }): void {
    const ex = this.incoming.get(peer.domain)
    if (ex === undefined || ex.stage !== Stage.LOGIN) return this.unexpected(peer, msg)
    if (this.badSessionId(ex, msg.sessionId)) return
    const ttl = Math.min(this.host.timeToLive, msg.timeToLive ?? this.host.timeToLive)
    this.reply(ex, {
      kind: SetupKind.LOGIN_RESPONSE, mode: Mode.RESPONSE, transactionId: msg.transactionId, sessionId: ex.sessionId,
      timeToLive: ttl, statusCode: 200
    })
    this.done(ex, this.host.sessionUp(peer, Role.PROVIDER, ex.sessionId, msg.sessionId, ex.clients ?? [], ttl))
  }

  // ------------------------------------------------------------------ initiator: steps 3, 5, 7 arriving

  private onTokenAnswer (peer: Peer, msg: ParsedSetupMessage & { kind: 'SendSecretToken' }): void {
    const ex = this.outgoing.get(peer.domain)
    if (ex === undefined || ex.stage !== Stage.TOKEN) return this.unexpected(peer, msg)
    if (msg.transactionId !== ex.tid) {
      // Real peers answer step 1 with a transaction id of their own (ssp-notes 3);
      // the set-up is matched by the peer's domain instead.
      if (!this.host.interop) {
        this.fail(ex, createError('SSP_ERR_SETUP_PROTOCOL', { message: `step 3 from ${peer.domain} carries transactionID ${msg.transactionId}, not ${ex.tid} (S-005)`, scr: 'S-005' }))
        return
      }
      this.host.countDeviation('setupTransactionId')
    }
    ex.peerSecret = msg.secret
    ex.stage = Stage.LOGIN
    // Steps 1, 4 and 6 carry one transaction id: the responder finds the set-up by it (Baraza does).
    this.reply(ex, {
      kind: SetupKind.LOGIN_REQUEST, mode: Mode.REQUEST, transactionId: ex.tid, domain: this.host.domain,
      digest: passwordDigest(msg.secret), timeToLive: this.host.timeToLive
    })
  }

  private onLoginAnswer (peer: Peer, msg: ParsedSetupMessage & { kind: 'LoginRequest' }): void {
    const ex = this.outgoing.get(peer.domain)
    if (ex === undefined || ex.stage !== Stage.LOGIN) return this.unexpected(peer, msg)
    if (!digestMatches(ex.ourSecret, msg.digest)) {
      this.fail(ex, createError('SSP_ERR_SETUP_DIGEST', { message: `${peer.domain} (step 5)` }))
      return
    }
    ex.stage = Stage.LOGIN_RESPONSE
    this.reply(ex, {
      kind: SetupKind.LOGIN_RESPONSE, mode: Mode.REQUEST, transactionId: ex.tid, sessionId: ex.sessionId,
      timeToLive: this.host.timeToLive, statusCode: 200
    })
  }

  private onLoginResponseAnswer (peer: Peer, msg: ParsedSetupMessage & { kind: 'LoginResponse' }): void {
    const ex = this.outgoing.get(peer.domain)
    if (ex === undefined || ex.stage !== Stage.LOGIN_RESPONSE) return this.unexpected(peer, msg)
    if (this.badSessionId(ex, msg.sessionId)) return
    if (msg.statusCode !== 200) {
      this.fail(ex, createError('SSP_ERR_SETUP_PROTOCOL', { message: `${peer.domain} refused the login (status ${msg.statusCode})` }))
      return
    }
    const ttl = Math.min(this.host.timeToLive, msg.timeToLive ?? this.host.timeToLive)
    this.done(ex, this.host.sessionUp(peer, Role.REQUESTOR, ex.sessionId, msg.sessionId, ex.clients ?? [], ttl))
  }

  // ------------------------------------------------------------------ plumbing

  private exchange (peer: Peer, role: Role, resolve: (s: Session) => void, reject: (e: SspError) => void): Exchange {
    const ex: Exchange = {
      peer,
      role,
      ourSecret: newPrintableSecret(),
      peerSecret: undefined,
      clients: undefined,
      tid: '',
      stage: Stage.TOKEN,
      sessionId: newSessionId(this.host.interop ? this.host.domain : undefined),
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
    const stage = ex.stage
    this.send(ex, entry, msg, firstOnConnection).catch((err: SspError) => {
      if (ex.stage !== stage) return // answered meanwhile (the close came after the answer) or failed
      if (err.code === 'SSP_ERR_UNACKNOWLEDGED' && attempt < this.host.setupStepRetries) {
        this.host.countStepRetry()
        const delay = backoffDelay(attempt, 100, Infinity)
        const timer = setTimeout(() => { if (ex.stage === stage) this.reply(ex, msg, attempt + 1, firstOnConnection) }, delay)
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
    ex.stage = Stage.DONE
    clearTimeout(ex.timer)
    this.forget(ex)
    ex.resolve(s)
  }

  private fail (ex: Exchange, err: SspError): void {
    if (ex.stage === Stage.DONE) return
    ex.stage = Stage.DONE
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
