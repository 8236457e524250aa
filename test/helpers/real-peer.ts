/**
 * A scripted SSP peer that behaves like the deployed peers of ssp-notes
 * section 3 and like Baraza (../shared/baraza/README.md), on raw `net` sockets:
 *
 *  - it reads ids only from the body, never from `x-wv-*` headers: the
 *    `Session sessionID` and each `Transaction transactionID`/`mode`;
 *  - it looks a session up as Baraza does: the body's session id must be the
 *    node's own id for it, `<token>@<node's domain>`; anything else is unknown;
 *  - as set-up responder it finds steps 4 and 6 by the transaction id of step 1;
 *    as initiator it uses one transaction id for steps 1, 4 and 6;
 *  - every refusal (unknown session, no set-up, wrong digest) is a TCP close
 *    with no HTTP answer;
 *
 *  - its own POSTs go one at a time (it waits for the 200 before the next),
 *    on one keep-alive connection it opened (a new one after a close);
 *  - every POST carries `Connection: Keep-Alive` AND `Connection: keep-alive`
 *    and `Content-Type: application/vnd.wv.ssp+xml; charset=UTF-8`;
 *  - ids break the 5.6 grammar: transaction ids `0000000042-7`, session ids
 *    `5@real.example`;
 *  - its answers are new POSTs without `x-wv-transactionid`, whose
 *    `x-wv-sessionid` is the receiver's name of the session while the body
 *    carries its own;
 *  - as the set-up responder, step 3 carries a transactionID of its own and
 *    steps 5 and 7 carry no `x-wv-*` header at all.
 *
 * Each deviation can be switched off, so that a strict node can be shown to
 * refuse each one on its own. The set-up is the project's engine
 * (src/ssp/setup-engine.ts) told which of Baraza's deviations to commit; XML
 * comes from src/ssp/messages.ts, HTTP framing from the lab's HttpStream
 * (llhttp: chunked bodies included).
 */
import * as net from 'node:net'
import { HttpStream, type HttpMessage } from '../../src/conformance/http.js'
import {
  buildSession, buildSetup, EnvelopeKind, Mode, parseSetup, peekEnvelopeIds,
  SetupKind, type ParsedSetupMessage, type SessionTransaction, type SetupMessage
} from '../../src/ssp/messages.js'
import { SetupInitiator, SetupResponder, type SetupPolicy } from '../../src/ssp/setup-engine.js'

export interface RealPeerOptions {
  /** Default `real.example`. */
  domain?: string
  /** Transaction ids like `0000000042-7` (default true); false: ids in the 5.6 grammar. */
  realTids?: boolean
  /** Session ids like `5@real.example` (default true); false: ids in the 5.6 grammar. */
  realSessionIds?: boolean
  /** Step 3 carries a transactionID of its own (default true); false: the one of step 1. */
  ownSetupTid?: boolean
  /** Steps 5 and 7 carry no x-wv-* header (default true). */
  bareSetupAnswers?: boolean
  /** Answer POSTs carry no x-wv-transactionid (default true). */
  bareAnswers?: boolean
  /** Content-Type of its POSTs. Default `application/vnd.wv.ssp+xml; charset=UTF-8`. */
  contentType?: string
  /** Send a wrong password digest (step 4 or 5, whichever it sends). */
  wrongDigest?: boolean
  /** Answer session POSTs (not set-up ones) with a 307 to this URL instead of a 200. */
  redirectSessionPosts?: string
  /** Answer the first SendSecretToken it receives with a 307 to this URL (a load balancer's redirect, spec 5.5); later ones normally. */
  redirectFirstSetup?: string
  /** Service answers: the primitive to send back (wrapped in Session/Transaction). */
  handler?: (tx: RealIncoming) => string
  /** Bound on connect() and request(), ms. Default 10 000. */
  timeout?: number
  /** Answer this many requests of a session in one POST (one Session, several Transactions). Default 1. */
  batch?: number
  /** Keep its connection open between POSTs (default true); false: `Connection: close`, a new connection per POST. */
  keepAlive?: boolean
  /**
   * Look sessions up as Baraza does (default true): by the body's session id, which must be
   * `<token>@<the node's domain>`. false: any id the node issued, with or without `@`.
   */
  barazaSessionLookup?: boolean
  /**
   * As set-up responder, refuse (close on) a step 4 that arrives within this many ms of
   * its own step 3 leaving: Baraza sends step 3 before its database commit. Default 5; 0: never.
   */
  commitDelayMs?: number
}

export interface RealIncoming {
  kind: 'request' | 'notification'
  transactionId: string
  /** The session id of the body (the sender's own id). */
  sessionId: string | undefined
  body: string
  /** The primitive inside the request's Transaction. */
  primitive: string
}

/** A POST as the real peer received it. */
export interface RealReceived {
  headers: Record<string, string[]>
  tid: string | undefined
  sid: string | undefined
  body: string
  setup: ParsedSetupMessage | undefined
}

/** A POST the real peer sent, and what came back. */
export interface RealSent {
  tid: string | undefined
  sid: string | undefined
  body: string
  status: number
  /** `X-SSP-Error` of a refusal. */
  sspError: string | undefined
}

/** A refused POST: the node answered something else than 200. */
export class Refusal extends Error {
  readonly status: number
  readonly sspError: string | undefined
  constructor (status: number, sspError: string | undefined) {
    super(`refused with ${status}${sspError === undefined ? '' : ` (${sspError})`}`)
    this.status = status
    this.sspError = sspError
  }
}

interface RealSession {
  /** Our name of it. */
  ourId: string
  /** The node's name of it. */
  nodeId: string
}

interface ResponderSetup {
  readonly engine: SetupResponder
  /** When our step 3 was written (performance.now()). */
  step3At: number
}

interface RequestorSetup {
  readonly engine: SetupInitiator
  resolve: () => void
  reject: (e: Error) => void
}

interface Head { status: number, headers: Record<string, string[]> }

/** Header lists by lower-case name, as the tests read them. */
function headerTable (m: HttpMessage): Record<string, string[]> {
  const headers: Record<string, string[]> = {}
  for (const [k, v] of m.headers) (headers[k.toLowerCase()] ??= []).push(v)
  return headers
}

export class RealPeer {
  readonly domain: string
  readonly received: RealReceived[] = []
  readonly sent: RealSent[] = []
  readonly refusals: Refusal[] = []
  /** Set-up steps it gave up on (bad digest, unexpected message), as text. */
  readonly problems: string[] = []
  /** Session the node set up (we provide). */
  provided: RealSession | undefined = undefined
  /** Session we set up (we are the requestor). */
  requested: RealSession | undefined = undefined
  /** Connections it opened to the node. */
  connectionsOpened = 0
  /** POSTs it refused by closing the connection, with the reason. */
  readonly closedOn: string[] = []
  /** Step 4s refused for coming too soon after step 3 (commitDelayMs). */
  step4Refusals = 0
  /** Set-up redirects it answered (redirectFirstSetup). */
  redirectsSent = 0
  /** The node's domain, as its set-up messages named it. */
  nodeDomain: string | undefined = undefined
  url = ''

  /** Set-up as Baraza does it: its deviations committed, the node's accepted. */
  private readonly policy: SetupPolicy
  private readonly o: Required<Omit<RealPeerOptions, 'handler' | 'redirectSessionPosts' | 'redirectFirstSetup'>> & Pick<RealPeerOptions, 'handler' | 'redirectSessionPosts' | 'redirectFirstSetup'>
  private nodeUrl: URL | undefined = undefined
  private readonly server: net.Server
  private readonly inbound = new Set<net.Socket>()
  private n = 0
  private sessions = 0
  private responder: ResponderSetup | undefined = undefined
  private requestor: RequestorSetup | undefined = undefined
  private readonly pending = new Map<string, { resolve: (r: RealReceived) => void }>()
  private readonly batches = new Map<RealSession, SessionTransaction[]>()
  // ---- the outbound connection: one POST at a time
  private sock: net.Socket | undefined = undefined
  private chain: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor (options: RealPeerOptions = {}) {
    this.domain = options.domain ?? 'real.example'
    this.o = {
      domain: this.domain,
      realTids: options.realTids ?? true,
      realSessionIds: options.realSessionIds ?? true,
      ownSetupTid: options.ownSetupTid ?? true,
      bareSetupAnswers: options.bareSetupAnswers ?? true,
      bareAnswers: options.bareAnswers ?? true,
      contentType: options.contentType ?? 'application/vnd.wv.ssp+xml; charset=UTF-8',
      wrongDigest: options.wrongDigest ?? false,
      timeout: options.timeout ?? 10_000,
      keepAlive: options.keepAlive ?? true,
      batch: options.batch ?? 1,
      barazaSessionLookup: options.barazaSessionLookup ?? true,
      commitDelayMs: options.commitDelayMs ?? 5,
      handler: options.handler,
      redirectSessionPosts: options.redirectSessionPosts,
      redirectFirstSetup: options.redirectFirstSetup
    }
    this.policy = {
      domain: this.domain,
      timeToLive: 3600,
      accept: { foreignStep3Tid: true, anySessionId: true },
      deviate: {
        wrongDigest: this.o.wrongDigest,
        nulCutSecrets: true,
        ...(this.o.ownSetupTid ? { step3Tid: () => this.nextTid() } : {})
      }
    }
    this.server = net.createServer((s) => this.accept(s))
  }

  async start (): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => { this.server.off('error', reject); resolve() })
    })
    const a = this.server.address() as net.AddressInfo
    this.url = `http://127.0.0.1:${a.port}/`
    return this.url
  }

  /** Where the node listens (what DNS SRV would have told it). */
  setNode (url: string): void {
    this.nodeUrl = new URL(url)
  }

  async close (): Promise<void> {
    this.closed = true
    this.sock?.destroy()
    for (const s of this.inbound) s.destroy()
    this.requestor?.reject(new Error('real peer closed'))
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  // ------------------------------------------------------------------ ids

  nextTid (): string {
    this.n++
    return this.o.realTids ? `${String(this.n).padStart(10, '0')}-7` : `R${String(this.n).padStart(10, '0')}_7`
  }

  private nextSessionId (): string {
    this.sessions++
    const k = this.sessions * 4 + 1
    return this.o.realSessionIds ? `${k}@${this.domain}` : `S${k}_real`
  }

  // ------------------------------------------------------------------ our side: set-up as requestor, requests

  /** Set up the session where we are the requestor (steps 1, 4, 6). */
  connect (): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('real peer: set-up timed out')), this.o.timeout)
      const fail = (e: Error): void => {
        clearTimeout(timer)
        if (this.requestor === rs) this.requestor = undefined
        reject(e)
      }
      const engine = new SetupInitiator(this.policy, 'the node', { transactionId: this.nextTid(), sessionId: this.nextSessionId() })
      const rs: RequestorSetup = { engine, resolve: () => { clearTimeout(timer); resolve() }, reject: fail }
      this.requestor = rs
      this.postSetup(engine.step1(), true).catch(fail)
    })
  }

  /**
   * A request in one of our sessions: a service request in the session we
   * set up, or (notification) a notification in the session the node set up.
   * Resolves with the node's answer POST.
   */
  request (inner: string, opts: { notification?: boolean } = {}): Promise<RealReceived> {
    const s = opts.notification === true ? this.provided : this.requested
    if (s === undefined) return Promise.reject(new Error('real peer: no such session'))
    const tid = this.nextTid()
    return new Promise<RealReceived>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(tid); reject(new Error(`real peer: no answer to ${tid}`)) }, this.o.timeout)
      this.pending.set(tid, { resolve: (r) => { clearTimeout(timer); resolve(r) } })
      const body = buildSession(s.ourId, [{ mode: Mode.REQUEST, transactionId: tid, inner }]).toString('utf8')
      // Requests name the session by our own id (ssp-notes 3).
      this.post(body, tid, s.ourId).catch((e: Error) => { clearTimeout(timer); this.pending.delete(tid); reject(e) })
    })
  }

  // ------------------------------------------------------------------ outbound POSTs

  private postSetup (msg: SetupMessage, headers: boolean): Promise<void> {
    // Baraza writes its secret as plain hex, no `encoding` attribute.
    const body = buildSetup(msg, { secretEncoding: 'plain' }).toString('utf8')
    return this.post(body, headers ? msg.transactionId : undefined, undefined)
  }

  /** Queue one POST; resolves on its 200, rejects with a Refusal otherwise. One at a time. */
  post (body: string, tid: string | undefined, sid: string | undefined): Promise<void> {
    const run = (): Promise<void> => this.postNow(body, tid, sid)
    const p = this.chain.then(run, run)
    this.chain = p.catch(() => {})
    return p
  }

  private async postNow (body: string, tid: string | undefined, sid: string | undefined): Promise<void> {
    if (this.closed) throw new Error('real peer closed')
    const target = this.nodeUrl
    if (target === undefined) throw new Error('real peer: node URL not set')
    const bytes = Buffer.from(body, 'utf8')
    const lines = [
      `POST ${target.pathname} HTTP/1.1`,
      `Host: ${target.host}`,
      `Content-Type: ${this.o.contentType}`,
      ...(this.o.keepAlive ? ['Connection: Keep-Alive', 'Connection: keep-alive'] : ['Connection: close'])
    ]
    if (tid !== undefined) lines.push(`x-wv-transactionid: ${tid}`)
    if (sid !== undefined) lines.push(`x-wv-sessionid: ${sid}`)
    lines.push(`Content-Length: ${bytes.length}`)
    const head = await this.exchange(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bytes]))
    const sspError = head.headers['x-ssp-error']?.[0]
    this.sent.push({ tid, sid, body, status: head.status, sspError })
    if (head.status !== 200) {
      const r = new Refusal(head.status, sspError)
      this.refusals.push(r)
      throw r
    }
  }

  /** Write one request on our connection (opening it when needed), read its answer head. */
  private async exchange (request: Buffer): Promise<Head> {
    const sock = await this.socket()
    return new Promise<Head>((resolve, reject) => {
      let answer: HttpMessage | undefined
      let broken: string | undefined
      const stream = new HttpStream('response', { message: (m) => { answer ??= m }, error: (reason) => { broken = reason } })
      const timer = setTimeout(() => done(new Error('real peer: no answer to a POST')), this.o.timeout)
      const onData = (chunk: Buffer): void => {
        stream.push(chunk)
        if (broken !== undefined) { done(new Error(`real peer: unreadable answer (${broken})`)); return }
        if (answer === undefined) return
        const status = answer.status ?? 0
        if (!answer.keepAlive || status !== 200 || !this.o.keepAlive) this.drop(sock)
        done(null, { status, headers: headerTable(answer) })
      }
      const onClose = (): void => done(new Error('real peer: connection closed before the answer'))
      const done = (err: Error | null, head?: Head): void => {
        clearTimeout(timer)
        stream.stop()
        sock.off('data', onData)
        sock.off('close', onClose)
        if (err !== null) { this.drop(sock); reject(err) } else resolve(head!)
      }
      sock.on('data', onData)
      sock.on('close', onClose)
      sock.write(request)
    })
  }

  private drop (sock: net.Socket): void {
    if (this.sock === sock) this.sock = undefined
    sock.destroy()
  }

  private async socket (): Promise<net.Socket> {
    if (this.sock !== undefined && !this.sock.destroyed) return this.sock
    const target = this.nodeUrl!
    const sock = net.connect({ host: target.hostname, port: Number(target.port) })
    sock.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve)
      sock.once('close', () => reject(new Error('real peer: could not connect')))
    })
    this.connectionsOpened++
    this.sock = sock
    return sock
  }

  // ------------------------------------------------------------------ inbound POSTs (the node's connections to us)

  private accept (s: net.Socket): void {
    this.inbound.add(s)
    const stream = new HttpStream('request', {
      message: (m) => this.onPost(s, headerTable(m), m.body.toString('utf8')),
      error: () => s.destroy()
    })
    s.on('error', () => {})
    s.on('close', () => { this.inbound.delete(s); stream.stop() })
    s.on('data', (chunk: Buffer) => stream.push(chunk))
  }

  private onPost (s: net.Socket, headers: Record<string, string[]>, body: string): void {
    if (s.destroyed) return // refused earlier in the same read: nothing after a close is read
    const tid = headers['x-wv-transactionid']?.[0]
    const sid = headers['x-wv-sessionid']?.[0]
    const bytes = Buffer.from(body, 'utf8')
    const ids = peekEnvelopeIds(bytes)
    let setup: ParsedSetupMessage | undefined
    if (ids.kind === EnvelopeKind.SETUP) {
      try { setup = parseSetup(body) } catch { setup = undefined }
    }
    const rec: RealReceived = { headers, tid, sid, body, setup }
    this.received.push(rec)
    if (setup?.kind === SetupKind.SEND_SECRET_TOKEN && this.o.redirectFirstSetup !== undefined && this.redirectsSent === 0) {
      this.redirectsSent++
      s.end(`HTTP/1.1 307 Temporary Redirect\r\nLocation: ${this.o.redirectFirstSetup}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
      return
    }
    if (setup === undefined && this.o.redirectSessionPosts !== undefined) {
      s.write(`HTTP/1.1 307 Temporary Redirect\r\nLocation: ${this.o.redirectSessionPosts}\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    // Baraza decides before it answers: a refusal is a close with no HTTP answer at all.
    const step = setup !== undefined ? this.setupStep(setup) : this.sessionRefusal(ids)
    if (typeof step === 'string') {
      this.closedOn.push(step)
      if (!step.startsWith('step 4 before')) this.problems.push(step)
      s.destroy()
      return
    }
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\nConnection: keep-alive\r\n\r\n')
    if (step !== undefined) step()
    else this.onSessionPost(rec, ids)
  }

  /** The session a body names, looked up as Baraza does (or by any of the node's ids). */
  private sessionOf (id: string | undefined): RealSession | undefined {
    if (id === undefined) return undefined
    if (this.o.barazaSessionLookup) {
      // Split at `@`: the part after it must be the sender's domain.
      const at = id.lastIndexOf('@')
      if (at < 0 || this.nodeDomain === undefined || id.slice(at + 1).toLowerCase() !== this.nodeDomain) return undefined
    }
    return [this.provided, this.requested].find((x) => x !== undefined && x.nodeId === id)
  }

  private sessionRefusal (ids: ReturnType<typeof peekEnvelopeIds>): string | undefined {
    if (ids.kind !== EnvelopeKind.SESSION) return 'not an SSP message it can dispatch'
    if (this.sessionOf(ids.sessionId) === undefined) return `unknown session ${String(ids.sessionId)}`
    return undefined
  }

  private onSessionPost (rec: RealReceived, ids: ReturnType<typeof peekEnvelopeIds>): void {
    const s = this.sessionOf(ids.sessionId)!
    const bytes = Buffer.from(rec.body, 'utf8')
    for (const t of ids.transactions) {
      const tid = t.transactionId
      if (tid === undefined) continue
      if (t.mode === Mode.RESPONSE) {
        const p = this.pending.get(tid)
        if (p !== undefined) {
          this.pending.delete(tid)
          p.resolve(rec)
        } else {
          this.problems.push(`answer ${tid} to no request of ours`)
        }
        continue
      }
      const kind = s === this.provided ? 'request' : 'notification'
      const inner = this.o.handler?.({ kind, transactionId: tid, sessionId: ids.sessionId, body: rec.body, primitive: bytes.toString('utf8', t.contentStart, t.contentEnd).trim() }) ??
        '<Status code="200"/>'
      const batch = this.batches.get(s) ?? []
      batch.push({ mode: Mode.RESPONSE, transactionId: tid, inner })
      if (batch.length < this.o.batch) { this.batches.set(s, batch); continue }
      this.batches.delete(s)
      const answer = buildSession(s.ourId, batch).toString('utf8')
      // The answer: no transaction id header; the session header is the request body's id, the body ours.
      this.post(answer, this.o.bareAnswers ? undefined : tid, s.nodeId).catch(() => {})
    }
  }

  /**
   * A set-up message, judged before any answer as Baraza does: a string is
   * the reason to close (the refusal); otherwise what to do once the 200 is
   * written (nothing, for a message it ignores).
   */
  private setupStep (msg: ParsedSetupMessage): string | (() => void) {
    if (msg.kind === SetupKind.SEND_SECRET_TOKEN) this.nodeDomain = msg.domain.toLowerCase()
    if (msg.mode === Mode.REQUEST) return this.responderStep(msg)
    // Answers to our own set-up (we are the requestor); a wrong one is a problem, not a close.
    return () => this.requestorStep(msg)
  }

  /** Steps 1, 4 and 6 from the node: we answer 3, 5 and 7. */
  private responderStep (msg: ParsedSetupMessage): string | (() => void) {
    if (msg.kind === SetupKind.SEND_SECRET_TOKEN) {
      return () => {
        // Steps 1-3 as responder: our secret back (with a transaction id of our own, as Baraza does).
        const rs: ResponderSetup = { engine: new SetupResponder(this.policy, msg, { sessionId: this.nextSessionId() }, 'the node'), step3At: performance.now() }
        this.responder = rs
        this.postSetup(rs.engine.step3(), true).catch(() => {})
      }
    }
    const rs = this.responder
    const step = msg.kind === SetupKind.LOGIN_REQUEST ? 4 : 6
    // Baraza finds steps 4 and 6 by the transaction id of step 1.
    if (rs === undefined || rs.engine.transactionId !== msg.transactionId) return `no set-up with transaction id ${msg.transactionId} (step ${step})`
    if (!rs.engine.awaits(msg)) return () => { this.problems.push(`unexpected step ${step}`) }
    if (step === 4 && performance.now() - rs.step3At < this.o.commitDelayMs) {
      this.step4Refusals++
      return 'step 4 before our set-up row committed'
    }
    if (step === 4) {
      let step5: SetupMessage
      try { step5 = rs.engine.onStep4(msg) } catch { return 'wrong digest in step 4' }
      return () => { this.postSetup(step5, !this.o.bareSetupAnswers).catch(() => {}) }
    }
    return () => {
      const { step7, result } = rs.engine.onStep6(msg)
      // Up from our side now: the node may use it as soon as step 7 reaches it.
      this.provided = { ourId: result.sessionId, nodeId: result.peerSessionId }
      this.postSetup(step7, !this.o.bareSetupAnswers).catch(() => {})
    }
  }

  /** Steps 3, 5 and 7 from the node, answering our set-up. */
  private requestorStep (msg: ParsedSetupMessage): void {
    const rq = this.requestor
    if (rq === undefined || !rq.engine.awaits(msg)) {
      this.problems.push(`unexpected ${msg.kind} ${msg.mode}${rq === undefined ? '' : ` at step ${rq.engine.awaited}`}`)
      return
    }
    try {
      if (rq.engine.awaited === 3) {
        this.postSetup(rq.engine.onStep3(msg), true).catch(rq.reject)
      } else if (rq.engine.awaited === 5) {
        this.postSetup(rq.engine.onStep5(msg), true).catch(rq.reject)
      } else {
        this.requestor = undefined
        const result = rq.engine.onStep7(msg)
        this.requested = { ourId: result.sessionId, nodeId: result.peerSessionId }
        rq.resolve()
      }
    } catch (err) {
      this.requestor = undefined
      rq.reject(new Error(`real peer: ${(err as Error).message}`))
    }
  }
}

/** The real peer, started, closed in teardown, pointed at the node. */
export async function realPeer (t: { teardown: (fn: () => unknown) => void }, nodeUrl: string, options: RealPeerOptions = {}): Promise<RealPeer> {
  const p = new RealPeer(options)
  t.teardown(() => p.close())
  await p.start()
  p.setNode(nodeUrl)
  return p
}

/** A server that accepts connections, reads, and never answers anything. */
export async function silentServer (t: { teardown: (fn: () => unknown) => void }): Promise<{ url: string, connections: () => number, open: () => number, bytes: () => number }> {
  const sockets = new Set<net.Socket>()
  let connections = 0
  let bytes = 0
  const server = net.createServer((s) => {
    connections++
    sockets.add(s)
    s.on('error', () => {})
    s.on('data', (c: Buffer) => { bytes += c.length })
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  const a = server.address() as net.AddressInfo
  return { url: `http://127.0.0.1:${a.port}/`, connections: () => connections, open: () => sockets.size, bytes: () => bytes }
}

/** A loopback URL nothing listens on (a port bound, then released). */
export async function deadUrl (): Promise<string> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const a = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${a.port}/`
}
