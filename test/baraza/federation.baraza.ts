/**
 * Federation with the real Baraza server (../shared/baraza), built and run on
 * loopback by its own recipe. Not part of `npm test` (it needs root, Debian
 * packages and about two minutes); `npm run test:baraza` runs it, and so does
 * .ci/run.
 *
 * What it shows, in order (one Baraza, restarted where a test needs it):
 *  1. Baraza sets up a session with us (we answer as responder) and delivers
 *     an IM; our handler gets the SendMessageRequest primitive and Baraza
 *     acknowledges our answer POST and reads it.
 *  2. We set up a session with Baraza and send 200 transactions: every one
 *     answered with Status 200 and matched by the id in the answer's body.
 *  3. A few more IMs from Baraza, each served and answered.
 *  4. Strict posture: as initiator the set-up is refused at step 3 (S-005);
 *     as responder Baraza's header-less step 4 is refused (S-012).
 *  5. A Baraza that forgot our session closes on each POST: we back off,
 *     no tight re-POST loop, and the transaction ends with a typed timeout.
 *  6. Baraza's https-first attempt (a TLS ClientHello on our plain port) is
 *     refused cleanly and the node goes on federating.
 *  7. The conformance lab (the CLI) against Baraza: each verdict as README's
 *     "Federating with Baraza" explains it.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { SspError } from '../../src/errors.js'
import { SspNode, type Answer } from '../../src/ssp/node.js'
import type { IncomingTransaction, SspNodeOptions } from '../../src/ssp/options.js'
import { sendMessageRequests, sendMessageResponse, messageIdOf } from '../../src/ssp/payload.js'
import { Role } from '../../src/ssp/session.js'
import {
  BARAZA_DIR, BARAZA_DOMAIN, BARAZA_URL, barazaAlive, barazaLog, barazaReceived, buildBaraza, psql, setSrvMap, startBaraza, stopBaraza, triggerIm
} from '../helpers/baraza-peer.js'

/** Poll `cond` every 100 ms for at most `ms`; false if it never held. */
async function waitFor (cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return true
    await sleep(100)
  }
  return cond()
}

const served: IncomingTransaction[] = []
const servedText: string[] = []

async function startNode (domain: string, extra: Partial<SspNodeOptions> = {}): Promise<{ node: SspNode, port: number }> {
  const node = new SspNode({
    domain,
    posture: 'interop',
    resolver: false,
    listen: [{ port: 0, host: '127.0.0.1' }],
    // Baraza's HTTP server leaves pipelined requests unread: one POST at a time.
    peers: { [BARAZA_DOMAIN]: { url: BARAZA_URL, pipelineDepth: 1 } },
    setupTimeout: 15_000,
    transactionTimeout: 20_000,
    handler: (tx) => {
      served.push(tx)
      servedText.push(tx.primitive.toString())
      return sendMessageResponse(messageIdOf(tx.primitive))
    },
    ...extra
  })
  node.on('setupError', () => {})
  const [url] = await node.start()
  return { node, port: Number(new URL(url!).port) }
}

t.setTimeout(15 * 60_000)

let a: SspNode
let portA = 0
let b: SspNode | undefined
let c: SspNode | undefined

t.before(async () => {
  await buildBaraza()
  ;({ node: a, port: portA } = await startNode('a.example'))
  await startBaraza({ srvMap: { 'a.example': `127.0.0.1:${portA}` } })
})

t.teardown(async () => {
  await Promise.all([a?.close(), b?.close(), c?.close()].map((p) => p?.catch(() => {})))
  await stopBaraza()
})

t.test('1. Baraza sets up a session with us and delivers an IM; it acknowledges our answer', async (t) => {
  await triggerIm('wv:carol@a.example')
  t.ok(await waitFor(() => served.length > 0, 60_000), 'a request from Baraza reached the handler (it delivers 0-30 s after the trigger)')
  const tx = served[0]!
  t.equal(tx.peer, BARAZA_DOMAIN)
  t.equal(tx.kind, 'request', 'in the session Baraza set up (we provide)')
  t.equal(tx.primitiveName, 'SendMessageRequest')
  t.match(servedText[0], /<User userID="wv:carol@a\.example"\/>/, 'the recipient, read from the primitive')
  t.match(servedText[0], /<Sender>\s*<User userID="wv:bob@x\.example"\/>/, 'the sender')
  t.match(tx.transactionId, /^\d{10}-\d+$/, 'Baraza\'s own transaction id, outside the 5.6 grammar')
  t.match(tx.sessionId, /^S[0-9A-Za-z]{22}@a\.example$/, 'our session id is <token>@<our domain>')
  t.match(tx.peerSessionId, /^\d+@x\.example$/, 'Baraza\'s is <row>@x.example')
  const s = a.session(BARAZA_DOMAIN, Role.PROVIDER)
  t.ok(s !== undefined, 'the session is up on our side')
  t.ok(await waitFor(() => a.getStats().answersSent >= 1, 20_000), 'Baraza answered 200 to our answer POST')
  t.equal(a.getStats().answerFailures, 0)
  // Baraza read our answer: it logged the Response naming our session and its transaction.
  t.ok(await waitFor(() => barazaReceived().some((b) => b.includes(`<Session sessionID="${tx.sessionId}">`) &&
    b.includes(`<Transaction mode="Response" transactionID="${tx.transactionId}">`)), 10_000), 'Baraza received our Response, ids in the body')
  t.ok(barazaAlive(), 'barazad still running')
  t.equal(await psql('select count(*) from ssp_message_queue where sent = false'), '0', 'its queue holds nothing unsent')
})

t.test('2. we set up a session with Baraza: 200 transactions, all answered and matched', async (t) => {
  const N = 200
  const make = sendMessageRequests(300, { from: 'wv:alice@a.example', to: 'wv:bob@x.example' }) // bob exists: the trigger logged him in
  const ids = new Set<string>()
  let next = 0
  const outcomes: string[] = []
  const worker = async (): Promise<void> => {
    while (next < N) {
      const n = next++
      try {
        const ans = await a.request(BARAZA_DOMAIN, make(n))
        ids.add(ans.transactionId)
        const prim = ans.primitive.toString()
        outcomes.push(ans.primitiveName === 'SendMessageResponse' && prim.includes('<Status code="200"') ? 'ok' : `odd: ${prim.slice(0, 120)}`)
      } catch (err) {
        outcomes.push(`failed: ${(err as SspError).code}`)
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  const ok = outcomes.filter((x) => x === 'ok').length
  t.equal(ok, N, `every transaction answered with Status 200 (${JSON.stringify(outcomes.filter((x) => x !== 'ok').slice(0, 3))})`)
  t.equal(ids.size, N, 'each answer matched its own transaction')
  const st = a.getStats()
  t.equal(st.failed, 0)
  t.equal(st.unknownSession, 0)
  t.equal(st.lateAnswers, 0)
  t.ok((st.interop.transactionIdFromBody ?? 0) >= N, 'matched by the id in the body (Baraza sends no x-wv-transactionid)')
  const s = a.session(BARAZA_DOMAIN, Role.REQUESTOR)!
  t.ok(s !== undefined, 'our session with Baraza is up')
  // What Baraza received: each body names our session and a transaction id that was also in the header.
  const got = barazaReceived().filter((b) => b.includes(`<Session sessionID="${s.id}">`) && b.includes('<SendMessageRequest'))
  t.ok(got.length >= N, `Baraza logged ${got.length} requests in our session`)
  t.ok([...ids].every((id) => got.some((b) => b.includes(`transactionID="${id}"`))), 'every transaction id we used is in a body Baraza read')
})

t.test('3. more IMs from Baraza: each served and answered', async (t) => {
  const before = served.length
  const answeredBefore = a.getStats().answersSent
  for (const user of ['dave', 'erin']) await triggerIm(`wv:${user}@a.example`)
  t.ok(await waitFor(() => served.length >= before + 2, 60_000), 'two more requests served')
  t.ok(await waitFor(() => a.getStats().answersSent >= answeredBefore + 2, 20_000), 'and their answers acknowledged')
  t.ok(servedText.slice(before).some((x) => x.includes('wv:dave@a.example')))
  t.ok(servedText.slice(before).some((x) => x.includes('wv:erin@a.example')))
  t.equal(a.getStats().duplicates, 0)
})

t.test('4. strict posture refuses Baraza, naming the SCR item', async (t) => {
  ;({ node: b } = await startNode('b.example', { posture: 'strict', setupTimeout: 10_000 }))
  ;({ node: c } = await startNode('c.example', { posture: 'strict', setupTimeout: 10_000 }))
  const bPort = Number(new URL(b.urls[0]!).port)
  const cPort = Number(new URL(c.urls[0]!).port)
  setSrvMap({ 'a.example': `127.0.0.1:${portA}`, 'b.example': `127.0.0.1:${bPort}`, 'c.example': `127.0.0.1:${cPort}` })

  // As initiator: Baraza's step 3 carries a transaction id of its own.
  const err = await b.request(BARAZA_DOMAIN, '<x/>').then(() => undefined, (e: SspError) => e)
  t.equal(err?.code, 'SSP_ERR_SETUP_PROTOCOL')
  t.equal(err?.scr, 'S-005', 'reported against S-005')
  t.match(err?.message ?? '', /step 3 from x\.example carries transactionID \d+/)

  // As responder: Baraza's step 4 has no x-wv-transactionid (and its ids are not in the 5.6 grammar).
  await triggerIm('wv:carol@c.example')
  const refused = (): number => c!.getStats().wire[0]?.errors.SSP_ERR_TRANSACTION_ID_MISSING ?? 0
  t.ok(await waitFor(() => refused() > 0, 60_000), 'a POST without x-wv-transactionid refused (400, S-012)')
  t.equal(c.session(BARAZA_DOMAIN, Role.PROVIDER), undefined, 'no session came up')
  t.ok(barazaAlive(), 'barazad still running')
})

t.test('5. a Baraza that forgot our session: bounded, backed-off resends, then a typed timeout', async (t) => {
  const s = a.session(BARAZA_DOMAIN, Role.REQUESTOR)
  t.ok(s !== undefined, 'we still hold our session')
  await startBaraza({ srvMap: { 'a.example': `127.0.0.1:${portA}` } }) // reset: its sessions are gone
  const before = a.getStats()
  const started = Date.now()
  const err = await a.request(BARAZA_DOMAIN, sendMessageRequests(300, { from: 'wv:alice@a.example', to: 'wv:bob@x.example' })(0), { timeout: 4000 })
    .then(() => undefined, (e: SspError) => e)
  const elapsed = Date.now() - started
  t.equal(err?.code, 'SSP_ERR_TRANSACTION_TIMEOUT', 'ends with a typed timeout')
  t.match(err?.message ?? '', /never acknowledged|to x\.example/)
  const st = a.getStats()
  const attempts = st.unacknowledged - before.unacknowledged
  const posts = barazaReceived().filter((b) => b.includes(`<Session sessionID="${s!.id}">`)).length
  t.ok(attempts >= 2, `Baraza closed on it ${attempts} times; we resent`)
  // Backoff: 0, 25-50, 50-100, … ms, capped at 2 s: about 8 POSTs in 4 s, never a tight loop (100 in 150 ms before).
  t.ok(posts <= 20, `${posts} POSTs in ${elapsed} ms`)
})

t.test('6. Baraza\'s https-first attempt on our plain port is refused cleanly; federation goes on', async (t) => {
  const { node: d, port: dPort } = await startNode('d.example')
  t.teardown(() => d.close())
  await startBaraza({ srvMap: { 'd.example': `127.0.0.1:${dPort}` }, httpOnly: false })
  const before = served.length
  await triggerIm('wv:carol@d.example')
  const parseErrors = (): number => d.getStats().wire[0]?.errors.SSP_ERR_HTTP_PARSE ?? 0
  t.ok(await waitFor(() => parseErrors() > 0, 60_000), 'the TLS ClientHello got a 400 (SSP_ERR_HTTP_PARSE) and a close')
  const alive = await waitFor(() => served.length > before || !barazaAlive(), 60_000)
  if (barazaAlive()) {
    t.ok(alive && served.length > before, 'Baraza fell back to http:// and its IM was served')
  } else {
    // Known Kannel 1.4.5 assertion after a failed TLS write (../shared/baraza/README.md): Baraza died, not us.
    t.comment('barazad died after its TLS attempt (the known Kannel assertion); restarting it http-only')
    await startBaraza({ srvMap: { 'd.example': `127.0.0.1:${dPort}` } })
  }
  // Our own set-up makes Baraza send SendSecretToken again (its step 3), and that too goes https-first to our plain
  // port. The known Kannel assertion can kill barazad there as well (caught in a CI run on 2026-12-07: "SSL write
  // failed", then "PANIC: gwlib/conn.c: conn_unregister: Assertion `conn != NULL' failed", and our set-up times out).
  // That is Baraza dying in its own TLS code after our 400 and close, not our node failing: it is asserted from
  // Baraza's log, Baraza is restarted http-only, and the node must then federate. Any other failure is reported
  // with the node's set-up errors and Baraza's log.
  const setupErrors: string[] = []
  d.on('setupError', (e: { peer: string, role: string, error: SspError }) => { setupErrors.push(`${e.peer} ${e.role} ${e.error.code}: ${e.error.message}`) })
  const im = (): Promise<Answer> => d.request(BARAZA_DOMAIN, sendMessageRequests(300, { from: 'wv:alice@d.example', to: 'wv:bob@x.example' })(0))
  const ans = await im().catch(async (err: unknown) => {
    const log = barazaLog()
    if (!barazaAlive() && log.some((l) => l.includes('conn_unregister') && l.includes('PANIC'))) {
      t.comment('barazad died in its https-first step 3 of our set-up (the known Kannel assertion); restarting it http-only')
      t.ok(log.some((l) => l.includes('SSL write failed')), 'after its own failed TLS write to our plain port')
      await startBaraza({ srvMap: { 'd.example': `127.0.0.1:${dPort}` } })
      return await im()
    }
    const st = d.getStats()
    t.comment(`set-up errors: ${JSON.stringify(setupErrors)}; setupStepRetries ${st.setupStepRetries}, interop ${JSON.stringify(st.interop)}`)
    for (const line of log.slice(-40)) t.comment(`barazad: ${line}`)
    throw err
  })
  t.equal(ans.primitiveName, 'SendMessageResponse', 'the node still federates after the TLS probe')
})

t.test('7. the conformance lab against Baraza: each verdict from what Baraza did on the wire', async (t) => {
  // A free port for the lab's listener, so Baraza's SRV map can name it before the run.
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port
      srv.close(() => resolve(p))
    })
  })
  await startBaraza({ srvMap: { 'lab.example': `127.0.0.1:${port}` } })
  const trigger = `bash ${BARAZA_DIR}/trigger_im.sh wv:carol@lab.example`
  const cli = resolve(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js')
  const { code, stdout, stderr } = await new Promise<{ code: number, stdout: string, stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, 'conformance', '--peer', BARAZA_URL, '--domain', 'lab.example', '--sut-domain', BARAZA_DOMAIN,
      '--listen-port', String(port), '--timeout', '35000', '--format', 'json', '--trigger', trigger],
    { timeout: 300_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
  // One CI run reported S-006 and S-012 "not testable": the lab's set-up with Baraza reached no session. If any
  // assertion here fails, this says whether barazad was still alive and what it and the lab logged.
  const diagnose = (): void => {
    t.comment(`barazad alive: ${String(barazaAlive())}; lab exit ${code}; lab stderr (end): ${stderr.slice(-3000)}`)
    for (const line of barazaLog().slice(-40)) t.comment(`barazad: ${line}`)
  }
  t.equal(code, 4, 'exit 4: a mandatory item failed')
  let report: { items: Array<{ id: string, verdict: string, checks: Array<{ check: string, outcome: string }> }> }
  try {
    report = JSON.parse(stdout) as typeof report
  } catch (err) {
    t.fail(`the lab's stdout is not its JSON report: ${String(err)}`)
    diagnose()
    return
  }
  const verdict = (id: string): string | undefined => report.items.find((i) => i.id === id)?.verdict
  const outcome = (id: string, check: string): string | undefined => report.items.find((i) => i.id === id)?.checks.find((c) => c.check === check)?.outcome
  // Stable verdicts: they come from the set-up the lab starts and the session it names.
  t.equal(verdict('S-001'), 'pass', 'HTTP both ways')
  t.equal(verdict('S-005'), 'fail', 'its step 3 carries an id of its own; steps 5 and 7 no header')
  t.equal(verdict('S-006'), 'fail', 'it refuses (closes on) the session the lab named by a grammatical id')
  t.equal(outcome('S-006', 'session-accepted'), 'fail')
  t.equal(verdict('S-010'), 'pass')
  t.not(verdict('S-011'), 'pass', 'no response half to redirect later: partial evidence is never a pass')
  // The rest depends on Baraza's own set-up towards the lab, which it starts 0-30 s after the trigger and which
  // may or may not complete within the lab's timeout: reported, not asserted.
  for (const id of ['S-004', 'S-007', 'S-008', 'S-009', 'S-011']) t.comment(`${id}: ${String(verdict(id))}`)
  t.equal(verdict('S-012'), 'fail', 'ids like 0000000020-0 and 31@x.example')
  if (!t.passing()) diagnose()
})
