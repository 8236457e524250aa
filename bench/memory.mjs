#!/usr/bin/env node
// Scenario 6: memory.
//
//   node bench/memory.mjs            # 1,000 idle pairs per engine + 10 s stalled flood per engine (~1 min)
//   node bench/memory.mjs --quick    # 1,000 idle pairs per engine + 4 s flood per engine
//   options: --pairs 1000 --flood-secs 10 --flood-conns 24 --no-baseline --only idle|flood
//            --busy-tx N   each pair carries N transactions (depth 16) before it idles (default 1);
//                          e.g. --pairs 50 --busy-tx 5000 --only idle: idle pairs after real traffic
//            --dedupe N    diagnostic: node B's dedupeWindow (ours), to show that option's share
//            --dist DIR    run "ours" from another build (e.g. a patched copy of dist/)
//            --out FILE    write the JSON there instead of bench/results/memory.json
//
// (a) Resident memory per idle connection pair. Node B runs in a child process
//     (pinned to core 1, --expose-gc). This process (core 0) hosts N peer nodes
//     (p0.example ... p<N-1>.example), each with its own listener. B gets every
//     peer in its directory; every peer sets up a session with B (ours: the real
//     SendSecretToken/Login exchange; B opens its own connection back, S-007) and
//     then sends one transaction (B's handler answers it over B's connection), so
//     every pair has carried traffic both ways. Then everything is idle. B's
//     VmRSS (/proc/<pid>/status) after gc() with all pairs up, minus the same
//     before the peers were added, divided by N. Same procedure for the baseline
//     federation (bench/baseline-federation.mjs: node:http + one undici Client per
//     peer). Target (ours): < 64 KiB per pair.
// (b) Resident memory during a flood while the application is stalled: a server
//     whose handler never completes (ours: WireServer with onRequest returning a
//     never-settling promise, default maxPipelineDepth/maxInFlight; baseline:
//     node:http whose handler never answers), `--flood-conns` connections each
//     writing pipelined 380-byte SSP POSTs as fast as the socket accepts them for
//     `--flood-secs`. The server's RSS is sampled every 250 ms; it plateaus when
//     the max of the last third of the samples is within max(2 MiB, 2 %) of the
//     max of the middle third. Bounded: a server passing 1.5 GiB ends its flood.
// Writes bench/results/memory.json.
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import os from 'node:os'
import { machine as baseMachine } from './machine.mjs'
import { benchArgs } from './args.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const self = fileURLToPath(import.meta.url)
const { argv, has, opt } = benchArgs(import.meta.url, {
  quick: { type: 'boolean' },
  'no-baseline': { type: 'boolean' },
  'busy-tx': { type: 'string' },
  dedupe: { type: 'string' },
  dist: { type: 'string' },
  'flood-conns': { type: 'string' },
  'flood-secs': { type: 'string' },
  only: { type: 'string' },
  out: { type: 'string' },
  pairs: { type: 'string' },
  child: { type: 'string' }, // child process: 'idle' (node B of the idle pairs) or 'flood' (the flooded server)
  engine: { type: 'string' } // the child's engine
})
const QUICK = has('quick')
/** Diagnostic only (--dedupe N): node B's dedupeWindow, to show that option's share of the per-pair figure. */
const DEDUPE = opt('dedupe') === undefined ? undefined : Number(opt('dedupe'))
/** --dist DIR: "ours" from another build (a patched copy of dist/), to evaluate a source change. */
const DIST = opt('dist', join(root, 'dist'))
const B_DOMAIN = 'b.example'
const KiB = 1024
const MiB = 1024 * 1024

function rssOf (pid) {
  const m = /VmRSS:\s*(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * KiB : NaN
}

// ================================================================== children

async function childIdleB (engine) {
  const { SspNode, sendMessageResponse } = await import(join(DIST, 'index.js'))
  const { BaselineNode } = await import(join(here, 'baseline-federation.mjs'))
  const handler = () => sendMessageResponse()
  const node = engine === 'ours'
    ? new SspNode({ domain: B_DOMAIN, resolver: false, handler, listen: [{ port: 0, host: '127.0.0.1' }], ...(DEDUPE !== undefined ? { dedupeWindow: DEDUPE } : {}) })
    : new BaselineNode({ domain: B_DOMAIN, handler, pipelining: 16 })
  const [url] = await node.start()
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      global.gc()
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const m = process.memoryUsage()
    const v8 = await import('node:v8')
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, { size: x.space_size, used: x.space_used_size }]))
    return { spaces, rss: rssOf(process.pid), heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
  }
  process.on('message', async (m) => {
    if (m.cmd === 'measure') {
      const mem = await settle()
      let extra = {}
      if (engine === 'ours') {
        const s = node.getStats()
        extra = { sessions: s.sessions, inboundOpen: s.wire[0]?.connectionsOpen, incomingRequests: s.incomingRequests, answersSent: s.answersSent }
      } else {
        extra = { ...node.getStats(), inboundOpen: await new Promise((resolve) => node.server.getConnections((e, n) => resolve(n))) }
      }
      process.send({ mem, extra })
    } else if (m.cmd === 'peers') {
      for (const p of m.peers) node.addPeer(p.domain, p.url)
      process.send({ added: m.peers.length })
    } else if (m.cmd === 'exit') {
      await Promise.race([node.close(), new Promise((resolve) => setTimeout(resolve, 3000))])
      process.exit(0)
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ url })
}

async function childFlood (engine) {
  let count
  if (engine === 'ours') {
    const { createWireServer } = await import(join(DIST, 'index.js'))
    const stalled = new Promise(() => {})
    const server = createWireServer({ onRequest: () => stalled })
    const a = await server.listen(0, '127.0.0.1')
    count = () => { const s = server.getStats(); return { requests: s.requests, inFlight: s.inFlight, connectionsOpen: s.connectionsOpen } }
    process.send({ port: a.port })
  } else {
    const http = await import('node:http')
    let n = 0
    const server = http.createServer(() => { n++ /* the application never answers */ })
    server.keepAliveTimeout = 600_000
    server.requestTimeout = 0
    server.headersTimeout = 60_000
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    count = () => ({ requests: n })
    process.send({ port: server.address().port })
  }
  process.on('message', (m) => {
    if (m === 'count') process.send({ count: count() })
    else if (m === 'exit') process.exit(0)
  })
  process.on('disconnect', () => process.exit(0))
}

// ================================================================== parent

const hasTaskset = (() => {
  if (os.cpus().length < 2) return false
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
})()

function machine () {
  return { ...baseMachine(), pinned: hasTaskset }
}

class Child {
  constructor (args, nodeArgs = []) {
    const all = [...nodeArgs, self, ...args]
    this.child = hasTaskset
      ? spawn('taskset', ['-c', '1', process.execPath, ...all], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : spawn(process.execPath, all, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.pid = this.child.pid
    this.waiters = []
    this.child.on('message', (m) => { const w = this.waiters.shift(); if (w) w(m) })
    this.exited = once(this.child, 'exit')
  }

  ask (msg, ms = 60_000) {
    const p = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child did not answer ${JSON.stringify(msg ?? 'start')}`)), ms)
      this.waiters.push((m) => { clearTimeout(t); resolve(m) })
    })
    if (msg !== undefined) this.child.send(msg)
    return p
  }

  async stop (msg = { cmd: 'exit' }) {
    try { this.child.send(msg) } catch {}
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(t)
  }
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool (items, limit, fn) {
  let i = 0
  const errors = []
  const worker = async () => {
    while (i < items.length) {
      const k = i++
      try { await fn(items[k], k) } catch (err) { errors.push(err) }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return errors
}

/** Keep `depth` requests outstanding until `count` have ended. */
async function burst (node, body, count, depth) {
  let sent = 0
  let ended = 0
  await new Promise((resolve) => {
    const one = () => {
      sent++
      node.request(B_DOMAIN, body).then(next, next)
    }
    const next = () => {
      ended++
      if (ended === count) resolve()
      else if (sent < count) one()
    }
    for (let i = 0; i < Math.min(depth, count); i++) one()
  })
}

async function idlePairs (engine, n, busyTx = 0) {
  const { SspNode, sendMessageRequest } = await import(join(DIST, 'index.js'))
  const { BaselineNode } = await import(join(here, 'baseline-federation.mjs'))
  const t0 = Date.now()
  const b = new Child(['--child', 'idle', '--engine', engine, '--dist', DIST, ...(DEDUPE !== undefined ? ['--dedupe', String(DEDUPE)] : [])], ['--expose-gc'])
  const { url: bUrl } = await b.ask()
  const peers = []
  try {
    for (let i = 0; i < n; i++) {
      const domain = `p${i}.example`
      const node = engine === 'ours'
        ? new SspNode({ domain, resolver: false, listen: [{ port: 0, host: '127.0.0.1' }] })
        : new BaselineNode({ domain, pipelining: 16 })
      const [url] = await node.start()
      peers.push({ domain, url, node })
    }
    const before = (await b.ask({ cmd: 'measure' })).mem
    await b.ask({ cmd: 'peers', peers: peers.map((p) => ({ domain: p.domain, url: p.url })) })
    const body = sendMessageRequest(380)
    const connectAll = (list) => pool(list, 32, async (p) => {
      p.node.addPeer(B_DOMAIN, bUrl)
      await p.node.connect(B_DOMAIN)
      await p.node.request(B_DOMAIN, body)
      // --busy-tx: the pair carries that many transactions before it goes idle.
      if (busyTx > 1) await burst(p.node, body, busyTx - 1, 16)
    })
    // Two stages: the first tenth warms B up (JIT code, V8 young generation sized to the
    // set-up burst: process-wide, not per pair); the marginal figure excludes that.
    const warm = Math.max(1, Math.round(n / 10))
    const errs = await connectAll(peers.slice(0, warm))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const mid = (await b.ask({ cmd: 'measure' })).mem
    errs.push(...await connectAll(peers.slice(warm)))
    await new Promise((resolve) => setTimeout(resolve, 500))
    const afterMsg = await b.ask({ cmd: 'measure' })
    const after = afterMsg.mem
    const per = (k) => Math.round(((after[k] - before[k]) / n / KiB) * 10) / 10
    const marginal = (k) => Math.round(((after[k] - mid[k]) / (n - warm) / KiB) * 10) / 10
    const r = {
      engine,
      pairs: n,
      transactionsPerPair: Math.max(1, busyTx),
      failed: errs.length,
      firstError: errs[0] ? String(errs[0].code ?? errs[0].message) : undefined,
      rssBeforeMiB: +(before.rss / MiB).toFixed(1),
      rssAfterMiB: +(after.rss / MiB).toFixed(1),
      rssPerPairKiB: per('rss'),
      heapUsedPerPairKiB: per('heapUsed'),
      heapTotalPerPairKiB: per('heapTotal'),
      externalPerPairKiB: per('external'),
      marginal: { fromPairs: warm, rssMidMiB: +(mid.rss / MiB).toFixed(1), rssPerPairKiB: marginal('rss'), heapUsedPerPairKiB: marginal('heapUsed'), heapTotalPerPairKiB: marginal('heapTotal') },
      b: afterMsg.extra,
      heapSpacesKiB: Object.fromEntries(Object.keys(after.spaces).map((k) => [k, {
        sizeBefore: Math.round(before.spaces[k].size / KiB), sizeMid: Math.round(mid.spaces[k].size / KiB), sizeAfter: Math.round(after.spaces[k].size / KiB),
        usedBefore: Math.round(before.spaces[k].used / KiB), usedAfter: Math.round(after.spaces[k].used / KiB)
      }])),
      secs: Math.round((Date.now() - t0) / 100) / 10
    }
    console.error(`idle pairs ${engine.padEnd(8)}: ${n} pairs${busyTx > 1 ? ` after ${busyTx} transactions each` : ''} (${errs.length} failed), B RSS ${r.rssBeforeMiB} -> ${r.rssAfterMiB} MiB = ${r.rssPerPairKiB} KiB/pair (heap ${r.heapUsedPerPairKiB}, external ${r.externalPerPairKiB}); marginal ${warm}->${n}: ${r.marginal.rssPerPairKiB} KiB/pair in ${r.secs} s`)
    return r
  } finally {
    await b.stop()
    await Promise.all(peers.map((p) => Promise.race([p.node.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 3000))])))
  }
}

function floodChunk (k) {
  const body = '<WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3"><Session sessionID="S42"><Transaction mode="Request" transactionID="T1"><SendMessageRequest deliveryReport="No"><MessageInfo messageID="m1" contentType="text/plain"/><ContentData>'
  const tail = '</ContentData></SendMessageRequest></Transaction></Session></WV-SSP-Message>'
  const b = body + 'x'.repeat(380 - body.length - tail.length) + tail
  let s = ''
  for (let i = 0; i < k; i++) {
    s += `POST /ssp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: F${i}\r\nx-wv-sessionid: S42\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`
  }
  return Buffer.from(s, 'latin1')
}

async function flood (engine, secs, conns) {
  const s = new Child(['--child', 'flood', '--engine', engine, '--dist', DIST])
  const { port } = await s.ask()
  const chunk = floodChunk(32)
  const CAP = 1536 * MiB
  let written = 0
  let running = true
  const socks = []
  const samples = []
  const t0 = Date.now()
  try {
    for (let i = 0; i < conns; i++) {
      const sock = net.connect(port, '127.0.0.1')
      sock.setNoDelay(true)
      sock.on('error', () => {})
      sock.on('data', () => {})
      const pump = () => {
        while (running && sock.writable) {
          written += chunk.length
          if (!sock.write(chunk)) return // resumes on 'drain'
        }
      }
      sock.on('drain', pump)
      sock.on('connect', pump)
      socks.push(sock)
    }
    let capped = false
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const rss = rssOf(s.pid)
        samples.push({ t: Date.now() - t0, rssMiB: +(rss / MiB).toFixed(1), writtenMiB: +(written / MiB).toFixed(1) })
        if (rss > CAP) capped = true
        if (capped || Date.now() - t0 >= secs * 1000) {
          clearInterval(timer)
          resolve()
        }
      }, 250)
    })
    running = false
    const { count } = await s.ask('count', 20_000)
    const third = Math.floor(samples.length / 3)
    const mid = samples.slice(third, 2 * third)
    const last = samples.slice(2 * third)
    const maxMid = Math.max(...mid.map((x) => x.rssMiB))
    const maxLast = Math.max(...last.map((x) => x.rssMiB))
    const growth = +(maxLast - maxMid).toFixed(1)
    const plateau = !capped && growth <= Math.max(2, 0.02 * maxMid)
    const r = {
      engine,
      secs: Math.round((Date.now() - t0) / 100) / 10,
      conns,
      capped,
      clientWroteMiB: +(written / MiB).toFixed(1),
      server: count,
      rssStartMiB: samples[0]?.rssMiB,
      maxMiddleThirdMiB: maxMid,
      maxLastThirdMiB: maxLast,
      growthMiB: growth,
      plateau,
      samples
    }
    console.error(`flood ${engine.padEnd(9)}: ${r.secs} s, ${conns} conns, client wrote ${r.clientWroteMiB} MiB, server took ${count.requests} requests; RSS ${r.rssStartMiB} -> max mid ${maxMid} / max last ${maxLast} MiB: ${plateau ? 'plateau' : capped ? 'GREW past the 1.5 GiB cap' : 'GROWS'}`)
    return r
  } finally {
    running = false
    for (const sock of socks) sock.destroy()
    await s.stop('exit')
  }
}

async function main () {
  const machineInfo = machine() // before pinning
  if (hasTaskset) {
    try { execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' }) } catch {}
  }
  const n = Number(opt('pairs', 1000))
  const busyTx = Number(opt('busy-tx', 1))
  const floodSecs = Number(opt('flood-secs', QUICK ? 4 : 10))
  const floodConns = Number(opt('flood-conns', 24))
  const only = opt('only', 'all')
  const baseline = !has('no-baseline')
  const t0 = Date.now()
  const out = {
    bench: 'memory',
    command: `node bench/memory.mjs ${argv.join(' ')}`.trim(),
    machine: machineInfo,
    params: { ...(DEDUPE !== undefined ? { dedupeWindowOfB: DEDUPE } : {}), ...(DIST !== join(root, 'dist') ? { oursBuild: DIST } : {}), pairs: n, transactionsPerPair: busyTx, floodSecs, floodConns, floodRequestBytes: 380, sampleMs: 250 }
  }
  if (only === 'all' || only === 'idle') {
    const ours = await idlePairs('ours', n, busyTx)
    const base = baseline ? await idlePairs('baseline', n, busyTx) : null
    out.idle = {
      pairs: n,
      ours,
      baseline: base,
      ratio: base ? +(ours.rssPerPairKiB / base.rssPerPairKiB).toFixed(2) : null,
      marginalRatio: base ? +(ours.marginal.rssPerPairKiB / base.marginal.rssPerPairKiB).toFixed(2) : null,
      // The target is judged on the gross figure (B's RSS with N pairs minus without, / N), as specified.
      target: { maxKiBPerPair: 64, value: ours.rssPerPairKiB, marginal: ours.marginal.rssPerPairKiB, met: ours.failed === 0 && ours.rssPerPairKiB < 64 }
    }
  }
  if (only === 'all' || only === 'flood') {
    const ours = await flood('ours', floodSecs, floodConns)
    const base = baseline ? await flood('node:http', floodSecs, floodConns) : null
    out.flood = { ours, baseline: base, target: { mustPlateau: true, met: ours.plateau } }
  }
  out.elapsedSec = Math.round((Date.now() - t0) / 1000)

  console.log(`\nMemory (${machineInfo.cpu}, ${machineInfo.nproc} CPUs, node ${process.version})`)
  if (out.idle) {
    const i = out.idle
    console.log(`\nidle connection pairs (${n}${busyTx > 1 ? `, after ${busyTx} transactions each` : ''}), node B's RSS after gc():`)
    console.log(`engine      KiB/pair (RSS)   marginal ${i.ours.marginal.fromPairs}->${n}   heap KiB/pair   external KiB/pair   RSS before -> after (MiB)   failed`)
    for (const r of [i.ours, i.baseline].filter(Boolean)) {
      console.log(`${r.engine.padEnd(10)}  ${String(r.rssPerPairKiB).padStart(14)}   ${String(r.marginal.rssPerPairKiB).padStart(15)}   ${String(r.heapUsedPerPairKiB).padStart(13)}   ${String(r.externalPerPairKiB).padStart(17)}   ${String(r.rssBeforeMiB).padStart(10)} -> ${String(r.rssAfterMiB).padEnd(12)}   ${r.failed}`)
    }
    console.log(`target (< 64 KiB per pair, gross): ${i.target.met ? 'MET' : 'MISSED'} (${i.target.value} KiB; marginal ${i.target.marginal} KiB)`)
  }
  if (out.flood) {
    console.log(`\nflood of pipelined POSTs with the application stalled (${floodConns} conns, ${floodSecs} s), server RSS:`)
    console.log('engine      start MiB   max mid third   max last third   growth MiB   client wrote MiB   server took   verdict')
    for (const r of [out.flood.ours, out.flood.baseline].filter(Boolean)) {
      console.log(`${r.engine.padEnd(10)}  ${String(r.rssStartMiB).padStart(9)}   ${String(r.maxMiddleThirdMiB).padStart(13)}   ${String(r.maxLastThirdMiB).padStart(14)}   ${String(r.growthMiB).padStart(10)}   ${String(r.clientWroteMiB).padStart(16)}   ${String(r.server.requests).padStart(11)}   ${r.plateau ? 'plateau' : 'grows'}`)
    }
    console.log(`target (ours must plateau): ${out.flood.target.met ? 'MET' : 'MISSED'}`)
  }
  mkdirSync(join(here, 'results'), { recursive: true })
  // --out FILE: write elsewhere (experiments must not overwrite the suite's results).
  const file = opt('out') !== undefined ? resolvePath(opt('out')) : join(here, 'results', 'memory.json')
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  console.log(`wrote ${file}`)
}

if (opt('child') !== undefined) {
  if (opt('child') === 'idle') await childIdleB(opt('engine'))
  else await childFlood(opt('engine'))
} else {
  await main()
}
