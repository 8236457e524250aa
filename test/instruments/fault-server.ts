/**
 * Deliberately broken SSP servers: the proof that every conformance check can
 * fail.
 *
 * `FaultServer` is a thin SSP server on raw sockets (the lab's http.ts) that
 * reuses the project's set-up engine (src/ssp/setup-engine.ts), codec
 * (messages.ts), ids (ids.ts) and canned replies (wire/replies.ts). Without a fault it behaves as the binding says:
 * strict on what it accepts, in-order dummy 200s, response halves POSTed on
 * its own connection, one connection pair per peer shared by both sessions
 * (S-008), set-up redirects followed and later ones refused, the 1.2 content
 * type towards a peer whose set-up messages are in the 1.2 namespace. Told one
 * fault, it breaks exactly that behaviour and nothing else.
 *
 * It is a test instrument, not a server: one peer at a time, no resend, no
 * notifications, no session expiry. It lives under test/ so that it does not
 * ship in dist.
 */
import { createError } from '../../src/errors.js'
import { primitiveView } from '../../src/ssp/envelope.js'
import { newSessionId, randomToken } from '../../src/ssp/ids.js'
import {
  buildSession, buildSetup, EnvelopeKind, Mode, parseSetup, peekEnvelopeIds, SetupKind, type ParsedSetupMessage, type SetupMessage, type SspVersion
} from '../../src/ssp/messages.js'
import { SetupInitiator, SetupResponder, type SetupPolicy } from '../../src/ssp/setup-engine.js'
import { CONTENT_TYPE_12, CONTENT_TYPE_13, ContentType, classifyContentType, isIdString } from '../../src/wire/header-bytes.js'
import { redirectLocation, redirectTarget } from '../../src/wire/redirect.js'
import { ACK, errorReply, redirectReply } from '../../src/wire/replies.js'
import { buildPost, header, ProbeClient, ProbeListener, type HttpMessage, type Reply } from '../../src/conformance/http.js'
import type { ErrorCode } from '../../src/errors.js'

/** Every fault, with what the server then does wrong. */
export const FAULTS = {
  'ack-order': 'writes the answers to the requests of one read in reverse order, so a refusal overtakes the 200s owed before it (5.1)',
  'ack-body': 'its dummy 200 carries a body (5.1)',
  'same-connection': 'puts the response half of a service request in the HTTP response instead of POSTing it on its own connection (5.1)',
  'no-transaction-id': 'sends no x-wv-transactionid header (5.6)',
  'malformed-ids': 'its own ids break the 5.6 grammar (transaction ids like 0000000042-7, session ids like 5@domain) and it puts them in the x-wv-* headers',
  'wrong-content-type': 'sends Content-Type: text/xml (5.4)',
  'ignores-1.2': 'sends the 1.3 content type to a 1.2 peer (5.4)',
  'redirect-later': 'answers the first POST it receives after a session is up with a 307 (5.5)',
  'no-redirect': 'does not follow a redirect at set-up (5.5)',
  'follows-any-redirect': 'follows a redirect on any POST, not only at set-up (5.5)',
  'no-session-id': 'sends no x-wv-sessionid header (5.6)',
  'body-session-id': 'names the session in the body by its own id while x-wv-sessionid names the peer\'s (as Baraza does)',
  'body-transaction-id': 'its response halves carry another transactionID in the body than in x-wv-transactionid',
  'refuses-1.2': 'answers 415 to a POST with the 1.2 content type application/vnd.wv.ssp.xml (as Baraza does: it routes that type to its CSP handler)'
} as const

export type Fault = keyof typeof FAULTS

export interface FaultServerOptions {
  domain: string
  fault?: Fault
  /** The application: the answer primitive for a request primitive. Default: echo. */
  handler?: (primitive: Buffer) => Buffer | string
  /** Bound on every wait (set-up steps, response halves). Default 5000 ms. */
  timeout?: number
}

interface Sess {
  readonly peer: Peer
  readonly ourSid: string
  readonly peerSid: string
}

interface Peer {
  readonly domain: string
  url: URL | undefined
  version: SspVersion
  out: ProbeClient | undefined
  /** Our POSTs to this peer, one after the other. */
  chain: Promise<unknown>
  requestor: Sess | undefined
  provider: Sess | undefined
  setup: Promise<Sess> | undefined
  /** A set-up the peer started, between its step 1 and our step 7. */
  incoming: SetupResponder | undefined
}

const ACK_WITH_BODY = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK', 'latin1')

export class FaultServer {
  readonly domain: string
  readonly fault: Fault | undefined
  private readonly handler: (primitive: Buffer) => Buffer | string
  private readonly timeout: number
  private readonly listener: ProbeListener
  private readonly peers = new Map<string, Peer>()
  private readonly pending = new Map<string, { resolve: (b: Buffer) => void, timer: NodeJS.Timeout }>()
  private readonly expecting = new Map<string, { resolve: (m: ParsedSetupMessage) => void, timer: NodeJS.Timeout }>()
  private readonly tidPrefix = 'F' + randomToken(8) + '_'
  private tidCount = 0
  private sidCount = 0
  private redirected = false
  private url = ''
  /** Strict on the wire (validate), lenient on set-up ids: its faults are elsewhere. */
  private readonly policy: SetupPolicy

  constructor (o: FaultServerOptions) {
    if (o.fault !== undefined && !(o.fault in FAULTS)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unknown fault ${String(o.fault)}` })
    this.domain = o.domain.toLowerCase()
    this.fault = o.fault
    this.handler = o.handler ?? ((b) => b)
    this.timeout = o.timeout ?? 5000
    this.policy = { domain: this.domain, timeToLive: 3600, accept: { foreignStep3Tid: true, anySessionId: true } }
    this.listener = new ProbeListener({
      onRequest: (_c, m) => this.onRequest(m),
      onError: () => errorReply('SSP_ERR_HTTP_PARSE'),
      ...(this.fault === 'ack-order' ? { arrange: (a: Buffer[]) => [...a].reverse() } : {})
    })
  }

  async start (port = 0, host = '127.0.0.1'): Promise<string> {
    this.url = await this.listener.listen(port, host)
    return this.url
  }

  addPeer (domain: string, url: string, version: SspVersion = '1.3'): void {
    const p = this.peer(domain)
    p.url = new URL(url)
    p.version = version
  }

  /** Send one request primitive to `peer` (setting the session up first), resolve with the response half's body. */
  async request (peerDomain: string, primitive: Buffer | string): Promise<Buffer> {
    const peer = this.peer(peerDomain)
    const s = peer.requestor ?? await this.ensureSession(peer)
    const tid = this.nextTid()
    const answer = this.await(this.pending, tid, 'response half')
    await this.post(peer, { body: this.envelope(s, Mode.REQUEST, tid, primitive), tid, sid: this.headerSid(s), setup: false })
    return answer
  }

  /** The Session envelope, naming the session as the x-wv-sessionid header does (body and header agree). */
  private envelope (s: Sess, mode: Mode, tid: string, primitive: Buffer | string): Buffer {
    const inner = typeof primitive === 'string' ? primitive : primitive.toString('utf8')
    const sid = this.fault === 'body-session-id' ? s.ourSid : this.headerSid(s)
    const bodyTid = this.fault === 'body-transaction-id' && mode === Mode.RESPONSE ? `${tid}0` : tid
    return buildSession(sid, [{ mode, transactionId: bodyTid, inner }], { version: s.peer.version })
  }

  async close (): Promise<void> {
    for (const m of [this.pending, this.expecting]) {
      for (const w of m.values()) clearTimeout(w.timer)
      m.clear()
    }
    for (const p of this.peers.values()) p.out?.destroy()
    await this.listener.close()
  }

  // ------------------------------------------------------------------ inbound

  private onRequest (m: HttpMessage): Reply {
    const refusal = this.validate(m)
    if (refusal !== undefined) return { bytes: errorReply(refusal), close: true }
    const ack: Reply = { bytes: this.fault === 'ack-body' ? ACK_WITH_BODY : ACK }
    const body = m.body
    const env = peekEnvelopeIds(body)
    if (env.kind === EnvelopeKind.SETUP) {
      let msg: ParsedSetupMessage
      try { msg = parseSetup(body) } catch { return ack }
      setImmediate(() => { this.onSetup(msg) })
      return ack
    }
    const sid = header(m, 'x-wv-sessionid') ?? env.sessionId
    const s = this.sessionById(sid)
    if (s === undefined) return ack
    if (this.fault === 'redirect-later' && !this.redirected) {
      this.redirected = true
      return { bytes: redirectReply(307, this.url), close: true }
    }
    const tid = header(m, 'x-wv-transactionid') ?? ''
    const waiting = this.pending.get(tid)
    if (waiting !== undefined) {
      this.pending.delete(tid)
      clearTimeout(waiting.timer)
      waiting.resolve(Buffer.from(body))
      return ack
    }
    // A Response nobody waits for (late, or an id we never sent) is dropped, never served.
    if (env.transactions.length > 0 && env.transactions.every((t) => t.mode === Mode.RESPONSE)) return ack
    const t = env.transactions.find((x) => x.transactionId === tid) ?? env.transactions[0]
    const primitive = t === undefined ? Buffer.alloc(0) : primitiveView(Buffer.from(body), t)
    const answer = this.envelope(s, Mode.RESPONSE, tid, this.handler(primitive))
    if (this.fault === 'same-connection') {
      const b = typeof answer === 'string' ? Buffer.from(answer) : answer
      const head = `HTTP/1.1 200 OK\r\nContent-Type: ${CONTENT_TYPE_13}\r\nContent-Length: ${b.length}\r\n\r\n`
      return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), b]) }
    }
    setImmediate(() => { this.post(s.peer, { body: answer, tid, sid: this.headerSid(s), setup: false }).catch(() => undefined) })
    return ack
  }

  /** Strict on what it accepts (tolerant of bad id grammar only when its own ids are malformed). */
  private validate (m: HttpMessage): ErrorCode | undefined {
    if (m.method !== 'POST') return 'SSP_ERR_METHOD'
    if (m.version !== '1.1') return 'SSP_ERR_HTTP_VERSION'
    const ct = Buffer.from(header(m, 'content-type') ?? '', 'latin1')
    const ctClass = classifyContentType(ct, 0, ct.length)
    if (ctClass === ContentType.OTHER) return 'SSP_ERR_CONTENT_TYPE'
    if (this.fault === 'refuses-1.2' && ctClass === ContentType.SSP12) return 'SSP_ERR_CONTENT_TYPE'
    const tid = header(m, 'x-wv-transactionid')
    const lax = this.fault === 'malformed-ids'
    if (tid === undefined || tid === '') return 'SSP_ERR_TRANSACTION_ID_MISSING'
    if (!lax && !isIdString(tid)) return 'SSP_ERR_TRANSACTION_ID_INVALID'
    const sid = header(m, 'x-wv-sessionid')
    if (!lax && sid !== undefined && !isIdString(sid)) return 'SSP_ERR_SESSION_ID_INVALID'
    return undefined
  }

  private onSetup (msg: ParsedSetupMessage): void {
    if (msg.mode === Mode.RESPONSE) {
      // Steps 3, 5, 7 of a set-up we initiated.
      const key = msg.kind === SetupKind.LOGIN_RESPONSE ? msg.kind : `${msg.kind}:${msg.domain.toLowerCase()}`
      const w = this.expecting.get(key)
      if (w !== undefined) {
        this.expecting.delete(key)
        clearTimeout(w.timer)
        w.resolve(msg)
      }
      return
    }
    switch (msg.kind) {
      case SetupKind.SEND_SECRET_TOKEN: { // step 1 → step 3
        const peer = this.peer(msg.domain)
        peer.version = msg.version
        const inc = new SetupResponder(this.policy, msg, { sessionId: this.newSid() })
        peer.incoming = inc
        this.postSetup(peer, inc.step3())
        return
      }
      case SetupKind.LOGIN_REQUEST: { // step 4 → step 5
        const peer = this.peer(msg.domain)
        const inc = peer.incoming
        if (inc === undefined || !inc.awaits(msg)) return
        let step5: SetupMessage
        try { step5 = inc.onStep4(msg) } catch { return } // a wrong digest: no answer
        this.postSetup(peer, step5)
        return
      }
      case SetupKind.LOGIN_RESPONSE: { // step 6 → step 7
        const peer = [...this.peers.values()].find((p) => p.incoming?.awaited === 6)
        if (peer === undefined) return
        const inc = peer.incoming!
        peer.incoming = undefined
        const { step7, result } = inc.onStep6(msg)
        peer.provider = { peer, ourSid: result.sessionId, peerSid: result.peerSessionId }
        this.postSetup(peer, step7)
      }
    }
  }

  // ------------------------------------------------------------------ set-up as initiator

  private ensureSession (peer: Peer): Promise<Sess> {
    peer.setup ??= this.initiate(peer).finally(() => { peer.setup = undefined })
    return peer.setup
  }

  private async initiate (peer: Peer): Promise<Sess> {
    const engine = new SetupInitiator(this.policy, peer.domain, { transactionId: this.nextTid(), sessionId: this.newSid() })
    const step3 = this.await(this.expecting, `${SetupKind.SEND_SECRET_TOKEN}:${peer.domain}`, 'step 3')
    await this.postSetupNow(peer, engine.step1())
    const step4 = engine.onStep3(await step3)
    const step5 = this.await(this.expecting, `${SetupKind.LOGIN_REQUEST}:${peer.domain}`, 'step 5')
    await this.postSetupNow(peer, step4)
    const step6 = engine.onStep5(await step5)
    const step7 = this.await(this.expecting, SetupKind.LOGIN_RESPONSE, 'step 7')
    await this.postSetupNow(peer, step6)
    const result = engine.onStep7(await step7)
    const s: Sess = { peer, ourSid: result.sessionId, peerSid: result.peerSessionId }
    peer.requestor = s
    return s
  }

  // ------------------------------------------------------------------ outbound

  private postSetup (peer: Peer, msg: SetupMessage): void {
    this.postSetupNow(peer, msg).catch(() => { peer.incoming = undefined })
  }

  private postSetupNow (peer: Peer, msg: SetupMessage): Promise<void> {
    return this.post(peer, {
      body: buildSetup(msg, { version: peer.version, secretEncoding: 'plain' }),
      tid: msg.transactionId,
      sid: undefined,
      setup: msg.kind === SetupKind.SEND_SECRET_TOKEN
    })
  }

  /** One POST on our own connection to the peer (one at a time), following a redirect only where 5.5 allows it. */
  private post (peer: Peer, p: { body: Buffer | string, tid: string, sid: string | undefined, setup: boolean }): Promise<void> {
    const run = async (): Promise<void> => {
      for (let hop = 0; ; hop++) {
        if (peer.url === undefined) throw createError('SSP_ERR_UNKNOWN_PEER', { message: peer.domain })
        if (peer.out === undefined || peer.out.closed) {
          const c = new ProbeClient(peer.url, { connectTimeout: this.timeout })
          peer.out = c
          await c.connect()
        }
        const c = peer.out
        const fresh = c.written === 0
        const raw = buildPost({
          url: c.url,
          contentType: this.contentType(peer),
          transactionId: this.fault === 'no-transaction-id' ? undefined : p.tid,
          sessionId: this.fault === 'no-session-id' ? undefined : p.sid,
          body: p.body
        })
        const [r] = await c.send([raw], this.timeout)
        const st = r?.response?.status
        if (st === 200) return
        const loc = redirectLocation(st, r?.response === undefined ? undefined : header(r.response, 'location'))
        const follow = this.fault === 'follows-any-redirect' || (p.setup && fresh && this.fault !== 'no-redirect')
        const next = loc === undefined ? undefined : redirectTarget(loc, c.url)
        if (next !== undefined && follow && hop < 5) {
          c.destroy()
          peer.out = undefined
          peer.url = next
          continue
        }
        throw createError('SSP_ERR_HTTP_STATUS', { message: r?.response?.startLine ?? r?.error ?? 'no answer' })
      }
    }
    const done = peer.chain.then(run, run)
    peer.chain = done.catch(() => undefined)
    return done
  }

  private contentType (peer: Peer): string {
    if (this.fault === 'wrong-content-type') return 'text/xml; charset=utf-8'
    if (this.fault === 'ignores-1.2') return CONTENT_TYPE_13
    return peer.version === '1.2' ? CONTENT_TYPE_12 : CONTENT_TYPE_13
  }

  // ------------------------------------------------------------------ helpers

  private await<T> (map: Map<string, { resolve: (v: T) => void, timer: NodeJS.Timeout }>, key: string, what: string): Promise<T> {
    const p = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        map.delete(key)
        reject(createError('SSP_ERR_TRANSACTION_TIMEOUT', { message: `${what} (${key})` }))
      }, this.timeout)
      map.set(key, { resolve, timer })
    })
    // Registered before the POST it waits on, which may fail first: never an unhandled rejection.
    p.catch(() => undefined)
    return p
  }

  private peer (domain: string): Peer {
    const d = domain.toLowerCase()
    let p = this.peers.get(d)
    if (p === undefined) {
      p = { domain: d, url: undefined, version: '1.3', out: undefined, chain: Promise.resolve(), requestor: undefined, provider: undefined, setup: undefined, incoming: undefined }
      this.peers.set(d, p)
    }
    return p
  }

  private sessionById (sid: string | undefined): Sess | undefined {
    if (sid === undefined) return undefined
    for (const p of this.peers.values()) {
      for (const s of [p.requestor, p.provider]) if (s !== undefined && (s.ourSid === sid || s.peerSid === sid)) return s
    }
    return undefined
  }

  /** The id in our x-wv-sessionid: the peer's name for the session (our own, when our ids are malformed). */
  private headerSid (s: Sess): string {
    if (this.fault === 'malformed-ids') return s.ourSid
    return isIdString(s.peerSid) ? s.peerSid : s.ourSid
  }

  private nextTid (): string {
    const n = ++this.tidCount
    return this.fault === 'malformed-ids' ? `${String(n).padStart(10, '0')}-7` : this.tidPrefix + n.toString(36)
  }

  private newSid (): string {
    return this.fault === 'malformed-ids' ? `${++this.sidCount}@${this.domain}` : newSessionId()
  }
}
