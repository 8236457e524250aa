#!/usr/bin/env node
// Client side: pipelined SSP POST throughput and per-request acknowledgement
// latency of WireClient vs undici's Client (pipelining: 16).
//
//   npm run build && node bench/client.mjs
//   options: --rounds 5 --secs 2 --depth 16 --window 32 --body 380 --busy-poll 200
//            --placement cross,same
//            --ref DIR   add engine "ref": WireClient from another build (e.g. the last
//                        commit's dist/), default options, in the same rounds; ratios
//                        ours/ref of req/s and client CPU per request are printed
//
// Three engines send the same 380-byte SSP POST (Content-Type, x-wv-transactionid,
// x-wv-sessionid, Content-Length) to the SAME server: WireClient with default
// options, WireClient with busyPollMicros (--busy-poll: after its I/O the event loop
// polls instead of sleeping, src/wire/busy-poll.ts), and undici's Client. The server
// is a minimal raw net server in a CHILD process, which finds request boundaries
// with indexOf (head end, Content-Length) and answers every request of a read with
// one write of `HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n` x n. This process
// (the clients) is pinned to core 0 (`taskset -a -p -c 0`). Placements:
//   cross  the server pinned to core 1: load and server on different cores (the
//          suite's figure). Every round trip pays the wake-up of a sleeping process
//          on the other CPU (bench/wake-floor.mjs measures that floor).
//   same   the server pinned to core 0 as well: no cross-CPU wake-up, every engine
//          bound by the CPU it (and the server, on its behalf) spends per request.
//
// Load: closed loop, `window` requests outstanding per engine (default 2 x depth,
// so the pipeline never runs dry), one connection each. Latency: every request's
// own time from the call that issued it (WireClient.write / undici dispatch) to
// its completion callback, recorded in an HDR histogram (microseconds). Both
// engines complete in request order, so start times sit in a FIFO ring: no
// object or closure per request on either side of the measurement. undici gets
// its fastest path: `dispatch()` with a legacy handler object (no promise, no
// body stream), `blocking: false` and `idempotent: true` so POSTs pipeline.
//
// Rounds alternate the engines (order rotated per round); the table shows the
// median over rounds, and the ratio is the median of per-round ratios.
// Writes bench/results/client.json.
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import os from 'node:os'
import net from 'node:net'
import { benchArgs } from './args.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const self = fileURLToPath(import.meta.url)
const { has, opt: optStr, num: opt } = benchArgs(import.meta.url, {
  quick: { type: 'boolean' }, // accepted from bench/run.mjs --quick; the figures come from --rounds/--secs
  server: { type: 'boolean' },
  rounds: { type: 'string' },
  secs: { type: 'string' },
  depth: { type: 'string' },
  window: { type: 'string' },
  'busy-poll': { type: 'string' },
  body: { type: 'string' },
  placement: { type: 'string' },
  ref: { type: 'string' }
})

// ================================================================== child: the server

function serve () {
  const RESP = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1')
  const cache = []
  const answers = (n) => {
    let b = cache[n]
    if (b === undefined) {
      b = Buffer.allocUnsafe(RESP.length * n)
      for (let i = 0; i < n; i++) RESP.copy(b, i * RESP.length)
      if (n < 1024) cache[n] = b
    }
    return b
  }
  let requests = 0
  let reads = 0
  let maxPerRead = 0
  const server = net.createServer({ noDelay: true }, (sock) => {
    let rest = null
    sock.on('error', () => {})
    sock.on('data', (chunk) => {
      reads++
      const buf = rest === null ? chunk : Buffer.concat([rest, chunk])
      rest = null
      let pos = 0
      let n = 0
      for (;;) {
        const end = buf.indexOf('\r\n\r\n', pos, 'latin1')
        if (end < 0) break
        // Content-Length, either spelling: find "ength:" inside the head
        let len = 0
        const cl = buf.indexOf('ength:', pos, 'latin1')
        if (cl >= 0 && cl < end) {
          let i = cl + 6
          while (buf[i] === 0x20) i++
          for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) len = len * 10 + c - 0x30
        }
        const next = end + 4 + len
        if (next > buf.length) break
        pos = next
        n++
      }
      if (pos < buf.length) rest = buf.subarray(pos)
      if (n > 0) {
        requests += n
        if (n > maxPerRead) maxPerRead = n
        sock.write(answers(n))
      }
    })
  })
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
  process.on('message', (m) => {
    if (m === 'stats') {
      process.send({ stats: { requests, reads, maxPerRead } })
      requests = 0
      reads = 0
      maxPerRead = 0
    } else if (m === 'exit') {
      server.close()
      process.exit(0)
    }
  })
}

// ================================================================== parent: the clients

const hasTaskset = (() => {
  if (os.cpus().length < 2) return false
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
})()

function startServer (core) {
  const cmd = hasTaskset ? 'taskset' : process.execPath
  const args = hasTaskset ? ['-c', core, process.execPath, self, '--server'] : [self, '--server']
  const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('message', (m) => resolve({ child, port: m.port }))
  })
}

function serverStats (child) {
  return new Promise((resolve) => {
    const on = (m) => { if (m.stats !== undefined) { child.off('message', on); resolve(m.stats) } }
    child.on('message', on)
    child.send('stats')
  })
}

function sspBody (size) {
  const head = '<?xml version="1.0" encoding="UTF-8"?>\n<WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3"><Session sessionID="S42"><Transaction mode="Request" transactionID="T1"><SendMessageRequest deliveryReport="No"><MessageInfo messageID="m1" contentType="text/plain"/><ContentData>'
  const tail = '</ContentData></SendMessageRequest></Transaction></Session></WV-SSP-Message>'
  const fill = Math.max(0, size - head.length - tail.length)
  return Buffer.from(head + 'x'.repeat(fill) + tail, 'utf8')
}

async function main () {
  const { WireClient } = await import(join(root, 'dist/wire/client.js'))
  const refDir = optStr('ref', '')
  const RefClient = refDir === '' ? null : (await import(join(resolvePath(refDir), 'wire/client.js'))).WireClient
  const { Client } = await import('undici')
  const hdr = await import('hdr-histogram-js')
  const build = hdr.default?.build ?? hdr.build

  const rounds = opt('rounds', 5)
  const secs = opt('secs', 2)
  const depth = opt('depth', 16)
  const window = opt('window', depth * 2)
  const busyPoll = opt('busy-poll', 200)
  const body = sspBody(opt('body', 380))
  const CT = 'application/vnd.wv.ssp+xml'
  const placementNames = optStr('placement', 'cross,same').split(',')
  // cross: server child on core 1, clients on core 0 (the suite's rule: load and server on
  // different cores). same: the server child on core 0 too: no cross-CPU wake-ups, so
  // every engine is bound by the CPU it and its share of the server spend per request.
  const PLACEMENTS = { cross: { serverCore: '1', label: 'server on core 1, clients on core 0' }, same: { serverCore: '0', label: 'server and clients on core 0' } }

  if (hasTaskset) {
    try { execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' }) } catch {}
  }

  // ---- one engine = { name, start(onDone), issue(tid) }; all complete in order.
  const MASK = 65535
  const starts = new Float64Array(MASK + 1)

  function makeRunner (name, issue) {
    const r = {
      name,
      hist: null,
      head: 0,
      tail: 0,
      outstanding: 0,
      completed: 0,
      errors: 0,
      running: false,
      seq: 0,
      done: null,
      complete (err) {
        const t = performance.now()
        const t0 = starts[r.tail++ & MASK]
        r.hist.recordValue(Math.max(1, Math.round((t - t0) * 1000)))
        r.outstanding--
        r.completed++
        if (err) r.errors++
        if (r.running) r.pump()
        else if (r.outstanding === 0 && r.done !== null) { const d = r.done; r.done = null; d() }
      },
      pump () {
        while (r.outstanding < window) {
          r.outstanding++
          starts[r.head++ & MASK] = performance.now()
          issue(`T${++r.seq}`)
        }
      },
      /** Run for `ms`, return { reqs, secs, hist }. */
      async run (ms) {
        r.hist = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
        r.head = r.tail = 0
        r.completed = 0
        r.errors = 0
        r.running = true
        const cpu0 = process.cpuUsage()
        const t0 = performance.now()
        r.pump()
        await new Promise((resolve) => setTimeout(resolve, ms))
        r.running = false
        const elapsed = (performance.now() - t0) / 1000
        const cpu = process.cpuUsage(cpu0)
        const completed = r.completed
        await new Promise((resolve) => { if (r.outstanding === 0) resolve(); else r.done = resolve })
        return { reqs: completed, secs: elapsed, hist: r.hist, errors: r.errors, cpuUsPerReq: (cpu.user + cpu.system) / completed }
      }
    }
    return r
  }

  const undiciVersion = (await import('undici/package.json', { with: { type: 'json' } })).default.version
  const OURS = 'ssp-transport WireClient'
  const OURS_POLL = `ssp-transport WireClient, busyPollMicros ${busyPoll}`
  const UNDICI = `undici ${undiciVersion} Client`
  const REF = 'ref: WireClient of --ref'
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

  async function measurePlacement (placement) {
    const { child, port } = await startServer(PLACEMENTS[placement].serverCore)
    const origin = `http://127.0.0.1:${port}`
    // ---- ours, default options and with busy polling
    const wire = new WireClient(`${origin}/ssp`, { pipelineDepth: depth, maxQueued: window * 2 })
    const wirePoll = new WireClient(`${origin}/ssp`, { pipelineDepth: depth, maxQueued: window * 2, busyPollMicros: busyPoll })
    let oursRunner
    let pollRunner
    const oursCb = (err) => oursRunner.complete(err)
    const pollCb = (err) => pollRunner.complete(err)
    oursRunner = makeRunner(OURS, (tid) => { wire.write(body, tid, 'S42', false, oursCb) })
    pollRunner = makeRunner(OURS_POLL, (tid) => { wirePoll.write(body, tid, 'S42', false, pollCb) })

    // ---- undici
    const undici = new Client(origin, { pipelining: depth, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 })
    let undiciRunner
    const handler = {
      onConnect () {},
      onHeaders () { return true },
      onData () { return true },
      onComplete () { undiciRunner.complete(null) },
      onError (err) { undiciRunner.complete(err) }
    }
    const hdrs = ['content-type', CT, 'x-wv-transactionid', '', 'x-wv-sessionid', 'S42']
    undiciRunner = makeRunner(UNDICI, (tid) => {
      const h = hdrs.slice()
      h[3] = tid
      undici.dispatch({ origin, path: '/ssp', method: 'POST', headers: h, body, blocking: false, idempotent: true }, handler)
    })

    const engines = [oursRunner, pollRunner, undiciRunner]
    let refClient = null
    if (RefClient !== null) {
      refClient = new RefClient(`${origin}/ssp`, { pipelineDepth: depth, maxQueued: window * 2 })
      let refRunner
      const refCb = (err) => refRunner.complete(err)
      refRunner = makeRunner(REF, (tid) => { refClient.write(body, tid, 'S42', false, refCb) })
      engines.push(refRunner)
    }
    // warm-up (JIT, connections)
    for (const e of engines) await e.run(Math.min(1000, secs * 500))
    await serverStats(child)

    const perRound = []
    for (let round = 0; round < rounds; round++) {
      // every engine once per round, order rotated per round
      const k = round % engines.length
      let order = [...engines.slice(k), ...engines.slice(0, k)]
      if (round % 2 === 1) order = order.reverse()
      const row = {}
      for (const e of order) {
        const res = await e.run(secs * 1000)
        const s = await serverStats(child)
        row[e.name] = {
          reqPerSec: Math.round(res.reqs / res.secs),
          p50us: res.hist.getValueAtPercentile(50),
          p99us: res.hist.getValueAtPercentile(99),
          p999us: res.hist.getValueAtPercentile(99.9),
          maxUs: res.hist.maxValue,
          clientCpuUsPerReq: +res.cpuUsPerReq.toFixed(2),
          errors: res.errors,
          serverRequests: s.requests,
          serverRequestsPerRead: +(s.requests / Math.max(1, s.reads)).toFixed(2),
          serverMaxPerRead: s.maxPerRead
        }
      }
      perRound.push(row)
      const f = (n) => `${row[n].reqPerSec} req/s p99 ${row[n].p99us} us ${row[n].clientCpuUsPerReq} cpu-us/req`
      console.error(`${placement} round ${round + 1}/${rounds}: ours ${f(OURS)} | ours+poll ${f(OURS_POLL)} | undici ${f(UNDICI)}${row[REF] ? ` | ref ${f(REF)}` : ''}`)
    }

    const summary = engines.map((e) => ({
      engine: e.name,
      reqPerSec: Math.round(median(perRound.map((r) => r[e.name].reqPerSec))),
      p50us: median(perRound.map((r) => r[e.name].p50us)),
      p99us: median(perRound.map((r) => r[e.name].p99us)),
      clientCpuUsPerReq: median(perRound.map((r) => r[e.name].clientCpuUsPerReq)),
      errors: perRound.reduce((a, r) => a + r[e.name].errors, 0),
      serverRequestsPerRead: median(perRound.map((r) => r[e.name].serverRequestsPerRead))
    }))
    const ratioOf = (name, field) => +median(perRound.map((r) => r[name][field] / r[UNDICI][field])).toFixed(2)
    const result = {
      placement,
      label: PLACEMENTS[placement].label,
      summary,
      ratio: ratioOf(OURS, 'reqPerSec'),
      p99Ratio: ratioOf(OURS, 'p99us'),
      pollRatio: ratioOf(OURS_POLL, 'reqPerSec'),
      pollP99Ratio: ratioOf(OURS_POLL, 'p99us'),
      rounds: perRound
    }
    if (refClient !== null) {
      const vsRef = (field) => +median(perRound.map((r) => r[OURS][field] / r[REF][field])).toFixed(3)
      result.overRef = { build: refDir, reqPerSec: vsRef('reqPerSec'), clientCpuUsPerReq: vsRef('clientCpuUsPerReq'), p99us: vsRef('p99us') }
      console.error(`${placement}: ours / ref (${refDir}), median of per-round ratios: req/s ${result.overRef.reqPerSec}x, client CPU per request ${result.overRef.clientCpuUsPerReq}, p99 ${result.overRef.p99us}`)
      await refClient.close()
    }
    await wire.close()
    await wirePoll.close()
    await undici.close()
    child.send('exit')
    return result
  }

  const placements = {}
  for (const p of placementNames) {
    if (PLACEMENTS[p] === undefined) throw new Error(`unknown placement ${p} (cross, same)`)
    placements[p] = await measurePlacement(p)
  }

  console.log(`\nPipelined SSP POSTs (${body.length}-byte body), depth ${depth}, ${window} outstanding, 1 connection per engine, ${rounds} x ${secs} s per engine and placement`)
  console.log(`pinning: ${hasTaskset ? 'taskset' : 'none (taskset unavailable or 1 CPU)'}; node ${process.version}; ${os.cpus()[0]?.model ?? ''}`)
  for (const r of Object.values(placements)) {
    console.log(`\n${r.placement}: ${r.label}`)
    console.log('engine                                        req/s     p50 us   p99 us   client CPU us/req   reqs/read (server)')
    for (const s of r.summary) {
      console.log(`${s.engine.padEnd(44)} ${String(s.reqPerSec).padStart(8)} ${String(s.p50us).padStart(9)} ${String(s.p99us).padStart(8)} ${String(s.clientCpuUsPerReq).padStart(19)}   ${s.serverRequestsPerRead}`)
    }
    console.log(`ratio ours/undici req/s (median of rounds): ${r.ratio}x (with busy polling ${r.pollRatio}x)   p99 ours/undici: ${r.p99Ratio} (${r.pollP99Ratio})`)
  }

  // The suite's figure is the cross-core placement (load and server on different cores).
  const main = placements.cross ?? Object.values(placements)[0]
  mkdirSync(join(here, 'results'), { recursive: true })
  writeFileSync(join(here, 'results', 'client.json'), JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model,
    pinned: hasTaskset,
    config: { rounds, secs, depth, window, bodyBytes: body.length, busyPollMicros: busyPoll },
    placement: main.placement,
    summary: main.summary,
    ratio: main.ratio,
    p99Ratio: main.p99Ratio,
    pollRatio: main.pollRatio,
    pollP99Ratio: main.pollP99Ratio,
    placements
  }, null, 2) + '\n')
}

if (has('server')) serve()
else main().catch((err) => { console.error(err); process.exit(1) })
