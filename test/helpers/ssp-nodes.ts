/**
 * Helpers for the SSP node tests: nodes on loopback closed in t.teardown, a
 * recorder of the POSTs a node's listener receives (through the
 * `ssp-transport:server:request` diagnostics channel, filtered by the
 * listener's port), bounded waits, deferreds.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { isSspError } from '../../src/errors.js'
import { SspNode } from '../../src/ssp/node.js'
import type { SspNodeOptions } from '../../src/ssp/options.js'
import type { SspRequest } from '../../src/wire/request.js'
import type { ServerConnection } from '../../src/wire/server-connection.js'

export interface Teardown { teardown: (fn: () => unknown) => void }

/** Upper bound of every wait: a guard against hangs, never a timing assertion. */
export const GUARD_MS = 15_000

import { delay, until } from './wait.js'

export { delay, until }

/** Settle within the guard or reject; keeps a test from hanging on a promise that never settles. */
export function guarded<T> (p: Promise<T>, what: string, guardMs = GUARD_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), guardMs)
  })
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

/** The SspError code of a rejection, or a string that makes an equality assertion fail. */
export async function rejectionOf (p: Promise<unknown>, what = 'promise'): Promise<{ code: string, message: string, scr: string | undefined }> {
  try {
    await guarded(p, what)
  } catch (err) {
    if (isSspError(err)) return { code: err.code, message: err.message, scr: err.scr }
    return { code: `not an SspError: ${String(err)}`, message: String(err), scr: undefined }
  }
  return { code: 'resolved', message: '', scr: undefined }
}

export interface Deferred<T> {
  promise: Promise<T>
  resolve: (v: T) => void
  reject: (e: unknown) => void
}

export function deferred<T = void> (): Deferred<T> {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

export function portOf (url: string): number {
  return Number(new URL(url).port)
}

/** A node started on loopback and closed in teardown. */
export async function startNode (t: Teardown, options: SspNodeOptions): Promise<{ node: SspNode, url: string }> {
  const node = new SspNode({ resolver: false, ...options })
  t.teardown(() => node.close())
  const [url] = await node.start()
  if (url === undefined) throw new Error('node has no listener')
  return { node, url }
}

/** Two nodes that know each other's URL. */
export async function nodePair (t: Teardown, aOptions: Partial<SspNodeOptions> = {}, bOptions: Partial<SspNodeOptions> = {}): Promise<{
  a: SspNode, b: SspNode, ua: string, ub: string
}> {
  const { node: a, url: ua } = await startNode(t, { domain: 'a.example', handler: (tx) => tx.primitive, ...aOptions })
  const { node: b, url: ub } = await startNode(t, { domain: 'b.example', handler: (tx) => tx.primitive, ...bOptions })
  a.addPeer('b.example', ub)
  b.addPeer('a.example', ua)
  return { a, b, ua, ub }
}

/** One POST as a listener received it (copied out of the wire's views at once). */
export interface SeenPost {
  /** Port of the listener that received it. */
  port: number
  /** Id of the inbound connection it came on. */
  connId: number
  /** The sender's end of that connection. */
  remotePort: number | undefined
  tid: string | undefined
  sid: string | undefined
  /** Content-type class (1: 1.3 type, 2: 1.2 type). */
  contentType: number
  contentTypeHeader: string | undefined
  body: string
  deviations: number
}

/** Record every POST received by listeners on the given ports (all loopback listeners when none given). */
export function recordPosts (t: Teardown, ports: number[] = []): SeenPost[] {
  const seen: SeenPost[] = []
  const onRequest = (msg: unknown): void => {
    const { connection, request } = msg as { connection: ServerConnection, request: SspRequest }
    const port = connection.socket.localPort ?? -1
    if (ports.length > 0 && !ports.includes(port)) return
    seen.push({
      port,
      connId: connection.id,
      remotePort: connection.socket.remotePort,
      tid: request.transactionId,
      sid: request.sessionId,
      contentType: request.contentType,
      contentTypeHeader: request.header('content-type'),
      body: request.body.toString('utf8'),
      deviations: request.deviations
    })
  }
  subscribe('ssp-transport:server:request', onRequest)
  t.teardown(() => { unsubscribe('ssp-transport:server:request', onRequest) })
  return seen
}

/** 1*(ALPHA / DIGIT / "_"), spec 5.6. */
export const ID_GRAMMAR = /^[A-Za-z0-9_]+$/

/** A set-up POST (SetupTransaction body) as opposed to session traffic. */
export function isSetupBody (body: string): boolean {
  return body.includes('<SetupTransaction')
}
