/** `send`: set up a session with a peer and run N transactions at depth K. */
import { SspNode } from '../ssp/node.js'
import { sendMessageRequests, sendMessageResponse } from '../ssp/payload.js'
import type { Posture } from '../wire/server-options.js'
import { createError } from '../errors.js'
import { EXIT, fail, signalAbort, signalExit } from './exit.js'
import { PEER_LOST_AFTER_MS, runLoad } from './load.js'
import { createLogger, type LogLevel } from './log.js'
import { clientTls, listenSpec, parseBusyPoll, parseCount, parsePeers, parsePort, type TlsFlags } from './node-options.js'
import { logNodeEvents } from './node-log.js'
import { interopFallbacks, printSummary, summaryJson } from './summary.js'
import { Progress } from './progress.js'

export interface SendOptions extends TlsFlags {
  domain: string
  peer?: string[]
  to: string
  /** User part of the recipient (wv:<recipient>@<to>). */
  recipient?: string
  count: string
  depth: string
  size: string
  json?: boolean
  port: string
  host: string
  busyPoll?: string
  posture: Posture
  logLevel: LogLevel
  /** ms without an answer after which the peer is judged lost (default PEER_LOST_AFTER_MS; 0 = never). */
  peerLostAfter?: string
}

export async function sendCommand (o: SendOptions): Promise<number> {
  const count = parseCount('--count', o.count)
  const depth = parseCount('--depth', o.depth, 1)
  const size = parseCount('--size', o.size, 1)
  const peerLostAfter = o.peerLostAfter === undefined ? PEER_LOST_AFTER_MS : parseCount('--peer-lost-after', o.peerLostAfter)
  const log = createLogger(o.json === true ? 'error' : o.logLevel)
  const node = new SspNode({
    domain: o.domain,
    listen: [listenSpec(parsePort(o.port), o.host, o)],
    peers: parsePeers(o.peer),
    posture: o.posture,
    busyPollMicros: parseBusyPoll(o.busyPoll),
    client: clientTls(o),
    // Bounded shutdown after an interrupted or lost run: in-flight transactions get 2 s, not 10.
    closeTimeout: 2000,
    handler: () => sendMessageResponse()
  })
  logNodeEvents(node, log)
  const sig = signalAbort()
  try {
    const [url] = await node.start()
    log.info(`node ${node.domain} listening on ${url ?? '?'}`)
    // A signal during set-up stops it too: the run then has nothing done.
    const aborted = new Promise<void>((resolve) => sig.signal.addEventListener('abort', () => resolve(), { once: true }))
    const connecting = node.connect(o.to)
    connecting.catch(() => {}) // still awaited below; this keeps a set-up failing after a signal from being unhandled
    await Promise.race([connecting, aborted])
    const progress = new Progress(count, o.json === true ? 'none' : 'auto', `${node.domain} → ${o.to}`)
    const r = await runLoad(node, o.to, {
      count,
      depth,
      peerLostAfter,
      signal: sig.signal,
      body: sendMessageRequests(size, { from: `wv:alice@${o.domain}`, to: `wv:${o.recipient ?? 'bob'}@${o.to}` }),
      onProgress: (n) => progress.update(n)
    })
    progress.stop()
    const st = node.getStats()
    const extras = {
      bytesIn: st.bytesIn,
      bytesOut: st.bytesOut,
      interopFallbacks: interopFallbacks(st),
      label: `${node.domain} → ${o.to}`
    }
    if (o.json === true) process.stdout.write(JSON.stringify({ count, ...summaryJson(r, extras) }) + '\n')
    else printSummary(r, extras)
    const bySignal = signalExit(r.stopped)
    if (bySignal !== undefined) return bySignal
    if (r.stopped === 'SSP_ERR_PEER_LOST') {
      return fail(createError('SSP_ERR_PEER_LOST', { message: `${o.to}: ${r.lostReason ?? ''}; ${r.answered} of ${count} answered, ${r.lost} lost` }), false)
    }
    return r.answered === count ? EXIT.OK : EXIT.FAILURE
  } finally {
    await node.close()
    sig.dispose()
  }
}
