/**
 * Delivery guarantees under faults (issue 8): two nodes whose peer URLs point
 * at fault proxies in BOTH directions, so every connection of the pair (A's
 * requests and B's answers, B's requests and A's answers) crosses a proxy
 * that kills connections at random points, delays, splits writes down to
 * single bytes and stalls reading.
 *
 * At least 20,000 transactions (both directions) and at least 200 random
 * kills; asserted: zero lost (every request() resolves, with the answer to
 * its own unique body) and zero duplicated at the application (the handler
 * sees every transaction exactly once).
 *
 * Bounded: the run stops after a fixed number of transactions whatever the
 * kill count; every request() has a transaction timeout; the drain at the end
 * is a bounded poll.
 */
import t from 'tap'
import { isSspError } from '../src/errors.js'
import { SspNode, type Answer } from '../src/ssp/node.js'
import type { IncomingTransaction } from '../src/ssp/options.js'
import { killingLink, startFaultProxy, startFaults, type FaultProxy } from './helpers/fault-proxy.js'

const TARGET_TX = Number(process.env.SSP_RELIABILITY_TX ?? 20_000)
const TARGET_KILLS = Number(process.env.SSP_RELIABILITY_KILLS ?? 200)
/** Hard cap: the run never goes beyond this many transactions. */
const MAX_TX = TARGET_TX * 3
const CONCURRENCY = 64
const SEED = Number(process.env.SSP_RELIABILITY_SEED ?? 0x5eed)

interface Side {
  node: SspNode
  /** Handler calls per unique body id. */
  calls: Map<string, number>
  /** Transaction ids the handler saw, to check they are unique too. */
  tids: Map<string, number>
}

function makeNode (domain: string, calls: Map<string, number>, tids: Map<string, number>): SspNode {
  const handler = async (tx: IncomingTransaction): Promise<string> => {
    const body = tx.primitive.toString('utf8')
    const m = /^<q id="([^"]+)"\/>$/.exec(body)
    const id = m?.[1] ?? `malformed:${body}`
    calls.set(id, (calls.get(id) ?? 0) + 1)
    tids.set(tx.transactionId, (tids.get(tx.transactionId) ?? 0) + 1)
    // Some answers are immediate, some come after a turn of the event loop.
    if ((id.charCodeAt(id.length - 1) & 3) === 0) await new Promise((resolve) => setImmediate(resolve))
    return `<r id="${id}"/>`
  }
  return new SspNode({
    domain,
    resolver: false,
    handler,
    transactionTimeout: 30_000,
    setupTimeout: 10_000,
    // The default resend policy (bounded by the transaction deadline and maxResends 100).
    closeTimeout: 2_000,
    client: { reconnectDelay: 2, maxReconnectDelay: 50, maxReconnectAttempts: 1000, connectTimeout: 5_000 },
    server: { timerResolution: 50 }
  })
}

t.test('20,000 transactions through killing proxies: none lost, none duplicated', async (t) => {
  const sides: Record<'a' | 'b', Side> = {
    a: { node: undefined as unknown as SspNode, calls: new Map(), tids: new Map() },
    b: { node: undefined as unknown as SspNode, calls: new Map(), tids: new Map() }
  }
  sides.a.node = makeNode('a.example', sides.a.calls, sides.a.tids)
  sides.b.node = makeNode('b.example', sides.b.calls, sides.b.tids)
  const a = sides.a.node
  const b = sides.b.node
  const proxies: FaultProxy[] = []
  t.teardown(async () => {
    await Promise.all([a.close(), b.close()])
    await Promise.all(proxies.map((p) => p.close()))
  })
  const [ua] = await a.start()
  const [ub] = await b.start()
  // toB carries A's connections to B (A's requests, A's answers); toA the reverse.
  const toB = await startFaultProxy({ target: ub!, seed: SEED })
  const toA = await startFaultProxy({ target: ua!, seed: SEED + 1 })
  proxies.push(toB, toA)
  a.addPeer('b.example', toB.url())
  b.addPeer('a.example', toA.url())

  // Sessions both ways come up without faults; the faults start with the traffic.
  await a.request('b.example', '<q id="warm-a"/>')
  await b.request('a.example', '<q id="warm-b"/>')
  // The connections opened for the warm-up have no faults: startFaults cuts them so the new ones do.
  startFaults([toB, toA], killingLink([1, 50_000]))
  const killsBefore = toA.kills + toB.kills

  let issued = 0
  let resolved = 0
  const failures: string[] = []
  const mismatches: string[] = []
  const kills = (): number => toA.kills + toB.kills - killsBefore

  const one = async (): Promise<void> => {
    const n = issued++
    const from = (n & 1) === 0 ? a : b
    const to = from === a ? 'b.example' : 'a.example'
    const id = `${from === a ? 'a' : 'b'}${n}`
    let ans: Answer
    try {
      ans = await from.request(to, `<q id="${id}"/>`)
    } catch (err) {
      failures.push(`${id}: ${(err as Error).message}`)
      return
    }
    resolved++
    const got = ans.primitive.toString('utf8')
    if (got !== `<r id="${id}"/>`) mismatches.push(`${id} answered with ${got}`)
  }
  const worker = async (): Promise<void> => {
    // Bounded: stops at the target (and the kill target), never beyond MAX_TX.
    while (issued < MAX_TX && (issued < TARGET_TX || kills() < TARGET_KILLS)) {
      await one()
    }
  }
  const started = Date.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const seconds = (Date.now() - started) / 1000

  // Let answers whose 200s are still in flight settle, without faults (bounded poll).
  toB.setFaults({ killProbability: 0, delayProbability: 0, splitProbability: 0, stallProbability: 0 })
  toA.setFaults({ killProbability: 0, delayProbability: 0, splitProbability: 0, stallProbability: 0 })
  for (let i = 0; i < 200 && (a.getStats().pending > 0 || b.getStats().pending > 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }

  const sa = a.getStats()
  const sb = b.getStats()
  t.comment(`${issued} transactions in ${seconds.toFixed(1)} s, ${kills()} kills ` +
    `(${toA.counts.resets + toB.counts.resets} RST), resent A ${sa.resent} B ${sb.resent}, ` +
    `duplicates dropped A ${sa.duplicates} B ${sb.duplicates}, late answers A ${sa.lateAnswers} B ${sb.lateAnswers}, ` +
    `proxy ${JSON.stringify(toA.stats())} ${JSON.stringify(toB.stats())} split conns ${toA.counts.splitConnections + toB.counts.splitConnections}, stalls ${toA.counts.stalls + toB.counts.stalls}`)

  t.ok(issued >= TARGET_TX, `at least ${TARGET_TX} transactions (${issued})`)
  t.ok(kills() >= TARGET_KILLS, `at least ${TARGET_KILLS} random kills (${kills()})`)
  t.same(failures.slice(0, 10), [], 'no request failed (first 10 shown)')
  t.equal(failures.length, 0, 'zero lost')
  t.equal(resolved, issued, 'every request() resolved')
  t.same(mismatches.slice(0, 10), [], 'every answer is the answer to its own request')

  // Exactly once at the application: every id handed over once, no id twice, nothing else.
  const dup: string[] = []
  const missing: string[] = []
  for (let n = 0; n < issued; n++) {
    const side = (n & 1) === 0 ? sides.b : sides.a // a's requests are handled by b
    const id = `${(n & 1) === 0 ? 'a' : 'b'}${n}`
    const c = side.calls.get(id) ?? 0
    if (c === 0) missing.push(id)
    else if (c > 1) dup.push(`${id} x${c}`)
  }
  t.same(dup.slice(0, 10), [], 'zero duplicated at the application')
  t.same(missing.slice(0, 10), [], 'every transaction reached the application')
  t.equal(sides.a.calls.size + sides.b.calls.size, issued + 2, 'nothing else reached the application')
  const tidDup = [...sides.a.tids, ...sides.b.tids].filter(([, c]) => c > 1)
  t.same(tidDup.slice(0, 10), [], 'every transaction id handed over once')
  t.ok(sa.resent + sb.resent > 0, 'the kills made the nodes resend')
  t.equal(sa.pending + sb.pending, 0, 'nothing left pending')
})

t.test('a link that cuts nearly every connection within 3 KB: every request ends in one answer or one typed failure, none duplicated', async (t) => {
  // Default resend and reconnect policy: here the faults win often, and that must show
  // as typed failures, never as a request that hangs, a wrong answer or a duplicate.
  const calls = new Map<string, number>()
  const mk = (domain: string): SspNode => new SspNode({
    domain,
    resolver: false,
    transactionTimeout: 1_000,
    setupTimeout: 1_000,
    closeTimeout: 200,
    client: { closeTimeout: 200 },
    handler: (tx) => {
      const id = /id="([^"]+)"/.exec(tx.primitive.toString())?.[1] ?? '?'
      calls.set(id, (calls.get(id) ?? 0) + 1)
      return `<r id="${id}"/>`
    }
  })
  const a = mk('a.example')
  const b = mk('b.example')
  const proxies: FaultProxy[] = []
  t.teardown(async () => {
    await Promise.all([a.close(), b.close()])
    await Promise.all(proxies.map((p) => p.close()))
  })
  const [ua] = await a.start()
  const [ub] = await b.start()
  const toB = await startFaultProxy({ target: ub!, seed: SEED + 2 })
  const toA = await startFaultProxy({ target: ua!, seed: SEED + 3 })
  proxies.push(toB, toA)
  a.addPeer('b.example', toB.url())
  b.addPeer('a.example', toA.url())
  await a.request('b.example', '<q id="warm-a"/>')
  await b.request('a.example', '<q id="warm-b"/>')
  startFaults([toB, toA], { killProbability: 1, killAfterBytes: [1, 3000], splitProbability: 0.2, maxPiece: 4, delayProbability: 0.2, maxDelayMs: 3 })

  const TOTAL = 120
  const settled = new Map<string, string>()
  const typed = new Set(['SSP_ERR_TRANSACTION_TIMEOUT', 'SSP_ERR_UNACKNOWLEDGED', 'SSP_ERR_CONNECT', 'SSP_ERR_SESSION_CLOSED',
    'SSP_ERR_SETUP_TIMEOUT', 'SSP_ERR_SETUP_PROTOCOL', 'SSP_ERR_QUEUE_FULL'])
  let issued = 0
  const worker = async (): Promise<void> => {
    while (issued < TOTAL) {
      const n = issued++
      const from = (n & 1) === 0 ? a : b
      const id = `${(n & 1) === 0 ? 'a' : 'b'}${n}`
      try {
        const ans = await from.request(from === a ? 'b.example' : 'a.example', `<q id="${id}"/>`)
        settled.set(id, ans.primitive.toString() === `<r id="${id}"/>` ? 'answer' : `WRONG ${ans.primitive.toString()}`)
      } catch (err) {
        settled.set(id, isSspError(err) && typed.has(err.code) ? err.code : `UNTYPED ${String(err)}`)
      }
    }
  }
  // Bounded: every request is bounded by the transaction or set-up timeout; the guard only reports.
  let guardHit = false
  const guard = new Promise<void>((resolve) => { const g = setTimeout(() => { guardHit = true; resolve() }, 60_000); g.unref() })
  await Promise.race([Promise.all(Array.from({ length: 24 }, worker)), guard])
  const outcomes: Record<string, number> = {}
  for (const v of settled.values()) outcomes[v.split(' ')[0]!] = (outcomes[v.split(' ')[0]!] ?? 0) + 1
  t.comment(`${TOTAL} requests, ${toA.kills + toB.kills} kills: ${JSON.stringify(outcomes)}`)
  t.notOk(guardHit, 'every request settled')
  t.equal(settled.size, TOTAL, 'one outcome per request')
  const bad = [...settled].filter(([, v]) => v.startsWith('WRONG') || v.startsWith('UNTYPED'))
  t.same(bad.slice(0, 10), [], 'every outcome is the right answer or a typed failure')
  const dups = [...calls].filter(([, c]) => c > 1)
  t.same(dups.slice(0, 10), [], 'no transaction reached the application twice')
  const answeredNotHandled = [...settled].filter(([id, v]) => v === 'answer' && calls.get(id) !== 1)
  t.same(answeredNotHandled, [], 'every answered request was handled exactly once')
  t.ok((outcomes.answer ?? 0) > 0, 'some requests still got through')
})
