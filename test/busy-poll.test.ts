// Busy polling (src/wire/busy-poll.ts): the option is validated everywhere it
// is accepted, I/O with it on keeps the event loop turning (counted in loop
// turns), I/O with it off does not, the spinner always stops, and traffic is
// unchanged with it on. No assertion here is about time: turns are counted.
import t from 'tap'
import { SspNode } from '../src/ssp/node.js'
import { busyPollTurns, isBusyPollMicros, MAX_BUSY_POLL_MICROS, pollAfterIo } from '../src/wire/busy-poll.js'
import { WireClient } from '../src/wire/client.js'
import { resolveServerOptions } from '../src/wire/server-options.js'
import { nodePair } from './helpers/ssp-nodes.js'
import { pipeline } from './helpers/ssp-requests.js'
import { startServer } from './helpers/server.js'
import { delay, until } from './helpers/wait.js'

/** Resolve once the spinner has stopped: the turn count holds still across two timer ticks. */
async function spinnerStopped (): Promise<void> {
  let last = -1
  await until(() => {
    const now = busyPollTurns()
    const still = now === last
    last = now
    return still
  }, 'the busy-poll spinner to stop', 10_000)
}

t.test('the option: integers from 0 to 1,000,000, refused otherwise with SSP_ERR_INVALID_ARGUMENT', async (t) => {
  for (const ok of [0, 1, 200, MAX_BUSY_POLL_MICROS]) t.ok(isBusyPollMicros(ok), `${ok} accepted`)
  for (const bad of [-1, 1.5, MAX_BUSY_POLL_MICROS + 1, Number.NaN, '200', null]) t.notOk(isBusyPollMicros(bad), `${String(bad)} refused`)
  t.equal(resolveServerOptions({}).busyPollMicros, 0, 'server default: off')
  t.equal(resolveServerOptions({ busyPollMicros: 0 }).busyPollMicros, 0, 'server: 0 accepted')
  t.equal(resolveServerOptions({ busyPollMicros: 150 }).busyPollMicros, 150)
  t.throws(() => resolveServerOptions({ busyPollMicros: -5 }), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'server: negative')
  t.throws(() => new WireClient('http://127.0.0.1:1/', { busyPollMicros: 2_000_000 }), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'client: over the cap')
  t.throws(() => new SspNode({ domain: 'a.example', resolver: false, busyPollMicros: 0.5 }), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'node: not an integer')
})

t.test('pollAfterIo(0) arms nothing; a window keeps the loop turning, then stops by itself', async (t) => {
  await spinnerStopped()
  const before = busyPollTurns()
  pollAfterIo(0)
  await delay(20)
  t.equal(busyPollTurns(), before, 'no turns for a 0 window')

  pollAfterIo(5_000) // 5 ms
  pollAfterIo(1_000) // a shorter window never shortens the deadline
  await new Promise((resolve) => setImmediate(resolve))
  await spinnerStopped()
  const turns = busyPollTurns() - before
  t.ok(turns > 1, `the loop turned while polling (${turns} turns)`)
  const after = busyPollTurns()
  await delay(30)
  t.equal(busyPollTurns(), after, 'and stays stopped without I/O')
})

t.test('a WireServer polls after its reads only when busyPollMicros is set', async (t) => {
  for (const micros of [0, 2_000]) {
    await spinnerStopped()
    const ts = await startServer(t, { busyPollMicros: micros })
    const c = await ts.connect()
    const before = busyPollTurns()
    c.write(pipeline(4))
    const answers = await c.waitAnswers(4)
    t.same(answers.map((a) => a.status), [200, 200, 200, 200], `busyPollMicros ${micros}: all acknowledged`)
    await spinnerStopped()
    const turns = busyPollTurns() - before
    if (micros === 0) t.equal(turns, 0, 'off: no polling turns')
    else t.ok(turns > 0, `on: the loop polled after the read (${turns} turns)`)
    c.destroy()
  }
})

t.test('a WireClient polls after its writes and reads only when busyPollMicros is set', async (t) => {
  const ts = await startServer(t)
  for (const micros of [0, 2_000]) {
    await spinnerStopped()
    const client = new WireClient(`http://127.0.0.1:${ts.port}/ssp`, { busyPollMicros: micros })
    t.teardown(() => client.destroy())
    const before = busyPollTurns()
    const res = await Promise.all([1, 2, 3].map((i) => client.send('<x/>', { transactionId: `BP${micros}_${i}` })))
    t.same(res.map((r) => r.status), [200, 200, 200], `busyPollMicros ${micros}: all acknowledged`)
    await client.close()
    await spinnerStopped()
    const turns = busyPollTurns() - before
    if (micros === 0) t.equal(turns, 0, 'off: no polling turns')
    else t.ok(turns > 0, `on: the loop polled (${turns} turns)`)
  }
})

t.test('two SspNodes with busyPollMicros: every transaction answered, the spinner stops after close', async (t) => {
  await spinnerStopped()
  const before = busyPollTurns()
  const { a } = await nodePair(t, { busyPollMicros: 500 }, { busyPollMicros: 500 })
  const n = 300
  const bodies = Array.from({ length: n }, (_, i) => `<m i="${i}"/>`)
  const answers = await Promise.all(bodies.map((b) => a.request('b.example', b)))
  t.same(answers.map((x) => x.primitive.toString('utf8')), bodies, 'each answer is its own request echoed, in order of the calls')
  t.ok(busyPollTurns() > before, 'the nodes polled')
  await a.close()
  await spinnerStopped()
  t.pass('stopped')
})
