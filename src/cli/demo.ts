/**
 * `demo` (what `npm start` runs): two nodes, a.example and b.example, on
 * loopback ports chosen free; sessions set up both ways over one reused
 * connection pair; then transactions both ways, pipelined; then a summary.
 */
import { SspNode } from '../ssp/node.js'
import { sendMessageRequests, sendMessageResponse } from '../ssp/payload.js'
import { EXIT, signalAbort, signalExit } from './exit.js'
import { newHistogram, runLoad, type LoadResult } from './load.js'
import { createLogger, type LogLevel } from './log.js'
import { parseBusyPoll, parseCount } from './node-options.js'
import { logNodeEvents } from './node-log.js'
import { Progress } from './progress.js'
import { interopFallbacks, printSummary, summaryJson } from './summary.js'

export interface DemoOptions {
  count: string
  depth: string
  size: string
  json?: boolean
  busyPoll?: string
  logLevel: LogLevel
}

/** Default count: finishes in well under 30 s on a 2-core machine (about 10 s measured here). */
export const DEMO_COUNT = 100_000

export async function demoCommand (o: DemoOptions): Promise<number> {
  const count = parseCount('--count', o.count)
  const depth = parseCount('--depth', o.depth, 1)
  const size = parseCount('--size', o.size, 1)
  const quiet = o.json === true
  const log = createLogger(quiet ? 'error' : o.logLevel)
  const out = (s: string): void => { if (!quiet) process.stdout.write(s + '\n') }
  // The answer primitive; each node wraps it as the Response of the request's transaction.
  const handler = (): Buffer => sendMessageResponse()
  const busyPollMicros = parseBusyPoll(o.busyPoll)
  const a = new SspNode({ domain: 'a.example', resolver: false, handler, busyPollMicros, closeTimeout: 2000 })
  const b = new SspNode({ domain: 'b.example', resolver: false, handler, busyPollMicros, closeTimeout: 2000 })
  logNodeEvents(a, log)
  const sig = signalAbort()
  try {
    const [ua] = await a.start()
    const [ub] = await b.start()
    a.addPeer('b.example', ub!)
    b.addPeer('a.example', ua!)
    out(`a.example listening on ${ua!}`)
    out(`b.example listening on ${ub!}`)
    await a.connect('b.example')
    await b.connect('a.example')
    const inA = a.getStats().wire[0]?.connectionsAccepted ?? 0
    const inB = b.getStats().wire[0]?.connectionsAccepted ?? 0
    out(`sessions up both ways over one connection pair (inbound connections: a ${inA}, b ${inB})`)
    out(`running ${count} transactions each way at pipeline depth ${depth}, ${size}-byte SendMessageRequests`)

    const bodyAB = sendMessageRequests(size, { from: 'wv:alice@a.example', to: 'wv:bob@b.example' })
    const bodyBA = sendMessageRequests(size, { from: 'wv:bob@b.example', to: 'wv:alice@a.example' })
    const progress = new Progress(2 * count, quiet ? 'none' : 'auto', 'demo')
    let doneAB = 0
    let doneBA = 0
    const [ab, ba] = await Promise.all([
      runLoad(a, 'b.example', { count, depth, signal: sig.signal, body: bodyAB, onProgress: (n) => { doneAB = n; progress.update(doneAB + doneBA) } }),
      runLoad(b, 'a.example', { count, depth, signal: sig.signal, body: bodyBA, onProgress: (n) => { doneBA = n; progress.update(doneAB + doneBA) } })
    ])
    progress.stop()
    const total = merge(ab, ba)
    const sa = a.getStats()
    const sb = b.getStats()
    // Bytes a sent are bytes b received: count one side of every connection.
    const extras = { bytesIn: sa.bytesIn, bytesOut: sa.bytesOut, interopFallbacks: interopFallbacks(sa) + interopFallbacks(sb) }
    if (quiet) {
      const part = { interopFallbacks: extras.interopFallbacks }
      process.stdout.write(JSON.stringify({ ...summaryJson(total, extras), a_to_b: summaryJson(ab, part), b_to_a: summaryJson(ba, part) }) + '\n')
    } else {
      // Both directions share the connections: bytes are told only for the whole run.
      printSummary(ab, { interopFallbacks: extras.interopFallbacks, label: 'a.example → b.example' })
      printSummary(ba, { interopFallbacks: extras.interopFallbacks, label: 'b.example → a.example' })
      printSummary(total, { ...extras, label: 'both ways' })
    }
    const bySignal = signalExit(total.stopped)
    if (bySignal !== undefined) return bySignal
    return total.answered === 2 * count && Object.keys(total.errors).length === 0 ? EXIT.OK : EXIT.FAILURE
  } finally {
    await Promise.all([a.close(), b.close()])
    sig.dispose()
  }
}

function merge (x: LoadResult, y: LoadResult): LoadResult {
  const ack = newHistogram()
  const rtt = newHistogram()
  ack.add(x.ack); ack.add(y.ack)
  rtt.add(x.rtt); rtt.add(y.rtt)
  const errors: Record<string, number> = { ...x.errors }
  for (const [k, v] of Object.entries(y.errors)) errors[k] = (errors[k] ?? 0) + v
  return {
    sent: x.sent + y.sent,
    answered: x.answered + y.answered,
    lost: x.lost + y.lost,
    errors,
    // both ran at once: the run took as long as the slower direction
    elapsedMs: Math.max(x.elapsedMs, y.elapsedMs),
    ack,
    acksOvertaken: x.acksOvertaken + y.acksOvertaken,
    rtt,
    rttBuckets: x.rttBuckets.map((n, i) => n + (y.rttBuckets[i] ?? 0)),
    bytesSent: x.bytesSent + y.bytesSent,
    abandoned: x.abandoned + y.abandoned,
    stopped: x.stopped ?? y.stopped
  }
}
