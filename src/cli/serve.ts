import { readFileSync } from 'node:fs'
import { createError } from '../errors.js'
import { WireServer } from '../wire/server.js'
import type { Posture } from '../wire/server-options.js'
import { EXIT } from './exit.js'
import { createLogger, type LogLevel } from './log.js'

export interface ServeOptions {
  port: string
  host: string
  posture: Posture
  tlsCert?: string
  tlsKey?: string
  tlsCa?: string
  requireClientCert?: boolean
  logLevel: LogLevel
}

export function parsePort (s: string): number {
  const n = Number(s)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `port must be 0..65535, got ${s}` })
  return n
}

/** `serve`: acknowledge every valid SSP POST until SIGINT/SIGTERM. */
export async function serveCommand (o: ServeOptions): Promise<number> {
  const log = createLogger(o.logLevel)
  const port = parsePort(o.port)
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: '--tls-cert and --tls-key go together' })
  }
  const server = new WireServer({
    posture: o.posture,
    tls: o.tlsCert === undefined || o.tlsKey === undefined
      ? undefined
      : {
          cert: readFileSync(o.tlsCert),
          key: readFileSync(o.tlsKey),
          ca: o.tlsCa === undefined ? undefined : readFileSync(o.tlsCa),
          requestClientCert: o.requireClientCert === true
        }
  })
  server.on('connection', (c) => log.info(`connection ${c.id} from ${c.remoteAddress ?? '?'}:${c.remotePort ?? '?'}`))
  server.on('connectionClose', (c) => {
    const s = c.stats
    log.info(`connection ${c.id} closed: ${s.requests} requests, ${s.bytesIn} bytes in` +
      (Object.keys(s.errors).length > 0 ? `, errors ${JSON.stringify(s.errors)}` : ''))
  })
  const addr = await server.listen(port, o.host)
  const scheme = server.secure ? 'https' : 'http'
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  process.stdout.write(`listening on ${scheme}://${host}:${addr.port}\n`)
  await new Promise<void>((resolve) => {
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
  await server.close()
  const st = server.getStats()
  log.info(`closed: ${st.requests} requests, ${st.acknowledged} acknowledged, ${st.connectionsAccepted} connections`)
  return EXIT.OK
}
