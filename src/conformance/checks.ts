/**
 * The checks: one function per observable requirement, each bound to its SCR
 * item and spec section, each a pure function of the lab's transcript
 * (model.ts). A check passes, fails, or is untested (with the reason); an
 * optional item's check may also say "observable, but not exhibited", which
 * becomes "not supported" unless the SUT claimed the item.
 *
 * `judge` turns the checks into one verdict per SCR item.
 */
import { header, headerCount, preview } from './http.js'
import { EnvelopeKind, peekEnvelopeIds } from '../ssp/messages.js'
import { ContentType, classifyContentType, isIdString } from '../wire/header-bytes.js'
import { isRedirectStatus } from '../wire/redirect.js'
import {
  SCR_ITEMS, type CheckResult, type Evidence, type Exchange, type ItemId, type ItemResult, type LabRun, type Verdict
} from './model.js'

type Outcome = CheckResult['outcome']

interface Check extends CheckResult {
  /** Optional items: the behaviour was observable and the SUT did not show it. */
  readonly unsupported?: boolean
}

const MAX_EVIDENCE = 3

export function evidence (e: Exchange): Evidence {
  return {
    exchange: e.n,
    where: e.dir === 'out' ? `${e.conn.id} → SUT` : `SUT ${e.conn.id} → lab`,
    request: preview(e.request.raw),
    reply: e.reply === undefined ? `(no answer: ${e.error ?? 'none'})` : preview(e.reply.raw)
  }
}

function result (check: string, item: ItemId, section: string, outcome: Outcome, detail: string, exs: Array<Exchange | undefined> = [], unsupported = false): Check {
  const evs = exs.filter((e): e is Exchange => e !== undefined).slice(0, MAX_EVIDENCE).map(evidence)
  return unsupported ? { check, item, section, outcome, detail, evidence: evs, unsupported } : { check, item, section, outcome, detail, evidence: evs }
}

const ins = (run: LabRun): Exchange[] => run.exchanges.filter((e) => e.dir === 'in')
const outs = (run: LabRun): Exchange[] => run.exchanges.filter((e) => e.dir === 'out')
const byN = (run: LabRun, n: number | undefined): Exchange | undefined => n === undefined ? undefined : run.exchanges[n - 1]
const isSetup = (e: Exchange): boolean => e.purpose.startsWith('setup-') || e.setup !== undefined
const isRedirect = (e: Exchange): boolean => e.dir === 'out' && e.reply?.status !== undefined && isRedirectStatus(e.reply.status)
const REQUEST_STEPS = new Set(['setup-1', 'setup-4', 'setup-6'])
const ANSWER_STEPS = new Set(['setup-3', 'setup-5', 'setup-7'])

/** "Failures: …" detail listing the first few problems. */
function problems (list: Array<[Exchange, string]>): string {
  const shown = list.slice(0, 3).map(([e, why]) => `#${e.n} ${why}`).join('; ')
  return list.length > 3 ? `${shown}; and ${list.length - 3} more` : shown
}

// ---------------------------------------------------------------------------
// S-001 .. S-003, section 5: HTTP and HTTPS
// ---------------------------------------------------------------------------

function scheme (run: LabRun, s: 'http' | 'https', item: 'S-002' | 'S-003'): Check {
  const name = s === 'http' ? 'http-transport' : 'https-transport'
  const acked = outs(run).filter((e) => e.conn.scheme === s && e.reply?.status === 200)
  const sent = ins(run).filter((e) => e.conn.scheme === s)
  if (acked.length > 0 || sent.length > 0) {
    return result(name, item, '5', 'pass',
      `${acked.length} lab POST(s) over ${s} acknowledged by the SUT, ${sent.length} POST(s) from the SUT over ${s}`, [acked[0], sent[0]])
  }
  const urls = [run.sutUrl, run.altUrl].filter((u): u is string => u !== undefined && new URL(u).protocol === `${s}:`)
  if (urls.length > 0) {
    const tried = outs(run).filter((e) => e.conn.scheme === s)
    const why = tried.length === 0 ? 'no SSP POST could be sent there' : 'no POST sent there was acknowledged'
    return result(name, item, '5', 'fail', `the SUT's ${s} URL ${urls.join(', ')}: ${why}`, tried)
  }
  return result(name, item, '5', 'untested', `no ${s} URL of the SUT was given and the SUT sent nothing over ${s}`, [], true)
}

/** S-002: SSP over HTTP, in either direction. */
export function checkHttp (run: LabRun): Check { return scheme(run, 'http', 'S-002') }

/** S-003: SSP over HTTPS, in either direction. */
export function checkHttps (run: LabRun): Check { return scheme(run, 'https', 'S-003') }

// ---------------------------------------------------------------------------
// S-004, S-005, S-006, S-012, section 5.6 (and section 4)
// ---------------------------------------------------------------------------

/** S-004: every transaction request the SUT initiates carries, in x-wv-transactionid, a fresh id of its own. */
export function checkInitiatorIds (run: LabRun): Check {
  const reqs = ins(run).filter((e) => e.purpose === 'sut-request' || REQUEST_STEPS.has(e.purpose))
  if (reqs.length === 0) {
    return result('initiator-transaction-ids', 'S-004', '5.6', 'untested', `the SUT initiated no transaction: ${run.phases.sutInitiated.reason}`)
  }
  const labIds = new Set(outs(run).filter((e) => e.purpose !== 'response-half' && !ANSWER_STEPS.has(e.purpose)).map((e) => e.transactionId))
  const seen = new Map<string, Exchange>()
  const bad: Array<[Exchange, string]> = []
  for (const e of reqs) {
    const tid = header(e.request, 'x-wv-transactionid')
    if (tid === undefined || tid === '') { bad.push([e, `${e.purpose}: no x-wv-transactionid`]); continue }
    if (labIds.has(tid)) { bad.push([e, `${e.purpose}: x-wv-transactionid ${tid} is an id the lab generated`]); continue }
    if (e.setup !== undefined && e.setup.transactionId !== tid) {
      bad.push([e, `${e.purpose}: header ${tid} but SetupTransaction transactionID ${e.setup.transactionId}`])
      continue
    }
    const prev = seen.get(tid)
    // The same request POSTed again (after a redirect or a lost 200) keeps its id; another request may not.
    // A set-up is one transaction: the initiator's steps 1, 4 and 6 carry one id (Baraza finds the set-up by it).
    const laterSetupStep = prev !== undefined && REQUEST_STEPS.has(prev.purpose) && REQUEST_STEPS.has(e.purpose) && e.purpose > prev.purpose
    if (prev !== undefined && !laterSetupStep && !prev.request.body.equals(e.request.body)) {
      bad.push([e, `${e.purpose}: x-wv-transactionid ${tid} was already used by #${prev.n} for another request`])
      continue
    }
    seen.set(tid, e)
  }
  if (bad.length > 0) return result('initiator-transaction-ids', 'S-004', '5.6', 'fail', problems(bad), bad.map(([e]) => e))
  return result('initiator-transaction-ids', 'S-004', '5.6', 'pass',
    `${reqs.length} request(s) the SUT initiated carry fresh transaction ids of its own (${[...seen.keys()].slice(0, 3).join(', ')})`, [reqs[0]])
}

/** S-005: every response the SUT sends carries the transaction id of the request, in x-wv-transactionid (and, at set-up, in the body). */
export function checkResponseIds (run: LabRun): Check {
  const resps = ins(run).filter((e) => e.answers !== undefined && (e.purpose === 'response-half' || ANSWER_STEPS.has(e.purpose)))
  if (resps.length === 0) return result('response-transaction-ids', 'S-005', '5.6', 'untested', 'the SUT sent no response to a lab request: ' + run.phases.labInitiated.reason)
  const bad: Array<[Exchange, string]> = []
  for (const e of resps) {
    const want = byN(run, e.answers)?.transactionId
    const tid = header(e.request, 'x-wv-transactionid')
    if (tid === undefined) bad.push([e, `${e.purpose} answering #${e.answers}: no x-wv-transactionid (expected ${want})`])
    else if (tid !== want) bad.push([e, `${e.purpose} answering #${e.answers}: x-wv-transactionid ${tid}, expected ${want}`])
    else if (e.setup !== undefined && e.setup.transactionId !== want) bad.push([e, `${e.purpose}: SetupTransaction transactionID ${e.setup.transactionId}, expected ${want}`])
    else if (e.setup === undefined) {
      // The body must say the same: a peer that reads ids from the body (Baraza does) matches answers by it.
      const ids = peekEnvelopeIds(e.request.body)
      const t = ids.transactions.find((x) => x.transactionId === want)
      if (ids.kind !== EnvelopeKind.SESSION) bad.push([e, `${e.purpose} answering #${e.answers}: the body has no Session envelope`])
      else if (t === undefined) bad.push([e, `${e.purpose} answering #${e.answers}: no Transaction in the body carries transactionID ${want} (found ${ids.transactions.map((x) => String(x.transactionId)).join(', ') || 'none'})`])
      else if (t.mode !== 'Response') bad.push([e, `${e.purpose} answering #${e.answers}: Transaction ${want} in the body has mode ${String(t.mode)}, not Response`])
    }
  }
  if (bad.length > 0) return result('response-transaction-ids', 'S-005', '5.6', 'fail', problems(bad), bad.map(([e]) => e))
  return result('response-transaction-ids', 'S-005', '5.6', 'pass', `${resps.length} response(s) from the SUT carry the transaction id of their request`, [resps[0]])
}

/** S-006: every POST the SUT sends in an established session carries x-wv-sessionid naming that session. */
export function checkSessionIds (run: LabRun): Check {
  const posts = ins(run).filter((e) => !isSetup(e))
  if (posts.length === 0) return result('session-ids', 'S-006', '5.6', 'untested', 'the SUT sent no POST in an established session')
  const bad: Array<[Exchange, string]> = []
  for (const e of posts) {
    const sid = header(e.request, 'x-wv-sessionid')
    // Either side's name for any session with this peer identity (a notification may come in the other session).
    const candidates = run.sessions.filter((s) => s.identity === e.identity)
    const bodySid = peekEnvelopeIds(e.request.body).sessionId
    if (sid === undefined) bad.push([e, `${e.purpose}: no x-wv-sessionid`])
    else if (!candidates.some((s) => s.labSid === sid || s.sutSid === sid)) bad.push([e, `${e.purpose}: x-wv-sessionid ${sid} names no session of this peer`])
    else if (bodySid === undefined) bad.push([e, `${e.purpose}: the body's Session has no sessionID`])
    else if (bodySid !== sid) bad.push([e, `${e.purpose}: the body names session ${bodySid}, x-wv-sessionid ${sid}`])
  }
  if (bad.length > 0) return result('session-ids', 'S-006', '5.6', 'fail', problems(bad), bad.map(([e]) => e))
  return result('session-ids', 'S-006', '5.6', 'pass', `${posts.length} request(s) and response(s) from the SUT name their session in x-wv-sessionid`, [posts[0]])
}

/** S-012: x-wv-transactionid on every POST, x-wv-sessionid on every POST once the session exists, both `1*(ALPHA / DIGIT / "_")`. */
export function checkHeaderExtensions (run: LabRun): Check {
  const all = ins(run)
  if (all.length === 0) return result('header-extensions', 'S-012', '5.6', 'untested', 'the SUT sent no POST')
  const inSession = all.filter((e) => !isSetup(e)).length
  const bad: Array<[Exchange, string]> = []
  for (const e of all) {
    const why: string[] = []
    for (const [name, required] of [['x-wv-transactionid', true], ['x-wv-sessionid', !isSetup(e)]] as const) {
      const n = headerCount(e.request, name)
      const v = header(e.request, name)
      if (n === 0) { if (required) why.push(`no ${name}`) } else if (n > 1) why.push(`${name} ${n} times`)
      else if (v === undefined || !isIdString(v)) why.push(`${name} ${JSON.stringify(v)} is not 1*(ALPHA / DIGIT / "_")`)
    }
    if (why.length > 0) bad.push([e, `${e.purpose}: ${why.join(', ')}`])
  }
  if (bad.length > 0) return result('header-extensions', 'S-012', '5.6', 'fail', problems(bad), bad.map(([e]) => e))
  // Not passed on partial evidence: x-wv-sessionid is only required once a session exists.
  if (inSession === 0) return result('header-extensions', 'S-012', '5.6', 'untested', `the SUT's ${all.length} POST(s) were all set-up messages: x-wv-sessionid never exercised`)
  return result('header-extensions', 'S-012', '5.6', 'pass', `all ${all.length} POST(s) from the SUT (${inSession} in a session) carry grammatical x-wv-* headers`, [all[0]])
}

// ---------------------------------------------------------------------------
// S-007, section 5.1: the connection pair
// ---------------------------------------------------------------------------

/** S-007: the SUT answers every valid lab POST with a dummy reply: HTTP/1.1 200, empty body, connection kept. */
export function checkDummyReply (run: LabRun): Check {
  const afterBad = new Set((run.pipeline ?? []).slice(2))
  // POSTs the SUT closed on because it does not know the lab's session are reported under S-006 (session-accepted).
  const refused = new Set(sessionRefusals(run).map((e) => e.n))
  // So are POSTs refused as the 1.2 identity (content-type-1.2, S-010).
  const refused12 = (e: Exchange): boolean => run.v12Identity !== undefined && e.identity === run.v12Identity && e.reply?.status !== 200
  const judged = outs(run).filter((e) => !afterBad.has(e.n) && !isRedirect(e) && !refused.has(e.n) && !refused12(e))
  if (judged.length === 0) return result('dummy-reply', 'S-007', '5.1', 'untested', 'the lab sent no POST the SUT answered')
  const bad: Array<[Exchange, string]> = []
  for (const e of judged) {
    const r = e.reply
    if (r === undefined) { bad.push([e, `${e.purpose}: no answer (${e.error ?? '?'})`]); continue }
    const why: string[] = []
    if (r.status !== 200) why.push(`answered ${r.startLine} to a valid SSP POST`)
    if (r.version !== '1.1') why.push(`answered in HTTP/${r.version}`)
    if (r.body.length > 0) why.push(`the 200 carries a ${r.body.length}-byte body`)
    if (r.status === 200 && !r.keepAlive) why.push('the 200 closes the connection (5.1 requires persistent connections)')
    if (why.length > 0) bad.push([e, `${e.purpose}: ${why.join(', ')}`])
  }
  if (bad.length > 0) return result('dummy-reply', 'S-007', '5.1', 'fail', problems(bad), bad.map(([e]) => e))
  return result('dummy-reply', 'S-007', '5.1', 'pass', `${judged.length} lab POST(s) answered with an empty HTTP/1.1 200`, [judged[0]])
}

/**
 * Lab POSTs in a session that the SUT closed on without any answer, when it never
 * acknowledged any POST of that session: the SUT does not know the session the lab
 * names (Baraza closes on a session id that is not `<token>@<sender's domain>`).
 * That is a session-id problem, not a dummy-reply one.
 */
function sessionRefusals (run: LabRun): Exchange[] {
  const inSession = outs(run).filter((e) => e.setup === undefined && header(e.request, 'x-wv-sessionid') !== undefined)
  const bySid = new Map<string, Exchange[]>()
  for (const e of inSession) {
    const sid = header(e.request, 'x-wv-sessionid')!
    const list = bySid.get(sid) ?? []
    list.push(e)
    bySid.set(sid, list)
  }
  const out: Exchange[] = []
  for (const list of bySid.values()) {
    if (list.every((e) => e.reply === undefined)) out.push(...list)
  }
  return out
}

/** S-006: the SUT accepts POSTs that name the session by the id the lab issued in its LoginResponse. */
export function checkSessionAccepted (run: LabRun): Check {
  const refused = sessionRefusals(run)
  const inSession = outs(run).filter((e) => e.setup === undefined && header(e.request, 'x-wv-sessionid') !== undefined)
  if (inSession.length === 0) return result('session-accepted', 'S-006', '5.6', 'untested', 'the lab sent no POST in a session')
  if (refused.length > 0) {
    return result('session-accepted', 'S-006', '5.6', 'fail',
      problems(refused.map((e) => [e, `${e.purpose}: closed without an answer; no POST naming session ${header(e.request, 'x-wv-sessionid') ?? '?'} (the lab's id, in header and body) was ever acknowledged`])), refused)
  }
  return result('session-accepted', 'S-006', '5.6', 'pass', `${inSession.length} lab POST(s) naming the session by the lab's id were acknowledged`, [inSession[0]])
}

/** S-007: the response half comes as a new POST on a connection the SUT opened, not in the HTTP response. */
export function checkAnswerPath (run: LabRun): Check {
  const reqs = outs(run).filter((e) => (e.purpose === 'service-request' || e.purpose === 'pipeline' || e.purpose === 'alt-request') && e.reply?.status === 200)
  if (reqs.length === 0) return result('response-on-own-connection', 'S-007', '5.1', 'untested', 'no lab service request was acknowledged: ' + run.phases.labInitiated.reason)
  const bad: Array<[Exchange, string]> = []
  let first: Exchange | undefined
  for (const e of reqs) {
    const ans = run.exchanges.find((x) => x.dir === 'in' && x.answers === e.n)
    if (ans !== undefined) { first ??= ans; continue }
    if ((e.reply?.body.length ?? 0) > 0) bad.push([e, 'the SSP answer came in the HTTP response on the lab\'s connection, not as a POST on the SUT\'s own connection'])
    else bad.push([e, 'no response half arrived'])
  }
  if (bad.length > 0) return result('response-on-own-connection', 'S-007', '5.1', 'fail', problems(bad), bad.map(([e]) => e))
  return result('response-on-own-connection', 'S-007', '5.1', 'pass',
    `${reqs.length} response half(s) came as POSTs on connections the SUT opened (e.g. ${first?.conn.id ?? '?'})`, [byN(run, first?.answers), first])
}

/** S-007: pipelined requests are answered in the order they arrived (the refusal of the third comes third). */
export function checkPipelineOrder (run: LabRun): Check {
  const batch = (run.pipeline ?? []).map((n) => byN(run, n)).filter((e): e is Exchange => e !== undefined)
  if (batch.length < 3) return result('pipelined-order', 'S-007', '5.1', 'untested', 'the pipelined batch was not sent (no session A)')
  const refused = new Set(sessionRefusals(run).map((e) => e.n))
  if (batch.every((e) => refused.has(e.n))) {
    return result('pipelined-order', 'S-007', '5.1', 'untested', 'the SUT closed on every POST of the session the batch was sent in (reported under S-006 session-accepted), so no order could be seen')
  }
  const [p1, p2, p3] = batch as [Exchange, Exchange, Exchange]
  const st = (e: Exchange): string => e.reply?.status === undefined ? `none (${e.error ?? '?'})` : String(e.reply.status)
  const statuses = batch.map(st).join(', ')
  const s3 = p3.reply?.status
  if (p1.reply?.status === 200 && p2.reply?.status === 200 && (s3 === undefined || s3 >= 400)) {
    return result('pipelined-order', 'S-007', '5.1', 'pass', `answers in request order: ${statuses} (the third had Content-Type: text/plain)`, [p1, p3])
  }
  if (s3 === 200 && p1.reply?.status === 200 && p2.reply?.status === 200) {
    return result('pipelined-order', 'S-007', '5.1', 'untested', `the SUT accepted a text/plain POST, so the order of its answers is not observable (${statuses})`, [p3])
  }
  return result('pipelined-order', 'S-007', '5.1', 'fail',
    `answers to four pipelined POSTs (the third with Content-Type: text/plain) were ${statuses}; expected 200, 200, then the refusal`, [p1, p2, p3])
}

// ---------------------------------------------------------------------------
// S-008, S-009 (optional), sections 5.2 and 5.3
// ---------------------------------------------------------------------------

/** S-008: one connection of the SUT carries traffic of both sessions (A: lab requestor, B: SUT requestor). */
export function checkPairReuse (run: LabRun): Check {
  const claimed = run.claims.has('S-008')
  const a = run.sessions.find((s) => s.label === 'A')
  const b = run.sessions.find((s) => s.label === 'B')
  if (a === undefined || b === undefined) {
    const why = b === undefined ? `session B (set up by the SUT) is not up: ${run.phases.sutInitiated.reason}` : `session A is not up: ${run.phases.labInitiated.reason}`
    return result('pair-reuse', 'S-008', '5.2', 'untested', why)
  }
  const byConn = new Map<string, { A?: Exchange, B?: Exchange }>()
  for (const e of ins(run)) {
    if (e.session !== 'A' && e.session !== 'B') continue
    const slot = byConn.get(e.conn.id) ?? {}
    slot[e.session] ??= e
    byConn.set(e.conn.id, slot)
  }
  for (const [id, slot] of byConn) {
    if (slot.A !== undefined && slot.B !== undefined) {
      return result('pair-reuse', 'S-008', '5.2', 'pass', `the SUT's connection ${id} carried POSTs of both sessions`, [slot.A, slot.B])
    }
  }
  const detail = `the SUT used separate connections for the two sessions (${[...byConn.keys()].join(', ') || 'none'})`
  return claimed
    ? result('pair-reuse', 'S-008', '5.2', 'fail', `claimed, but ${detail}`)
    : result('pair-reuse', 'S-008', '5.2', 'untested', detail, [], true)
}

/** S-009: the SUT answers over two or more of its connections open at the same time. */
export function checkMultiplePairs (run: LabRun): Check {
  const claimed = run.claims.has('S-009')
  if (run.burst === undefined) return result('multiple-pairs', 'S-009', '5.3', 'untested', 'the burst was not sent (no session A)')
  const posts = ins(run).filter((e) => e.session === 'A' && !isSetup(e))
  const conns = [...new Set(posts.map((e) => e.conn))]
  for (const c1 of conns) {
    for (const c2 of conns) {
      if (c1 === c2) continue
      // c1 carried a POST while c2 was open, and c2 carried one too.
      const during = posts.find((e) => e.conn === c1 && e.at >= c2.openedAt && e.at <= (c2.closedAt ?? Infinity))
      const other = posts.find((e) => e.conn === c2)
      if (during !== undefined && other !== undefined) {
        return result('multiple-pairs', 'S-009', '5.3', 'pass', `the SUT answered over ${c1.id} and ${c2.id}, open at the same time`, [during, other])
      }
    }
  }
  const detail = `the SUT answered ${posts.length} POST(s) of session A over ${conns.length} connection(s), never two at once`
  return claimed
    ? result('multiple-pairs', 'S-009', '5.3', 'fail', `claimed, but ${detail}`, [posts[0]])
    : result('multiple-pairs', 'S-009', '5.3', 'untested', detail, [], true)
}

// ---------------------------------------------------------------------------
// S-010, section 5.4: content type
// ---------------------------------------------------------------------------

function contentType (run: LabRun, v12: boolean): Check {
  const name = v12 ? 'content-type-1.2' : 'content-type'
  const want = v12 ? ContentType.SSP12 : ContentType.SSP13
  const spelled = v12 ? 'application/vnd.wv.ssp.xml' : 'application/vnd.wv.ssp+xml'
  const posts = ins(run).filter((e) => (e.identity === run.v12Identity) === v12)
  if (v12 && run.v12Identity !== undefined) {
    // The lab's own POSTs as the 1.2 peer carry application/vnd.wv.ssp.xml: one the SUT refused (an error
    // status, or a close with no answer) is reported, not left as "untested".
    const refused = outs(run).filter((e) => e.identity === run.v12Identity && !isRedirect(e) && e.reply?.status !== 200)
    if (refused.length > 0) {
      return result(name, 'S-010', '5.4', 'fail', `the SUT refused the lab's POST(s) as the 1.2 peer ${run.v12Identity} (Content-Type: ${spelled}): ` +
        problems(refused.map((e) => [e, `${e.purpose}: ${e.reply === undefined ? `no answer (${e.error ?? '?'})` : e.reply.startLine}`])), refused)
    }
  }
  if (posts.length === 0) {
    return result(name, 'S-010', '5.4', 'untested', v12 ? run.phases.v12.reason : 'the SUT sent no POST')
  }
  const bad: Array<[Exchange, string]> = []
  for (const e of posts) {
    const ct = header(e.request, 'content-type')
    const b = Buffer.from(ct ?? '', 'latin1')
    if (ct === undefined) bad.push([e, 'no Content-Type'])
    else if (headerCount(e.request, 'content-type') > 1) bad.push([e, 'Content-Type sent twice'])
    else if (classifyContentType(b, 0, b.length) !== want) bad.push([e, `Content-Type: ${ct}, expected ${spelled}`])
  }
  const to = v12 ? `to the 1.2 peer ${run.v12Identity ?? ''}` : 'to the 1.3 lab'
  if (bad.length > 0) return result(name, 'S-010', '5.4', 'fail', `${to}: ${problems(bad)}`, bad.map(([e]) => e))
  return result(name, 'S-010', '5.4', 'pass', `${posts.length} POST(s) ${to} carry ${spelled}`, [posts[0]])
}

/** S-010: POSTs to a 1.3 peer carry `application/vnd.wv.ssp+xml`. */
export function checkContentType (run: LabRun): Check { return contentType(run, false) }

/** S-010: POSTs to a 1.2 peer carry the 1.2 spelling `application/vnd.wv.ssp.xml`. */
export function checkContentType12 (run: LabRun): Check { return contentType(run, true) }

// ---------------------------------------------------------------------------
// S-011, section 5.5: redirection
// ---------------------------------------------------------------------------

function followsSetupRedirect (run: LabRun, step: 'step1' | 'step3'): Check {
  const name = `follows-redirect-${step === 'step1' ? 'step-1' : 'step-3'}`
  const probe = run.redirects[step]
  if (probe === undefined) {
    const phase = step === 'step1' ? run.phases.sutInitiated : run.phases.labInitiated
    const note = run.notes.find((n) => n.includes(`step ${step === 'step1' ? 1 : 3} came on a connection`))
    return result(name, 'S-011', '5.5', 'untested', note ?? (phase.ran ? `no ${step === 'step1' ? 'step 1' : 'step 3'} to redirect: ${phase.reason}` : phase.reason))
  }
  const sent = byN(run, probe.sent)
  if (probe.followed !== undefined) {
    return result(name, 'S-011', '5.5', 'pass', `redirected with 307 to ${probe.location}; the SUT POSTed it there again`, [sent, byN(run, probe.followed)])
  }
  return result(name, 'S-011', '5.5', 'fail', `redirected with 307 to ${probe.location}; the SUT did not POST it there within ${probe.waited} ms`, [sent])
}

/** S-011: a redirect answering the SUT's first SendSecretToken (set-up step 1) on a fresh connection is followed. */
export function checkFollowsRedirectStep1 (run: LabRun): Check { return followsSetupRedirect(run, 'step1') }

/** S-011: a redirect answering the SUT's first SendSecretToken (set-up step 3) on a fresh connection is followed. */
export function checkFollowsRedirectStep3 (run: LabRun): Check { return followsSetupRedirect(run, 'step3') }

/** S-011: a redirect answering a later POST (a response half) is not followed. */
export function checkRefusesLaterRedirect (run: LabRun): Check {
  const probe = run.redirects.later
  if (probe === undefined) {
    const a = run.phases.labInitiated
    return result('refuses-later-redirect', 'S-011', '5.5', 'untested',
      a.ok ? 'the SUT POSTed no response half for the probe request, so there was nothing to redirect' : `no session A: ${a.reason}`)
  }
  const sent = byN(run, probe.sent)
  if (probe.followed !== undefined) {
    return result('refuses-later-redirect', 'S-011', '5.5', 'fail', `a response half answered with 307 to ${probe.location} was POSTed there again`, [sent, byN(run, probe.followed)])
  }
  return result('refuses-later-redirect', 'S-011', '5.5', 'pass', `a response half answered with 307 was not POSTed to ${probe.location} (watched ${probe.waited} ms)`, [sent])
}

/** S-011: the SUT answers with a redirect only the first SendSecretToken on a fresh connection (steps 1 and 3). */
export function checkRedirectsOnlyAtSetup (run: LabRun): Check {
  const redirects = outs(run).filter(isRedirect)
  const bad = redirects.filter((e) => !((e.purpose === 'setup-1' || e.purpose === 'setup-3') && e.seq === 0))
  if (bad.length > 0) {
    return result('redirects-only-at-setup', 'S-011', '5.5', 'fail',
      problems(bad.map((e) => [e, `${e.purpose} (request ${e.seq + 1} on ${e.conn.id}) answered ${e.reply?.startLine ?? ''}`])), bad)
  }
  const n = outs(run).length
  if (n === 0) return result('redirects-only-at-setup', 'S-011', '5.5', 'untested', 'the lab sent no POST')
  return result('redirects-only-at-setup', 'S-011', '5.5', 'pass',
    redirects.length === 0 ? `no redirect on ${n} lab POST(s)` : `${redirects.length} redirect(s), all at set-up on a fresh connection`, redirects)
}

// ---------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------

/**
 * Checks whose being untested does not keep their item from passing: the 1.2
 * content type is only exercised when the lab is given a 1.2 identity.
 */
const PARTIAL_OK = new Set(['content-type-1.2'])

/** Every check, in item order. */
export const CHECKS: ReadonlyArray<{ item: ItemId, run: (r: LabRun) => Check }> = [
  { item: 'S-002', run: checkHttp },
  { item: 'S-003', run: checkHttps },
  { item: 'S-004', run: checkInitiatorIds },
  { item: 'S-005', run: checkResponseIds },
  { item: 'S-006', run: checkSessionIds },
  { item: 'S-006', run: checkSessionAccepted },
  { item: 'S-007', run: checkDummyReply },
  { item: 'S-007', run: checkAnswerPath },
  { item: 'S-007', run: checkPipelineOrder },
  { item: 'S-008', run: checkPairReuse },
  { item: 'S-009', run: checkMultiplePairs },
  { item: 'S-010', run: checkContentType },
  { item: 'S-010', run: checkContentType12 },
  { item: 'S-011', run: checkFollowsRedirectStep1 },
  { item: 'S-011', run: checkFollowsRedirectStep3 },
  { item: 'S-011', run: checkRefusesLaterRedirect },
  { item: 'S-011', run: checkRedirectsOnlyAtSetup },
  { item: 'S-012', run: checkHeaderExtensions }
]

/** One verdict per selected item, in table order. */
export function judge (run: LabRun, selected: ReadonlySet<ItemId>): ItemResult[] {
  const all = CHECKS.map((c) => c.run(run))
  return SCR_ITEMS.filter((i) => selected.has(i.id)).map((i) => {
    const claimed = i.status === 'O' && run.claims.has(i.id)
    const base = { id: i.id, title: i.title, section: i.section, status: i.status, claimed }
    if (!run.reachable) {
      return { ...base, verdict: 'not testable' as Verdict, reason: `the SUT is unreachable: ${run.unreachable ?? '?'}`, checks: [] }
    }
    // S-001 is S-002 OR S-003.
    const checks: Check[] = i.id === 'S-001' ? all.filter((c) => c.item === 'S-002' || c.item === 'S-003') : all.filter((c) => c.item === i.id)
    const failed = checks.filter((c) => c.outcome === 'fail')
    const passed = checks.filter((c) => c.outcome === 'pass')
    let verdict: Verdict
    let reason: string
    if (i.id === 'S-001') {
      verdict = passed.length > 0 ? 'pass' : failed.length > 0 ? 'fail' : 'not testable'
      reason = passed.length > 0 ? passed.map((c) => `${c.item}: ${c.detail}`).join('; ') : checks.map((c) => `${c.item}: ${c.detail}`).join('; ')
    } else if (failed.length > 0) {
      verdict = 'fail'
      reason = failed.map((c) => `${c.check}: ${c.detail}`).join('; ')
    } else if (passed.length > 0 && i.status === 'M' && checks.some((c) => c.outcome === 'untested' && !PARTIAL_OK.has(c.check))) {
      // A mandatory item is not passed on partial evidence (e.g. S-011 without the later-redirect check).
      verdict = 'not testable'
      const untested = checks.filter((c) => c.outcome === 'untested')
      reason = `partial evidence: passed ${passed.map((c) => c.check).join(', ')}; not tested: ${untested.map((c) => `${c.check} (${c.detail})`).join('; ')}`
    } else if (passed.length > 0) {
      verdict = 'pass'
      const untested = checks.filter((c) => c.outcome === 'untested')
      reason = passed.map((c) => `${c.check}: ${c.detail}`).join('; ') +
        (untested.length > 0 ? `; not tested: ${untested.map((c) => `${c.check} (${c.detail})`).join('; ')}` : '')
    } else if (i.status === 'O' && checks.some((c) => c.unsupported === true)) {
      verdict = claimed ? 'fail' : 'not supported'
      reason = checks.map((c) => c.detail).join('; ')
    } else {
      verdict = 'not testable'
      reason = checks.map((c) => `${c.check}: ${c.detail}`).join('; ')
    }
    return { ...base, verdict, reason, checks }
  })
}
