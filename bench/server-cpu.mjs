#!/usr/bin/env node
// End-to-end server CPU per request: this engine's WireServer (sync no-op
// handler) vs node:http (reads the body, answers 200 Content-Length: 0), and
// nginx `return 200` when nginx is installed, and a `net floor` column: a
// node:net server that answers the right number of 200s per read without
// parsing HTTP at all (the cost of node's stream sockets + syscalls alone).
//
//   node bench/server-cpu.mjs                 # 3 rounds x 4 s per cell, depths 1,16,64 (~2.5 min)
//   node bench/server-cpu.mjs --quick         # 1 round x 3 s (~30 s)
//   options: --depths 1,16,64 --rounds 3 --secs 4 --conns 8 --no-floor
//            --engines ours,node:http,net floor,full node[,floor+framer]   (floor+framer: node:net +
//                        RequestFramer + counting sink, no ServerConnection: a decomposition aid;
//                        full node: the `serve --domain` CLI, every answer POSTed, see FullNodeServer)
//            --dist DIR  run `ours`, the full node (and the floor helpers) from another build (a patched
//                        copy of dist/; for the full node it must sit in the repository's root, e.g.
//                        ./dist-ref, as the CLI reads ../../package.json)
//            SSP_BENCH_FULL_PROF=DIR  the full node under --cpu-prof (a diagnostic)
//            --profile   after the table, run `ours` at depth 16 under --cpu-prof and
//                        print the top self-time functions (bench/results/prof-server-cpu/)
//
// Each server runs in a CHILD process pinned to core 1 (`taskset -c 1`), the
// load generator is wrk pinned to core 0 (`taskset -c 0 wrk -t1 ...
// -s bench/wrk-pipeline.lua -- <depth>`). CPU per request = the server
// process's utime+stime delta over the run (/proc/<pid>/stat, CLK_TCK ticks;
// process.cpuUsage() over IPC is recorded as a cross-check) divided by the
// requests the server itself counted over the same interval (IPC, not wrk).
// Engines alternate within each round (order rotated per round); the figure
// per cell is the median over rounds. Writes bench/results/server-cpu.json.
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, mkdtempSync, existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import os from 'node:os'
import { machine as baseMachine } from './machine.mjs'
import { benchArgs } from './args.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
// --dist <dir> (or SSP_BENCH_DIST): measure another build of the engine (a patched
// copy of dist/, for A/B of a proposed change); children inherit it.
const { argv, has, opt } = benchArgs(import.meta.url, {
  quick: { type: 'boolean' },
  profile: { type: 'boolean' },
  'no-floor': { type: 'boolean' },
  depths: { type: 'string' },
  rounds: { type: 'string' },
  secs: { type: 'string' },
  conns: { type: 'string' },
  engines: { type: 'string' },
  dist: { type: 'string' },
  serve: { type: 'string' } // child: serve this kind (ours, node, floor, framer)
})
if (opt('dist') !== undefined) process.env.SSP_BENCH_DIST = resolve(opt('dist'))
const dist = process.env.SSP_BENCH_DIST ?? join(root, 'dist')
const self = fileURLToPath(import.meta.url)

// ================================================================== child: a server

async function serve (kind) {
  let count
  let close
  if (kind === 'ours') {
    const { createWireServer } = await import(join(dist, 'index.js'))
    const server = createWireServer({ onRequest: () => undefined })
    const a = await server.listen(0, '127.0.0.1')
    count = () => server.stats.requests
    close = () => server.close()
    process.send({ port: a.port, build: (await import(join(dist, 'wire/llhttp.js'))).llhttpBuild })
  } else if (kind === 'node') {
    const http = await import('node:http')
    let n = 0
    const server = http.createServer((req, res) => {
      let bytes = 0
      req.on('data', (c) => { bytes += c.length })
      req.on('end', () => {
        n++
        res.writeHead(200, { 'Content-Length': '0' })
        res.end()
        void bytes
      })
    })
    server.keepAliveTimeout = 120_000
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    count = () => n
    close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) })
    process.send({ port: server.address().port })
  } else if (kind === 'floor') {
    // I/O floor: node:net stream sockets, no HTTP parsing. Every request of a
    // run has the same length (wrk-pipeline.lua), so the count is bytes / length
    // (length learned from the first request); answers are the same slab of
    // 200s as ours. What is left of `ours` above this is parsing + records.
    const net = await import('node:net')
    const { acks } = await import(join(dist, 'wire/replies.js'))
    let n = 0
    let reqLen = 0
    const server = net.createServer({ noDelay: true }, (sock) => {
      let pending = 0
      sock.on('error', () => {})
      sock.on('data', (c) => {
        if (reqLen === 0) {
          const h = c.indexOf('\r\n\r\n')
          reqLen = h + 4 + Number(/content-length:\s*(\d+)/i.exec(c.toString('latin1', 0, h))[1])
        }
        pending += c.length
        const k = Math.floor(pending / reqLen)
        if (k > 0) {
          pending -= k * reqLen
          n += k
          sock.write(acks(k))
        }
      })
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    count = () => n
    close = () => new Promise((resolve) => server.close(resolve))
    process.send({ port: server.address().port })
  } else if (kind === 'framer') {
    // Decomposition aid (--engines ...,floor+framer): node:net + RequestFramer
    // with a counting sink, one write of k 200s per read; no ServerConnection.
    const net = await import('node:net')
    const { acks } = await import(join(dist, 'wire/replies.js'))
    const { RequestFramer } = await import(join(dist, 'wire/request-framer.js'))
    let n = 0
    const server = net.createServer({ noDelay: true }, (sock) => {
      let k = 0
      const sink = { onRequest () { k++; return true }, onReject () { sock.destroy() }, onMessageBegin () {}, onHeadersComplete () {} }
      const f = new RequestFramer(sink, { interop: false, maxHeaderBytes: 16384, maxHeaderCount: 64, maxBodyBytes: 1 << 20 })
      sock.on('error', () => {})
      sock.on('close', () => f.destroy())
      sock.on('data', (c) => {
        f.push(c)
        if (k > 0) { n += k; sock.write(acks(k)); k = 0 }
      })
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    count = () => n
    close = () => new Promise((resolve) => server.close(resolve))
    process.send({ port: server.address().port })
  } else {
    throw new Error(`unknown server kind ${kind}`)
  }
  process.on('message', async (m) => {
    if (m === 'snap') process.send({ snap: { requests: count(), cpu: process.cpuUsage() } })
    else if (m === 'exit') { await close(); process.exit(0) }
  })
  process.on('disconnect', () => process.exit(0))
}

// ================================================================== parent

function have (cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0
}

function machine () {
  return { ...baseMachine(), dist }
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** utime and stime of a process, in seconds (all its threads). */
function procCpu (pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ') // fields from #3 on
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK } // #14 utime, #15 stime
}

class NodeServer {
  constructor (kind, pin, extraNodeArgs = []) {
    this.kind = kind
    const cmd = pin ? 'taskset' : process.execPath
    const args = [...(pin ? ['-c', '1', process.execPath] : []), ...extraNodeArgs, self, '--serve', kind]
    this.child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.pid = this.child.pid
    this.waiters = []
    this.child.on('message', (m) => { const w = this.waiters.shift(); if (w) w(m) })
  }

  next () { return new Promise((resolve) => this.waiters.push(resolve)) }

  async start () {
    const m = await this.next()
    this.port = m.port
    this.build = m.build
    return this
  }

  async snap () {
    const p = this.next()
    this.child.send('snap')
    const { snap } = await p
    return { requests: snap.requests, cpuProc: procCpu(this.pid), cpuSelf: (snap.cpu.user + snap.cpu.system) / 1e6 }
  }

  async stop () {
    const exited = once(this.child, 'exit')
    this.child.send('exit')
    await exited
  }
}

/**
 * The full node: `ssp-transport serve --domain b.example` (the CLI, dist/cli/main.js) pinned
 * to core 1, with a peer a.example that is an SspNode in this process. That node sets up
 * a session with the CLI node first; wrk then POSTs in that session (its id in the header
 * and the body, every transaction id new), so each request takes the whole server path:
 * framing, the session lookup, dedupe, the handler (the CLI's SendMessageResponse with the
 * request's messageID), the envelope, and the answer POSTed to a.example (whose 200 the
 * node also parses). Requests are counted by the CLI's control interface (GET /stats).
 *
 * The CLI node reaches a.example through a relay here: during the set-up it forwards the
 * bytes both ways to the SspNode; once the set-up is done it answers every POST itself
 * (this package's RequestFramer, one write of k 200s per read, as the 'framer' kind), so
 * that the answers do not make an SspNode on wrk's core the bottleneck (it would fall
 * behind, and the CLI node's client would refuse answers: a different, failing path).
 */
class FullNodeServer {
  constructor (pin) {
    this.kind = 'full'
    this.pin = pin
  }

  async start () {
    const { SspNode, sendMessageResponse } = await import(join(dist, 'index.js'))
    this.a = new SspNode({ domain: 'a.example', resolver: false, listen: [{ port: 0, host: '127.0.0.1' }], handler: () => sendMessageResponse() })
    const [aUrl] = await this.a.start()
    const relayUrl = await this.relay(Number(new URL(aUrl).port))
    // SSP_BENCH_FULL_PROF=DIR: the CLI node under the V8 profiler (a diagnostic; the figures are then not comparable).
    const prof = process.env.SSP_BENCH_FULL_PROF !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SSP_BENCH_FULL_PROF}`] : []
    const cli = [...prof, join(dist, 'cli', 'main.js'), 'serve', '--domain', 'b.example', '--host', '127.0.0.1', '--port', '0', '--peer', `a.example=${relayUrl},depth=256`, '--control', '127.0.0.1:0', '--log-level', 'error']
    this.child = spawn(this.pin ? 'taskset' : process.execPath, this.pin ? ['-c', '1', process.execPath, ...cli] : cli, { stdio: ['ignore', 'pipe', 'inherit'] })
    this.pid = this.child.pid
    let out = ''
    const urls = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`serve --domain did not start: ${out}`)), 20_000)
      this.child.stdout.on('data', (d) => {
        out += d
        const l = /listening on (\S+)/.exec(out)
        const c = /control on (\S+)/.exec(out)
        if (l && c) { clearTimeout(t); resolve({ url: l[1], control: c[1].replace(/\/$/, '') }) }
      })
      this.child.on('exit', (code) => reject(new Error(`serve --domain exited ${code}: ${out}`)))
    })
    this.control = urls.control
    this.port = Number(new URL(urls.url).port)
    this.a.addPeer('b.example', urls.url)
    const session = await this.a.connect('b.example')
    this.setupDone = true
    this.wrkArgs = [session.id, 'unique']
    return this
  }

  /**
   * While wrk loads this server, the relay (this process, on wrk's core) runs before wrk:
   * a relay starved by wrk answers late, the node's outbound queue fills and it refuses
   * answers, which is not the path being measured. wrk sending a little less is harmless.
   */
  beforeLoad () { try { os.setPriority(-5) } catch {} }
  afterLoad () { try { os.setPriority(0) } catch {} }

  /** The relay to a.example (see above); resolves with its URL. */
  async relay (aPort) {
    const net = await import('node:net')
    const { acks } = await import(join(dist, 'wire/replies.js'))
    const { RequestFramer } = await import(join(dist, 'wire/request-framer.js'))
    this.setupDone = false
    this.answered = 0
    this.relayServer = net.createServer({ noDelay: true }, (sock) => {
      sock.on('error', () => {})
      let k = 0
      const sink = { onRequest: () => { k++; return true }, onReject: () => sock.destroy(), onMessageBegin () {}, onHeadersComplete () {} }
      const framer = new RequestFramer(sink, { interop: false, maxHeaderBytes: 16384, maxHeaderCount: 64, maxBodyBytes: 1 << 20 })
      const up = net.connect(aPort, '127.0.0.1')
      up.on('error', () => sock.destroy())
      up.on('data', (d) => sock.write(d))
      sock.on('close', () => { up.destroy(); framer.destroy() })
      sock.on('data', (c) => {
        if (!this.setupDone) { up.write(c); return }
        framer.push(c)
        if (k > 0) { this.answered += k; sock.write(acks(k)); k = 0 }
      })
    })
    await new Promise((resolve) => this.relayServer.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${this.relayServer.address().port}/`
  }

  async snap () {
    const s = await (await fetch(`${this.control}/stats`)).json()
    return { requests: s.incomingRequests, answersSent: s.answersSent, answerFailures: s.answerFailures, duplicates: s.duplicates, cpuProc: procCpu(this.pid), cpuSelf: null }
  }

  async stop () {
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(t)
    await Promise.race([this.a.close(), new Promise((resolve) => setTimeout(resolve, 3000))])
    this.relayServer.close()
  }
}

class NginxServer {
  // nginx `return 200`, one worker, master off, pinned; requests counted by stub_status.
  constructor (pin) {
    this.kind = 'nginx'
    this.dir = mkdtempSync(join(tmpdir(), 'ssp-nginx-'))
    this.port = 20000 + Math.floor(Math.random() * 20000)
    const conf = `
daemon off; master_process off; worker_processes 1; error_log ${this.dir}/error.log error; pid ${this.dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 100000000; keepalive_timeout 120s; client_body_buffer_size 64k;
  client_body_temp_path ${this.dir}/body; proxy_temp_path ${this.dir}/proxy; fastcgi_temp_path ${this.dir}/fcgi;
  uwsgi_temp_path ${this.dir}/uwsgi; scgi_temp_path ${this.dir}/scgi;
  server {
    listen 127.0.0.1:${this.port};
    location = /__status { stub_status; }
    location / { return 200; }
  }
}`
    writeFileSync(join(this.dir, 'nginx.conf'), conf)
    const args = ['-p', this.dir, '-c', join(this.dir, 'nginx.conf')]
    this.child = spawn(pin ? 'taskset' : 'nginx', [...(pin ? ['-c', '1', 'nginx'] : []), ...args], { stdio: ['ignore', 'inherit', 'inherit'] })
    this.pid = this.child.pid
    this.statusCalls = 0
  }

  async start () {
    for (let i = 0; i < 50; i++) {
      try { await this.status(); return this } catch { await new Promise((resolve) => setTimeout(resolve, 100)) }
    }
    throw new Error('nginx did not start')
  }

  async status () {
    const r = await fetch(`http://127.0.0.1:${this.port}/__status`)
    this.statusCalls++
    const t = await r.text()
    const m = /\s(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(t) // accepts handled requests
    return Number(m[3])
  }

  async snap () {
    const before = this.statusCalls
    const n = await this.status()
    // stub_status counts the status requests themselves
    return { requests: n - (this.statusCalls - before) - (before), cpuProc: procCpu(this.pid), cpuSelf: null }
  }

  async stop () {
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    await exited
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function runWrk (port, depth, secs, conns, pin, scriptArgs = []) {
  const wrkArgs = ['-t1', `-c${conns}`, `-d${secs}s`, '-s', join(here, 'wrk-pipeline.lua'), `http://127.0.0.1:${port}/ssp`, '--', String(depth), ...scriptArgs]
  const cmd = pin ? 'taskset' : 'wrk'
  const args = pin ? ['-c', '0', 'wrk', ...wrkArgs] : wrkArgs
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => { out += d })
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}\n${out}`))
      const m = /(\d+) requests in/.exec(out)
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
      const errs = /Socket errors: (.*)/.exec(out)
      resolve({ requests: m ? Number(m[1]) : NaN, non2xx: non2xx ? Number(non2xx[1]) : 0, socketErrors: errs ? errs[1] : null })
    })
  })
}

async function measure (server, depth, secs, conns, pin) {
  const a = await server.snap()
  const t0 = process.hrtime.bigint()
  server.beforeLoad?.()
  const w = await runWrk(server.port, depth, secs, conns, pin, server.wrkArgs)
  server.afterLoad?.()
  const b = await server.snap()
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  const requests = b.requests - a.requests
  const user = b.cpuProc.user - a.cpuProc.user
  const sys = b.cpuProc.sys - a.cpuProc.sys
  const cpu = user + sys
  return {
    requests,
    // The full node: answers it failed to POST in the window (must be 0, or the run measured a failing path).
    ...(a.answerFailures !== undefined ? { answersSent: b.answersSent - a.answersSent, answerFailures: b.answerFailures - a.answerFailures, duplicates: b.duplicates - a.duplicates } : {}),
    wrkRequests: w.requests,
    non2xx: w.non2xx,
    socketErrors: w.socketErrors,
    cpuSec: Math.round(cpu * 1000) / 1000,
    userSec: Math.round(user * 1000) / 1000,
    sysSec: Math.round(sys * 1000) / 1000,
    sysShare: cpu > 0 ? Math.round((sys / cpu) * 100) / 100 : null,
    cpuSelfSec: a.cpuSelf === null ? null : Math.round((b.cpuSelf - a.cpuSelf) * 1000) / 1000,
    usPerReq: requests > 0 ? (cpu * 1e6) / requests : NaN,
    usPerReqSelf: a.cpuSelf === null || requests <= 0 ? null : ((b.cpuSelf - a.cpuSelf) * 1e6) / requests,
    reqPerSec: Math.round(requests / wall),
    cpuUtil: Math.round((cpu / wall) * 100) / 100
  }
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q)
  if (s.length === 0) return NaN
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const r3 = (x) => Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null

async function main () {
  const QUICK = has('quick')
  const PROFILE = has('profile')
  const depths = opt('depths', '1,16,64').split(',').map(Number)
  const rounds = Number(opt('rounds', QUICK ? '1' : '3'))
  const secs = Number(opt('secs', QUICK ? '3' : '4'))
  const conns = Number(opt('conns', '8'))
  if (!have('wrk')) throw new Error('wrk not found: apt-get install -y wrk')
  if (!existsSync(join(dist, 'index.js'))) throw new Error('dist/ missing: npm run build')
  const pin = have('taskset')
  // This process (the full node's peer and relay) stays on wrk's core, off the server's.
  if (pin) { try { execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' }) } catch {} }
  const withNginx = have('nginx')
  const info = { ...machine(), clkTck: CLK_TCK, pinned: pin, wrk: spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].trim() }
  process.stderr.write(`server-cpu: depths ${depths.join(',')}, ${rounds} round(s) x ${secs} s, ${conns} conns, pinned ${pin}, nginx ${withNginx ? 'yes' : 'absent (skipped)'}\n`)

  const engines = opt('engines', 'ours,node:http,net floor,full node').split(',')
  if (has('no-floor')) engines.splice(engines.indexOf('net floor') >>> 0, 1)
  const childKind = { ours: 'ours', 'node:http': 'node', 'net floor': 'floor', 'floor+framer': 'framer' }
  // Checked before any server starts: a refusal afterwards would leave children running.
  for (const e of engines) if (e !== 'full node' && childKind[e] === undefined) throw new Error(`unknown engine ${e}`)
  if (!engines.includes('ours') || !engines.includes('node:http')) throw new Error('--engines must include ours and node:http')
  const servers = {}
  for (const e of engines) {
    if (e === 'full node') { servers[e] = await new FullNodeServer(pin).start(); continue }
    servers[e] = await new NodeServer(childKind[e], pin).start()
  }
  if (withNginx) servers.nginx = await new NginxServer(pin).start()
  const kinds = Object.keys(servers)

  // warm-up (JIT, socket buffers); not counted
  for (const k of kinds) await runWrk(servers[k].port, 16, QUICK ? 1 : 2, conns, pin, servers[k].wrkArgs)

  const runs = []
  for (let r = 0; r < rounds; r++) {
    for (const depth of depths) {
      const order = kinds.map((_, i) => kinds[(i + r + depths.indexOf(depth)) % kinds.length])
      for (const k of order) {
        const m = await measure(servers[k], depth, secs, conns, pin)
        runs.push({ round: r + 1, depth, engine: k, ...m })
        process.stderr.write(`  round ${r + 1} depth ${String(depth).padStart(2)} ${k.padEnd(9)} ${m.usPerReq.toFixed(3)} us/req  (${m.requests} req, ${m.reqPerSec} req/s, cpu ${m.cpuSec}s = ${m.cpuUtil} core, sys ${Math.round((m.sysShare ?? 0) * 100)}%${m.answerFailures !== undefined ? `, answers ${m.answersSent} sent ${m.answerFailures} refused, ${m.duplicates} duplicates` : ''}${m.non2xx ? `, NON-2XX ${m.non2xx}` : ''}${m.socketErrors ? `, socket errors ${m.socketErrors}` : ''})\n`)
      }
    }
  }
  for (const k of kinds) await servers[k].stop()

  const table = depths.map((depth) => {
    const cell = (k) => median(runs.filter((x) => x.depth === depth && x.engine === k).map((x) => x.usPerReq))
    const rps = (k) => median(runs.filter((x) => x.depth === depth && x.engine === k).map((x) => x.reqPerSec))
    const sysShare = (k) => median(runs.filter((x) => x.depth === depth && x.engine === k).map((x) => x.sysShare))
    const row = { depth, ours: r3(cell('ours')), nodeHttp: r3(cell('node:http')) }
    row.ratio = r3(row.ours / row.nodeHttp)
    if (withNginx) { row.nginx = r3(cell('nginx')); row.oursOverNginx = r3(row.ours / row.nginx) }
    if (servers['net floor']) { row.netFloor = r3(cell('net floor')); row.floorOverNodeHttp = r3(row.netFloor / row.nodeHttp) }
    if (servers['floor+framer']) row.floorPlusFramer = r3(cell('floor+framer'))
    if (servers['full node']) {
      row.fullNode = r3(cell('full node'))
      row.fullOverNodeHttp = r3(row.fullNode / row.nodeHttp)
      // Answers the full node could not POST (its client queue full: the relay on wrk's core fell behind).
      row.fullNodeAnswerFailureShare = r3(median(runs.filter((x) => x.depth === depth && x.engine === 'full node').map((x) => x.answerFailures / Math.max(1, x.requests))))
    }
    row.reqPerSec = Object.fromEntries(kinds.map((k) => [k, rps(k)]))
    row.sysShare = Object.fromEntries(kinds.map((k) => [k, sysShare(k)]))
    return row
  })

  const hasFloor = servers['net floor'] !== undefined
  console.log(`\nserver CPU per request (median of ${rounds} x ${secs} s; ${conns} conns; server on core 1, wrk on core 0)`)
  const cols = [
    ['depth', (t) => t.depth],
    ['ours µs/req', (t) => t.ours],
    ['node:http µs/req', (t) => t.nodeHttp],
    ['ratio ours/node:http', (t) => t.ratio],
    ...(withNginx ? [['nginx µs/req', (t) => t.nginx]] : []),
    ...(hasFloor ? [['net floor µs/req', (t) => t.netFloor], ['floor/node:http', (t) => t.floorOverNodeHttp]] : []),
    ...(servers['floor+framer'] ? [['floor+framer µs/req', (t) => t.floorPlusFramer]] : []),
    ...(servers['full node'] ? [['full node µs/req', (t) => t.fullNode], ['full/node:http', (t) => t.fullOverNodeHttp]] : []),
    ['req/s ours', (t) => t.reqPerSec.ours],
    ['req/s node:http', (t) => t.reqPerSec['node:http']],
    ['kernel% ours', (t) => Math.round(t.sysShare.ours * 100)],
    ['kernel% node:http', (t) => Math.round(t.sysShare['node:http'] * 100)]
  ]
  console.log(cols.map(([h]) => h).join('  '))
  for (const t of table) console.log(cols.map(([h, f]) => String(f(t)).padStart(h.length)).join('  '))
  const d16 = table.find((t) => t.depth === 16)
  if (d16) console.log(`target (depth 16: ours <= 0.1 x node:http): ${d16.ratio <= 0.1 ? 'MET' : 'MISSED'} (ratio ${d16.ratio})`)
  if (d16?.fullNode != null) console.log(`target (depth 16: the full serve --domain node <= 0.1 x node:http): ${d16.fullOverNodeHttp <= 0.1 ? 'MET' : 'MISSED'} (ratio ${d16.fullOverNodeHttp})`)

  const out = {
    bench: 'server-cpu',
    command: `node bench/server-cpu.mjs ${argv.join(' ')}`.trim(),
    machine: info,
    params: { depths, rounds, secs, conns, requestBytes: 'see bench/wrk-pipeline.lua (~454 B with wrk Host header)', handler: { ours: 'sync no-op', 'node:http': 'read body, writeHead(200, {Content-Length: 0}), end()', 'net floor': 'no parsing: count = bytes / request length, one write of k 200s per read', 'full node': 'ssp-transport serve --domain b.example: session lookup, dedupe, SendMessageResponse(messageID) in the envelope POSTed to a.example (a relay that 200s it), unique transaction ids' }, nginx: withNginx ? 'return 200' : 'absent' },
    table,
    target: d16 ? { depth: 16, maxRatio: 0.1, ratio: d16.ratio, met: d16.ratio <= 0.1 } : null,
    targetFullNode: d16?.fullNode != null ? { depth: 16, maxRatio: 0.1, ratio: d16.fullOverNodeHttp, met: d16.fullOverNodeHttp <= 0.1 } : null,
    runs
  }

  if (PROFILE) out.profile = await profile(depths.includes(16) ? 16 : depths[0], secs, conns, pin)

  mkdirSync(join(here, 'results'), { recursive: true })
  writeFileSync(join(here, 'results', 'server-cpu.json'), JSON.stringify(out, null, 2) + '\n')
  console.log('wrote bench/results/server-cpu.json')
}

/** Run `ours` under --cpu-prof at one depth; print and return the top self-time functions. */
async function profile (depth, secs, conns, pin) {
  const dir = join(here, 'results', 'prof-server-cpu')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const s = await new NodeServer('ours', pin, ['--cpu-prof', `--cpu-prof-dir=${dir}`]).start()
  await runWrk(s.port, depth, 2, conns, pin) // warm-up
  const m = await measure(s, depth, secs, conns, pin)
  await s.stop()
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const self = new Map()
  const dt = prof.timeDeltas
  let total = 0
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i])
    const d = dt[i] ?? 0
    total += d
    const cf = n.callFrame
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? cf.url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/') + ':' + (cf.lineNumber + 1) : ''}`.trim()
    self.set(key, (self.get(key) ?? 0) + d)
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)
    .map(([fn, us]) => ({ fn, selfPct: Math.round((us / total) * 1000) / 10 }))
  console.log(`\nprofile of ours at depth ${depth} (${m.usPerReq.toFixed(3)} µs/req under --cpu-prof; ${file}):`)
  for (const t of top) console.log(`${String(t.selfPct).padStart(6)}%  ${t.fn}`)
  return { depth, usPerReqUnderProfiler: r3(m.usPerReq), file: join('bench/results/prof-server-cpu', file), top }
}

if (opt('serve') !== undefined) await serve(opt('serve'))
else await main()
