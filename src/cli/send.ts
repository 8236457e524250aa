/** `send`: set up a session with a peer and run N transactions at depth K. */
import { SspNode } from '../ssp/node.js'
import { sendMessageRequests, sendMessageResponse } from '../ssp/payload.js'
import type { Posture } from '../wire/server-options.js'
import { EXIT } from './exit.js'
import { runLoad } from './load.js'
import { createLogger, type LogLevel } from './log.js'
import { clientTls, listenSpec, parseBusyPoll, parseCount, parsePeers, type TlsFlags } from './node-options.js'
import { logNodeEvents } from './node-log.js'
import { parsePort } from './serve.js'
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
}

export async function sendCommand (o: SendOptions): Promise<number> {
  const count = parseCount('--count', o.count)
  const depth = parseCount('--depth', o.depth, 1)
  const size = parseCount('--size', o.size, 1)
  const log = createLogger(o.json === true ? 'error' : o.logLevel)
  const node = new SspNode({
    domain: o.domain,
    listen: [listenSpec(parsePort(o.port), o.host, o)],
    peers: parsePeers(o.peer),
    posture: o.posture,
    busyPollMicros: parseBusyPoll(o.busyPoll),
    client: clientTls(o),
    handler: () => sendMessageResponse()
  })
  logNodeEvents(node, log)
  const [url] = await node.start()
  log.info(`node ${node.domain} listening on ${url ?? '?'}`)
  try {
    await node.connect(o.to)
    const progress = new Progress(count, o.json === true ? 'none' : 'auto', `${node.domain} → ${o.to}`)
    const r = await runLoad(node, o.to, { count, depth, body: sendMessageRequests(size, { from: `wv:alice@${o.domain}`, to: `wv:${o.recipient ?? 'bob'}@${o.to}` }), onProgress: (n) => progress.update(n) })
    progress.stop()
    const st = node.getStats()
    const extras = {
      bytesIn: st.bytesIn,
      bytesOut: st.bytesOut,
      interopFallbacks: interopFallbacks(st),
      label: `${node.domain} → ${o.to}`
    }
    if (o.json === true) process.stdout.write(JSON.stringify(summaryJson(r, extras)) + '\n')
    else printSummary(r, extras)
    return r.answered === count ? EXIT.OK : EXIT.FAILURE
  } finally {
    await node.close()
  }
}
