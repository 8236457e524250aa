// Node B of the end-to-end harness (bench/harness.mjs NodeB), one child process per
// run: argv[2] is its JSON config { engine, domain, depth, busyPoll, dist, ref?,
// tlsDir?, server? }. It starts the node, reports { url }, then answers the parent:
//   { peers: [[domain, url], ...] } -> adds them as peers       -> { added }
//   'mark'                          -> starts the CPU window      -> { marked, hrUs }
//   'stats'                         -> CPU, memory, node counters -> { stats, hrUs }
//   'exit'                          -> closes the node (2 s at most) and exits
// With config.heapProfile (a file path), V8's sampling heap profiler runs from 'mark' to
// 'stats', counting objects the GC has already collected too (so it shows what is
// allocated per transaction, not what stays live), and the profile is written there.
// With config.perfData (a file path; run with --perf-basic-prof), `perf record -g` samples
// this process from 'mark' to 'stats' and writes there: a profile that, unlike V8's
// --cpu-prof on this pinned core, is not biased towards the moments the process sleeps.
// Every node answers a request with the same SendMessageResponse primitive.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { engineModules, makeNode, readTls, within } from './harness.mjs'

const config = JSON.parse(process.argv[2] ?? '{}')
const mods = await engineModules(config.dist, config.ref)
const { sendMessageResponse } = mods.ours
const { node, url } = await makeNode(mods, {
  engine: config.engine,
  domain: config.domain,
  depth: config.depth,
  busyPoll: config.busyPoll,
  tls: readTls(config.tlsDir),
  handler: () => sendMessageResponse(),
  server: config.server
})
const hrUs = () => Number(process.hrtime.bigint() / 1000n)
let cpu0 = process.cpuUsage()
let inspector = null
let perf = null
process.on('message', async (m) => {
  if (m === 'mark') {
    if (config.perfData !== undefined) {
      perf = spawn('perf', ['record', '-q', '-F', '2000', '-g', '-p', String(process.pid), '-o', config.perfData], { stdio: 'ignore' })
      await new Promise((resolve) => setTimeout(resolve, 300)) // attached before the window starts
    }
    if (config.heapProfile !== undefined) {
      inspector = new Session()
      inspector.connect()
      await inspector.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    }
    cpu0 = process.cpuUsage()
    process.send({ marked: true, hrUs: hrUs() })
  } else if (m === 'stats') {
    const c = process.cpuUsage(cpu0)
    if (perf !== null) {
      const exited = once(perf, 'exit')
      perf.kill('SIGINT')
      await exited
      perf = null
    }
    const mem = process.memoryUsage()
    const s = node.getStats()
    if (inspector !== null) {
      const { profile } = await inspector.post('HeapProfiler.stopSampling')
      writeFileSync(config.heapProfile, JSON.stringify(profile))
      inspector.disconnect()
      inspector = null
    }
    const nodeStats = config.engine !== 'baseline'
      ? { incomingRequests: s.incomingRequests, answersSent: s.answersSent, answerFailures: s.answerFailures }
      : s
    process.send({ hrUs: hrUs(), stats: { cpuUs: c.user + c.system, userUs: c.user, sysUs: c.system, rss: mem.rss, heapUsed: mem.heapUsed, node: nodeStats } })
  } else if (m === 'exit') {
    await within(node.close(), 2000)
    process.exit(0)
  } else if (m !== null && typeof m === 'object' && Array.isArray(m.peers)) {
    for (const [domain, peerUrl] of m.peers) node.addPeer(domain, peerUrl)
    process.send({ added: m.peers.length })
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ url })
