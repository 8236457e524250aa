/**
 * `serve`: without --domain, a wire endpoint that acknowledges every valid
 * SSP POST; with --domain, a full SSP node (sessions, transactions, answers).
 */
import { SspNode } from '../ssp/node.js'
import { messageIdOf, sendMessageResponse } from '../ssp/payload.js'
import { createError } from '../errors.js'
import { WireServer } from '../wire/server.js'
import type { Posture } from '../wire/server-options.js'
import { EXIT } from './exit.js'
import { createLogger, type Logger, type LogLevel } from './log.js'
import { parseControl, startControl, type ControlServer } from './control.js'
import { clientTls, listenSpec, parseBusyPoll, parsePeers, parsePort, type TlsFlags } from './node-options.js'
import { logNodeEvents } from './node-log.js'

export interface ServeOptions extends TlsFlags {
  port: string
  host: string
  posture: Posture
  domain?: string
  peer?: string[]
  echo?: boolean
  busyPoll?: string
  /** HOST:PORT of the control interface (control.ts); off when absent. */
  control?: string
  /** Let --control listen on a host that is not loopback. */
  controlPublic?: boolean
  logLevel: LogLevel
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal (log: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log.info(`${sig}: closing`)
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      resolve()
    }
    const onInt = (): void => stop('SIGINT')
    const onTerm = (): void => stop('SIGTERM')
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
  })
}

export async function serveCommand (o: ServeOptions): Promise<number> {
  const log = createLogger(o.logLevel)
  const spec = listenSpec(parsePort(o.port), o.host, o)
  if (o.domain !== undefined) return serveNode(o, spec, log)
  if ((o.peer ?? []).length > 0 || o.echo === true || o.control !== undefined) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: '--peer, --echo and --control need --domain (a full node)' })
  }
  const server = new WireServer({ posture: o.posture, tls: spec.tls, busyPollMicros: parseBusyPoll(o.busyPoll) })
  server.on('connection', (c) => log.info(`connection ${c.id} from ${c.remoteAddress ?? '?'}:${c.remotePort ?? '?'}`))
  server.on('connectionClose', (c) => {
    const s = c.stats
    log.info(`connection ${c.id} closed: ${s.requests} requests, ${s.bytesIn} bytes in` +
      (Object.keys(s.errors).length > 0 ? `, errors ${JSON.stringify(s.errors)}` : ''))
  })
  const addr = await server.listen(spec.port, spec.host)
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  process.stdout.write(`listening on ${server.secure ? 'https' : 'http'}://${host}:${addr.port}\n`)
  await untilSignal(log)
  await server.close()
  const st = server.getStats()
  log.info(`closed: ${st.requests} requests, ${st.acknowledged} acknowledged, ${st.connectionsAccepted} connections`)
  return EXIT.OK
}

async function serveNode (o: ServeOptions, spec: ReturnType<typeof listenSpec>, log: Logger): Promise<number> {
  // Checked before anything listens: a refused --control host is a usage error, not a half-started node.
  const controlAt = o.control === undefined ? undefined : parseControl(o.control, o.controlPublic === true, parsePort)
  const node = new SspNode({
    domain: o.domain!,
    listen: [spec],
    peers: parsePeers(o.peer),
    posture: o.posture,
    busyPollMicros: parseBusyPoll(o.busyPoll),
    client: clientTls(o),
    // --echo: the response half carries the request's own primitive. Otherwise a
    // SendMessageResponse with Status 200 (and the request's messageID, when it has one).
    handler: o.echo === true ? (tx) => tx.primitive : (tx) => sendMessageResponse(messageIdOf(tx.primitive))
  })
  logNodeEvents(node, log)
  const [url] = await node.start()
  process.stdout.write(`listening on ${url!.replace(/\/$/, '')}\n`)
  let control: ControlServer | undefined
  if (controlAt !== undefined) {
    try {
      control = await startControl(node, { ...controlAt, log })
    } catch (err) {
      await node.close()
      throw err
    }
    process.stdout.write(`control on ${control.url}\n`)
  }
  log.info(`node ${node.domain} (${o.posture}) ready`)
  await untilSignal(log)
  // The control interface first, so that no /send starts while the node closes.
  await control?.close()
  await node.close()
  const st = node.getStats()
  log.info(`closed: ${st.incomingRequests} requests served, ${st.answered} of our transactions answered`)
  return EXIT.OK
}
