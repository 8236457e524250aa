// The BASELINE FEDERATION for the end-to-end and memory benchmarks: the SSP
// connection-pair exchange written the way a team would write it today with
// Node's own HTTP server and undici, no custom wire code.
//
//   - inbound: `node:http` (or `node:https`) createServer; the handler collects
//     the body, answers `200 Content-Length: 0` at once, then dispatches by the
//     x-wv-sessionid / x-wv-transactionid headers:
//       * tid of one of OUR pending transactions -> resolve its promise with the body;
//       * otherwise a new request from the peer -> call the application handler
//         and POST its answer back to the peer (same tid and sid) on OUR client.
//   - outbound: one undici `Client` per peer (one connection: the pair's other
//     half), `pipelining: N`, requests via `client.request()` (the promise API
//     teams use) with `idempotent: true, blocking: false` (without them undici
//     never pipelines a POST), the 200's body dumped.
//
// Session set-up is not benchmarked: both sides derive the session id from the
// domains (S_<requestor>__<provider>, non-alphanumerics -> _). `connect(peer)` is one
// request/answer round trip, so both TCP connections of the pair exist after it.
// There is no per-transaction timer (in the baseline's favour): a transaction
// that never gets its answer stays pending until close().
//
// Plain ESM; `import { BaselineNode } from './baseline-federation.mjs'`.
import http from 'node:http'
import https from 'node:https'
import { performance } from 'node:perf_hooks'
import { Client } from 'undici'

export const CT = 'application/vnd.wv.ssp+xml'

/** Both sides derive the id of the session `requestor` set up with `provider`. */
export function sessionIdFor (requestor, provider) {
  return ('S_' + requestor + '__' + provider).replace(/[^A-Za-z0-9_]/g, '_')
}

export class BaselineNode {
  /**
   * @param {{ domain: string, handler?: (tx) => Buffer|string|Promise<Buffer|string>,
   *           tls?: { cert, key }, ca?: string|Buffer, pipelining?: number }} o
   */
  constructor (o) {
    this.domain = o.domain.toLowerCase()
    this.handler = o.handler
    this.tls = o.tls
    this.ca = o.ca
    this.pipelining = o.pipelining ?? 16
    this.peers = new Map() // domain -> { url, origin, path, client }
    this.sessions = new Map() // sid -> { peer, role }
    this.pending = new Map() // tid -> { resolve, reject, start, peer }
    this.seq = 0
    this.tidPrefix = 'B' + Math.random().toString(36).slice(2, 8) + '_'
    this.stats = { sent: 0, answered: 0, served: 0, answersSent: 0, errors: 0, unknown: 0 }
    const onRequest = (req, res) => this.onRequest(req, res)
    this.server = this.tls !== undefined
      ? https.createServer({ cert: this.tls.cert, key: this.tls.key }, onRequest)
      : http.createServer(onRequest)
    // Idle connection pairs must stay up (the memory scenario measures them idle).
    this.server.keepAliveTimeout = 600_000
    this.server.headersTimeout = 60_000
    this.server.requestTimeout = 0
  }

  async start (port = 0, host = '127.0.0.1') {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve() })
    })
    const a = this.server.address()
    this.url = `${this.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${a.port}/`
    return [this.url]
  }

  addPeer (domain, url) {
    const d = domain.toLowerCase()
    const u = new URL(url)
    this.peers.set(d, { domain: d, url, origin: u.origin, path: u.pathname, client: undefined })
    // Both sessions with that peer: the one we request in and the one we provide.
    this.sessions.set(sessionIdFor(this.domain, d), { peer: d, role: 'requestor' })
    this.sessions.set(sessionIdFor(d, this.domain), { peer: d, role: 'provider' })
  }

  clientFor (peer) {
    if (peer.client === undefined) {
      const opts = {
        pipelining: this.pipelining,
        keepAliveTimeout: 600_000,
        keepAliveMaxTimeout: 600_000
      }
      if (this.ca !== undefined) opts.connect = { ca: this.ca }
      peer.client = new Client(peer.origin, opts)
      peer.client.on('connectionError', () => {})
    }
    return peer.client
  }

  /** POST one SSP message to the peer; resolves on its 200. */
  post (peer, body, tid, sid) {
    return this.clientFor(peer).request({
      path: peer.path,
      method: 'POST',
      headers: { 'content-type': CT, 'x-wv-transactionid': tid, 'x-wv-sessionid': sid },
      body,
      idempotent: true,
      blocking: false
    }).then((res) => {
      const status = res.statusCode
      return res.body.dump().then(() => {
        if (status !== 200) throw new Error(`HTTP ${status}`)
      })
    })
  }

  /** Send one transaction request and resolve with its response half (like SspNode.request). */
  request (peerDomain, body) {
    const peer = this.peers.get(peerDomain.toLowerCase())
    if (peer === undefined) return Promise.reject(new Error(`unknown peer ${peerDomain}`))
    const tid = this.tidPrefix + (++this.seq)
    this.stats.sent++
    return new Promise((resolve, reject) => {
      const start = performance.now()
      this.pending.set(tid, { resolve, reject, start, peer: peer.domain })
      this.post(peer, body, tid, sessionIdFor(this.domain, peer.domain)).catch((err) => {
        const p = this.pending.get(tid)
        if (p !== undefined) {
          this.pending.delete(tid)
          this.stats.errors++
          p.reject(err)
        }
      })
    })
  }

  /** "Set-up": one round trip so that both connections of the pair exist. */
  async connect (peerDomain) {
    await this.request(peerDomain, '<WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3"/>')
  }

  onRequest (req, res) {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      res.writeHead(200, { 'content-length': '0' })
      res.end()
      const sid = req.headers['x-wv-sessionid']
      const tid = req.headers['x-wv-transactionid']
      const session = sid === undefined ? undefined : this.sessions.get(sid)
      if (session === undefined || tid === undefined) {
        this.stats.unknown++
        return
      }
      const p = this.pending.get(tid)
      if (p !== undefined && p.peer === session.peer) {
        this.pending.delete(tid)
        this.stats.answered++
        p.resolve({ peer: p.peer, transactionId: tid, sessionId: sid, body, rttMicros: (performance.now() - p.start) * 1000 })
        return
      }
      this.serve(session, tid, sid, body)
    })
  }

  serve (session, tid, sid, body) {
    this.stats.served++
    const handler = this.handler
    const peer = this.peers.get(session.peer)
    if (handler === undefined || peer === undefined) return
    Promise.resolve()
      .then(() => handler({ peer: session.peer, kind: 'request', transactionId: tid, sessionId: sid, body }))
      .then((answer) => this.post(peer, answer, tid, sid))
      .then(() => { this.stats.answersSent++ }, () => { this.stats.errors++ })
  }

  getStats () {
    return { ...this.stats, pending: this.pending.size }
  }

  async close () {
    for (const p of this.pending.values()) p.reject(new Error('closed'))
    this.pending.clear()
    await Promise.all([...this.peers.values()].map((p) => p.client?.destroy().catch(() => {})))
    this.server.closeAllConnections?.()
    await new Promise((resolve) => this.server.close(() => resolve()))
  }
}
