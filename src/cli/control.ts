/**
 * `serve --control HOST:PORT`: a small local HTTP interface to a running node,
 * so that an operator or a conformance lab (`conformance --trigger 'curl …'`)
 * can make it send a request and read its counters.
 *
 *   POST /send?to=DOMAIN[&count=N][&recipient=USER][&wait=0]
 *                                                    N SendMessageRequests, JSON outcome
 *                                                    (wait=0: 202 at once, for a lab's trigger)
 *   GET  /stats                                      node.getStats() as JSON
 *   GET  /health                                     { ok, domain, sessions }
 *   GET  /metrics                                    Prometheus text (prom-client, own registry)
 *
 * It is node:http, off the hot path: the metrics are read from getStats() when
 * scraped (collect callbacks), never counted per request in the node; only the
 * requests sent through /send are timed here.
 */
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { isIP } from 'node:net'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { createError, isSspError } from '../errors.js'
import type { Answer, NodeStats, SspNode } from '../ssp/node.js'
import { sendMessageRequests } from '../ssp/payload.js'
import type { Logger } from './log.js'
import { parseCount } from './node-options.js'
import { interopFallbacks } from './summary.js'

/** Most requests one /send may ask for (they are sent at once; the node pipelines them). */
export const MAX_SEND_COUNT = 1000
/** Body size of each request /send sends (like `send`'s default --size). */
const SEND_SIZE = 380

export interface ControlAddress {
  host: string
  port: number
}

/** Is `host` a loopback name or address (127.0.0.0/8, ::1, localhost)? */
export function isLoopback (host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h)
  return false
}

/**
 * Parse `--control HOST:PORT` (`[::1]:PORT` for IPv6). A host that is not
 * loopback is refused unless `allowPublic` (`--control-public`): the interface
 * has no authentication, and anyone who reaches it can make the node send.
 */
export function parseControl (spec: string, allowPublic: boolean, parsePort: (s: string) => number): ControlAddress {
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(spec) ?? /^([^:[\]]+):([^:]*)$/.exec(spec)
  if (m === null) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--control wants HOST:PORT (e.g. 127.0.0.1:0), got ${spec}` })
  const host = m[1]!
  const port = parsePort(m[2]!)
  if (!allowPublic && !isLoopback(host)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--control ${spec}: ${host} is not a loopback address; the control interface has no authentication (add --control-public to listen there anyway)` })
  }
  return { host, port }
}

/** HTTP status for a failed /send, by the code it failed with. */
function sendStatus (code: string): number {
  switch (code) {
    case 'SSP_ERR_INVALID_ARGUMENT': return 400
    case 'SSP_ERR_NODE_CLOSED': return 503
    case 'SSP_ERR_SETUP_TIMEOUT':
    case 'SSP_ERR_TRANSACTION_TIMEOUT': return 504
    default: return 502
  }
}

const STATUS_CODE = /<Status\b[^>]*\bcode="([0-9]{1,4})"/

/** The application-level Status code in an answer's primitive (e.g. 200), or null. */
function statusOf (a: Answer): number | null {
  const m = STATUS_CODE.exec(a.primitive.toString('utf8', 0, Math.min(a.primitive.length, 4096)))
  return m === null ? null : Number(m[1])
}

/** The paths and the one method each takes. */
const ROUTES = { '/send': 'POST', '/stats': 'GET', '/health': 'GET', '/metrics': 'GET' } as const

/** HTTP status, body (JSON unless a string), content type. */
type Reply = [number, unknown, string?]

type TxOutcome =
  | { ok: true, transactionId: string, rttMicros: number, ackMicros: number | null, primitive: string, status: number | null }
  | { ok: false, code: string, message: string }

/**
 * A Counter that mirrors a monotonic number read at scrape time: collect()
 * adds the difference since the last scrape, so its TYPE stays `counter`.
 */
function mirrorCounter (registry: Registry, name: string, help: string, labelNames: string[], read: () => Record<string, number>): void {
  const last = new Map<string, number>()
  // eslint-disable-next-line no-new
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      for (const [label, v] of Object.entries(read())) {
        const d = v - (last.get(label) ?? 0)
        if (d <= 0) continue
        last.set(label, v)
        if (labelNames.length === 0) this.inc(d)
        else this.inc({ [labelNames[0]!]: label }, d)
      }
    }
  })
}

export interface ControlServer {
  /** `http://HOST:PORT` */
  readonly url: string
  close (): Promise<void>
}

export interface ControlOptions extends ControlAddress {
  log: Logger
}

/** Start the control interface for `node` (already started). */
export async function startControl (node: SspNode, o: ControlOptions): Promise<ControlServer> {
  const registry = new Registry()
  // One getStats() per scrape, shared by every collect() of that scrape: the
  // /metrics route drops it before each scrape (a time window kept the last
  // scrape's figures for a scrape that came within 50 ms of it).
  let scrape: NodeStats | undefined
  const stats = (): NodeStats => (scrape ??= node.getStats())
  const gauge = (name: string, help: string, read: (st: NodeStats) => number): void => {
    // eslint-disable-next-line no-new
    new Gauge({ name, help, registers: [registry], collect () { this.set(read(stats())) } })
  }
  const one = (read: (st: NodeStats) => number) => () => ({ '': read(stats()) })
  gauge('ssp_sessions', 'SSP sessions up (both roles)', (st) => st.sessions)
  gauge('ssp_setups_in_progress', 'session set-ups under way', (st) => st.setupsInProgress)
  gauge('ssp_transactions_pending', 'our transactions waiting for their response half', (st) => st.pending)
  mirrorCounter(registry, 'ssp_transactions_sent_total', 'transactions this node sent', [], one((st) => st.sent))
  mirrorCounter(registry, 'ssp_transactions_answered_total', 'transactions of this node that got their response half', [], one((st) => st.answered))
  mirrorCounter(registry, 'ssp_transactions_failed_total', 'transactions of this node that failed, by error code', ['code'], () => stats().failedByCode)
  mirrorCounter(registry, 'ssp_resends_total', 'POSTs sent again after the peer closed on them unacknowledged', [], one((st) => st.resent))
  mirrorCounter(registry, 'ssp_duplicates_dropped_total', 'incoming requests recognised as resends and not handed over twice', [], one((st) => st.duplicates))
  mirrorCounter(registry, 'ssp_interop_fallbacks_total', 'interop fallbacks and accepted deviations (node and listeners)', [], one(interopFallbacks))
  mirrorCounter(registry, 'ssp_incoming_requests_total', 'requests from peers handed to the handler', [], one((st) => st.incomingRequests))
  mirrorCounter(registry, 'ssp_answers_sent_total', 'response halves this node sent to peers', [], one((st) => st.answersSent))
  mirrorCounter(registry, 'ssp_socket_reads_total', 'socket reads on every connection of the node (per transaction: the batching)', [], one((st) => st.reads))
  mirrorCounter(registry, 'ssp_socket_writes_total', 'socket writes on every connection of the node (the 200s of a turn and a flush of POSTs count one each)', [], one((st) => st.writes))
  const sends = new Counter({ name: 'ssp_control_sends_total', help: 'requests sent through POST /send, by outcome (answered or the error code)', labelNames: ['outcome'], registers: [registry] })
  const rtt = new Histogram({
    name: 'ssp_round_trip_seconds',
    help: 'round trip of the requests sent through POST /send (request to response half)',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })

  const sendOne = async (to: string, body: Buffer): Promise<TxOutcome> => {
    try {
      const a = await node.request(to, body)
      sends.inc({ outcome: 'answered' })
      rtt.observe(a.rttMicros / 1e6)
      return { ok: true, transactionId: a.transactionId, rttMicros: Math.round(a.rttMicros), ackMicros: a.ackMicros === undefined ? null : Math.round(a.ackMicros), primitive: a.primitiveName, status: statusOf(a) }
    } catch (err) {
      const code = isSspError(err) ? err.code : typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'ERROR'
      sends.inc({ outcome: code })
      return { ok: false, code, message: err instanceof Error ? err.message : String(err) }
    }
  }

  const send = async (q: URLSearchParams): Promise<Reply> => {
    for (const k of q.keys()) {
      if (k !== 'to' && k !== 'count' && k !== 'recipient' && k !== 'wait') throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unknown parameter ${k} (to, count, recipient, wait)` })
    }
    const to = q.get('to') ?? ''
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(to)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `to must be a domain, got ${JSON.stringify(to)}` })
    const count = parseCount('count', q.get('count') ?? '1', 1)
    if (count > MAX_SEND_COUNT) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `count must be at most ${MAX_SEND_COUNT}, got ${count}` })
    const recipient = q.get('recipient') ?? 'bob'
    if (!/^[A-Za-z0-9._+-]{1,64}$/.test(recipient)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `recipient must be a user name, got ${JSON.stringify(recipient)}` })
    const wait = q.get('wait') ?? '1'
    if (wait !== '0' && wait !== '1') throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `wait must be 0 or 1, got ${JSON.stringify(wait)}` })
    const body = sendMessageRequests(SEND_SIZE, { from: `wv:alice@${node.domain}`, to: `wv:${recipient}@${to}` })
    if (wait === '0') {
      // A lab's trigger must return before the lab answers (it may never answer on purpose):
      // the requests go on, their outcomes are counted in /metrics and /stats.
      for (let n = 0; n < count; n++) void sendOne(to, body(n))
      return [202, { ok: true, to, count, queued: count }]
    }
    const txs = await Promise.all(Array.from({ length: count }, (_, n) => sendOne(to, body(n))))
    const answered = txs.filter((x) => x.ok).length
    const firstFailure = txs.find((x): x is Extract<TxOutcome, { ok: false }> => !x.ok)
    const out = {
      ...(count === 1 ? txs[0] : { ok: answered === count }),
      to,
      count,
      answered,
      ...(count === 1 ? {} : { transactions: txs })
    }
    return [firstFailure === undefined ? 200 : sendStatus(firstFailure.code), out]
  }

  const route = async (path: string, q: URLSearchParams): Promise<Reply> => {
    switch (path) {
      case '/send': return send(q)
      case '/stats': return [200, node.getStats()]
      case '/health': return [200, { ok: true, domain: node.domain, sessions: node.getStats().sessions }]
      default:
        scrape = undefined
        return [200, await registry.metrics(), registry.contentType]
    }
  }

  const reply = (res: http.ServerResponse, [status, body, type]: Reply, extra: Record<string, string> = {}): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body) + '\n'
    res.writeHead(status, { 'content-type': type ?? 'application/json', 'content-length': Buffer.byteLength(text), ...extra })
    res.end(text)
  }

  const server = http.createServer((req, res) => {
    req.resume() // bodies are not read: every parameter is in the query
    const u = new URL(req.url ?? '/', 'http://control')
    const method = ROUTES[u.pathname as keyof typeof ROUTES]
    if (method === undefined) {
      reply(res, [404, { ok: false, code: 'NOT_FOUND', message: `no ${u.pathname} here (POST /send, GET /stats, /health, /metrics)` }])
      return
    }
    if (req.method !== method) {
      reply(res, [405, { ok: false, code: 'METHOD_NOT_ALLOWED', message: `${u.pathname} takes ${method}, not ${req.method ?? '?'}` }], { allow: method })
      return
    }
    route(u.pathname, u.searchParams).then((r) => reply(res, r), (err: unknown) => {
      const code = isSspError(err) ? err.code : 'ERROR'
      reply(res, [code === 'SSP_ERR_INVALID_ARGUMENT' ? 400 : 500, { ok: false, code, message: err instanceof Error ? err.message : String(err) }])
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(createError('SSP_ERR_LISTEN', { message: `--control ${o.host}:${o.port}: ${err.code ?? err.message}`, cause: err }))
    })
    server.listen(o.port, o.host, () => resolve())
  })
  server.on('error', (err) => o.log.error(`control: ${err.message}`))
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return {
    url: `http://${host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
