/**
 * Hostile input against a live WireServer (and, for the per-peer limits, a
 * pair of SSP nodes): request smuggling and framing attacks, each refused
 * with its status and X-SSP-Error code on a connection that then closes; and
 * resource exhaustion, each bounded by a limit that is measured in bytes or
 * counts, never in wall-clock time.
 *
 * Every wait is a bounded poll (helpers/wait.ts guard) or a bounded loop.
 */
import t, { type Test } from 'tap'
import * as net from 'node:net'
import { isSspError } from '../src/errors.js'
import { SspNode } from '../src/ssp/node.js'
import type { IncomingTransaction, SspNodeOptions } from '../src/ssp/options.js'
import type { ServerConnection } from '../src/wire/server-connection.js'
import type { WireServerOptions } from '../src/wire/server-options.js'
import { WireServer } from '../src/wire/server.js'
import { delay, until } from './helpers/wait.js'
import { collectUntilClose, frameAnswers } from './helpers/byte-client.js'

const CT = 'Content-Type: application/vnd.wv.ssp+xml\r\n'

type Teardown = { teardown: (fn: () => unknown) => void }


/** A valid SSP POST. */
function post (tid: string, body = '<m/>', extra = ''): string {
  return `POST / HTTP/1.1\r\nHost: x\r\n${CT}x-wv-transactionid: ${tid}\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

interface Served {
  server: WireServer
  port: number
  /** Transaction ids handed to the application, in order. */
  handled: string[]
  conns: ServerConnection[]
}

async function serve (t: Teardown, o: WireServerOptions = {}): Promise<Served> {
  const handled: string[] = []
  const conns: ServerConnection[] = []
  const server = new WireServer({
    timerResolution: 25,
    onRequest: (req) => { handled.push(req.transactionId ?? '-') },
    ...o
  })
  server.on('connection', (c: ServerConnection) => conns.push(c))
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  return { server, port, handled, conns }
}

interface Answer { status: number, headers: Record<string, string> }

interface Exchange {
  answers: Answer[]
  /** The server closed the connection (FIN or RST) within the guard. */
  closed: boolean
  raw: string
}

/** The answers in what the server sent, framed by the project's response framer. */
function parseAnswers (raw: string): Answer[] {
  return frameAnswers(raw).map((a) => ({ status: a.status, headers: a.headers }))
}

/** Send `pieces` (one write each, `gapMs` apart) and collect everything until the server closes. */
async function exchange (port: number, pieces: Array<string | Buffer>, gapMs = 0, guardMs = 3000): Promise<Exchange> {
  const { raw, closed } = await collectUntilClose(port, pieces, { gapMs, guardMs })
  return { answers: parseAnswers(raw), closed, raw }
}

/** The exchange ends with exactly this refusal, after `okBefore` 200s, and the connection closed. */
function refused (t: Test, ex: Exchange, status: number, code: string, okBefore = 0): void {
  t.equal(ex.answers.length, okBefore + 1, `${okBefore} 200(s) then one refusal (got ${JSON.stringify(ex.raw.slice(0, 200))})`)
  for (let i = 0; i < okBefore; i++) t.equal(ex.answers[i]?.status, 200, `answer ${i + 1} is 200`)
  const last = ex.answers[okBefore]
  t.equal(last?.status, status, `status ${status}`)
  t.equal(last?.headers['x-ssp-error'], code, `X-SSP-Error: ${code}`)
  t.equal(last?.headers.connection, 'close', 'Connection: close')
  t.ok(ex.closed, 'the server closed the connection')
}

// ------------------------------------------------------------------ smuggling and framing

interface AttackCase {
  name: string
  /** Sent after one valid request (T0); a "smuggled" valid request (T9) follows it. */
  attack: string
  status: number
  code: string
}

const head = `POST / HTTP/1.1\r\nHost: x\r\n${CT}x-wv-transactionid: T1\r\n`
const attacks: AttackCase[] = [
  { name: 'Content-Length with Transfer-Encoding (CL.TE)', attack: `${head}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'Transfer-Encoding with Content-Length (TE.CL)', attack: `${head}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'Transfer-Encoding with a space before the colon', attack: `${head}Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'Transfer-Encoding: chunked, identity (chunked not last)', attack: `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'duplicate Transfer-Encoding: chunked', attack: `${head}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'duplicate Content-Length, same value', attack: `${head}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'conflicting Content-Length', attack: `${head}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'Content-Length as a list', attack: `${head}Content-Length: 3, 3\r\n\r\nabc`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'Content-Length with a sign', attack: `${head}Content-Length: +3\r\n\r\nabc`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'obsolete line folding', attack: `${head}X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'bare CR ending a header line', attack: `${head}X-A: a\rContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'bare CR inside a header value', attack: `${head}X-A: a\rb\r\nContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'bare LF ending a header line', attack: `${head}X-A: a\nContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'bare LF line endings throughout', attack: `POST / HTTP/1.1\nHost: x\n${CT.replace('\r\n', '\n')}x-wv-transactionid: T1\nContent-Length: 0\n\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'bare LF after the chunk size', attack: `${head}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'NUL in a header value', attack: `${head}X-A: a\0b\r\nContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'chunk size not hex', attack: `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'negative chunk size', attack: `${head}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'chunk size overflowing 64 bits', attack: `${head}Transfer-Encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\nabc\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'chunk size with a space before CRLF', attack: `${head}Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'chunk data longer than its size', attack: `${head}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  { name: 'HTTP/1.0', attack: `POST / HTTP/1.0\r\nHost: x\r\n${CT}x-wv-transactionid: T1\r\nContent-Length: 0\r\n\r\n`, status: 505, code: 'SSP_ERR_HTTP_VERSION' },
  { name: 'HTTP/2 connection preface', attack: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 505, code: 'SSP_ERR_HTTP_VERSION' },
  { name: 'protocol upgrade', attack: `${head}Connection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n`, status: 400, code: 'SSP_ERR_HTTP_PARSE' },
  ...['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE'].map((m): AttackCase => ({
    name: `method ${m}`, attack: `${m} / HTTP/1.1\r\nHost: x\r\n${CT}x-wv-transactionid: T1\r\nContent-Length: 0\r\n\r\n`, status: 405, code: 'SSP_ERR_METHOD'
  })),
  { name: 'method CONNECT', attack: 'CONNECT peer.example:443 HTTP/1.1\r\nHost: peer.example:443\r\n\r\n', status: 405, code: 'SSP_ERR_METHOD' }
]

t.test('smuggling and framing attacks: refused in place, nothing after them handled, connection closed', async (t) => {
  const s = await serve(t)
  for (const a of attacks) {
    await t.test(a.name, async (t) => {
      s.handled.length = 0
      // A valid request first (answered 200), then the attack, then what an attacker
      // would smuggle: it must never reach the application.
      const ex = await exchange(s.port, [post('T0') + a.attack + post('T9')])
      refused(t, ex, a.status, a.code, 1)
      t.same(s.handled, ['T0'], 'only the request before the attack was handed over')
      if (a.status === 405) t.equal(ex.answers[1]?.headers.allow, 'POST', 'Allow: POST')
    })
  }
  // The same attacks split at every few bytes: the outcome does not depend on reads.
  await t.test('split into 7-byte writes', async (t) => {
    for (const a of attacks.filter((_, i) => i % 4 === 0)) {
      s.handled.length = 0
      const bytes = Buffer.from(a.attack, 'latin1')
      const pieces: Buffer[] = []
      for (let i = 0; i < bytes.length; i += 7) pieces.push(bytes.subarray(i, i + 7))
      const ex = await exchange(s.port, pieces, 1)
      t.equal(ex.answers[0]?.status, a.status, `${a.name}: ${a.status}`)
      t.equal(ex.answers[0]?.headers['x-ssp-error'], a.code, `${a.name}: ${a.code}`)
      t.ok(ex.closed, `${a.name}: closed`)
      t.same(s.handled, [], `${a.name}: nothing handed over`)
    }
  })
})

t.test('oversized chunk extensions: refused before the limit is much exceeded', async (t) => {
  const maxBodyBytes = 64 * 1024
  const s = await serve(t, { maxBodyBytes })
  let serverIn = 0
  // An endless chunk extension: 4 MiB offered in 16 KiB writes (bounded loop).
  const piece = Buffer.alloc(16 * 1024, 'a')
  const pieces: Array<string | Buffer> = [`${head}Transfer-Encoding: chunked\r\n\r\n3;x=`]
  for (let i = 0; i < 256; i++) pieces.push(piece)
  const ex = await exchange(s.port, pieces, 1, 8000)
  serverIn = s.server.getStats().bytesIn
  t.ok(ex.answers.length === 1 && ex.closed, 'one answer, then closed')
  t.equal(ex.answers[0]?.status, 413, '413')
  t.equal(ex.answers[0]?.headers['x-ssp-error'], 'SSP_ERR_BODY_TOO_LARGE', 'SSP_ERR_BODY_TOO_LARGE')
  t.ok(serverIn < 4 * 1024 * 1024, `the server stopped reading early (${serverIn} bytes in)`)
  t.same(s.handled, [], 'nothing handed over')
  // A short extension is still fine (and ignored).
  const ok = await exchange(s.port, [`${head}Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n`], 0, 300)
  t.equal(ok.answers[0]?.status, 200, 'a short extension is accepted')
})

// ------------------------------------------------------------------ resource exhaustion

t.test('slowloris: a head dribbled byte by byte is cut at headersTimeout', async (t) => {
  const s = await serve(t, { headersTimeout: 300, requestTimeout: 60_000, idleTimeout: 60_000 })
  const full = Buffer.from(post('T1'), 'latin1')
  // Control: the same bytes at once are accepted.
  const fast = await exchange(s.port, [full], 0, 300)
  t.equal(fast.answers[0]?.status, 200, 'control: sent at once, accepted')
  // One byte every 20 ms, never the whole head: the head alone would take several seconds.
  const headLen = full.indexOf('\r\n\r\n') + 4
  const pieces = Array.from({ length: headLen - 1 }, (_, i) => full.subarray(i, i + 1))
  let sent = 0
  const ex = await new Promise<Exchange>((resolve) => {
    const sock = net.connect(s.port, '127.0.0.1')
    let raw = ''
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearInterval(timer)
      sock.destroy()
      resolve({ answers: parseAnswers(raw), closed, raw })
    }
    sock.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    sock.on('error', () => {})
    sock.on('close', () => finish(true))
    const timer = setInterval(() => {
      // Bounded: stops when every byte but the last of the head is out.
      if (sent >= pieces.length) { finish(false); return }
      if (!sock.destroyed) sock.write(pieces[sent++]!)
    }, 20)
  })
  t.equal(ex.answers[0]?.status, 408, '408')
  t.equal(ex.answers[0]?.headers['x-ssp-error'], 'SSP_ERR_HEADERS_TIMEOUT', 'SSP_ERR_HEADERS_TIMEOUT')
  t.ok(ex.closed, 'closed')
  t.ok(sent < headLen - 1, `cut before the head was complete (${sent} of ${headLen} bytes)`)
  t.same(s.handled, ['T1'], 'only the control request was handed over')
  t.equal(s.server.getStats().errors.SSP_ERR_HEADERS_TIMEOUT, 1, 'counted')
})

t.test('a peer that never reads: the server stops reading at maxWriteBuffer (bytesIn plateaus)', async (t) => {
  const maxWriteBuffer = 16 * 1024
  const s = await serve(t, { maxWriteBuffer, idleTimeout: 60_000, requestTimeout: 60_000, headersTimeout: 60_000 })
  const sock = net.connect(s.port, '127.0.0.1')
  t.teardown(() => { sock.destroy() })
  sock.on('error', () => {})
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  sock.pause() // never read the 200s
  // 512 pipelined minimal requests per batch (~50 KiB).
  let n = 0
  const batch = (): Buffer => {
    let out = ''
    for (let i = 0; i < 512; i++) out += post(`T${n++}`, '')
    return Buffer.from(out, 'latin1')
  }
  await until(() => s.conns.length === 1, 'the connection is accepted')
  const conn = s.conns[0]!
  const serverIn = (): number => s.server.getStats().bytesIn
  let written = 0
  let stable = 0
  let last = -1
  let maxServerWriteBuffer = 0
  // Bounded: at most 2,000 batches (~100 MiB offered); stop once the server has not
  // read a byte during 20 consecutive batches the client kept writing.
  for (let i = 0; i < 2000 && stable < 20; i++) {
    // The client keeps writing (its own buffer is capped so the test's heap stays small).
    if (sock.writableLength < 4 * 1024 * 1024) { const b = batch(); sock.write(b); written += b.length }
    await delay(i < 50 ? 1 : 5)
    maxServerWriteBuffer = Math.max(maxServerWriteBuffer, conn.socket.writableLength)
    const now = serverIn()
    if (now === last && sock.writableLength > 0) stable++
    else stable = 0
    last = now
  }
  const st = s.server.getStats()
  t.comment(`client offered ${written} bytes, server read ${st.bytesIn}, server write buffer peaked at ${maxServerWriteBuffer}`)
  t.equal(stable, 20, `the server stopped reading while the client kept writing (${JSON.stringify(st)})`)
  t.ok(st.bytesIn < written, 'the server read less than was offered')
  t.ok(sock.writableLength > 0, 'the client has bytes the server will not take')
  t.ok(st.backpressurePauses >= 1, 'reading paused for backpressure')
  // Bounded: one read's worth of 200s at most beyond maxWriteBuffer (a 64 KiB read of ~95-byte requests).
  t.ok(maxServerWriteBuffer <= maxWriteBuffer + 64 * 1024, `server write buffer bounded (${maxServerWriteBuffer})`)
  // And the peer is cut off once it has not read for idleTimeout (long enough that only
  // the stall, not a busy event loop in this process, keeps the server from reading).
  const s2 = await serve(t, { maxWriteBuffer, idleTimeout: 1000, requestTimeout: 60_000, headersTimeout: 60_000 })
  const sock2 = net.connect(s2.port, '127.0.0.1')
  t.teardown(() => { sock2.destroy() })
  sock2.on('error', () => {})
  await new Promise<void>((resolve) => sock2.once('connect', () => resolve()))
  sock2.pause()
  let closed2 = false
  sock2.on('close', () => { closed2 = true })
  for (let i = 0; i < 2000 && !closed2 && s2.server.getStats().errors.SSP_ERR_WRITE_STALLED === undefined; i++) {
    if (sock2.writableLength < 4 * 1024 * 1024) sock2.write(batch())
    await delay(5)
  }
  await until(() => s2.server.getStats().connectionsOpen === 0, 'the stalled connection is closed')
  const e2 = s2.server.getStats().errors
  t.equal(e2.SSP_ERR_WRITE_STALLED, 1, `cut off with SSP_ERR_WRITE_STALLED (errors ${JSON.stringify(e2)})`)
})

t.test('a flood of pipelined requests while the handler is stalled: hand-over plateaus', async (t) => {
  const maxPipelineDepth = 8
  const maxInFlight = 20
  const release: Array<() => void> = []
  let handedOver = 0
  const s = await serve(t, {
    maxPipelineDepth,
    maxInFlight,
    idleTimeout: 60_000,
    onRequest: () => {
      handedOver++
      return new Promise<void>((resolve) => release.push(resolve))
    }
  })
  t.teardown(() => { for (const r of release.splice(0)) r() })
  const N = 2000
  const conns = 5
  const socks: net.Socket[] = []
  const acks = new Array<number>(conns).fill(0)
  for (let c = 0; c < conns; c++) {
    const sock = net.connect(s.port, '127.0.0.1')
    socks.push(sock)
    t.teardown(() => { sock.destroy() })
    sock.on('error', () => {})
    sock.on('data', (d: Buffer) => { acks[c]! += d.toString('latin1').split('200 OK').length - 1 })
    let out = ''
    for (let i = 0; i < N; i++) out += post(`C${c}T${i}`)
    sock.write(out)
  }
  // Bounded poll until the hand-over stops growing.
  await until(() => handedOver >= maxInFlight, 'the application queue fills')
  let stable = 0
  let last = -1
  for (let i = 0; i < 400 && stable < 20; i++) {
    await delay(5)
    stable = handedOver === last ? stable + 1 : 0
    last = handedOver
  }
  t.equal(handedOver, maxInFlight, `hand-over plateaus at maxInFlight (${handedOver})`)
  for (let c = 0; c < conns; c++) t.ok(s.conns[c]!.inFlight <= maxPipelineDepth, `connection ${c} holds at most maxPipelineDepth`)
  const acked = acks.reduce((x, y) => x + y, 0)
  t.ok(acked <= maxInFlight, `only handed-over requests are acknowledged (${acked})`)
  const inBefore = s.server.getStats().bytesIn
  t.ok(inBefore < conns * N * 100, 'the server stopped reading the flood')
  // Releasing the application lets everything through, in order, exactly once.
  for (let i = 0; i < 10_000 && handedOver < conns * N; i++) {
    for (const r of release.splice(0)) r()
    await delay(1)
  }
  for (const r of release.splice(0)) r()
  await until(() => acks.every((a) => a === N), 'every request acknowledged')
  t.equal(handedOver, conns * N, 'every request handed over once')
  t.same(s.handled, [], 'custom handler only')
})

t.test('thousands of connections: beyond maxConnections they are refused and counted', async (t) => {
  const maxConnections = 50
  const s = await serve(t, { maxConnections, idleTimeout: 60_000 })
  const socks: net.Socket[] = []
  t.teardown(() => { for (const k of socks) k.destroy() })
  const total = 200
  let closedByServer = 0
  await Promise.all(Array.from({ length: total }, () => new Promise<void>((resolve) => {
    const k = net.connect(s.port, '127.0.0.1')
    socks.push(k)
    k.on('error', () => {})
    k.on('close', () => { closedByServer++ })
    k.on('connect', () => resolve())
    k.on('close', () => resolve())
  })))
  await until(() => { const st = s.server.getStats(); return st.connectionsAccepted + st.connectionsRefused === total }, 'every connection seen')
  await until(() => closedByServer >= total - maxConnections, 'refused connections closed')
  const st = s.server.getStats()
  t.equal(st.connectionsAccepted, maxConnections, 'maxConnections accepted')
  t.equal(st.connectionsRefused, total - maxConnections, 'the rest refused and counted in connectionsRefused')
  t.equal(st.connectionsOpen, maxConnections, 'open connections bounded')
  t.equal(closedByServer, total - maxConnections, 'the refused ones were closed')
  // The accepted connections still work.
  const live = socks.find((k) => !k.destroyed)!
  const got = await new Promise<string>((resolve) => {
    live.once('data', (d: Buffer) => resolve(d.toString('latin1')))
    live.write(post('T1'))
  })
  t.match(got, /^HTTP\/1\.1 200 OK/, 'an accepted connection is served')
  // Once connections close, new ones are accepted again.
  for (const k of socks) k.destroy()
  await until(() => s.server.getStats().connectionsOpen === 0, 'all closed')
  const after = await exchange(s.port, [post('T2', '<m/>', 'Connection: close\r\n')], 0, 2000)
  t.equal(after.answers[0]?.status, 200, 'room again after the flood')
})

t.test('huge bodies: 413 from the declared length, or as soon as a chunked body passes the limit', async (t) => {
  const maxBodyBytes = 64 * 1024
  const s = await serve(t, { maxBodyBytes })
  const declared = await exchange(s.port, [`${head}Content-Length: ${10 * 1024 * 1024 * 1024}\r\n\r\nxxxx`])
  refused(t, declared, 413, 'SSP_ERR_BODY_TOO_LARGE')
  const exact = await exchange(s.port, [`${head}Content-Length: ${maxBodyBytes}\r\nConnection: close\r\n\r\n`, Buffer.alloc(maxBodyBytes, 'x')], 0, 3000)
  t.equal(exact.answers[0]?.status, 200, 'a body of exactly maxBodyBytes is accepted')
  const before = s.server.getStats().bytesIn
  const chunk = Buffer.from(`4000\r\n${'y'.repeat(0x4000)}\r\n`, 'latin1')
  const pieces: Array<string | Buffer> = [`${head}Transfer-Encoding: chunked\r\n\r\n`]
  for (let i = 0; i < 1024; i++) pieces.push(chunk) // 16 MiB offered (bounded)
  const chunked = await exchange(s.port, pieces, 1, 8000)
  refused(t, chunked, 413, 'SSP_ERR_BODY_TOO_LARGE')
  const read = s.server.getStats().bytesIn - before
  t.ok(read < 4 * 1024 * 1024, `the server stopped reading soon after the limit (${read} bytes of 16 MiB)`)
  t.same(s.handled, ['T1'], 'only the body within the limit was handed over')
})

// ------------------------------------------------------------------ per-peer limits at the SSP layer

function nodeOptions (domain: string, o: Partial<SspNodeOptions> = {}): SspNodeOptions {
  return { domain, resolver: false, transactionTimeout: 10_000, setupTimeout: 5_000, closeTimeout: 500, ...o }
}

async function nodePair (t: Teardown, ao: Partial<SspNodeOptions>, bo: Partial<SspNodeOptions>): Promise<{ a: SspNode, b: SspNode }> {
  const a = new SspNode(nodeOptions('a.example', ao))
  const b = new SspNode(nodeOptions('b.example', bo))
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const [ua] = await a.start()
  const [ub] = await b.start()
  a.addPeer('b.example', ub!)
  b.addPeer('a.example', ua!)
  return { a, b }
}

t.test('thousands of sessions from one peer: sessions stay bounded and the newest works', async (t) => {
  let handled = 0
  const rounds = Number(process.env.SSP_HOSTILE_SESSIONS ?? 1000)
  // maxSetupsPerPeer would refuse all but 10 of these in 10 s (test/setup-limits.test.ts): lifted, to test the session table.
  const { a, b } = await nodePair(t, { handler: (tx: IncomingTransaction) => { handled++; return tx.primitive }, maxSetupsPerPeer: rounds + 1 }, {})
  const ended: string[] = []
  a.on('sessionEnd', (e: { reason: string }) => ended.push(e.reason))
  let maxSessions = 0
  let maxConns = 0
  for (let i = 0; i < rounds; i++) {
    await b.connect('a.example')
    b.endSession('a.example')
    const st = a.getStats()
    maxSessions = Math.max(maxSessions, st.sessions)
    maxConns = Math.max(maxConns, st.wire[0]!.connectionsOpen)
  }
  const answer = await b.request('a.example', '<last/>')
  t.equal(answer.primitive.toString(), '<last/>', 'the session set up last carries traffic')
  t.equal(handled, 1, 'handled once')
  t.ok(maxSessions <= 2, `A never held more than its two per-peer sessions (max ${maxSessions})`)
  t.equal(a.getStats().sessions, 1, 'one session with B at the end')
  t.ok(maxConns <= 4, `A's inbound connections stay bounded (max ${maxConns})`)
  t.ok(ended.length >= rounds - 1 && ended.every((r) => r === 'SSP_ERR_SESSION_CLOSED'), 'every replaced session was ended')
})

t.test('pending transactions per peer: beyond maxPendingPerPeer, SSP_ERR_PEER_LIMIT; the limit frees up', async (t) => {
  const release: Array<() => void> = []
  const { a } = await nodePair(t, { maxPendingPerPeer: 5 }, {
    handler: (tx: IncomingTransaction) => new Promise<Buffer>((resolve) => release.push(() => resolve(tx.primitive)))
  })
  t.teardown(() => { for (const r of release.splice(0)) r() })
  await a.connect('b.example')
  const outcomes = Array.from({ length: 12 }, (_, i) => a.request('b.example', `<q n="${i}"/>`).then(
    (ans) => ans.primitive.toString(),
    (err: unknown) => isSspError(err) ? err.code : String(err)))
  await until(() => release.length === 5, 'B holds five')
  t.equal(a.getStats().pending, 5, 'five pending')
  for (const r of release.splice(0)) r()
  const got = await Promise.all(outcomes)
  t.same(got.slice(0, 5), [0, 1, 2, 3, 4].map((i) => `<q n="${i}"/>`), 'the first five are answered')
  t.same(got.slice(5), new Array(7).fill('SSP_ERR_PEER_LIMIT'), 'the rest are refused at once with SSP_ERR_PEER_LIMIT')
  const after = a.request('b.example', '<again/>')
  await until(() => release.length === 1, 'B holds the new one')
  for (const r of release.splice(0)) r()
  t.equal((await after).primitive.toString(), '<again/>', 'room again once answers came back')
})
