#!/usr/bin/env node
// The machine's round-trip floor: how long one request batch and its answer
// take between two Node processes over loopback TCP when neither does any
// work and both sleep while waiting. An exchange that sends one batch of
// `depth` requests per round trip and sleeps in between completes at most
//
//     depth / round-trip floor   requests per second
//
// (keeping a process awake, by busy polling or by streaming one write per
// request, gets past it).
// An end-to-end SSP transaction (A's request to B, B's answer POSTed back to
// A) is one such round trip on its critical path (two one-way hops; the
// dummy 200s travel beside it), so its ceiling is the same depth / floor.
//
//   node bench/wake-floor.mjs            # 3 rounds x 2,000 round trips per cell
//   node bench/wake-floor.mjs --quick    # 1 round x 1,000
//   options: --rounds 3 --trips 2000 --depth 16
//
// Cells: the "echo" process pinned to core 1 and the "sender" to core 0
// (cross-core: what the client and end-to-end benchmarks use), and both on
// core 0 (same core: no cross-CPU wake-up). Sizes: 1 byte each way, and one
// depth-16 batch (16 x 454-byte SSP POSTs out, 16 x 38-byte 200s back). The
// echo side is plain node:net: it answers once it has the whole batch, with
// one write. Each cell also gives the echo process's CPU per round trip (last
// round): what a sleep, a wake-up, a read and a write cost a process that does
// nothing else, the CPU floor under any node that sleeps once per batch.
// Writes bench/results/wake-floor.json.
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import os from 'node:os'
import net from 'node:net'
import { machine } from './machine.mjs'
import { benchArgs } from './args.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const self = fileURLToPath(import.meta.url)
const { has, num: opt, opt: str } = benchArgs(import.meta.url, {
  quick: { type: 'boolean' },
  echo: { type: 'boolean' },
  relay: { type: 'string' },
  rounds: { type: 'string' },
  trips: { type: 'string' },
  depth: { type: 'string' }
})
const QUICK = has('quick')
const REQ_BYTES = 454
const ACK_BYTES = 38

// ------------------------------------------------------------------ child: echo
function echo () {
  const server = net.createServer({ noDelay: true }, (sock) => {
    let want = 0
    let answer = Buffer.alloc(0)
    let got = 0
    sock.on('error', () => {})
    sock.on('data', (d) => {
      if (want === 0) {
        // first 8 bytes of a batch: request size, answer size
        want = d.readUInt32LE(0)
        answer = Buffer.alloc(d.readUInt32LE(4), 0x41)
      }
      got += d.length
      if (got >= want) {
        got -= want
        want = 0
        sock.write(answer)
      }
    })
  })
  serveChild(server)
}

/**
 * A child's server listens on loopback and reports its port; then 'mark' / 'cpu' give this
 * process's CPU (user + system µs) between the two, so the caller learns what a do-nothing
 * node:net peer spends per sleeping round trip; 'exit' ends it.
 */
function serveChild (server) {
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
  let cpu0 = process.cpuUsage()
  process.on('message', (m) => {
    if (m === 'exit') process.exit(0)
    if (m === 'mark') { cpu0 = process.cpuUsage(); process.send({ marked: true }) }
    if (m === 'cpu') { const c = process.cpuUsage(cpu0); process.send({ cpuUs: c.user + c.system, sysUs: c.system }) }
  })
}

// ------------------------------------------------------------------ child: relay
// Node B's socket pattern with none of its work: two connections from the sender,
// "in" (accepted first) and "out". A whole batch of `out` bytes on "in" is answered
// with `back` bytes on "in" (the 200s) and the same `out` bytes on "out" (the answer
// POSTs), two writes in one turn; the sender's `back` bytes on "out" (its 200s) are
// read and dropped. So per batch: two reads, two writes and (at best) one sleep.
function relay (spec) {
  const [out, back] = spec.split(',').map(Number)
  const ack = Buffer.alloc(back, 0x41)
  const batch = Buffer.alloc(out, 0x42)
  // Connections pair up in accept order: "in", then its "out" (each ping-pong opens a pair).
  let pending = null
  const server = net.createServer({ noDelay: true }, (sock) => {
    sock.on('error', () => {})
    if (pending === null) {
      const pair = { out: null }
      pending = pair
      let got = 0
      sock.on('data', (d) => {
        got += d.length
        while (got >= out) {
          got -= out
          sock.write(ack)
          pair.out?.write(batch)
        }
      })
    } else {
      pending.out = sock
      pending = null
      sock.on('data', () => {})
    }
  })
  serveChild(server)
}

// ------------------------------------------------------------------ parent
const canPin = (() => {
  if (os.cpus().length < 2) return false
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
})()

function startEcho (core, mode = ['--echo']) {
  const cmd = canPin ? 'taskset' : process.execPath
  const args = canPin ? ['-c', String(core), process.execPath, self, ...mode] : [self, ...mode]
  const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('message', (m) => resolve({ child, port: m.port }))
  })
}

/**
 * The clock of a ping-pong of `trips` round trips: `start()` when the first leaves, `done()`
 * per completed round trip. After the last, `done()` runs `finish` (close the sockets),
 * resolves with the median µs per trip of 10 slices, and returns true.
 */
function tripClock (trips, resolve, finish) {
  const slices = []
  const per = Math.max(1, Math.floor(trips / 10))
  let n = 0
  let t0 = 0n
  return {
    start () { t0 = process.hrtime.bigint() },
    done () {
      n++
      if (n % per === 0) {
        const t = process.hrtime.bigint()
        slices.push(Number(t - t0) / per / 1000)
        t0 = t
      }
      if (n < trips) return false
      finish()
      const s = slices.sort((a, b) => a - b)
      resolve(s[s.length >> 1])
      return true
    }
  }
}

/** `trips` round trips of `out` bytes there and `back` bytes back; returns µs per trip (median of 10 slices). */
function pingPong (port, out, back, trips) {
  return new Promise((resolve, reject) => {
    const msg = Buffer.alloc(Math.max(8, out), 0x42)
    msg.writeUInt32LE(msg.length, 0)
    msg.writeUInt32LE(back, 4)
    const sock = net.connect({ port, host: '127.0.0.1', noDelay: true })
    let got = 0
    const deadline = setTimeout(() => { sock.destroy(); reject(new Error('ping-pong overran 30 s')) }, 30_000)
    const clock = tripClock(trips, resolve, () => { clearTimeout(deadline); sock.destroy() })
    sock.on('error', reject)
    sock.on('connect', () => { clock.start(); sock.write(msg) })
    sock.on('data', (d) => {
      got += d.length
      if (got < back) return
      got -= back
      if (!clock.done()) sock.write(msg)
    })
  })
}

/**
 * `trips` relayed round trips with the relay child (B's pattern): a batch of `out` bytes on
 * connection 1; the relay's `out` bytes arrive on connection 2, are acknowledged there
 * with `back` bytes, and the next batch leaves on connection 1 in the same turn (as node
 * A does). Returns µs per round trip (median of 10 slices).
 */
function relayPingPong (port, out, back, trips) {
  return new Promise((resolve, reject) => {
    const msg = Buffer.alloc(out, 0x42)
    const ack = Buffer.alloc(back, 0x41)
    let got = 0
    const c1 = net.connect({ port, host: '127.0.0.1', noDelay: true })
    let c2 = null
    const deadline = setTimeout(() => { c1.destroy(); c2?.destroy(); reject(new Error('relay ping-pong overran 30 s')) }, 30_000)
    const clock = tripClock(trips, resolve, () => { clearTimeout(deadline); c1.destroy(); c2?.destroy() })
    c1.on('error', reject)
    c1.on('data', () => {}) // the relay's 200s
    c1.on('connect', () => {
      c2 = net.connect({ port, host: '127.0.0.1', noDelay: true })
      c2.on('error', reject)
      c2.on('connect', () => { setTimeout(() => { clock.start(); c1.write(msg) }, 20) })
      c2.on('data', (d) => {
        got += d.length
        if (got < out) return
        got -= out
        c2.write(ack)
        if (!clock.done()) c1.write(msg)
      })
    })
  })
}

async function main () {
  const rounds = opt('rounds', QUICK ? 1 : 3)
  const trips = opt('trips', QUICK ? 1000 : 2000)
  const depth = opt('depth', 16)
  if (canPin) {
    try { execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' }) } catch {}
  }
  const sizes = [
    { name: '1 byte each way', out: 8, back: 1 },
    { name: `depth-${depth} batch (${depth} x ${REQ_BYTES} B out, ${depth} x ${ACK_BYTES} B back)`, out: depth * REQ_BYTES, back: depth * ACK_BYTES }
  ]
  const placements = canPin ? [{ name: 'cross-core (0 -> 1)', core: 1 }, { name: 'same core (0 -> 0)', core: 0 }] : [{ name: 'unpinned', core: 0 }]
  const cells = []
  for (const p of placements) {
    const { child, port } = await startEcho(p.core)
    for (const s of sizes) {
      const m = await measureRounds(child, port, s.out, s.back, trips, rounds, Math.min(200, trips))
      const us = m.rttUs
      const echoCpuUs = +m.echoCpuUs.toFixed(1)
      cells.push({ placement: p.name, size: s.name, rttUs: +us.toFixed(1), echoCpuUs, rounds: m.rounds.map((v) => +v.toFixed(1)) })
      console.error(`  ${p.name.padEnd(22)} ${s.name.padEnd(48)} ${us.toFixed(1)} µs per round trip, echo CPU ${echoCpuUs} µs per round trip`)
    }
    child.send('exit')
  }
  const batchCross = cells.find((c) => c.placement.startsWith(canPin ? 'cross' : 'unpinned') && c.size.startsWith('depth'))
  const ceilings = batchCross === undefined
    ? null
    : {
        basis: `${batchCross.placement}, ${batchCross.size}: ${batchCross.rttUs} µs`,
        depth,
        pipelineReqPerSec: Math.round(depth / batchCross.rttUs * 1e6),
        e2eTxPerSec: Math.round(depth / batchCross.rttUs * 1e6)
      }
  console.log('\nround-trip floor (plain node:net, no work on either side; median of rounds)')
  console.log('placement               size                                              µs/round trip   echo CPU µs/round trip')
  for (const c of cells) console.log(`${c.placement.padEnd(23)} ${c.size.padEnd(49)} ${String(c.rttUs).padStart(8)} ${String(c.echoCpuUs).padStart(16)}`)
  if (ceilings) {
    console.log(`\none batch per sleeping round trip at depth ${depth} (cross-core batch floor): ${ceilings.pipelineReqPerSec} req/s on one connection; end to end (one round trip per transaction) ${ceilings.e2eTxPerSec} tx/s`)
  }
  mkdirSync(join(here, 'results'), { recursive: true })
  writeFileSync(join(here, 'results', 'wake-floor.json'), JSON.stringify({ machine: machine(), pinned: canPin, params: { rounds, trips, depth }, cells, ceilings }, null, 2) + '\n')
}

/**
 * A warm-up, then `rounds` ping-pongs of `trips` round trips: the median µs per round trip,
 * every round's figure (sorted), and the echo's CPU µs per round trip over the last round.
 */
async function measureRounds (child, port, out, back, trips, rounds, warmup, trip = pingPong) {
  await trip(port, out, back, warmup)
  const vals = []
  let echoCpuUs = 0
  for (let r = 0; r < rounds; r++) {
    const last = r === rounds - 1
    if (last) await askEcho(child, 'mark')
    vals.push(await trip(port, out, back, trips))
    if (last) echoCpuUs = (await askEcho(child, 'cpu')).cpuUs / trips
  }
  vals.sort((a, b) => a - b)
  return { rttUs: vals[vals.length >> 1], rounds: vals, echoCpuUs }
}

/** Ask the echo child something over IPC and wait for its answer (bounded: 5 s). */
function askEcho (child, msg) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`echo child did not answer '${msg}'`)) }, 5000)
    const on = (m) => { clearTimeout(timer); resolve(m) }
    child.once('message', on)
    child.send(msg)
  })
}

/**
 * The cross-core batch floor, for another scenario to set its ceiling in its own run
 * (bench/e2e.mjs): µs per round trip of one depth-`depth` batch (median of `rounds`),
 * and the echo side's CPU per round trip over the last round: what one sleep, one
 * wake-up, one read and one write cost a node:net process that does no other work
 * (the CPU floor of a node that sleeps once per batch). The echo child goes on
 * core 1, like node B there; the caller is already on core 0.
 */
export async function batchFloor ({ depth = 16, trips = 1000, rounds = 1 } = {}) {
  const { child, port } = await startEcho(1)
  try {
    const { rttUs, echoCpuUs } = await measureRounds(child, port, depth * REQ_BYTES, depth * ACK_BYTES, trips, rounds, 200)
    return { rttUs, echoCpuUs }
  } finally {
    child.send('exit')
  }
}

/**
 * Node B's own floor: the relay child (two connections, per batch two reads, two writes,
 * at best one sleep, no HTTP) on core 1 against this process on core 0, at `depth`
 * requests of 454 B per batch with 38-byte acknowledgements. Returns the median µs per
 * relayed round trip and the relay's CPU per round trip over the last round; ÷ depth, the
 * CPU per transaction any node B with this socket pattern spends before parsing anything.
 * One relay child per call: the relay's two connections are its first two.
 */
export async function relayFloor ({ depth = 16, trips = 1000, rounds = 1 } = {}) {
  const out = depth * REQ_BYTES
  const back = depth * ACK_BYTES
  const { child, port } = await startEcho(1, [`--relay=${out},${back}`])
  try {
    const { rttUs, echoCpuUs } = await measureRounds(child, port, out, back, trips, rounds, 200, relayPingPong)
    return { rttUs, echoCpuUs }
  } finally {
    child.send('exit')
  }
}


// Run as a script (or as the echo child); imported, only batchFloor is used.
if (process.argv[1] === self) {
  if (has('echo')) echo()
  else if (str('relay') !== undefined) relay(str('relay'))
  else main().catch((err) => { console.error(err); process.exit(1) })
}
