/**
 * The commands a newcomer runs: `demo` (what `npm start` runs), `send`
 * against `serve --domain ... --echo`, and the summary they print. The
 * commands run in-process (so their code is measured by coverage) with
 * stdout captured; `serve --domain` runs as the built CLI process, as a user
 * would start it.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { demoCommand } from '../src/cli/demo.js'
import { EXIT, fail } from '../src/cli/exit.js'
import { newHistogram } from '../src/cli/load.js'
import { collectPeer, parseBusyPoll, parseCount, parsePeers } from '../src/cli/node-options.js'
import { busyPollTurns } from '../src/wire/busy-poll.js'
import { sendCommand } from '../src/cli/send.js'
import { printSummary, summaryJson, textHistogram } from '../src/cli/summary.js'
import { createError } from '../src/errors.js'
import { freePort } from './helpers/cli-child.js'

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const GUARD_MS = 45_000

/** Run fn with process.stdout.write captured; returns what it wrote and its result. */
async function captured<T> (fn: () => Promise<T>): Promise<{ out: string, result: T }> {
  const write = process.stdout.write.bind(process.stdout)
  let out = ''
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
    return true
  }) as typeof process.stdout.write
  try {
    const result = await fn()
    return { out, result }
  } finally {
    process.stdout.write = write
  }
}

t.test('demo --json: every transaction answered both ways, zero errors, one connection pair', async (t) => {
  const { out, result } = await captured(() => demoCommand({ count: '300', depth: '8', size: '380', json: true, logLevel: 'silent' }))
  t.equal(result, EXIT.OK)
  const j = JSON.parse(out) as { [k: string]: number } & { tps: number, p50_us: number, p99_us: number, p999_us: number, bytes_out: number, a_to_b: Record<string, number>, b_to_a: Record<string, number> }
  t.equal(j.sent, 600)
  t.equal(j.answered, 600)
  t.equal(j.lost, 0)
  t.equal(j.errors, 0)
  t.equal(j.a_to_b.answered, 300)
  t.equal(j.b_to_a.answered, 300)
  t.ok(j.tps > 0, 'a rate is reported')
  t.ok(j.p50_us > 0 && j.p99_us >= j.p50_us && j.p999_us >= j.p99_us, 'percentiles are ordered')
  t.ok(j.bytes_out > 600 * 380, 'bytes moved cover at least the request bodies')
})

t.test('demo --busy-poll: the nodes poll, every transaction is still answered', async (t) => {
  const before = busyPollTurns()
  const { out, result } = await captured(() => demoCommand({ count: '200', depth: '8', size: '380', json: true, busyPoll: '300', logLevel: 'silent' }))
  t.equal(result, EXIT.OK)
  const j = JSON.parse(out) as { answered: number, errors: number }
  t.equal(j.answered, 400)
  t.equal(j.errors, 0)
  t.ok(busyPollTurns() > before, 'the event loop polled')
  await t.rejects(demoCommand({ count: '10', depth: '2', size: '100', json: true, busyPoll: '2000000', logLevel: 'silent' }), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'over the cap: refused by the node')
})

t.test('demo text summary: rates, four percentiles, histogram rows', async (t) => {
  const { out, result } = await captured(() => demoCommand({ count: '100', depth: '4', size: '200', logLevel: 'silent' }))
  t.equal(result, EXIT.OK)
  t.match(out, /sessions up both ways over one connection pair \(inbound connections: a 1, b 1\)/)
  t.match(out, /both ways: 200\/200 transactions answered/)
  t.match(out, /round trip\s+p50 \S+ µs|ms {2}p90/)
  t.match(out, /p99\.9/)
  t.match(out, /errors\s+0/)
  t.match(out, /│█/, 'a text histogram is drawn')
})

t.test('textHistogram: one row per power of two, longest bar for the fullest bucket', async (t) => {
  const buckets = new Array<number>(40).fill(0)
  buckets[3] = 10
  buckets[5] = 40
  const rows = textHistogram(buckets, 20).trimEnd().split('\n')
  t.equal(rows.length, 3, 'rows 8-16, 16-32 (empty), 32-64 µs')
  t.match(rows[0]!, /8 µs – 16 µs │█{5} {15} 10$/)
  t.match(rows[1]!, /│ {20} 0$/)
  t.match(rows[2]!, /│█{20} 40$/)
  t.equal(textHistogram(new Array<number>(40).fill(0)), '  (no samples)\n')
})

t.test('summary JSON and text from a hand-made result', async (t) => {
  const rtt = newHistogram()
  const ack = newHistogram()
  for (let i = 1; i <= 100; i++) { rtt.recordValue(i * 10); ack.recordValue(i) }
  const r = { sent: 101, answered: 100, lost: 1, errors: { SSP_ERR_TRANSACTION_TIMEOUT: 1 }, elapsedMs: 1000, ack, acksOvertaken: 3, rtt, rttBuckets: new Array<number>(40).fill(0), bytesSent: 0, abandoned: 0, stopped: undefined }
  const j = summaryJson(r, { bytesIn: 5, bytesOut: 7, interopFallbacks: 2 })
  t.equal(j.tps, 100)
  t.equal(j.lost, 1)
  t.equal(j.errors, 1)
  t.equal(j.p50_us, 500)
  t.equal(j.interop_fallbacks, 2)
  let text = ''
  printSummary(r, { bytesIn: 5, bytesOut: 7, interopFallbacks: 2, label: 'x' }, { write: (s: string) => { text += s; return true } } as unknown as NodeJS.WritableStream)
  t.match(text, /x: 100\/101 transactions answered/)
  t.match(text, /bytes moved\s+12 \(7 sent, 5 received/)
  t.match(text, /errors\s+\{"SSP_ERR_TRANSACTION_TIMEOUT":1\}/)
  t.match(text, /acknowledgement .*\(3 answers overtook their 200: round trip only\)/, 'overtaken acks are said, not recorded as acks')
  t.equal(j.acks_overtaken, 3)
  t.equal(j.ack_p50_us, 50, 'ack percentiles from acknowledged transactions only')
  const none = summaryJson({ ...r, ack: newHistogram() }, { interopFallbacks: 0 })
  t.equal(none.ack_p50_us, null, 'no acknowledgement recorded: null, not a round-trip figure')
})

t.test('load: an answer that overtakes its 200 counts as round trip only', async (t) => {
  const { runLoad } = await import('../src/cli/load.js')
  let n = 0
  // A stand-in node: every other answer overtakes its 200 (ackMicros undefined), as 19,984 of 20,000 did in a demo.
  const node = { request: async () => ({ rttMicros: 100, ackMicros: n++ % 2 === 0 ? undefined : 40 }) }
  const r = await runLoad(node as never, 'b.example', { count: 10, depth: 2, body: Buffer.from('<x/>') })
  t.equal(r.answered, 10)
  t.equal(r.acksOvertaken, 5)
  t.equal(r.ack.totalCount, 5, 'only the five acknowledged before their answer')
  t.equal(r.ack.getValueAtPercentile(50), 40)
  t.equal(r.rtt.totalCount, 10)
})

t.test('option parsing: --peer DOMAIN=URL[,1.2], counts, exit codes of errors', async (t) => {
  t.same(collectPeer('b=http://x/', ['a=http://y/']), ['a=http://y/', 'b=http://x/'])
  t.same(parsePeers(['b.example=http://127.0.0.1:1/', 'c.example=http://127.0.0.1:2/,1.2']), {
    'b.example': { url: 'http://127.0.0.1:1/', version: '1.3' },
    'c.example': { url: 'http://127.0.0.1:2/', version: '1.2' }
  })
  t.throws(() => parsePeers(['nourl']), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => parseCount('--count', '-1'), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => parseCount('--depth', '0', 1), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.equal(parseCount('--count', '12'), 12)
  for (const bad of ['', '1e3', ' 5', '0x10', '1.0', '+3']) t.throws(() => parseCount('--count', bad), { code: 'SSP_ERR_INVALID_ARGUMENT' }, `--count ${JSON.stringify(bad)} refused`)
  t.same(parsePeers(['x.example=http://127.0.0.1:3/,depth=1']), { 'x.example': { url: 'http://127.0.0.1:3/', version: '1.3', pipelineDepth: 1 } })
  t.throws(() => parsePeers(['x.example=http://127.0.0.1:3/,depth=0']), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => parsePeers(['x.example=http://127.0.0.1:3/,fast']), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.equal(parseBusyPoll(undefined), 0, '--busy-poll defaults to off')
  t.equal(parseBusyPoll('200'), 200)
  t.throws(() => parseBusyPoll('-3'), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  const stderr = process.stderr.write.bind(process.stderr)
  let err = ''
  process.stderr.write = ((s: string) => { err += s; return true }) as typeof process.stderr.write
  try {
    t.equal(fail(createError('SSP_ERR_INVALID_ARGUMENT', { message: 'x' }), false), EXIT.USAGE)
    t.equal(fail(createError('SSP_ERR_CONNECT'), false), EXIT.UNREACHABLE)
    t.equal(fail(new Error('boom'), true), EXIT.FAILURE)
  } finally {
    process.stderr.write = stderr
  }
  t.match(err, /^ssp-transport: SSP_ERR_INVALID_ARGUMENT: invalid argument: x\n/)
  t.match(err, /ssp-transport: SSP_ERR_INTERNAL: [^\n]*boom\nError: boom\n/, '--verbose adds the stack')
})

t.test('send: unknown peer fails with a typed error (exit code 1 through the CLI)', async (t) => {
  await t.rejects(sendCommand({
    domain: 'a.example', to: 'nowhere.example', count: '1', depth: '1', size: '100', json: true,
    port: '0', host: '127.0.0.1', posture: 'strict', logLevel: 'silent'
  }), { code: 'SSP_ERR_UNKNOWN_PEER' })
})

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} is missing: run \`npm run build\` (npm test does) before this test`)
} else {
  t.test('send --json against serve --domain b.example --echo: all answered, exit 0', async (t) => {
    const sendPort = await freePort()
    const child = spawn(process.execPath, [MAIN, 'serve', '--domain', 'b.example', '--port', '0', '--echo',
      '--peer', `a.example=http://127.0.0.1:${sendPort}/`, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
    const start = Date.now()
    let m: RegExpExecArray | null = null
    while ((m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)) === null) {
      if (Date.now() - start > GUARD_MS || child.exitCode !== null) throw new Error(`serve did not start: ${err}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const { out: sent, result } = await captured(() => sendCommand({
      domain: 'a.example', to: 'b.example', peer: [`b.example=${m![1]!}/`], count: '500', depth: '16', size: '380', json: true,
      port: String(sendPort), host: '127.0.0.1', posture: 'strict', logLevel: 'silent'
    }))
    t.equal(result, EXIT.OK)
    const j = JSON.parse(sent) as Record<string, number>
    t.same([j.sent, j.answered, j.lost, j.errors], [500, 500, 0, 0])
    t.ok(typeof j.tps === 'number' && typeof j.p50_us === 'number' && typeof j.p99_us === 'number')
    child.kill('SIGTERM')
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    t.equal(code, 0, 'serve exits 0 on SIGTERM')
    t.match(err, /session up with a\.example as provider/, 'session events are logged')
    t.notMatch(err, /SendMessage|x-wv-transactionid/, 'nothing is logged per request')
  })
}
