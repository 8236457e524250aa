#!/usr/bin/env node
// Soak: the long reliability run of issue 8. Two SspNodes (a.example, b.example) whose peer
// URLs point at fault proxies in BOTH directions; the proxies kill connections at random
// points (half of the kills as TCP RST), delay chunks, split writes down to single bytes
// and stall reading. Transactions go both ways, each with a unique body; at the end:
//   lost        request() rejected, or answered with another request's answer
//   duplicated  the receiving application saw the same transaction twice
// must both be zero. The run stops at --tx transactions once --kills kills happened, and
// never goes beyond 3 x --tx transactions.
//
//   npm run build && node bench/soak.mjs                    # 100,000 transactions, >= 1,000 kills
//   node bench/soak.mjs --tx 20000 --kills 200              # the CI figure, as a script
//   options: --seed N  --concurrency 64  --kill-bytes 1,50000  --max-resends 1000  --out bench/results/soak.json
//
// The proxy is test/helpers/fault-proxy.ts (node builtins only), transpiled here with
// typescript's transpileModule into a temporary .mjs: one source for the test and the soak.
// Exit status 1 if anything was lost or duplicated (or the kill target was not reached).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os, { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { benchArgs } from './args.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const require = createRequire(import.meta.url)
const { argv, opt } = benchArgs(import.meta.url, {
  tx: { type: 'string' },
  kills: { type: 'string' },
  seed: { type: 'string' },
  concurrency: { type: 'string' },
  'kill-bytes': { type: 'string' },
  'max-resends': { type: 'string' },
  out: { type: 'string' }
})
const TX = Number(opt('tx', 100_000))
const KILLS = Number(opt('kills', 1_000))
const SEED = Number(opt('seed', 0x50a4))
const CONCURRENCY = Number(opt('concurrency', 64))
const [KILL_MIN, KILL_MAX] = String(opt('kill-bytes', '1,50000')).split(',').map(Number)
const MAX_RESENDS = Number(opt('max-resends', 1000))
const OUT = opt('out', join(root, 'bench/results/soak.json'))

// ---- the proxy, from the test helper's TypeScript source
const ts = require('typescript')
const proxySrc = readFileSync(join(root, 'test/helpers/fault-proxy.ts'), 'utf8')
const js = ts.transpileModule(proxySrc, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
const tmp = mkdtempSync(join(tmpdir(), 'ssp-soak-'))
writeFileSync(join(tmp, 'fault-proxy.mjs'), js)
const { startFaultProxy, startFaults, killingLink } = await import(pathToFileURL(join(tmp, 'fault-proxy.mjs')).href)
rmSync(tmp, { recursive: true, force: true })
const { SspNode } = await import(pathToFileURL(join(root, 'dist/index.js')).href)

// ---- nodes
const calls = { a: new Map(), b: new Map() }
function makeNode (domain, seen) {
  return new SspNode({
    domain,
    resolver: false,
    transactionTimeout: 30_000,
    maxResends: MAX_RESENDS,
    closeTimeout: 2_000,
    client: { reconnectDelay: 2, maxReconnectDelay: 50, maxReconnectAttempts: 1000, closeTimeout: 2_000 },
    server: { timerResolution: 50 },
    handler: async (tx) => {
      const body = tx.primitive.toString('utf8')
      const id = /^<q id="([^"]+)"\/>$/.exec(body)?.[1] ?? `malformed:${body}`
      seen.set(id, (seen.get(id) ?? 0) + 1)
      if ((id.charCodeAt(id.length - 1) & 3) === 0) await new Promise((resolve) => setImmediate(resolve))
      return `<r id="${id}"/>`
    }
  })
}
const a = makeNode('a.example', calls.a)
const b = makeNode('b.example', calls.b)
const [ua] = await a.start()
const [ub] = await b.start()
const toB = await startFaultProxy({ target: ub, seed: SEED })
const toA = await startFaultProxy({ target: ua, seed: SEED + 1 })
a.addPeer('b.example', toB.url())
b.addPeer('a.example', toA.url())
await a.request('b.example', '<q id="warm-a"/>')
await b.request('a.example', '<q id="warm-b"/>')
startFaults([toB, toA], killingLink([KILL_MIN, KILL_MAX]))
const killsBefore = toA.kills + toB.kills
const kills = () => toA.kills + toB.kills - killsBefore

// ---- load
const MAX_TX = TX * 3
let issued = 0
let resolved = 0
const failures = []
const wrong = []
const rtt = []
const rss0 = process.memoryUsage().rss
let rssMax = rss0
const started = performance.now()
let lastReport = started
async function worker () {
  while (issued < MAX_TX && (issued < TX || kills() < KILLS)) {
    const n = issued++
    const fromA = (n & 1) === 0
    const id = `${fromA ? 'a' : 'b'}${n}`
    const t0 = performance.now()
    try {
      const ans = await (fromA ? a : b).request(fromA ? 'b.example' : 'a.example', `<q id="${id}"/>`)
      resolved++
      rtt.push(performance.now() - t0)
      if (ans.primitive.toString('utf8') !== `<r id="${id}"/>`) wrong.push(id)
    } catch (err) {
      failures.push(`${id}: ${err.code ?? err.message}`)
    }
    const now = performance.now()
    if (now - lastReport > 5000) {
      lastReport = now
      rssMax = Math.max(rssMax, process.memoryUsage().rss)
      process.stderr.write(`  ${issued} issued, ${resolved} answered, ${failures.length} failed, ${kills()} kills, ${((now - started) / 1000).toFixed(0)} s\n`)
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker))
const seconds = (performance.now() - started) / 1000
rssMax = Math.max(rssMax, process.memoryUsage().rss)
toB.setFaults({ killProbability: 0, delayProbability: 0, splitProbability: 0, stallProbability: 0 })
toA.setFaults({ killProbability: 0, delayProbability: 0, splitProbability: 0, stallProbability: 0 })
for (let i = 0; i < 500 && (a.getStats().pending > 0 || b.getStats().pending > 0); i++) await new Promise((resolve) => setTimeout(resolve, 10))

// ---- exactly once at the application
let duplicated = 0
let missing = 0
for (let n = 0; n < issued; n++) {
  const fromA = (n & 1) === 0
  const c = (fromA ? calls.b : calls.a).get(`${fromA ? 'a' : 'b'}${n}`) ?? 0
  if (c === 0) missing++
  else if (c > 1) duplicated++
}
const extra = calls.a.size + calls.b.size - (issued + 2)
rtt.sort((x, y) => x - y)
const pct = (p) => rtt.length === 0 ? 0 : rtt[Math.min(rtt.length - 1, Math.floor(p / 100 * rtt.length))]
const sa = a.getStats()
const sb = b.getStats()
const pa = toA.stats()
const pb = toB.stats()
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
  command: `node bench/soak.mjs ${argv.join(' ')}`.trim(),
  seed: SEED,
  concurrency: CONCURRENCY,
  killAfterBytes: [KILL_MIN, KILL_MAX],
  maxResends: MAX_RESENDS,
  transactions: issued,
  answered: resolved,
  lost: failures.length + wrong.length,
  duplicatedAtApplication: duplicated,
  missingAtApplication: missing,
  extraAtApplication: extra,
  kills: kills(),
  resets: pa.resets + pb.resets,
  connections: pa.connections + pb.connections,
  splitConnections: pa.splitConnections + pb.splitConnections,
  delayedConnections: pa.delayedConnections + pb.delayedConnections,
  stalls: pa.stalls + pb.stalls,
  bytesForwarded: pa.bytesForwarded + pb.bytesForwarded,
  bytesDroppedByKills: pa.bytesDropped + pb.bytesDropped,
  resent: sa.resent + sb.resent,
  duplicatesDroppedByReceivers: sa.duplicates + sb.duplicates,
  lateAnswers: sa.lateAnswers + sb.lateAnswers,
  answerFailures: sa.answerFailures + sb.answerFailures,
  seconds: Number(seconds.toFixed(1)),
  transactionsPerSecond: Math.round(issued / seconds),
  rttMs: { p50: Number(pct(50).toFixed(2)), p99: Number(pct(99).toFixed(2)), p999: Number(pct(99.9).toFixed(2)), max: Number((rtt[rtt.length - 1] ?? 0).toFixed(2)) },
  rssMiB: { start: Math.round(rss0 / 1048576), max: Math.round(rssMax / 1048576) },
  firstFailures: failures.slice(0, 5)
}
await Promise.all([a.close(), b.close()])
await Promise.all([toA.close(), toB.close()])
console.log(JSON.stringify(result, null, 2))
mkdirSync(dirname(OUT), { recursive: true })
writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n')
const ok = result.lost === 0 && duplicated === 0 && missing === 0 && extra === 0 && result.kills >= KILLS && issued >= TX
console.error(ok ? 'soak: OK (nothing lost, nothing duplicated)' : 'soak: FAILED')
process.exit(ok ? 0 : 1)
