/**
 * The conformance lab: plays "the other server" against a system under test
 * (SUT) and records everything both sides send.
 *
 * It listens on two addresses, L1 (the URL the SUT's directory maps the lab's
 * domain to) and L2 (where it redirects the SUT to), and talks to the SUT over
 * connections it opens itself. Every POST in either direction is kept with its
 * exact bytes and the answer it got (model.ts); checks.ts judges the transcript
 * afterwards. The lab acknowledges every POST the SUT sends with an empty 200,
 * even deviant ones, so that one deviation does not hide the others; the only
 * other answers it gives are the redirects of the S-011 probes.
 *
 * The run, in order (each step bounded by `timeout`, each "must not happen"
 * window by `quiet`):
 *
 *  1. Reachability: one connection to the SUT (unreachable: the run stops).
 *  2. Session B, set up by the SUT (needs a trigger that makes the SUT send a
 *     request to the lab's domain): the SUT's step 1 on a fresh connection is
 *     answered with a 307 to the other listener (S-011), then the lab answers
 *     steps 3, 5, 7 on its own connection and the SUT's request with a
 *     response half.
 *  3. Session A, set up by the lab: the SUT's connections to the lab are
 *     dropped first, so its step 3 comes on a fresh connection and is
 *     answered with a 307 (S-011). Then: one service request (dummy 200, the
 *     response half as a POST on the SUT's own connection); one whose response
 *     half is answered with a redirect the SUT must not follow; a pipelined
 *     batch with a wrong Content-Type third; a burst to see several connection
 *     pairs; a request over the alternative URL (other scheme).
 *  4. A second trigger: the SUT's request in session B shows whether both
 *     sessions share its connection (pair reuse).
 *  5. Session V12, set up by the lab as a 1.2 peer (its own domain): every POST
 *     the SUT sends there must carry the 1.2 content type.
 */
import { performance } from 'node:perf_hooks'
import { createError, isSspError } from '../errors.js'
import { newSessionId, randomToken, TransactionIds } from '../ssp/ids.js'
import {
  buildSession, buildSetup, EnvelopeKind, Mode, parseSetup, peekEnvelopeIds,
  SetupKind, type ParsedSetupMessage, type SetupMessage, type SspVersion
} from '../ssp/messages.js'
import { SetupInitiator, SetupResponder, type SetupPolicy } from '../ssp/setup-engine.js'
import { CONTENT_TYPE_12, CONTENT_TYPE_13, isIdString } from '../wire/header-bytes.js'
import { isRedirectStatus, redirectLocation, redirectTarget } from '../wire/redirect.js'
import { ACK, redirectReply } from '../wire/replies.js'
import {
  buildPost, header, parseMessage, ProbeClient, ProbeListener, type HttpMessage, type InboundConnection, type Reply
} from './http.js'
import {
  ITEM_IDS, type ConnRecord, type Exchange, type ItemId, type LabRun, type Purpose, type RedirectProbe, type SessionRecord
} from './model.js'

export interface LabOptions {
  /** URL of the SUT (where it accepts SSP POSTs). */
  peer: string
  /** A second URL of the SUT in the other scheme (S-002/S-003). */
  altPeer?: string
  /** The IMPS domain the lab plays; the SUT's directory must map it to the lab's URL. */
  domain: string
  /** The SUT's own domain, when known (otherwise learned from its set-up messages). */
  sutDomain?: string
  /** A second lab domain, played as a 1.2 peer (S-010, 1.2 spelling); the SUT must map it to the lab's URL too. */
  v12Domain?: string
  listenHost?: string
  /** Port of L1 (0: a free one). L2 always takes a free port. */
  listenPort?: number
  /** The lab's listeners speak HTTPS with this certificate. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Trust for an https:// SUT. */
  ca?: string | Buffer
  /** Do not verify the SUT's certificate. */
  insecure?: boolean
  /** Optional items the SUT claims (S-002, S-003, S-008, S-009): not exhibiting them is then a failure. */
  claims?: Iterable<ItemId>
  /** Items to test (default all). Probes no selected item needs are skipped. */
  only?: Iterable<ItemId>
  /**
   * Make the SUT send one request to a user at `domain` (the n-th time, n from 1).
   * Without it the SUT never initiates anything and the items that need that
   * (S-004, the step-1 redirect, S-008) are not testable.
   */
  trigger?: (n: number) => unknown
  /** Wait for an expected event at most this many ms. Default 5000. */
  timeout?: number
  /** Watch for an event that must not happen this many ms. Default 500. */
  quiet?: number
  /** Progress lines. */
  log?: (line: string) => void
}

/** What the lab sends in a service request (the SUT's application sees it). */
function sendMessage (tid: string): string {
  return `<SendMessageRequest deliveryReport="No"><MessageInfo messageID="m${tid}" contentType="text/plain" contentSize="2"/>` +
    '<ContentData>hi</ContentData></SendMessageRequest>'
}

/**
 * The lab's set-up policy: accept every deviation (the checks judge the
 * transcript afterwards, against their SCR items), commit none.
 */
function setupPolicy (identity: string): SetupPolicy {
  return { domain: identity, timeToLive: 3600, accept: { foreignStep3Tid: true, anySessionId: true } }
}

/** The primitive of each set-up step the SUT sends, for the lab's notes. */
const STEP_NAME: Record<number, string> = { 1: 'SendSecretToken', 3: 'SendSecretToken', 4: 'LoginRequest', 5: 'LoginRequest', 6: 'LoginResponse', 7: 'LoginResponse' }

/** Why a set-up step the engine refused ends the lab's set-up, as a run note. */
function setupReason (err: unknown, step: number): string {
  if (isSspError(err) && err.code === 'SSP_ERR_SETUP_DIGEST') return `the SUT's step ${step} digest does not match the lab's secret`
  // The engine names the SUT in its messages ("the SUT refused the login (status 401)").
  return messageOf(err)
}

const SETUP_PURPOSE: Record<string, Purpose> = {
  'SendSecretToken Request': 'setup-1',
  'SendSecretToken Response': 'setup-3',
  'LoginRequest Request': 'setup-4',
  'LoginRequest Response': 'setup-5',
  'LoginResponse Request': 'setup-6',
  'LoginResponse Response': 'setup-7'
}

/** The session id the lab puts in x-wv-sessionid: the SUT's own name for it when that is grammatical. */
export function headerSessionId (s: SessionRecord): string {
  return isIdString(s.sutSid) ? s.sutSid : s.labSid
}

interface LabConn {
  readonly client: ProbeClient
  readonly rec: ConnRecord
}

interface Waiter {
  readonly pred: (e: Exchange) => boolean
  readonly resolve: (e: Exchange | undefined) => void
  readonly timer: NodeJS.Timeout
}

interface SetupContext {
  readonly label: string
  readonly identity: string
  /** Lab exchange each SUT set-up answer replies to, by the answer's purpose. */
  readonly pending: Map<Purpose, number>
}

export class ConformanceLab {
  readonly run: LabRun
  private readonly o: LabOptions
  private readonly timeout: number
  private readonly quiet: number
  private readonly selected: ReadonlySet<ItemId>
  private readonly tids = new TransactionIds('LAB' + randomToken(6) + '_')
  private readonly t0 = performance.now()
  private readonly l1: ProbeListener
  private readonly l2: ProbeListener
  private readonly inbound = new Map<InboundConnection, ConnRecord>()
  private readonly clients = new Set<ProbeClient>()
  private readonly waiters: Waiter[] = []
  /** Lab transaction id → the exchange that sent it (to match response halves). */
  private readonly outstanding = new Map<string, number>()
  private readonly triggers: Array<Promise<unknown>> = []
  private policy: ((e: Exchange) => Reply | undefined) | undefined = undefined
  private setupCtx: SetupContext | undefined = undefined
  /** The session an SUT request without a session id is attributed to (the trigger asked for it). */
  private expectRequestIn: string | undefined = undefined
  /** The SUT already left one lab request without a response half: later ones are watched for `quiet` ms only. */
  private missedAnswer = false
  private triggerCount = 0
  private labConnCount = 0
  private listening = false
  private closed = false

  constructor (o: LabOptions) {
    this.o = o
    this.timeout = o.timeout ?? 5000
    this.quiet = o.quiet ?? 500
    for (const [k, v] of [['timeout', this.timeout], ['quiet', this.quiet]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${k} must be a positive integer (ms)` })
    }
    for (const u of [o.peer, o.altPeer]) {
      if (u === undefined) continue
      let url: URL
      try { url = new URL(u) } catch { throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `not a URL: ${u}` }) }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `URL must be http: or https:, got ${u}` })
    }
    const only = o.only === undefined ? undefined : new Set(o.only)
    this.selected = only === undefined || only.size === 0 ? new Set(ITEM_IDS) : only
    this.run = {
      sutUrl: o.peer,
      altUrl: o.altPeer,
      labUrls: [],
      identity: o.domain,
      v12Identity: o.v12Domain,
      sutDomain: o.sutDomain,
      reachable: false,
      unreachable: undefined,
      conns: [],
      exchanges: [],
      sessions: [],
      phases: {
        sutInitiated: { ran: false, ok: false, reason: 'not run' },
        labInitiated: { ran: false, ok: false, reason: 'not run' },
        v12: { ran: false, ok: false, reason: 'not run' }
      },
      redirects: {},
      pipeline: undefined,
      burst: undefined,
      claims: new Set(o.claims ?? []),
      notes: []
    }
    const mk = (name: string): ProbeListener => new ProbeListener({
      ...(o.tls === undefined ? {} : { tls: o.tls }),
      onConnection: (c) => {
        const rec: ConnRecord = {
          id: `sut#${c.n}@${name}`, origin: 'sut', scheme: o.tls === undefined ? 'http' : 'https', listener: name, url: undefined, openedAt: this.now(), closedAt: undefined
        }
        this.inbound.set(c, rec)
        this.run.conns.push(rec)
      },
      onClose: (c) => {
        const rec = this.inbound.get(c)
        if (rec !== undefined) rec.closedAt = this.now()
        this.inbound.delete(c)
      },
      onRequest: (c, m) => this.onInbound(c, m),
      onError: () => undefined
    })
    this.l1 = mk('L1')
    this.l2 = mk('L2')
  }

  /** Items this run reports on. */
  get items (): ReadonlySet<ItemId> { return this.selected }

  /** Start both listeners; resolves with L1 (give it to the SUT) and L2. */
  async listen (): Promise<{ url: string, redirectUrl: string }> {
    if (!this.listening) {
      const host = this.o.listenHost ?? '127.0.0.1'
      await this.l1.listen(this.o.listenPort ?? 0, host)
      await this.l2.listen(0, host)
      this.listening = true
      ;(this.run.labUrls as string[]).push(this.l1.url, this.l2.url)
    }
    return { url: this.l1.url, redirectUrl: this.l2.url }
  }

  /** Run every probe the selected items need. Never throws: a lab error ends the run with a note. */
  async execute (): Promise<LabRun> {
    await this.listen()
    try {
      await this.probe()
    } catch (err) {
      this.run.notes.push(`the lab stopped early: ${messageOf(err)}`)
    }
    for (const c of this.clients) c.destroy()
    await this.settle()
    return this.run
  }

  private async probe (): Promise<void> {
    const run = this.run
    const want = (...ids: ItemId[]): boolean => ids.some((id) => this.selected.has(id))
    const log = (s: string): void => { this.o.log?.(s) }

    // 1. Reachability.
    try {
      const c = await this.open(this.o.peer)
      c.client.destroy()
      run.reachable = true
    } catch (err) {
      run.unreachable = err instanceof Error ? err.message : String(err)
      log(`SUT unreachable: ${run.unreachable}`)
      return
    }

    // 2. Session B: the SUT sets it up.
    let connB: LabConn | undefined
    let sessionB: SessionRecord | undefined
    if (this.o.trigger === undefined) {
      run.phases.sutInitiated = { ran: false, ok: false, reason: 'no trigger given: the SUT was never asked to initiate a session or a transaction' }
    } else {
      log('session B: asking the SUT to set up a session with the lab')
      const r = await this.sutSetup(want('S-011'))
      run.phases.sutInitiated = { ran: true, ok: r.session !== undefined, reason: r.reason }
      connB = r.conn
      sessionB = r.session
      if (sessionB !== undefined && connB !== undefined) await this.answerSutRequest(sessionB, connB, r.upAt)
    }

    // 3. Session A: the lab sets it up.
    if (want('S-011')) {
      // A fresh connection for the SUT's step 3, so that a redirect may answer it (spec 5.5).
      this.l1.dropConnections()
      this.l2.dropConnections()
      await this.settle()
    }
    log('session A: the lab sets up a session with the SUT')
    const reuse = run.claims.has('S-008') && connB !== undefined && !connB.client.closed
    const a = await this.labSetup('A', this.o.domain, '1.3', want('S-011'), reuse ? connB : undefined)
    run.phases.labInitiated = { ran: true, ok: a.session !== undefined, reason: a.reason }
    const sessionA = a.session
    let connA = a.conn
    if (sessionA !== undefined && connA !== undefined) {
      log('session A: service request')
      connA = await this.serviceProbe(sessionA, connA)
      if (want('S-011')) await this.laterRedirectProbe(sessionA, connA)
      if (want('S-007')) await this.pipelineProbe(sessionA)
      if (want('S-009')) await this.burstProbe(sessionA, connA)
      if (this.o.altPeer !== undefined && want('S-001', 'S-002', 'S-003')) await this.altProbe(sessionA, this.o.altPeer)
    }

    // 4. The SUT's second request in session B (pair reuse).
    if (sessionB !== undefined && connB !== undefined && want('S-008', 'S-004', 'S-006', 'S-012')) {
      log('session B: second request from the SUT')
      const mark = this.lastN()
      this.expectRequestIn = sessionB.label
      this.fire()
      const got = await this.waitIn((e) => e.purpose === 'sut-request' || e.purpose === 'setup-1', this.timeout, mark)
      if (got?.purpose === 'setup-1') {
        // The SUT set the session up again: answer the set-up, then its request.
        run.notes.push('the SUT set session B up again for its second request')
        const r = await this.respondSetup(got, 'B')
        if (r.session !== undefined && r.conn !== undefined) await this.answerSutRequest(r.session, r.conn, r.upAt)
      } else if (got !== undefined) {
        await this.answerRequest(got, sessionB, connB)
      } else {
        run.notes.push(`second trigger: no request from the SUT within ${this.timeout} ms`)
      }
    }

    // 5. Session V12: the lab as a 1.2 peer.
    if (this.o.v12Domain === undefined) {
      run.phases.v12 = { ran: false, ok: false, reason: 'no --v12-domain: the lab did not play a 1.2 peer' }
    } else if (want('S-010')) {
      log(`session V12: the lab sets up a session as ${this.o.v12Domain}, a 1.2 peer`)
      const v = await this.labSetup('V12', this.o.v12Domain, '1.2', false, undefined)
      run.phases.v12 = { ran: true, ok: v.session !== undefined, reason: v.reason }
      if (v.session !== undefined && v.conn !== undefined) await this.serviceProbe(v.session, v.conn)
    }
  }

  /** Stop listening and drop every connection. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.resolve(undefined) }
    for (const c of this.clients) c.destroy()
    await Promise.all([this.l1.close(), this.l2.close()])
    // A trigger is the caller's code: waited for, but not for ever.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled(this.triggers), new Promise((resolve) => { timer = setTimeout(resolve, this.timeout) })])
    clearTimeout(timer)
  }

  // ------------------------------------------------------------------ phases

  /** Session B: wait for the SUT's step 1 (redirecting it once when asked), then answer the set-up. */
  private async sutSetup (redirect: boolean): Promise<{ session?: SessionRecord, conn?: LabConn, upAt: number, reason: string }> {
    const mark = this.lastN()
    this.setupCtx = { label: 'B', identity: this.o.domain, pending: new Map() }
    if (redirect) this.armSetupRedirect('setup-1', 'step1')
    this.expectRequestIn = 'B'
    this.fire()
    let step1 = await this.waitIn((e) => e.purpose === 'setup-1', this.timeout, mark)
    if (step1 === undefined) {
      this.policy = undefined
      return { upAt: 0, reason: `the SUT sent no SendSecretToken (step 1) within ${this.timeout} ms of the trigger` }
    }
    const probe = this.run.redirects.step1
    if (probe !== undefined && probe.sent === step1.n) {
      const other = this.listenerOf(probe.location)
      const again = await this.waitIn((e) => e.purpose === 'setup-1' && e.conn.listener === other, this.timeout, step1.n)
      if (again !== undefined) {
        probe.followed = again.n
        step1 = again
      } else {
        // Not followed: ask once more, without a redirect, so the other items can still be tested.
        this.run.notes.push('the SUT did not follow the redirect of its step 1; the lab asked it to set up again, without a redirect')
        const mark2 = this.lastN()
        this.fire()
        const retry = await this.waitIn((e) => e.purpose === 'setup-1', this.timeout, mark2)
        if (retry === undefined) return { upAt: 0, reason: `after the redirect the SUT sent no new step 1 within ${this.timeout} ms` }
        step1 = retry
      }
    } else if (redirect) {
      this.policy = undefined
      this.run.notes.push(`the SUT's step 1 came on a connection that had carried POSTs before (${step1.conn.id}), where no redirect may answer it`)
    }
    return this.respondSetup(step1, 'B')
  }

  /** The lab as responder: steps 3, 5, 7 on a connection of its own. */
  private async respondSetup (step1: Exchange, label: string): Promise<{ session?: SessionRecord, conn?: LabConn, upAt: number, reason: string }> {
    const msg = step1.setup
    if (msg?.kind !== SetupKind.SEND_SECRET_TOKEN) return { upAt: 0, reason: 'step 1 is not a SendSecretToken' }
    this.learnDomain(msg.domain)
    const ctx: SetupContext = { label, identity: this.o.domain, pending: new Map() }
    this.setupCtx = ctx
    const engine = new SetupResponder(setupPolicy(ctx.identity), msg, { sessionId: newSessionId() }, 'the SUT')
    let conn: LabConn
    try {
      conn = await this.open(this.o.peer)
    } catch (err) {
      return { upAt: 0, reason: `cannot open a connection to the SUT for step 3: ${messageOf(err)}` }
    }
    const s3 = await this.postSetup(conn, engine.step3(), 'setup-3', '1.3', step1.n)
    conn = s3.conn
    if (!s3.ok) return { conn, upAt: 0, reason: `the SUT did not accept step 3: ${s3.why}` }
    const t4 = await this.nextStep(s3.n, 'setup-4', (m) => engine.onStep4(m))
    if (typeof t4 === 'string') return { conn, upAt: 0, reason: t4 }
    const s5 = await this.postSetup(conn, t4.value, 'setup-5', '1.3', t4.ex.n)
    if (!s5.ok) return { conn, upAt: 0, reason: `the SUT did not accept step 5: ${s5.why}` }
    const t6 = await this.nextStep(s5.n, 'setup-6', (m) => engine.onStep6(m))
    if (typeof t6 === 'string') return { conn, upAt: 0, reason: t6 }
    const s7 = await this.postSetup(conn, t6.value.step7, 'setup-7', '1.3', t6.ex.n)
    if (!s7.ok) return { conn, upAt: 0, reason: `the SUT did not accept step 7: ${s7.why}` }
    const { sessionId: labSid, peerSessionId: sutSid } = t6.value.result
    const session: SessionRecord = { label, identity: ctx.identity, labSid, sutSid, version: '1.3', upAt: s7.n }
    this.run.sessions.push(session)
    this.setupCtx = undefined
    return { session, conn, upAt: s7.n, reason: 'set up' }
  }

  /** The lab as initiator: steps 1, 4, 6; redirects the SUT's step 3 once when asked. */
  private async labSetup (label: string, identity: string, version: SspVersion, redirect: boolean, reuse: LabConn | undefined):
  Promise<{ session?: SessionRecord, conn?: LabConn, reason: string }> {
    // Two attempts at most: the second without a redirect, when the SUT did not follow the first.
    for (let attempt = 0; attempt < 2; attempt++) {
      const armed = redirect && attempt === 0
      let conn: LabConn
      try {
        conn = reuse !== undefined && !reuse.client.closed ? reuse : await this.open(this.o.peer)
      } catch (err) {
        return { reason: `cannot open a connection to the SUT: ${messageOf(err)}` }
      }
      const ctx: SetupContext = { label, identity, pending: new Map() }
      this.setupCtx = ctx
      if (armed) this.armSetupRedirect('setup-3', 'step3')
      // One transaction id for steps 1, 4 and 6: the set-up is one transaction (Baraza finds it by this id).
      const engine = new SetupInitiator(setupPolicy(identity), 'the SUT', { transactionId: this.tids.next(), sessionId: newSessionId() })
      const s1 = await this.postSetup(conn, engine.step1(), 'setup-1', version, undefined)
      conn = s1.conn
      if (!s1.ok) { this.policy = undefined; return { conn, reason: `the SUT did not accept step 1: ${s1.why}` } }
      let step3 = await this.waitIn((e) => e.purpose === 'setup-3', this.timeout, s1.n)
      if (step3 === undefined) { this.policy = undefined; return { conn, reason: `no SendSecretToken (step 3) from the SUT within ${this.timeout} ms` } }
      const probe = this.run.redirects.step3
      if (armed && probe !== undefined && probe.sent === step3.n) {
        const other = this.listenerOf(probe.location)
        const again = await this.waitIn((e) => e.purpose === 'setup-3' && e.conn.listener === other, this.timeout, step3.n)
        if (again === undefined) {
          this.run.notes.push('the SUT did not follow the redirect of its step 3; the lab set the session up again, without a redirect')
          continue
        }
        probe.followed = again.n
        step3 = again
      } else if (armed) {
        this.policy = undefined
        this.run.notes.push(`the SUT's step 3 came on a connection that had carried POSTs before (${step3.conn.id}), where no redirect may answer it`)
      }
      if (step3.setup?.kind !== SetupKind.SEND_SECRET_TOKEN) return { conn, reason: 'step 3 is not a SendSecretToken' }
      this.learnDomain(step3.setup.domain)
      let step4: SetupMessage
      try {
        step4 = engine.onStep3(step3.setup)
      } catch (err) {
        return { conn, reason: setupReason(err, 3) }
      }
      const s4 = await this.postSetup(conn, step4, 'setup-4', version, undefined)
      if (!s4.ok) return { conn, reason: `the SUT did not accept step 4: ${s4.why}` }
      const t5 = await this.nextStep(s4.n, 'setup-5', (m) => engine.onStep5(m))
      if (typeof t5 === 'string') return { conn, reason: t5 }
      const s6 = await this.postSetup(conn, t5.value, 'setup-6', version, undefined)
      if (!s6.ok) return { conn, reason: `the SUT did not accept step 6: ${s6.why}` }
      const t7 = await this.nextStep(s6.n, 'setup-7', (m) => engine.onStep7(m))
      if (typeof t7 === 'string') return { conn, reason: t7 }
      const session: SessionRecord = { label, identity, labSid: t7.value.sessionId, sutSid: t7.value.peerSessionId, version, upAt: t7.ex.n }
      this.run.sessions.push(session)
      this.setupCtx = undefined
      return { session, conn, reason: 'set up' }
    }
    return { reason: 'the SUT did not follow the set-up redirect, and the second set-up failed' }
  }

  // ------------------------------------------------------------------ probes on session A

  /** One service request; a second one if the SUT redirected the first (S-011 records it). */
  private async serviceProbe (s: SessionRecord, conn: LabConn): Promise<LabConn> {
    for (let i = 0; i < 2; i++) {
      if (conn.client.closed) conn = await this.open(this.o.peer).catch(() => conn)
      const ex = await this.serviceRequest(conn, s, 'service-request')
      const status = ex.reply?.status
      if (status !== undefined && isRedirectStatus(status)) continue
      if (status === 200) await this.answerOf(ex)
      return conn
    }
    return conn
  }

  /** S-011: the SUT's response half is answered with a redirect it must not follow. */
  private async laterRedirectProbe (s: SessionRecord, conn: LabConn): Promise<void> {
    if (conn.client.closed) return
    let target = -1
    const other = this.l2.url
    const location = new URL('later-redirect', other).href
    this.policy = (e) => {
      if (e.answers !== target) return undefined
      this.policy = undefined
      this.run.redirects.later = { sent: e.n, location, followed: undefined, waited: this.quiet }
      return { bytes: redirectReply(307, location), close: true }
    }
    const tid = this.tids.next()
    const pendingEx = this.serviceRequest(conn, s, 'service-request', tid)
    target = this.outstanding.get(tid) ?? -1
    const ex = await pendingEx
    const answer = await this.answerOf(ex)
    this.policy = undefined
    const probe = this.run.redirects.later
    if (answer === undefined || probe === undefined) return
    const follow = await this.waitIn((e) => e.request.target === '/later-redirect', this.quiet, answer.n)
    if (follow !== undefined) probe.followed = follow.n
  }

  /** S-007: four POSTs in one write, the third with a wrong Content-Type. */
  private async pipelineProbe (s: SessionRecord): Promise<void> {
    let conn: LabConn
    try {
      conn = await this.open(this.o.peer)
    } catch (err) {
      this.run.notes.push(`pipelined batch not sent: ${messageOf(err)}`)
      return
    }
    const specs = [0, 1, 2, 3].map((i) => this.serviceSpec(conn, s, this.tids.next(), i === 2 ? 'text/plain' : undefined))
    const exs = await this.postBatch(conn, specs.map((p, i) => ({ spec: p, purpose: i === 2 ? 'pipeline-bad' : 'pipeline', session: s.label })))
    this.run.pipeline = exs.map((e) => e.n)
    await Promise.all(exs.filter((e) => e.reply?.status === 200).map((e) => this.answerOf(e)))
    conn.client.destroy()
  }

  /** S-009: a burst of pipelined requests, to see the SUT spread its answers over its connections. */
  private async burstProbe (s: SessionRecord, conn: LabConn): Promise<void> {
    if (conn.client.closed) return
    const specs = Array.from({ length: 8 }, () => this.serviceSpec(conn, s, this.tids.next(), undefined))
    const exs = await this.postBatch(conn, specs.map((spec) => ({ spec, purpose: 'service-request' as const, session: s.label })))
    this.run.burst = exs.map((e) => e.n)
    await Promise.all(exs.filter((e) => e.reply?.status === 200).map((e) => this.answerOf(e)))
  }

  /** S-002/S-003: one service request over the SUT's other URL. */
  private async altProbe (s: SessionRecord, url: string): Promise<void> {
    let conn: LabConn
    try {
      conn = await this.open(url)
    } catch (err) {
      this.run.notes.push(`alternative URL ${url} unreachable: ${messageOf(err)}`)
      return
    }
    const ex = await this.serviceRequest(conn, s, 'alt-request')
    if (ex.reply?.status === 200) await this.answerOf(ex)
    conn.client.destroy()
  }

  /** Wait for the SUT's request in session `s` and answer it. */
  private async answerSutRequest (s: SessionRecord, conn: LabConn, mark: number): Promise<void> {
    const req = await this.waitIn((e) => e.purpose === 'sut-request', this.timeout, mark)
    if (req === undefined) {
      this.run.notes.push(`session ${s.label}: no request from the SUT within ${this.timeout} ms after the set-up`)
      return
    }
    await this.answerRequest(req, s, conn)
  }

  /** POST the response half of an SUT request on the lab's own connection. */
  private async answerRequest (req: Exchange, s: SessionRecord, conn: LabConn): Promise<void> {
    const tid = req.transactionId
    if (tid === undefined) {
      this.run.notes.push(`exchange ${req.n}: the SUT's request carries no transaction id; the lab cannot answer it`)
      return
    }
    if (conn.client.closed) {
      try { conn = await this.open(this.o.peer) } catch { return }
    }
    const sid = headerSessionId(s)
    let body: Buffer
    try {
      body = buildSession(sid, [{ mode: Mode.RESPONSE, transactionId: tid, inner: '<Status code="200"/>' }], { version: s.version })
    } catch {
      body = Buffer.from('<Status code="200"/>')
    }
    const spec = { url: conn.client.url, contentType: s.version === '1.2' ? CONTENT_TYPE_12 : CONTENT_TYPE_13, transactionId: tid, sessionId: sid, body }
    await this.post(conn, spec, 'response-half', s.label, req.n)
  }

  // ------------------------------------------------------------------ sending

  private serviceSpec (conn: LabConn, s: SessionRecord, tid: string, contentType: string | undefined): { url: URL, contentType: string, transactionId: string, sessionId: string, body: Buffer } {
    const sid = headerSessionId(s)
    return {
      url: conn.client.url,
      contentType: contentType ?? (s.version === '1.2' ? CONTENT_TYPE_12 : CONTENT_TYPE_13),
      transactionId: tid,
      sessionId: sid,
      body: buildSession(sid, [{ mode: Mode.REQUEST, transactionId: tid, inner: sendMessage(tid) }], { version: s.version })
    }
  }

  private serviceRequest (conn: LabConn, s: SessionRecord, purpose: Purpose, tid = this.tids.next()): Promise<Exchange> {
    return this.post(conn, this.serviceSpec(conn, s, tid, undefined), purpose, s.label, undefined)
  }

  /**
   * The SUT's next set-up step (after exchange `after`), checked by the
   * engine: its answer, or why the lab's set-up ends there.
   */
  private async nextStep<T> (after: number, purpose: Purpose, check: (m: ParsedSetupMessage) => T): Promise<{ ex: Exchange, value: T } | string> {
    const step = Number(purpose.slice('setup-'.length))
    const ex = await this.waitIn((e) => e.purpose === purpose, this.timeout, after)
    if (ex?.setup === undefined) return `no ${STEP_NAME[step] ?? purpose} (step ${step}) from the SUT within ${this.timeout} ms`
    try {
      return { ex, value: check(ex.setup) }
    } catch (err) {
      return setupReason(err, step)
    }
  }

  /**
   * POST one set-up message. The SUT may redirect the first SendSecretToken on
   * a fresh connection (spec 5.5): the lab follows, at most 5 hops.
   */
  private async postSetup (conn: LabConn, msg: SetupMessage, purpose: Purpose, version: SspVersion, answers: number | undefined):
  Promise<{ conn: LabConn, n: number, ok: boolean, why: string }> {
    const body = buildSetup(msg, { version, secretEncoding: 'plain' })
    const ctx = this.setupCtx
    const reply: Partial<Record<Purpose, Purpose>> = { 'setup-1': 'setup-3', 'setup-4': 'setup-5', 'setup-6': 'setup-7' }
    for (let hop = 0; hop <= 5; hop++) {
      const fresh = conn.client.written === 0
      const spec = { url: conn.client.url, contentType: version === '1.2' ? CONTENT_TYPE_12 : CONTENT_TYPE_13, transactionId: msg.transactionId, sessionId: undefined, body }
      // The SUT's answer may overtake the 200: the link is made before sending (post numbers synchronously).
      const expect = reply[purpose]
      if (expect !== undefined && ctx !== undefined) ctx.pending.set(expect, this.lastN() + 1)
      const ex = await this.post(conn, spec, purpose, ctx?.label, answers)
      const st = ex.reply?.status
      if (st === 200) return { conn, n: ex.n, ok: true, why: '' }
      const loc = redirectLocation(st, ex.reply === undefined ? undefined : header(ex.reply, 'location'))
      if (loc !== undefined && fresh && msg.kind === SetupKind.SEND_SECRET_TOKEN && hop < 5) {
        const next = redirectTarget(loc, conn.client.url)
        if (next === undefined) return { conn, n: ex.n, ok: false, why: `unusable Location ${loc}` }
        this.run.notes.push(`the SUT redirected the lab's ${purpose.replace('setup-', 'step ')} to ${next.href} (allowed at set-up)`)
        conn.client.destroy()
        try {
          conn = await this.open(next.href)
        } catch (err) {
          return { conn, n: ex.n, ok: false, why: `redirect target unreachable: ${messageOf(err)}` }
        }
        continue
      }
      return { conn, n: ex.n, ok: false, why: ex.reply === undefined ? (ex.error ?? 'no answer') : ex.reply.startLine }
    }
    return { conn, n: this.lastN(), ok: false, why: 'too many redirects' }
  }

  private async post (conn: LabConn, spec: Parameters<typeof buildPost>[0], purpose: Purpose, session: string | undefined, answers: number | undefined): Promise<Exchange> {
    const [ex] = await this.postBatch(conn, [{ spec, purpose, session, answers }])
    return ex!
  }

  /** Write the requests in one write; record each with the answer it got. */
  private async postBatch (conn: LabConn, items: Array<{ spec: Parameters<typeof buildPost>[0], purpose: Purpose, session: string | undefined, answers?: number | undefined }>): Promise<Exchange[]> {
    const raws = items.map((i) => buildPost(i.spec))
    const exs = items.map((it, k) => {
      const ex: Exchange = {
        n: this.run.exchanges.length + 1,
        dir: 'out',
        conn: conn.rec,
        seq: conn.client.written + k,
        at: this.now(),
        identity: this.identityOf(it.session),
        request: parseMessage('request', raws[k]!),
        reply: undefined,
        error: undefined,
        setup: it.purpose.startsWith('setup-') ? safeParseSetup(it.spec.body) : undefined,
        envelope: peekEnvelopeIds(typeof it.spec.body === 'string' ? Buffer.from(it.spec.body) : it.spec.body),
        purpose: it.purpose,
        session: it.session,
        answers: it.answers,
        transactionId: it.spec.transactionId
      }
      this.run.exchanges.push(ex)
      if (it.spec.transactionId !== undefined && !it.purpose.startsWith('setup-') && it.purpose !== 'response-half') {
        this.outstanding.set(it.spec.transactionId, ex.n)
      }
      return ex
    })
    const results = await conn.client.send(raws, this.timeout)
    results.forEach((r, k) => {
      const ex = exs[k]!
      ex.reply = r.response
      ex.error = r.error
    })
    return exs
  }

  private async open (url: string): Promise<LabConn> {
    const client = new ProbeClient(url, {
      connectTimeout: this.timeout,
      ...(this.o.ca === undefined ? {} : { ca: this.o.ca }),
      ...(this.o.insecure === true ? { rejectUnauthorized: false } : {})
    })
    this.clients.add(client)
    try {
      await client.connect()
    } catch (err) {
      this.clients.delete(client)
      client.destroy()
      throw err
    }
    const rec: ConnRecord = {
      id: `lab#${++this.labConnCount}`, origin: 'lab', scheme: client.secure ? 'https' : 'http', listener: undefined, url: client.url.href, openedAt: this.now(), closedAt: undefined
    }
    this.run.conns.push(rec)
    client.whenClosed(() => {
      rec.closedAt = this.now()
      this.clients.delete(client)
    })
    return { client, rec }
  }

  // ------------------------------------------------------------------ receiving

  private onInbound (c: InboundConnection, m: HttpMessage): Reply {
    const rec = this.inbound.get(c)!
    const body = m.body
    const envelope = peekEnvelopeIds(body)
    const setup = envelope.kind === EnvelopeKind.SETUP ? safeParseSetup(body) : undefined
    const tidHeader = header(m, 'x-wv-transactionid')
    const sidHeader = header(m, 'x-wv-sessionid')
    let purpose: Purpose = 'unexpected'
    let session: string | undefined
    let answers: number | undefined
    let tid = tidHeader
    if (setup !== undefined) {
      purpose = SETUP_PURPOSE[`${setup.kind} ${setup.mode}`] ?? 'unexpected'
      tid ??= setup.transactionId
      const ctx = this.setupCtx
      if (ctx !== undefined) {
        session = ctx.label
        answers = ctx.pending.get(purpose)
      }
    } else {
      const bodyTids = envelope.transactions.map((t) => t.transactionId).filter((t): t is string => t !== undefined)
      const matched = [tidHeader, ...bodyTids].find((t) => t !== undefined && this.outstanding.has(t))
      if (matched !== undefined) {
        purpose = 'response-half'
        answers = this.outstanding.get(matched)
        session = this.run.exchanges[answers! - 1]?.session
        tid ??= matched
      } else {
        tid ??= bodyTids[0]
        const sid = sidHeader ?? envelope.sessionId
        session = this.run.sessions.find((s) => s.labSid === sid || s.sutSid === sid)?.label ?? this.expectRequestIn
        purpose = tid !== undefined && this.tids.owns(tid) ? 'unexpected' : 'sut-request'
      }
    }
    const ex: Exchange = {
      n: this.run.exchanges.length + 1,
      dir: 'in',
      conn: rec,
      seq: c.requests - 1,
      at: this.now(),
      identity: this.identityOf(session),
      request: m,
      reply: undefined,
      error: undefined,
      setup,
      envelope,
      purpose,
      session,
      answers,
      transactionId: tid
    }
    this.run.exchanges.push(ex)
    const reply = this.policy?.(ex) ?? { bytes: ACK }
    ex.reply = parseMessage('response', reply.bytes)
    for (const w of [...this.waiters]) {
      if (w.pred(ex)) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        clearTimeout(w.timer)
        w.resolve(ex)
      }
    }
    return reply
  }

  /** The first inbound set-up POST of `purpose` on a fresh connection is answered with a 307 to the other listener. */
  private armSetupRedirect (purpose: Purpose, which: 'step1' | 'step3'): void {
    this.policy = (e) => {
      if (e.purpose !== purpose) return undefined
      this.policy = undefined
      if (e.seq !== 0) return undefined
      const location = e.conn.listener === 'L1' ? this.l2.url : this.l1.url
      const probe: RedirectProbe = { sent: e.n, location, followed: undefined, waited: this.timeout }
      this.run.redirects[which] = probe
      return { bytes: redirectReply(307, location), close: true }
    }
  }

  /** The response half of lab request `ex` (bounded; see missedAnswer). */
  private async answerOf (ex: Exchange): Promise<Exchange | undefined> {
    const got = await this.waitIn((e) => e.answers === ex.n, this.missedAnswer ? this.quiet : this.timeout, 0)
    if (got === undefined) this.missedAnswer = true
    return got
  }

  /** Resolve with the first inbound exchange after `since` that matches, or undefined after `timeout` ms. */
  private waitIn (pred: (e: Exchange) => boolean, timeout: number, since: number): Promise<Exchange | undefined> {
    const p = (e: Exchange): boolean => e.dir === 'in' && e.n > since && pred(e)
    const found = this.run.exchanges.find(p)
    if (found !== undefined || this.closed) return Promise.resolve(found)
    return new Promise((resolve) => {
      const w: Waiter = {
        pred: p,
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w)
          if (i >= 0) this.waiters.splice(i, 1)
          resolve(undefined)
        }, timeout)
      }
      this.waiters.push(w)
    })
  }

  // ------------------------------------------------------------------ helpers

  private fire (): void {
    const trigger = this.o.trigger
    if (trigger === undefined) return
    const n = ++this.triggerCount
    const p = Promise.resolve().then(() => trigger(n)).catch((err: unknown) => {
      this.run.notes.push(`trigger ${n} failed: ${messageOf(err)}`)
    })
    this.triggers.push(p)
  }

  private learnDomain (d: string): void {
    const run = this.run
    if (run.sutDomain === undefined) run.sutDomain = d
    else if (run.sutDomain.toLowerCase() !== d.toLowerCase() && !run.notes.some((n) => n.includes(`calls itself ${d}`))) {
      run.notes.push(`the SUT calls itself ${d} in its set-up messages, not ${run.sutDomain}`)
    }
  }

  private identityOf (label: string | undefined): string {
    if (label === undefined) return this.setupCtx?.identity ?? this.o.domain
    return this.run.sessions.find((s) => s.label === label)?.identity ?? (this.setupCtx?.label === label ? this.setupCtx.identity : this.o.domain)
  }

  private listenerOf (url: string): string {
    return url.startsWith(this.l1.url) ? 'L1' : 'L2'
  }

  private lastN (): number { return this.run.exchanges.length }

  private now (): number { return Math.round((performance.now() - this.t0) * 10) / 10 }

  /** Let socket events (closes) land. */
  private settle (): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function safeParseSetup (body: Buffer | string): ParsedSetupMessage | undefined {
  try {
    return parseSetup(body)
  } catch {
    return undefined
  }
}

function messageOf (err: unknown): string {
  if (isSspError(err)) return err.message
  return err instanceof Error ? err.message : String(err)
}
