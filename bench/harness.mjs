// The two-process federation harness of the end-to-end scenarios (e2e.mjs,
// scaling.mjs): node A (one or more nodes, and the load) in this process pinned
// to core 0, node B a child process (bench/node-b.mjs) pinned to core 1; either
// engine (two SspNodes, or the node:http + undici baseline federation); a closed
// loop that keeps N transactions outstanding and records each round trip in an
// HDR histogram; and node B's CPU, sleeps, syscalls and memory over the window.
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import os, { tmpdir } from 'node:os'
import { machine as baseMachine } from './machine.mjs'

const here = dirname(fileURLToPath(import.meta.url))
export const root = join(here, '..')

export const A_DOMAIN = 'a.example'
export const B_DOMAIN = 'b.example'

/** The engines' modules: this build's dist (ours), another build (ref, optional), the baseline federation. */
export async function engineModules (dist, ref) {
  const ours = await import(join(dist, 'index.js'))
  const refMod = ref !== undefined ? await import(join(ref, 'index.js')) : undefined
  const { BaselineNode } = await import(join(here, 'baseline-federation.mjs'))
  return { ours, ref: refMod, BaselineNode }
}

export const hasTaskset = (() => {
  if (os.cpus().length < 2) return false
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
})()

/** Machine facts; call before pinSelf (availableParallelism follows the affinity mask). */
export function machine () {
  return { ...baseMachine(), pinned: hasTaskset }
}

/** Pin this process (all its threads) to one core, when taskset exists. */
export function pinSelf (core = 0) {
  if (!hasTaskset) return
  try { execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' }) } catch {}
}

/** Voluntary context switches of a process's main (event loop) thread: how often it went to sleep. */
export function procWakeups (pid) {
  try {
    return Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
  } catch { return null }
}

/** Read and write syscalls of a process so far (/proc/<pid>/io), or null. */
export function procIo (pid) {
  try {
    const t = readFileSync(`/proc/${pid}/io`, 'utf8')
    return { r: Number(/syscr:\s*(\d+)/.exec(t)[1]), w: Number(/syscw:\s*(\d+)/.exec(t)[1]) }
  } catch { return null }
}

export const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return null
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const r2 = (x) => x === null || x === undefined ? null : Math.round(x * 100) / 100

/** Settle within `ms` whatever happens (a close that hangs must not hang the benchmark). */
export const within = (p, ms) => Promise.race([p, new Promise((resolve) => setTimeout(resolve, ms))])

export const CDF_POINTS = [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100]
let hdrBuild
/** A round-trip histogram in µs (1 µs .. 600 s, 3 significant digits). */
export async function newHist () {
  if (hdrBuild === undefined) {
    const hdr = await import('hdr-histogram-js')
    hdrBuild = hdr.default?.build ?? hdr.build
  }
  return hdrBuild({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })
}

export function readTls (dir) {
  if (dir === undefined) return undefined
  return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) }
}

/** A self-signed P-256 certificate for 127.0.0.1/localhost in a temp dir (cert.pem, key.pem). */
export function makeCert () {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-tls-'))
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
  ], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`)
  return dir
}

/**
 * Build and start one node of either engine.
 * engine: 'ours' | 'ours-poll' | 'ref' | 'ref-poll' (an SspNode from mods.ours / mods.ref; -poll:
 * with busyPollMicros) or 'baseline'.
 * server: extra SspNode `server` options (e.g. maxBodyBytes for large bodies).
 */
export async function makeNode (mods, { engine, domain, depth, busyPoll = 0, tls, handler, server }) {
  if (engine === 'ours' || engine === 'ours-poll' || engine === 'ref' || engine === 'ref-poll') {
    const Node = (engine.startsWith('ref') ? mods.ref : mods.ours).SspNode
    const node = new Node({
      domain,
      resolver: false,
      handler,
      listen: [{ port: 0, host: '127.0.0.1', tls }],
      busyPollMicros: engine.endsWith('-poll') ? busyPoll : 0,
      client: { pipelineDepth: depth, ...(tls !== undefined ? { ca: tls.cert } : {}) },
      ...(server !== undefined ? { server } : {})
    })
    const [url] = await node.start()
    return { node, url }
  }
  const node = new mods.BaselineNode({ domain, handler, tls, ca: tls?.cert, pipelining: depth })
  const [url] = await node.start()
  return { node, url }
}

/**
 * Node B: bench/node-b.mjs in a child process pinned to core 1 (SSP_BENCH_B_CORE).
 * config: { engine, domain, depth, busyPoll, dist, ref?, tlsDir?, server? }.
 * Messages: ask() -> { url } once started; ask({ peers: [[domain, url], ...] }) -> { added };
 * ask('mark') starts the measured window; ask('stats') -> { stats, hrUs }; stop().
 */
export class NodeB {
  constructor (config, nodeArgs = []) {
    // SSP_BENCH_B_NODE_ARGS: extra node flags for node B only (experiments: --trace-deopt, ...).
    const extra = (process.env.SSP_BENCH_B_NODE_ARGS ?? '').split(' ').filter((x) => x !== '')
    const args = [...extra, ...nodeArgs, join(here, 'node-b.mjs'), JSON.stringify(config)]
    this.child = hasTaskset
      ? spawn('taskset', ['-c', process.env.SSP_BENCH_B_CORE ?? '1', process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.waiters = []
    this.child.on('message', (m) => { const w = this.waiters.shift(); if (w) w(m) })
    this.exited = once(this.child, 'exit')
  }

  get pid () { return this.child.pid }

  ask (msg, timeoutMs = 60_000) {
    const p = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`node B did not answer ${typeof msg === 'string' ? msg : msg === undefined ? 'start' : JSON.stringify(msg).slice(0, 40)}`)), timeoutMs)
      this.waiters.push((m) => { clearTimeout(t); resolve(m) })
    })
    if (msg !== undefined) this.child.send(msg)
    return p
  }

  async stop () {
    try { this.child.send('exit') } catch {}
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(t)
  }
}

/**
 * Closed loop: keep `outstanding` transactions in flight for `ms`, then stop issuing and
 * let the outstanding ones finish (bounded: 15 s past the window at most). Slot k of the
 * `outstanding` belongs to `targets[k % targets.length]` ([{ node, peer }]) for the whole
 * run: a finished transaction is replaced by one to the same peer, as each peer of a real
 * federation has its own traffic (re-issuing round robin instead would split every
 * peer's batch across all the connections). Round trips (µs) go into `hist` (null: not
 * recorded, e.g. a warm-up). `bodyFor(i)` gives the i-th request body. `onDeadline(doneNow)`
 * runs once when the window ends (before the drain); `doneNow()` counts completions so far.
 */
export function drive (targets, bodyFor, outstanding, ms, hist, onDeadline) {
  return new Promise((resolve) => {
    let out = 0
    let done = 0
    let errors = 0
    let running = true
    let tEnd = 0
    let doneAtEnd = 0
    let next = 0
    const errCodes = {}
    const t0 = performance.now()
    const deadline = t0 + ms
    const finish = (timedOut) => {
      clearTimeout(guard)
      if (tEnd === 0) { tEnd = performance.now(); doneAtEnd = done }
      resolve({ completed: doneAtEnd, secs: (tEnd - t0) / 1000, errors, errCodes, timedOut, stillOutstanding: out })
    }
    const settle = (t) => {
      out--
      if (running) {
        if (performance.now() >= deadline) {
          running = false
          tEnd = performance.now()
          doneAtEnd = done
          if (onDeadline !== undefined) onDeadline(() => done)
        } else {
          issue(t)
          return
        }
      }
      if (out === 0) finish(false)
    }
    const issue = (t) => {
      out++
      const s = performance.now()
      t.node.request(t.peer, bodyFor(next++)).then(() => {
        if (hist !== null) hist.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)))
        done++
        settle(t)
      }, (err) => {
        errors++
        const c = err?.code ?? err?.message ?? 'error'
        errCodes[c] = (errCodes[c] ?? 0) + 1
        settle(t)
      })
    }
    const guard = setTimeout(() => { running = false; finish(true) }, ms + 15_000)
    for (let k = 0; k < outstanding; k++) issue(targets[k % targets.length])
  })
}

/**
 * One measured run against a started node B: warm up, mark B's window, drive, and
 * read B's CPU, memory, sleeps and syscalls, and this process's (node A's) over the
 * same window. `n` = transactions the per-transaction figures divide by.
 */
export async function measure (b, targets, bodyFor, outstanding, { secs, warmup }) {
  if (warmup > 0) await drive(targets, bodyFor, outstanding, warmup * 1000, null) // JIT, connections, buffers
  const { hrUs: markHrUs } = await b.ask('mark')
  const io0 = procIo(b.pid)
  const wB0 = procWakeups(b.pid)
  const wA0 = procWakeups(process.pid)
  const ioA0 = procIo(process.pid)
  const hist = await newHist()
  const cpuA0 = process.cpuUsage()
  // Every counter is read when the window ends, not after the drain of the transactions
  // still outstanding then: with thousands in flight the drain is long, and its shrinking
  // batches are not the steady state being measured. The divisor is the transactions
  // completed by the time node B has answered 'stats'.
  let cpuA, io1, wB1, wA1, ioA1, statsP
  let n = 1
  const r = await drive(targets, bodyFor, outstanding, secs * 1000, hist, (doneNow) => {
    cpuA = process.cpuUsage(cpuA0)
    io1 = procIo(b.pid)
    wB1 = procWakeups(b.pid)
    wA1 = procWakeups(process.pid)
    ioA1 = procIo(process.pid)
    statsP = b.ask('stats').then((m) => { n = Math.max(1, doneNow()); return m })
  })
  if (statsP === undefined) { // the window never ended normally (guard): read everything now
    cpuA = process.cpuUsage(cpuA0)
    io1 = procIo(b.pid)
    wB1 = procWakeups(b.pid)
    wA1 = procWakeups(process.pid)
    ioA1 = procIo(process.pid)
    statsP = b.ask('stats').then((m) => { n = Math.max(1, r.completed); return m })
  }
  const { stats, hrUs: statsHrUs } = await statsP
  const per = (x0, x1, f) => x0 !== null && x1 !== null ? +((f(x1) - f(x0)) / n).toFixed(3) : null
  return {
    tps: Math.round(r.completed / r.secs),
    p50us: hist.getValueAtPercentile(50),
    p99us: hist.getValueAtPercentile(99),
    p999us: hist.getValueAtPercentile(99.9),
    maxUs: hist.maxValue,
    transactions: r.completed,
    secs: +r.secs.toFixed(3),
    errors: r.errors,
    errCodes: r.errCodes,
    timedOut: r.timedOut,
    // CPU per transaction: B = one inbound request + one outbound answer (+ both 200s)
    bCpuUsPerTx: +(stats.cpuUs / n).toFixed(2),
    aCpuUsPerTx: +((cpuA.user + cpuA.system) / n).toFixed(2),
    bCpuUtil: +(stats.cpuUs / 1e6 / r.secs).toFixed(2),
    bKernelShare: +(stats.sysUs / Math.max(1, stats.cpuUs)).toFixed(2),
    // Batching, engine-agnostic: read and write syscalls, and sleeps (voluntary context
    // switches of the event loop thread), per transaction.
    bReadsPerTx: per(io0, io1, (x) => x.r),
    bWritesPerTx: per(io0, io1, (x) => x.w),
    bSleepsPerTx: per(wB0, wB1, (x) => x),
    aSleepsPerTx: per(wA0, wA1, (x) => x),
    aReadsPerTx: per(ioA0, ioA1, (x) => x.r),
    aWritesPerTx: per(ioA0, ioA1, (x) => x.w),
    // Node B's memory after the window (resident set, V8 heap).
    bRssMiB: +(stats.rss / 1048576).toFixed(1),
    bHeapMiB: +(stats.heapUsed / 1048576).toFixed(1),
    // The latency distribution (for the CDF chart): value at each percentile, µs.
    cdf: CDF_POINTS.map((p) => ({ p, us: hist.getValueAtPercentile(p) })),
    bNode: stats.node,
    bWindowUs: [markHrUs, statsHrUs]
  }
}

/**
 * The top self-time functions of the one .cpuprofile in `dir` (node B under --cpu-prof),
 * counting only the samples inside node B's measured window (V8's profile clock is
 * CLOCK_MONOTONIC, as process.hrtime), so start-up, warm-up and shutdown are left out.
 */
export function profileTop (dir, [w0, w1], transactions, count = 30) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (file === undefined) return null
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const selfT = new Map()
  let total = 0
  let busy = 0
  let t = prof.startTime
  for (let i = 0; i < prof.samples.length; i++) {
    const d = prof.timeDeltas[i] ?? 0
    t += d
    if (t < w0 || t > w1) continue
    const n = byId.get(prof.samples[i])
    total += d
    const cf = n.callFrame
    if (cf.functionName !== '(idle)') busy += d
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? cf.url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/') + ':' + (cf.lineNumber + 1) : ''}`.trim()
    selfT.set(key, (selfT.get(key) ?? 0) + d)
  }
  const tx = Math.max(1, transactions)
  const top = [...selfT.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, count)
    .map(([fn, us]) => ({ fn, pctOfBusy: Math.round((us / Math.max(1, busy)) * 1000) / 10, usPerTx: Math.round((us / tx) * 100) / 100 }))
  return { file, busy, total, top }
}

/**
 * Bytes allocated by site in a sampling heap profile (HeapProfiler.stopSampling's
 * profile, collected objects included): each node's selfSize summed by function and
 * line, largest first, per transaction.
 */
export function heapTop (file, transactions, count = 30) {
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const bySite = new Map()
  let totalBytes = 0
  const walk = (n) => {
    const cf = n.callFrame
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? cf.url.replace(/^file:\/\/.*\/(dist|node_modules|bench)\//, '$1/') + ':' + (cf.lineNumber + 1) : ''}`.trim()
    if (n.selfSize > 0) { bySite.set(key, (bySite.get(key) ?? 0) + n.selfSize); totalBytes += n.selfSize }
    for (const c of n.children) walk(c)
  }
  walk(prof.head)
  const tx = Math.max(1, transactions)
  const top = [...bySite.entries()].sort((x, y) => y[1] - x[1]).slice(0, count)
    .map(([fn, b]) => ({ fn, pct: Math.round((b / Math.max(1, totalBytes)) * 1000) / 10, bytesPerTx: Math.round(b / tx) }))
  return { totalBytes, top }
}

/** Is Linux perf installed? (Whether it may sample is seen from what it recorded: perfSplit's samples.) */
export function hasPerf () {
  return spawnSync('perf', ['--version'], { stdio: 'ignore' }).status === 0
}

/**
 * Where a process's CPU went, from `perf record -g` data of it (node run with
 * --perf-basic-prof, so JIT code has names): each sampled symbol (self time) in one
 * group, by what owns it, and the top symbols; µs per transaction = share x `usPerTx`.
 */
export function perfSplit (file, usPerTx, count = 25) {
  const out = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '-g', 'none', '--stdio', '--percent-limit', '0'], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const rows = []
  for (const line of (out.stdout ?? '').split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\S.*?)\s+\[([.k])\]\s+(.*)$/.exec(line)
    if (m !== null) rows.push({ pct: Number(m[1]), dso: m[2].trim(), kernel: m[3] === 'k', sym: m[4].trim() })
  }
  // perf prints the count rounded, as "Samples: 4K of event ..."
  const sm = /Samples: ([\d.]+)([KM]?) /.exec(out.stdout ?? '')
  const samples = sm === null ? rows.length : Math.round(Number(sm[1]) * (sm[2] === 'K' ? 1e3 : sm[2] === 'M' ? 1e6 : 1))
  const group = (r) => {
    if (r.kernel) return 'kernel (syscalls, TCP, scheduler)'
    const s = r.sym
    if (/wasm-function|wasm-to-js|js-to-wasm/.test(s)) return 'llhttp (WebAssembly)'
    if (/Scaveng|MarkCompact|ConcurrentMarking|Heap::|GCTracer|Sweeper|MinorMC|Evacuat|RecordWrite/.test(s)) return 'GC (V8 heap)'
    // (dist/ or another build's copy of it, e.g. dist-base/)
    const f = /dist[\w-]*\/((wire|ssp|cli|conformance)\/[\w-]+\.js)/.exec(s)
    if (f !== null) return `ours: ${f[1]}`
    if (/node:internal|node:events|node:buffer|node:net|node:stream|node:timers/.test(s)) return "Node's JS (streams, buffers, timers)"
    if (/^JS:|Builtins_|RegExp:/.test(s)) return 'V8 builtins and other JS'
    if (r.dso.startsWith('libc')) return 'libc (memcpy, malloc)'
    return "Node's and V8's C++ (libuv, StreamBase, API calls)"
  }
  const byGroup = new Map()
  for (const r of rows) byGroup.set(group(r), (byGroup.get(group(r)) ?? 0) + r.pct)
  const us = (pct) => Math.round(pct / 100 * usPerTx * 100) / 100
  const groups = [...byGroup.entries()].sort((a, b) => b[1] - a[1]).map(([g, pct]) => ({ group: g, pct: Math.round(pct * 10) / 10, usPerTx: us(pct) }))
  const top = rows.slice().sort((a, b) => b.pct - a.pct).slice(0, count)
    .map((r) => ({ sym: r.sym.replace(/file:\/\/\/.*\/(dist[\w-]*|node_modules)\//, '$1/'), pct: r.pct, usPerTx: us(r.pct) }))
  return { samples, groups, top }
}
