#!/usr/bin/env node
// Scenario 7: how cost grows. End-to-end SSP transactions A -> B -> A (the e2e
// harness, bench/harness.mjs), ours beside the baseline federation, along three curves:
//
//   peers       peer domains with live sessions with node B: 1, 10, 100, 1,000. Node A's
//               side is that many nodes (one per domain, in this process), each set up
//               with B, each keeping 16 transactions in flight (16 x N in all, round robin):
//               every session carries traffic at depth 16.
//   peers-spread the same peers, but --outstanding (64) transactions in flight in all, round
//               robin: the load spread thinner as N grows (64 / N per connection).
//   peers-idle  the same live sessions, but the traffic on one pair only (depth 16): the
//               others sit idle. What N live sessions cost the one that works.
//   body        request body of 256 B, 4 KiB, 64 KiB, 1 MiB, one pair, depth 16: the
//               zero-copy claim measured (cost per transaction against bytes moved).
//   depth       pipeline depth (transactions outstanding on the one pair) 1, 4, 16, 64, 256.
//
//   node bench/scaling.mjs                 # every curve, 1.5 s per point in 3 windows (~2 min)
//   node bench/scaling.mjs --quick         # every curve, 0.6 s per point in 1 window
//   options: --curves peers,peers-spread,peers-idle,body,depth  --engines ours,baseline  --secs 1.5 --windows 3 --warmup 0.5
//            --peers 1,10,100,1000  --bodies 256,4096,65536,1048576  --depths 1,4,16,64,256
//            --outstanding 64 (peers-spread curve)  --dist DIR (ours from another build)  --out FILE
//            --ref DIR   add engine "ref": the same SspNodes from another build, in the same points
//            --profile CURVE:X  only that point, ours, node B under --cpu-prof: its top functions
//
// Per point: transactions/s, round trip p50/p99, node B's CPU µs per transaction, its
// read/write syscalls and sleeps per transaction, and its resident set (RSS) after the
// window; ours/baseline ratios of the same point. Node B is a fresh child per point,
// pinned to core 1; node A and the load run here, pinned to core 0. The engines
// alternate within each point (order flipped per point). Writes bench/results/scaling.json.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import { benchArgs } from './args.mjs'
import {
  B_DOMAIN, NodeB, engineModules, hasTaskset, machine, makeNode, measure, pinSelf, profileTop, r2, root, within
} from './harness.mjs'

const { argv, has, opt, num } = benchArgs(import.meta.url, {
  quick: { type: 'boolean' },
  curves: { type: 'string' },
  engines: { type: 'string' },
  secs: { type: 'string' },
  windows: { type: 'string' },
  warmup: { type: 'string' },
  peers: { type: 'string' },
  bodies: { type: 'string' },
  depths: { type: 'string' },
  outstanding: { type: 'string' },
  dist: { type: 'string' },
  ref: { type: 'string' },
  out: { type: 'string' },
  profile: { type: 'string' }
})
const QUICK = has('quick')
const list = (name, dflt) => String(opt(name, dflt)).split(',').filter((x) => x !== '')
const DIST = resolvePath(opt('dist', join(root, 'dist')))
const REF = opt('ref') !== undefined ? resolvePath(opt('ref')) : undefined
const mods = await engineModules(DIST, REF)
const { sendMessageRequest, sendMessageResponse } = mods.ours
const handler = () => sendMessageResponse()
const SECS = num('secs', QUICK ? 0.6 : 1.5)
const WINDOWS = num('windows', QUICK ? 1 : 3)
const WARMUP = num('warmup', QUICK ? 0.3 : 0.5)
const ENGINES = list('engines', REF !== undefined ? 'ref,ours,baseline' : 'ours,baseline')
const OUTSTANDING = num('outstanding', 64)
const DEFAULT_BODY = 380
const DEFAULT_DEPTH = 16

/** The points of each curve: { x, peers, depth (client pipeline), outstanding, bodyBytes, spread }. */
const CURVES = {
  peers: list('peers', '1,10,100,1000').map(Number).map((n) => ({ x: n, peers: n, depth: DEFAULT_DEPTH, outstanding: DEFAULT_DEPTH * n, bodyBytes: DEFAULT_BODY, spread: true })),
  'peers-spread': list('peers', '1,10,100,1000').map(Number).map((n) => ({ x: n, peers: n, depth: OUTSTANDING, outstanding: OUTSTANDING, bodyBytes: DEFAULT_BODY, spread: true })),
  'peers-idle': list('peers', '1,10,100,1000').map(Number).map((n) => ({ x: n, peers: n, depth: DEFAULT_DEPTH, outstanding: DEFAULT_DEPTH, bodyBytes: DEFAULT_BODY, spread: false })),
  body: list('bodies', '256,4096,65536,1048576').map(Number).map((b) => ({ x: b, peers: 1, depth: DEFAULT_DEPTH, outstanding: DEFAULT_DEPTH, bodyBytes: b, spread: false })),
  depth: list('depths', '1,4,16,64,256').map(Number).map((d) => ({ x: d, peers: 1, depth: d, outstanding: d, bodyBytes: DEFAULT_BODY, spread: false }))
}
const SELECTED = list('curves', Object.keys(CURVES).join(','))
for (const c of SELECTED) {
  if (CURVES[c] === undefined) {
    console.error(`unknown curve '${c}'; curves: ${Object.keys(CURVES).join(', ')}`)
    process.exit(2)
  }
}

/** Run `fn` over `items`, at most `width` at once. */
async function inBatches (items, width, fn) {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn))
}

/** One point for one engine: node B in a child, `peers` nodes here, set up, measured. */
async function onePoint (engine, p, nodeArgs = []) {
  // Room for the largest body (and its envelope) in both servers.
  const server = p.bodyBytes > 512 * 1024 ? { maxBodyBytes: 4 * p.bodyBytes } : undefined
  const b = new NodeB({ engine, domain: B_DOMAIN, depth: p.depth, dist: DIST, ref: REF, server }, nodeArgs)
  const as = []
  const t0 = Date.now()
  try {
    const { url: bUrl } = await b.ask()
    const domains = Array.from({ length: p.peers }, (_, i) => p.peers === 1 ? 'a.example' : `p${i}.a.example`)
    await inBatches(domains, 50, async (domain) => {
      const made = await makeNode(mods, { engine, domain, depth: p.depth, handler, server })
      as.push({ domain, ...made })
    })
    await b.ask({ peers: as.map((a) => [a.domain, a.url]) })
    for (const a of as) a.node.addPeer(B_DOMAIN, bUrl)
    // Set-ups at most 16 at once (node B admits 64 peer-initiated set-ups in progress).
    await inBatches(as, 16, (a) => a.node.connect(B_DOMAIN))
    const setupSecs = (Date.now() - t0) / 1000
    const targets = (p.spread ? as : as.slice(0, 1)).map((a) => ({ node: a.node, peer: B_DOMAIN }))
    const body = sendMessageRequest(p.bodyBytes)
    // WINDOWS back-to-back windows on the same nodes; the point is the window with the
    // median tx/s (all its figures from that one window), so a burst from another tenant
    // of the machine during one window does not make the point.
    const windows = []
    for (let k = 0; k < WINDOWS; k++) {
      const m = await measure(b, targets, () => body, p.outstanding, { secs: SECS / WINDOWS, warmup: k === 0 ? WARMUP : 0 })
      delete m.cdf
      windows.push(m)
    }
    const m = [...windows].sort((x, y) => x.tps - y.tps)[WINDOWS >> 1]
    return { engine, ...p, requestBytes: body.length, setupSecs: +setupSecs.toFixed(2), ...m, windowsTps: windows.map((w) => w.tps), windowsBCpuUsPerTx: windows.map((w) => w.bCpuUsPerTx) }
  } finally {
    await inBatches(as, 100, (a) => within(a.node.close(), 3000))
    await b.stop()
  }
}

const cellOf = (r) => r === undefined
  ? null
  : {
      tps: r.tps,
      p50us: r.p50us,
      p99us: r.p99us,
      bCpuUsPerTx: r.bCpuUsPerTx,
      aCpuUsPerTx: r.aCpuUsPerTx,
      rssMiB: r.bRssMiB,
      heapMiB: r.bHeapMiB,
      bReadsPerTx: r.bReadsPerTx,
      bWritesPerTx: r.bWritesPerTx,
      bSleepsPerTx: r.bSleepsPerTx,
      mbPerSec: +(r.tps * r.requestBytes / 1e6).toFixed(1),
      errors: r.errors
    }

/** Where cost per transaction does not stay flat (or fall) as x grows: the points to explain. */
function observations (curves) {
  const notes = []
  for (const [name, pts] of Object.entries(curves)) {
    if (name === 'body') continue // cost per transaction must grow with bytes; per MB is the figure there
    for (const engine of ['ours', 'baseline']) {
      const xs = pts.filter((pt) => pt[engine] !== null)
      for (let i = 1; i < xs.length; i++) {
        const prev = xs[i - 1][engine]
        const cur = xs[i][engine]
        const grow = cur.bCpuUsPerTx / prev.bCpuUsPerTx
        if (grow > 1.15) notes.push({ curve: name, engine, from: xs[i - 1].x, to: xs[i].x, bCpuUsPerTx: [prev.bCpuUsPerTx, cur.bCpuUsPerTx], growth: r2(grow) })
      }
    }
  }
  return notes
}

/** --profile CURVE:X: node B (ours) under the V8 profiler at that one point; print where its time goes. */
async function profilePoint (spec) {
  const [name, x] = spec.split(':')
  const p = CURVES[name]?.find((pt) => pt.x === Number(x))
  if (p === undefined) throw new Error(`--profile ${spec}: no such point (curves: ${Object.keys(CURVES).join(', ')})`)
  const dir = join(root, 'bench', 'results', 'prof-scaling')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const r = await onePoint('ours', p, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=100'])
  const prof = profileTop(dir, r.bWindowUs, r.transactions, 25)
  console.log(`profile of node B at ${spec}: ${r.tps} tps under the profiler, ${r.bCpuUsPerTx} cpu-us/tx; busy ${(prof.busy / Math.max(1, prof.total) * 100).toFixed(0)}% of the window (${prof.file})`)
  console.log('  % busy   us/tx   function')
  for (const f of prof.top) console.log(`${String(f.pctOfBusy).padStart(7)}% ${String(f.usPerTx).padStart(7)}   ${f.fn}`)
}

async function main () {
  const machineInfo = machine()
  pinSelf(0)
  if (opt('profile') !== undefined) return profilePoint(opt('profile'))
  const t0 = Date.now()
  const runs = []
  const curves = {}
  for (const name of SELECTED) {
    curves[name] = []
    for (let i = 0; i < CURVES[name].length; i++) {
      const p = CURVES[name][i]
      const order = i % 2 === 0 ? ENGINES : [...ENGINES].reverse()
      const byEngine = {}
      for (const engine of order) {
        const r = await onePoint(engine, p)
        r.curve = name
        runs.push(r)
        byEngine[engine] = r
        console.error(`${name.padEnd(10)} x=${String(p.x).padStart(7)} ${engine.padEnd(8)}: ${String(r.tps).padStart(6)} tps  p50 ${r.p50us} us  p99 ${r.p99us} us  B ${r.bCpuUsPerTx} cpu-us/tx  A ${r.aCpuUsPerTx}  B rss ${r.bRssMiB} MiB  B reads/writes/sleeps per tx ${r.bReadsPerTx}/${r.bWritesPerTx}/${r.bSleepsPerTx}  set-up ${r.setupSecs} s  errors ${r.errors}`)
      }
      const ours = cellOf(byEngine.ours)
      const baseline = cellOf(byEngine.baseline)
      const ref = cellOf(byEngine.ref)
      curves[name].push({
        x: p.x,
        peers: p.peers,
        depth: p.depth,
        outstanding: p.outstanding,
        bodyBytes: p.bodyBytes,
        ours,
        baseline,
        tpsRatio: ours && baseline ? r2(ours.tps / baseline.tps) : null,
        bCpuRatio: ours && baseline ? r2(ours.bCpuUsPerTx / baseline.bCpuUsPerTx) : null,
        rssRatio: ours && baseline ? r2(ours.rssMiB / baseline.rssMiB) : null,
        ...(ref !== null ? { ref, overRef: ours ? { tps: r2(ours.tps / ref.tps), bCpuUsPerTx: r2(ours.bCpuUsPerTx / ref.bCpuUsPerTx), aCpuUsPerTx: r2(ours.aCpuUsPerTx / ref.aCpuUsPerTx) } : null } : {})
      })
    }
  }

  console.log(`\nHow cost grows: end-to-end A -> B -> A, ${SECS} s per point, B pinned to core 1, A + load to core 0: ${hasTaskset}`)
  console.log(`${machineInfo.cpu}, ${machineInfo.nproc} CPUs, node ${process.version}\n`)
  console.log('curve       x         engine       tps   p99 us   B cpu-us/tx   B RSS MiB   tps ratio   B cpu ratio')
  for (const [name, pts] of Object.entries(curves)) {
    for (const pt of pts) {
      for (const engine of ['ref', 'ours', 'baseline']) {
        const c = pt[engine]
        if (c === null || c === undefined) continue
        console.log(`${name.padEnd(10)}  ${String(pt.x).padStart(8)}  ${engine.padEnd(9)} ${String(c.tps).padStart(8)} ${String(c.p99us).padStart(8)} ${String(c.bCpuUsPerTx).padStart(13)} ${String(c.rssMiB).padStart(11)}` +
          (engine === 'ours' ? `   ${String(pt.tpsRatio ?? '–').padStart(9)} ${String(pt.bCpuRatio ?? '–').padStart(13)}` : '') +
          (engine === 'ours' && pt.overRef ? `   over ref: tps ${pt.overRef.tps}x, B cpu ${pt.overRef.bCpuUsPerTx}, A cpu ${pt.overRef.aCpuUsPerTx}` : ''))
      }
    }
  }
  const notes = observations(curves)
  if (notes.length > 0) {
    console.log('\nwhere node B\'s CPU per transaction grows by more than 15 % from one point to the next:')
    for (const n of notes) console.log(`  ${n.curve} ${n.engine}: x ${n.from} -> ${n.to}: ${n.bCpuUsPerTx[0]} -> ${n.bCpuUsPerTx[1]} us/tx (${n.growth}x)`)
  }
  const out = {
    bench: 'scaling',
    command: `node bench/scaling.mjs ${argv.join(' ')}`.trim(),
    machine: machineInfo,
    params: {
      secs: SECS,
      windows: WINDOWS,
      warmup: WARMUP,
      engines: ENGINES,
      outstanding: OUTSTANDING,
      handler: 'sendMessageResponse() primitive (ours wraps it in the envelope), both engines',
      ours: 'SspNodes: node B (child) and one node per peer domain here, each set up with B; client pipelineDepth = depth',
      baseline: 'bench/baseline-federation.mjs: node:http server + undici Client per peer, pipelining = depth',
      ...(DIST !== join(root, 'dist') ? { oursBuild: DIST } : {}),
      ...(REF !== undefined ? { refBuild: REF } : {})
    },
    curves,
    observations: notes,
    elapsedSec: Math.round((Date.now() - t0) / 1000),
    runs
  }
  const file = opt('out') !== undefined ? resolvePath(opt('out')) : join(root, 'bench', 'results', 'scaling.json')
  mkdirSync(join(root, 'bench', 'results'), { recursive: true })
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  console.log(`wrote ${file.startsWith(root) ? file.slice(root.length + 1) : file}`)
}

await main()
