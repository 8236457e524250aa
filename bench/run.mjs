#!/usr/bin/env node
// The benchmark suite: `npm run bench` (build, then this).
//
//   npm run bench                      # every scenario (~9 min on 2 cores)
//   npm run bench -- --quick           # every scenario, short (~3 min): a smoke run, not figures to quote
//   npm run bench -- e2e memory        # only these scenarios (others keep their last results)
//   npm run bench -- --report          # run nothing: latest.md and the charts again from the results there are
//   names: wake-floor, framing, server-cpu, client, e2e, https, memory, scaling
//
// Each scenario runs as its own child process (`node bench/<x>.mjs ...`), in its
// own process group, killed if it overruns its time limit, so the whole run is
// bounded. Each writes bench/results/<name>.json; afterwards every scenario's
// JSON (fresh or from an earlier run, each with its own date) is merged into
// bench/results/latest.json and summarised in bench/results/latest.md: per
// scenario, this engine, its baseline, the ratio, the target and met/missed.
// Then bench/charts.mjs draws the SVG charts of e2e.json and scaling.json next to
// latest.md, which embeds them.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import os from 'node:os'
import { machine as baseMachine } from './machine.mjs'
import { benchArgs } from './args.mjs'
import { writeCharts } from './charts.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const resultsDir = join(here, 'results')

/**
 * name -> script, args (default / --quick), result file, time limit in seconds (default / quick).
 * The limits are generous ceilings (a child that overruns is killed and reported), not budgets.
 */
const SCENARIOS = {
  'wake-floor': { script: 'wake-floor.mjs', args: [], quickArgs: ['--quick'], file: 'wake-floor.json', limit: 90, quickLimit: 45 },
  framing: { script: 'framing.mjs', args: ['--no-hotpath'], quickArgs: ['--quick', '--no-hotpath'], file: 'framing.json', limit: 240, quickLimit: 90 },
  'server-cpu': { script: 'server-cpu.mjs', args: ['--secs', '3'], quickArgs: ['--quick', '--depths', '16', '--secs', '2'], file: 'server-cpu.json', limit: 240, quickLimit: 60 },
  client: { script: 'client.mjs', args: ['--rounds', '5', '--secs', '2'], quickArgs: ['--quick', '--rounds', '2', '--secs', '1'], file: 'client.json', limit: 200, quickLimit: 90 },
  e2e: { script: 'e2e.mjs', args: [], quickArgs: ['--quick'], file: 'e2e.json', limit: 240, quickLimit: 90 },
  https: { script: 'e2e.mjs', args: ['--https'], quickArgs: ['--https', '--quick'], file: 'https.json', limit: 150, quickLimit: 45 },
  memory: { script: 'memory.mjs', args: [], quickArgs: ['--quick', '--flood-secs', '3'], file: 'memory.json', limit: 180, quickLimit: 60 },
  scaling: { script: 'scaling.mjs', args: [], quickArgs: ['--quick'], file: 'scaling.json', limit: 300, quickLimit: 150 }
}

const { argv, has, positionals: named } = benchArgs(import.meta.url, { quick: { type: 'boolean' }, report: { type: 'boolean' } }, { positionals: true })
const QUICK = has('quick')
/** --report: run nothing; merge the results there are into latest.json/latest.md and draw the charts again. */
const REPORT_ONLY = has('report')
for (const n of named) {
  if (SCENARIOS[n] === undefined) {
    console.error(`unknown scenario '${n}'; names: ${Object.keys(SCENARIOS).join(', ')}`)
    process.exit(2)
  }
}
const selected = REPORT_ONLY ? [] : named.length > 0 ? named : Object.keys(SCENARIOS)

function machine () {
  return baseMachine()
}

const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100)

function runScenario (name) {
  const s = SCENARIOS[name]
  const args = [join(here, s.script), ...(QUICK ? s.quickArgs : s.args)]
  const limit = (QUICK ? s.quickLimit : s.limit) * 1000
  const t0 = Date.now()
  const load0 = loadavg()
  console.error(`\n=== ${name}: node bench/${s.script} ${args.slice(1).join(' ')} (limit ${limit / 1000} s)`)
  return new Promise((resolve) => {
    // Own process group: on overrun the whole group (wrk, child servers) goes, by its id.
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], detached: true })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      console.error(`=== ${name}: over its ${limit / 1000} s limit, killing process group ${child.pid}`)
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
    }, limit)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      // Leftover grandchildren (a child server whose parent died) go with the group.
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
      const secs = Math.round((Date.now() - t0) / 100) / 10
      const status = timedOut ? 'timeout' : code === 0 ? 'ok' : 'failed'
      console.error(`=== ${name}: ${status} in ${secs} s`)
      resolve({ status, exitCode: code, signal, secs, startedAt: new Date(t0).toISOString(), loadavgBefore: load0, loadavgAfter: loadavg(), command: `node bench/${s.script} ${args.slice(1).join(' ')}`.trim() })
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ status: 'failed', error: String(err), secs: 0 })
    })
  })
}

function readResult (name) {
  const f = join(resultsDir, SCENARIOS[name].file)
  if (!existsSync(f)) return undefined
  try { return JSON.parse(readFileSync(f, 'utf8')) } catch { return undefined }
}

// ------------------------------------------------------------------ markdown

const fmt = (x, digits = 2) => {
  if (x === null || x === undefined || (typeof x === 'number' && !Number.isFinite(x))) return '–'
  if (typeof x !== 'number') return String(x)
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US')
  return String(Math.round(x * 10 ** digits) / 10 ** digits)
}
const verdict = (met) => met === true ? '**met**' : met === false ? '**MISSED**' : '–'
const mdTable = (head, rows) => [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
const resultDate = (r) => r?.machine?.date ?? r?.date ?? '?'

/** One section per scenario; each extractor tolerates missing fields (scripts evolve). */
const SECTIONS = {
  'wake-floor' (r) {
    const rows = (r.cells ?? []).map((c) => [c.placement, c.size, `${fmt(c.rttUs, 1)} µs`, c.echoCpuUs == null ? '–' : `${fmt(c.echoCpuUs, 1)} µs`])
    const c = r.ceilings
    const note = c
      ? `\n\nA pipelined exchange that sends one batch of \`depth\` requests per round trip and lets both processes sleep in between completes at most depth ÷ floor requests per second: at depth ${c.depth} (basis: ${c.basis}) **${fmt(c.pipelineReqPerSec)} req/s** for one connection, and the same in transactions per second end to end (a transaction is one round trip on its critical path: the request to B, the answer POSTed back to A). Only keeping a process awake (busy polling, or one write per request as undici does) gets past it. Sections 3 and 4 set their targets beside this rate. The floor is itself noisy on a shared VM (rounds vary by ±30 %). The echo's CPU per round trip is what one sleep, one wake-up, one read and one write cost a process that does nothing else: the CPU floor of any node that sleeps once per batch (section 4 gives it per transaction beside node B's).`
      : ''
    return {
      title: '0. Round-trip floor of this machine (two idle Node processes, loopback TCP)',
      body: mdTable(['placement', 'size', 'round trip', 'echo CPU per round trip'], rows) + note
    }
  },
  framing (r) {
    const res = r.results ?? {}
    const ns = (k) => res[k]?.nsPerReq
    const rows = []
    const add = (label, ours, base, baseName, ratio) => rows.push([label, `${fmt(ours, 1)} ns/req`, `${baseName}: ${fmt(base, 1)} ns/req`, fmt(ratio ?? (ours / base)), '– (informational)', '–'])
    add('framer (simd) vs bare llhttp (simd)', ns('framer (simd)'), ns('bare (simd)'), 'bare llhttp', r.ratios?.framerOverBareSimd)
    add('framer (scalar) vs bare llhttp (scalar)', ns('framer (scalar)'), ns('bare (scalar)'), 'bare llhttp', r.ratios?.framerOverBareScalar)
    add('framer (simd) vs node\'s own parser', ns('framer (simd)'), ns('node parser (_http_common)'), 'node _http_common', r.ratios?.framerOverNodeParser)
    if (ns('connection (framer + ServerConnection, stub socket)') !== undefined) {
      add('framer + ServerConnection vs node\'s own parser', ns('connection (framer + ServerConnection, stub socket)'), ns('node parser (_http_common)'), 'node _http_common')
    }
    return {
      title: '1. Framing micro-benchmark (benchmark.js, one pipelined read of 100 SSP POSTs)',
      body: mdTable(['case', 'this engine', 'baseline', 'ratio (lower is better)', 'target', 'result'], rows)
    }
  },
  'server-cpu' (r, _ceil, ceilFraming) {
    const rows = (r.table ?? []).map((t) => [
      `depth ${t.depth}`, `${fmt(t.ours, 3)} µs/req (${fmt(t.reqPerSec?.ours)} req/s)`, `node:http ${fmt(t.nodeHttp, 3)} µs/req (${fmt(t.reqPerSec?.['node:http'])} req/s)`,
      fmt(t.ratio, 3), t.depth === 16 ? '≤ 0.1' : '–', t.depth === 16 ? verdict(r.target?.met ?? (t.ratio <= 0.1)) : '–'
    ])
    const bareParseUs = ceilFraming?.results?.['bare (simd)']?.nsPerReq !== undefined ? ceilFraming.results['bare (simd)'].nsPerReq / 1000 : undefined
    for (const t of r.table ?? []) {
      if (t.fullNode !== undefined) {
        const d16 = t.depth === 16
        const refused = t.fullNodeAnswerFailureShare > 0 ? `; ${fmt(t.fullNodeAnswerFailureShare * 100, 1)} % of answers refused (its client queue full)` : ''
        rows.push([`depth ${t.depth}: full node (\`serve --domain\`, answers POSTed)`, `${fmt(t.fullNode, 3)} µs/req (${fmt(t.reqPerSec?.['full node'])} req/s${refused})`, `node:http ${fmt(t.nodeHttp, 3)} µs/req`, fmt(t.fullOverNodeHttp, 3), d16 ? '≤ 0.1' : '–', d16 ? verdict(r.targetFullNode?.met) : '–'])
        if (t.netFloor !== undefined && bareParseUs !== undefined) rows.push([`depth ${t.depth}: full node`, `${fmt(t.fullNode, 3)} µs/req`, `net floor + bare llhttp parse (section 1): ${fmt(t.netFloor + bareParseUs, 3)} µs/req`, fmt(t.fullNode / (t.netFloor + bareParseUs), 2), d16 ? '≤ 2' : '–', d16 ? verdict(t.fullNode / (t.netFloor + bareParseUs) <= 2) : '–'])
      }
      if (t.nginx !== undefined) rows.push([`depth ${t.depth}`, `${fmt(t.ours, 3)} µs/req`, `nginx return 200: ${fmt(t.nginx, 3)} µs/req`, fmt(t.oursOverNginx, 3), '–', '–'])
      if (t.netFloor !== undefined) rows.push([`depth ${t.depth}`, `${fmt(t.ours, 3)} µs/req`, `net floor (no HTTP parsing): ${fmt(t.netFloor, 3)} µs/req`, fmt(t.ours / t.netFloor, 2), '– (floor)', '–'])
    }
    return {
      title: '2. Server CPU per request (server process CPU time / requests it served; wrk pipelined load)',
      body: mdTable(['depth', 'this engine', 'baseline', 'ratio ours/baseline (lower is better)', 'target', 'result'], rows)
    }
  },
  client (r, ceil) {
    // One block of rows per placement (older result files have only the top-level summary).
    const places = r.placements !== undefined ? Object.values(r.placements) : [{ placement: 'cross', label: 'server on core 1, clients on core 0', summary: r.summary ?? [], ratio: r.ratio, p99Ratio: r.p99Ratio }]
    const rows = []
    for (const p of places) {
      const s = p.summary ?? []
      const ours = s.find((x) => /WireClient$/i.test(x.engine)) ?? s[0]
      const poll = s.find((x) => /busyPoll/i.test(x.engine))
      const base = s.find((x) => /undici/i.test(x.engine))
      if (ours === undefined || base === undefined) continue
      const main = p.placement === 'cross'
      const where = `${p.placement} (${p.label})`
      rows.push([`${where}: throughput`, `${fmt(ours.reqPerSec)} req/s`, `${base.engine}: ${fmt(base.reqPerSec)} req/s`, `${fmt(p.ratio)}×`, '≥ 3×', main ? verdict(p.ratio >= 3) : `${verdict(p.ratio >= 3)} (informational placement)`])
      if (poll !== undefined) rows.push([`${where}: throughput, ${poll.engine.replace(/^.*, /, '')}`, `${fmt(poll.reqPerSec)} req/s`, `${fmt(base.reqPerSec)} req/s`, `${fmt(p.pollRatio)}×`, '≥ 3×', `${verdict(p.pollRatio >= 3)} (opt-in option)`])
      rows.push([`${where}: ack latency p50 / p99`, `${fmt(ours.p50us)} / ${fmt(ours.p99us)} µs`, `${fmt(base.p50us)} / ${fmt(base.p99us)} µs`, `p99 ${fmt(p.p99Ratio)}`, 'p99 ≤ 1', verdict(p.p99Ratio <= 1)])
      rows.push([`${where}: client CPU per request`, `${fmt(ours.clientCpuUsPerReq)} µs`, `${fmt(base.clientCpuUsPerReq)} µs`, fmt(ours.clientCpuUsPerReq / base.clientCpuUsPerReq), '–', '–'])
      if (main && ceil?.depth === r.config?.depth) {
        rows.push([`${where}: one batch per sleeping round trip (depth ÷ floor, section 0)`, `${fmt(ceil.pipelineReqPerSec)} req/s`, `3× baseline: ${fmt(3 * base.reqPerSec)} req/s`, `${fmt(3 * base.reqPerSec / ceil.pipelineReqPerSec)}× that rate`, '–', '–'])
      }
    }
    if (rows.length === 0) return null
    return {
      title: `3. Client: pipelined POSTs (depth ${r.config?.depth ?? '?'}, ${r.config?.bodyBytes ?? '?'}-byte body, one connection per engine)`,
      body: mdTable(['metric', 'this engine', 'baseline', 'ratio', 'target', 'result'], rows)
    }
  },
  e2e (r) {
    const rows = []
    const tg = r.targets ?? {}
    for (const t of r.table ?? []) {
      const d16 = t.depth === 16
      const d64 = t.depth === 64
      const perBatch = (x) => x === null || x === undefined ? '–' : fmt(x * t.depth, 2)
      rows.push([`depth ${t.depth}`, 'transactions/s (median of rounds)', fmt(t.ours?.tps), fmt(t.baseline?.tps), `${fmt(t.tpsRatio)}×`, '–', '–'])
      if (t.ours?.ceilingShare != null) rows.push([`depth ${t.depth}`, `share of the sleeping ceiling (depth ÷ round-trip floor measured in each round: ${fmt(t.ours.ceilingTps)} tx/s)`, fmt(t.ours.ceilingShare, 2), fmt(t.baseline?.ceilingShare, 2), '–', d16 ? '≥ 0.85' : '–', d16 ? verdict(tg.ceiling?.met) : '–'])
      if (t.ours?.tpsBest !== undefined && t.ours.rounds > 1) rows.push([`depth ${t.depth}`, 'transactions/s (best round)', fmt(t.ours.tpsBest), fmt(t.baseline?.tpsBest), `${fmt(t.tpsRatioBest)}×`, '–', '–'])
      if (t.oursPoll) rows.push([`depth ${t.depth}`, `transactions/s, busyPollMicros ${r.params?.['ours-poll']?.match(/\d+/)?.[0] ?? '?'} (opt-in)`, fmt(t.oursPoll.tps), fmt(t.baseline?.tps), `${fmt(t.pollTpsRatio)}×`, d16 ? '≥ 5×' : '–', d16 ? verdict(tg.busyPoll?.met) : '–'])
      rows.push([`depth ${t.depth}`, 'round trip p50 / p99 / p99.9 (µs)', `${fmt(t.ours?.p50us)} / ${fmt(t.ours?.p99us)} / ${fmt(t.ours?.p999us)}`, `${fmt(t.baseline?.p50us)} / ${fmt(t.baseline?.p99us)} / ${fmt(t.baseline?.p999us)}`, `p99 ${fmt(t.p99Ratio)}`, '–', '–'])
      if (t.oursPoll) rows.push([`depth ${t.depth}`, 'round trip p50 / p99 / p99.9 (µs), busy polling', `${fmt(t.oursPoll.p50us)} / ${fmt(t.oursPoll.p99us)} / ${fmt(t.oursPoll.p999us)}`, '', `p99 ${fmt(t.pollP99Ratio)}`, '–', '–'])
      rows.push([`depth ${t.depth}`, 'node B CPU per transaction (µs)', fmt(t.ours?.bCpuUsPerTx), fmt(t.baseline?.bCpuUsPerTx), fmt(t.bCpuRatio), d16 ? '≤ 3' : d64 ? '≤ 2.5' : '–', d16 ? verdict(tg.bCpu16?.met) : d64 ? verdict(tg.bCpu64?.met) : '–'])
      if (t.ours?.floorCpuUsPerTx != null) rows.push([`depth ${t.depth}`, 'CPU floor per transaction (µs): the same rounds\' do-nothing node:net echo, one sleep + read + write per batch (node B has two reads and two writes)', fmt(t.ours.floorCpuUsPerTx, 2), '–', `B ${fmt(t.ours.bCpuUsPerTx / t.ours.floorCpuUsPerTx, 2)}× it`, '–', '–'])
      if (t.ours?.relayCpuUsPerTx != null) rows.push([`depth ${t.depth}`, 'node B\'s socket floor per transaction (µs): the same rounds\' do-nothing relay, two reads + two writes + one sleep per batch, as node B', fmt(t.ours.relayCpuUsPerTx, 2), '–', `B ${fmt(t.ours.bCpuUsPerTx / t.ours.relayCpuUsPerTx, 2)}× it`, '–', '–'])
      if (t.ours?.bReadsPerTx !== undefined) rows.push([`depth ${t.depth}`, `per batch of ${t.depth}: node B sleeps / reads / writes`, `${perBatch(t.ours?.bSleepsPerTx)} / ${perBatch(t.ours?.bReadsPerTx)} / ${perBatch(t.ours?.bWritesPerTx)}`, `${perBatch(t.baseline?.bSleepsPerTx)} / ${perBatch(t.baseline?.bReadsPerTx)} / ${perBatch(t.baseline?.bWritesPerTx)}`, '–', '–', '–'])
      if (t.ours?.aSleepsPerTx !== undefined) rows.push([`depth ${t.depth}`, `per batch of ${t.depth}: node A sleeps / reads / writes`, `${perBatch(t.ours?.aSleepsPerTx)} / ${perBatch(t.ours?.aReadsPerTx)} / ${perBatch(t.ours?.aWritesPerTx)}`, `${perBatch(t.baseline?.aSleepsPerTx)} / ${perBatch(t.baseline?.aReadsPerTx)} / ${perBatch(t.baseline?.aWritesPerTx)}`, '–', '–', '–'])
      if (t.overRef) rows.push([`depth ${t.depth}`, `this build / ref build (${r.params?.refBuild}): tps, p99, B CPU/tx`, `${fmt(t.overRef.tps, 2)}× / ${fmt(t.overRef.p99us, 2)} / ${fmt(t.overRef.bCpuUsPerTx, 2)}`, '–', '–', d16 ? 'p99 ≤ 1' : '–', d16 ? verdict(tg.p99VsRef?.met) : '–'])
    }
    return {
      title: '4. End-to-end SSP transactions A → B → A (two SspNodes vs node:http + undici federation)',
      body: mdTable(['depth', 'metric', 'this engine', 'baseline', 'ratio', 'target', 'result'], rows)
    }
  },
  https (r) {
    const rows = []
    for (const t of r.table ?? []) {
      const name = t.engine === 'ours' ? 'this engine' : 'baseline (node:https + undici)'
      rows.push([name, `${fmt(t.http?.tps)} tx/s, p99 ${fmt(t.http?.p99us)} µs`, `${fmt(t.https?.tps)} tx/s, p99 ${fmt(t.https?.p99us)} µs`, `tps ${fmt(t.httpsOverHttpTps)}×, p99 ${fmt(t.httpsOverHttpP99)}×`, `${fmt(t.http?.bCpuUsPerTx)} → ${fmt(t.https?.bCpuUsPerTx)}`])
    }
    if (r.oursOverBaselineHttps) rows.push(['this engine / baseline over HTTPS', '', '', `tps ${fmt(r.oursOverBaselineHttps.tps)}×, p99 ${fmt(r.oursOverBaselineHttps.p99)}×`, ''])
    return {
      title: `5. HTTPS against HTTP for scenario 4 (depth ${r.params?.depth ?? 16})`,
      body: mdTable(['engine', 'HTTP', 'HTTPS', 'HTTPS / HTTP', 'node B CPU µs/tx (HTTP → HTTPS)'], rows) + '\n\nNo target; informational.'
    }
  },
  memory (r) {
    const rows = []
    const i = r.idle
    if (i) {
      rows.push([`idle connection pair (${i.pairs} pairs), RSS of node B`, `${fmt(i.ours?.rssPerPairKiB, 1)} KiB/pair (marginal ${fmt(i.ours?.marginal?.rssPerPairKiB, 1)})`, i.baseline ? `${fmt(i.baseline.rssPerPairKiB, 1)} KiB/pair (marginal ${fmt(i.baseline.marginal?.rssPerPairKiB, 1)})` : '–', fmt(i.ratio), '< 64 KiB', verdict(i.target?.met)])
      rows.push(['  of which V8 heap used', `${fmt(i.ours?.heapUsedPerPairKiB, 1)} KiB/pair`, i.baseline ? `${fmt(i.baseline.heapUsedPerPairKiB, 1)} KiB/pair` : '–', '–', '–', '–'])
    }
    const f = r.flood
    if (f) {
      const cell = (x) => x ? `${fmt(x.rssStartMiB, 1)} → ${fmt(x.maxMiddleThirdMiB, 1)} → ${fmt(x.maxLastThirdMiB, 1)} MiB: ${x.plateau ? 'plateau' : x.capped ? 'grows (hit the cap)' : 'grows'}` : '–'
      rows.push([`flood, application stalled (${f.ours?.conns} conns, ${f.ours?.secs} s): RSS start → max middle third → max last third`, cell(f.ours), f.baseline ? `node:http: ${cell(f.baseline)}` : '–', '–', 'plateau', verdict(f.target?.met)])
    }
    return {
      title: '6. Memory',
      body: mdTable(['measure', 'this engine', 'baseline', 'ratio', 'target', 'result'], rows)
    }
  },
  scaling (r) {
    const domains = (n) => `${fmt(n)} peer domain${n === 1 ? '' : 's'}`
    const what = {
      peers: (pt) => `${domains(pt.x)}, each at depth ${pt.depth} (${fmt(pt.outstanding)} outstanding)`,
      'peers-spread': (pt) => `${domains(pt.x)}, ${pt.outstanding} outstanding in all, round robin`,
      'peers-idle': (pt) => `${domains(pt.x)}, traffic on one pair (depth ${pt.depth})`,
      body: (pt) => `${pt.x >= 1048576 ? `${pt.x / 1048576} MiB` : pt.x >= 1024 ? `${pt.x / 1024} KiB` : `${pt.x} B`} body, depth ${pt.depth}`,
      depth: (pt) => `depth ${pt.x}`
    }
    const rows = []
    for (const [name, pts] of Object.entries(r.curves ?? {})) {
      for (const pt of pts) {
        const o = pt.ours
        const b = pt.baseline
        rows.push([name, (what[name] ?? ((p) => String(p.x)))(pt), fmt(o?.tps), fmt(b?.tps), pt.tpsRatio === null ? '–' : `${fmt(pt.tpsRatio)}×`,
          `${fmt(o?.bCpuUsPerTx)} / ${fmt(b?.bCpuUsPerTx)}`, `${fmt(o?.rssMiB, 1)} / ${fmt(b?.rssMiB, 1)}`,
          o ? `${fmt(o.bReadsPerTx)} / ${fmt(o.bWritesPerTx)}` : '–', o && name === 'body' ? `${fmt(o.mbPerSec, 1)} / ${fmt(b?.mbPerSec, 1)}` : '–'])
      }
    }
    const obs = (r.observations ?? []).map((n) => `- ${n.curve}, ${n.engine}: ${n.from} → ${n.to}: node B ${n.bCpuUsPerTx[0]} → ${n.bCpuUsPerTx[1]} µs/tx (${n.growth}×)`)
    return {
      title: '7. How cost grows: peers, body size, pipeline depth (end to end, ours and the baseline federation)',
      body: mdTable(['curve', 'point', 'ours tx/s', 'baseline tx/s', 'ratio', 'node B CPU µs/tx (ours / baseline)', 'node B RSS MiB (ours / baseline)', 'node B reads / writes per tx (ours)', 'request MB/s (ours / baseline)'], rows) +
        (obs.length > 0 ? `\n\nWhere node B's CPU per transaction grows by more than 15 % between neighbouring points (why: native-notes.md section 10):\n\n${obs.join('\n')}` : '\n\nNode B\'s CPU per transaction stays within 15 % or falls between neighbouring points of every curve (body size aside).')
    }
  }
}

function markdown (merged, charts = []) {
  const m = merged.machine
  const lines = [
    '# Benchmark results',
    '',
    merged.reportOnly
      ? `Report: ${merged.date} (\`${merged.command}\`: no scenario run now; each section gives the date of its result).`
      : `Run: ${merged.date} (${merged.quick ? '`--quick`: short smoke run' : 'full run'}; \`${merged.command}\`).`,
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB, ${m.platform}; node ${m.node} (V8 ${m.v8}).`,
    ...(merged.reportOnly ? [] : [`Load average at start of the run: ${merged.loadavgAtStart.join(', ')} (other processes share this machine; figures are medians of alternating rounds in one run).`]),
    ''
  ]
  for (const name of Object.keys(SCENARIOS)) {
    const sc = merged.scenarios[name]
    if (sc === undefined) continue
    const r = sc.result
    let sec = null
    if (r !== undefined) { try { sec = SECTIONS[name](r, merged.scenarios['wake-floor']?.result?.ceilings, merged.scenarios.framing?.result) } catch (err) { sec = { title: name, body: `(could not summarise: ${err.message}; see ${SCENARIOS[name].file})` } } }
    lines.push(`## ${sec?.title ?? name}`, '')
    const when = sc.ranThisTime ? `this run, ${sc.run.status} in ${sc.run.secs} s, load average ${sc.run.loadavgBefore?.join('/')} → ${sc.run.loadavgAfter?.join('/')}` : `not run this time; result from ${resultDate(r)}`
    const cmd = sc.ranThisTime ? sc.run.command : (r?.command ?? `node bench/${SCENARIOS[name].script}`)
    lines.push(`\`${cmd}\`: ${when}.`, '')
    if (sc.ranThisTime && sc.run.status !== 'ok') lines.push(`**The scenario ${sc.run.status === 'timeout' ? 'overran its time limit and was killed' : sc.run.status === 'no-result' ? 'wrote no result file' : `failed (exit ${sc.run.exitCode})`}; no figures from this run.**`, '')
    lines.push(sec?.body ?? '(no result file)', '')
  }
  if (charts.length > 0) {
    lines.push('## Charts', '', 'Drawn by `bench/charts.mjs` (vega-lite, rendered headless to SVG) from e2e.json and scaling.json above.', '')
    for (const c of charts) lines.push(`### ${c.title}`, '', `![${c.alt}](${c.file})`, '')
  }
  return lines.join('\n')
}

// ------------------------------------------------------------------ main

async function main () {
  const started = new Date().toISOString()
  const loadAtStart = loadavg()
  const mach = machine()
  mkdirSync(resultsDir, { recursive: true })
  const runs = {}
  const t0 = Date.now()
  // Each scenario's JSON is read as soon as it finishes (not at the end), and only if the
  // file was written during its run: another process writing bench/results/ meanwhile
  // cannot slip its figures into this run's summary.
  const fresh = {}
  for (const name of selected) {
    const t = Date.now()
    runs[name] = await runScenario(name)
    const f = join(resultsDir, SCENARIOS[name].file)
    let mtime = 0
    try { mtime = statSync(f).mtimeMs } catch {}
    if (mtime >= t) fresh[name] = readResult(name)
    else if (runs[name].status === 'ok') runs[name].status = 'no-result'
  }

  const merged = {
    date: started,
    command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
    quick: QUICK,
    reportOnly: REPORT_ONLY,
    machine: mach,
    loadavgAtStart: loadAtStart,
    totalSecs: Math.round((Date.now() - t0) / 1000),
    scenarios: {}
  }
  for (const name of Object.keys(SCENARIOS)) {
    const result = runs[name] !== undefined ? fresh[name] : readResult(name)
    if (result === undefined && runs[name] === undefined) continue
    merged.scenarios[name] = { ranThisTime: runs[name] !== undefined, run: runs[name], result }
  }
  // Targets at a glance.
  const s = merged.scenarios
  merged.targets = {
    serverCpuDepth16: s['server-cpu']?.result?.target ?? null,
    clientReqPerSec: s.client?.result ? { minRatio: 3, placement: s.client.result.placement ?? 'cross', ratio: s.client.result.ratio, met: s.client.result.ratio >= 3, withBusyPoll: s.client.result.pollRatio ?? null, sameCore: s.client.result.placements?.same?.ratio ?? null } : null,
    e2e: s.e2e?.result?.targets ?? null,
    memoryIdlePair: s.memory?.result?.idle?.target ?? null,
    memoryFloodPlateau: s.memory?.result?.flood?.target ?? null
  }
  writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(merged, null, 2) + '\n')
  let charts = []
  try {
    charts = await writeCharts(resultsDir)
  } catch (err) {
    console.error(`charts not drawn: ${err.message}`)
  }
  const md = markdown(merged, charts)
  writeFileSync(join(resultsDir, 'latest.md'), md + '\n')
  console.log('\n' + md)
  console.log(`\nwrote bench/results/latest.json and bench/results/latest.md (${merged.totalSecs} s)`)
  const failed = Object.entries(runs).filter(([, r]) => r.status !== 'ok').map(([n]) => n)
  if (failed.length > 0) {
    console.error(`scenarios not completed: ${failed.join(', ')}`)
    process.exitCode = 1
  }
}

await main()
