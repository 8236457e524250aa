/** One log line per connection or session event (never per request). */
import { subscribe } from 'node:diagnostics_channel'
import type { SspNode } from '../ssp/node.js'
import type { ServerConnection } from '../wire/server-connection.js'
import type { Logger } from './log.js'

/**
 * A session id is what lets a peer's POSTs into the session: at info level
 * only its first characters are logged (enough to tell sessions apart in
 * one log), the whole id only at debug.
 */
export function redactId (id: string): string {
  return id.length <= 8 ? '…' : `${id.slice(0, 6)}…`
}

export function logNodeEvents (node: SspNode, log: Logger): void {
  node.on('session', (e: { peer: string, role: string, id: string, peerId: string }) => {
    log.info(`session up with ${e.peer} as ${e.role} (ours ${redactId(e.id)}, theirs ${redactId(e.peerId)})`)
    log.debug(`session with ${e.peer} as ${e.role}: ours ${e.id}, theirs ${e.peerId}`)
  })
  node.on('sessionEnd', (e: { peer: string, role: string, reason: string }) =>
    log.info(`session with ${e.peer} (${e.role}) ended: ${e.reason}`))
  node.on('setupError', (e: { peer: string, role: string, error: Error & { code?: string } }) =>
    log.error(`set-up with ${e.peer} as ${e.role} failed: ${e.error.code ?? ''} ${e.error.message}`))
  subscribe('ssp-transport:server:connection', (m) => {
    const c = (m as { connection: ServerConnection }).connection
    log.info(`inbound connection ${c.id} from ${c.remoteAddress ?? '?'}:${c.remotePort ?? '?'}`)
  })
  subscribe('ssp-transport:server:close', (m) => {
    const { connection: c, error } = m as { connection: ServerConnection, error?: Error }
    if (error !== undefined) log.debug(`inbound connection ${c.id}: ${error.message}`)
    else log.info(`inbound connection ${c.id} closed after ${c.stats.requests} requests`)
  })
  subscribe('ssp-transport:client:connect', (m) => {
    const e = m as { url?: string, reconnect?: boolean }
    log.info(`outbound connection to ${e.url ?? '?'}${e.reconnect === true ? ' (reconnect)' : ''}`)
  })
  subscribe('ssp-transport:client:disconnect', (m) => {
    const e = m as { url?: string, unacknowledged?: number }
    log.info(`outbound connection to ${e.url ?? '?'} lost (${e.unacknowledged ?? 0} unacknowledged)`)
  })
}
