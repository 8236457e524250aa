/**
 * Raw HTTP/1.1 for the conformance lab and its deliberately broken servers.
 *
 * The lab must see every byte the system under test (SUT) sends and must be
 * free to send bytes the engine's own client refuses to write (a wrong
 * Content-Type in the middle of a pipelined batch, an answer with a body).
 * So it does not use WireClient/WireServer: it frames messages with the same
 * llhttp build (`../wire/llhttp.js`), keeps each message's exact bytes, and
 * answers whatever the caller decides.
 *
 *  - `HttpStream`: bytes in, one `HttpMessage` (raw bytes, start line, headers
 *    as received, body) per request or response out. Message boundaries come
 *    from pausing llhttp at the end of each message.
 *  - `RawClient`: one outbound connection; `send` writes a batch of requests in
 *    one write and resolves with their responses, matched in order.
 *  - `RawListener`: a listening socket; every request is handed to a callback
 *    that returns the answer bytes, written in request order.
 *
 * Everything is bounded: message sizes (head and body limits), waits
 * (timeouts), and loops (each turn consumes input or stops).
 */
import * as net from 'node:net'
import * as tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createError } from '../errors.js'
import { LL, Parser, type ParserCallbacks } from '../wire/llhttp.js'

export interface HttpMessage {
  /** The message exactly as it travelled, start line to the last body byte. */
  readonly raw: Buffer
  /** Request line or status line. */
  readonly startLine: string
  /** Request method (requests only). */
  readonly method: string | undefined
  /** Request target (requests only). */
  readonly target: string | undefined
  /** Status code (responses only). */
  readonly status: number | undefined
  /** `1.1`, `1.0`. */
  readonly version: string
  /** Header lines in order, names as sent, values without surrounding blanks. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** Body after de-chunking. */
  readonly body: Buffer
  readonly keepAlive: boolean
}

/** First value of a header (case-insensitive name), or undefined. */
export function header (m: HttpMessage, name: string): string | undefined {
  const l = name.toLowerCase()
  for (const [k, v] of m.headers) if (k.toLowerCase() === l) return v
  return undefined
}

/** How many times a header occurs. */
export function headerCount (m: HttpMessage, name: string): number {
  const l = name.toLowerCase()
  let n = 0
  for (const [k] of m.headers) if (k.toLowerCase() === l) n++
  return n
}

export interface StreamSink {
  message (m: HttpMessage): void
  /** The byte stream is not HTTP/1.x (or over a limit); nothing more is parsed. */
  error (reason: string): void
}

export interface StreamLimits {
  maxHeadBytes: number
  maxBodyBytes: number
}

const DEFAULT_LIMITS: StreamLimits = { maxHeadBytes: 64 * 1024, maxBodyBytes: 4 * 1024 * 1024 }
const EMPTY = Buffer.alloc(0)

/** Frames a byte stream into HTTP messages, keeping each message's exact bytes. */
export class HttpStream implements ParserCallbacks {
  private readonly parser: Parser
  private readonly sink: StreamSink
  private readonly limits: StreamLimits
  private readonly kind: 'request' | 'response'
  private chunk: Buffer = EMPTY
  /** Bytes of the current message seen in earlier chunks. */
  private pending: Buffer[] = []
  private headers: Array<[string, string]> = []
  private last: 0 | 1 | 2 = 0
  private headBytes = 0
  private body: Buffer[] = []
  private bodyBytes = 0
  private keepAlive = true
  private finishing = false
  private finishedOne = false
  private stopped = false
  private inMessage = false

  constructor (kind: 'request' | 'response', sink: StreamSink, limits: StreamLimits = DEFAULT_LIMITS) {
    this.kind = kind
    this.sink = sink
    this.limits = limits
    this.parser = new Parser(kind === 'request' ? LL.TYPE_REQUEST : LL.TYPE_RESPONSE, this)
  }

  get busy (): boolean { return this.inMessage }

  push (chunk: Buffer): void {
    let data = chunk
    // Bounded: every turn either consumes the rest of `data` or a whole message (at least one byte).
    while (!this.stopped && data.length > 0) {
      this.chunk = data
      const ret = this.parser.execute(data)
      this.chunk = EMPTY
      if (ret === LL.OK) {
        this.pending.push(data)
        return
      }
      if (ret === LL.PAUSED && !this.stopped) {
        const off = this.parser.errorOffset()
        this.pending.push(data.subarray(0, off))
        this.emit()
        // The sink may have stopped the stream (and freed the parser) from inside emit().
        if (this.stopped) return
        this.parser.resume()
        if (off <= 0) return
        data = data.subarray(off)
        continue
      }
      this.fail(this.stopped ? 'stopped' : this.parser.errorReason() || `llhttp error ${ret}`)
      return
    }
  }

  /** The peer closed: completes a response whose body runs to the end of the connection. */
  end (): void {
    if (this.stopped) return
    this.finishing = true
    this.finishedOne = false
    const ret = this.parser.finish()
    this.finishing = false
    if (this.finishedOne) this.emit()
    else if (ret !== LL.OK && this.inMessage) this.fail('connection closed in the middle of a message')
    this.stop()
  }

  stop (): void {
    if (this.stopped) return
    this.stopped = true
    this.parser.destroy()
  }

  private fail (reason: string): void {
    if (this.stopped && reason === 'stopped') return
    this.stop()
    this.sink.error(reason)
  }

  private emit (): void {
    const raw = Buffer.concat(this.pending)
    this.pending = []
    // llhttp skips CR/LF between messages; they are kept in `raw` but not in the start line.
    let s = 0
    while (s < raw.length && (raw[s] === 0x0d || raw[s] === 0x0a)) s++
    const eol = raw.indexOf('\r\n', s)
    const startLine = raw.toString('latin1', s, eol < 0 ? raw.length : eol)
    const parts = startLine.split(' ')
    const isReq = this.kind === 'request'
    const version = (isReq ? parts[2] ?? '' : parts[0] ?? '').replace(/^HTTP\//, '')
    const m: HttpMessage = {
      raw: raw.subarray(s),
      startLine,
      method: isReq ? parts[0] : undefined,
      target: isReq ? parts[1] : undefined,
      status: isReq ? undefined : Number(parts[1]),
      version,
      headers: this.headers,
      body: this.body.length === 0 ? EMPTY : Buffer.concat(this.body),
      keepAlive: this.keepAlive
    }
    this.headers = []
    this.body = []
    this.sink.message(m)
  }

  // ---------------------------------------------------------------- llhttp callbacks

  onMessageBegin (): number {
    this.inMessage = true
    this.headers = []
    this.last = 0
    this.headBytes = 0
    this.body = []
    this.bodyBytes = 0
    return 0
  }

  onUrl (_at: number, len: number): number { return this.countHead(len) }
  onStatus (_at: number, len: number): number { return this.countHead(len) }

  onHeaderField (at: number, len: number): number {
    const s = this.chunk.toString('latin1', at, at + len)
    const h = this.headers[this.headers.length - 1]
    if (this.last === 1 && h !== undefined) h[0] += s
    else this.headers.push([s, ''])
    this.last = 1
    return this.countHead(len + 4)
  }

  onHeaderValue (at: number, len: number): number {
    const h = this.headers[this.headers.length - 1]
    if (h !== undefined) h[1] += this.chunk.toString('latin1', at, at + len)
    this.last = 2
    return this.countHead(len)
  }

  onHeadersComplete (_status: number, _upgrade: boolean, keepAlive: boolean): number {
    this.keepAlive = keepAlive
    for (const h of this.headers) h[1] = h[1].trim()
    return 0
  }

  onBody (at: number, len: number): number {
    this.bodyBytes += len
    if (this.bodyBytes > this.limits.maxBodyBytes) return LL.USER
    this.body.push(Buffer.from(this.chunk.subarray(at, at + len)))
    return 0
  }

  onMessageComplete (): number {
    this.inMessage = false
    if (this.finishing) {
      this.finishedOne = true
      return 0
    }
    // Pausing here makes execute() return with the exact end of this message.
    return LL.PAUSED
  }

  private countHead (len: number): number {
    this.headBytes += len
    return this.headBytes > this.limits.maxHeadBytes ? LL.USER : 0
  }
}

/** Parse one complete message held in memory (e.g. a request the lab built). */
export function parseMessage (kind: 'request' | 'response', raw: Buffer): HttpMessage {
  let out: HttpMessage | undefined
  let err: string | undefined
  const s = new HttpStream(kind, { message: (m) => { out ??= m }, error: (r) => { err = r } })
  s.push(raw)
  if (out === undefined) s.end()
  s.stop()
  if (out === undefined) throw createError('SSP_ERR_HTTP_PARSE', { message: err ?? 'incomplete message' })
  return out
}

export interface PostSpec {
  url: URL
  contentType: string | undefined
  transactionId: string | undefined
  sessionId: string | undefined
  body: Buffer | string
  /** Extra header lines, written as given. */
  extra?: string[]
}

/** An SSP POST as bytes: request line, Host, Content-Type, the x-wv-* headers, Content-Length, body. */
export function buildPost (p: PostSpec): Buffer {
  const body = typeof p.body === 'string' ? Buffer.from(p.body, 'utf8') : p.body
  const path = (p.url.pathname === '' ? '/' : p.url.pathname) + p.url.search
  let head = `POST ${path} HTTP/1.1\r\nHost: ${p.url.host}\r\n`
  if (p.contentType !== undefined) head += `Content-Type: ${p.contentType}\r\n`
  if (p.transactionId !== undefined) head += `x-wv-transactionid: ${p.transactionId}\r\n`
  if (p.sessionId !== undefined) head += `x-wv-sessionid: ${p.sessionId}\r\n`
  for (const e of p.extra ?? []) head += `${e}\r\n`
  head += `Content-Length: ${body.length}\r\n\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), body])
}

// ---------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------

export interface RawClientOptions {
  /** Connect (and TLS handshake) must finish within this many ms. */
  connectTimeout: number
  ca?: string | Buffer
  rejectUnauthorized?: boolean
}

export interface RawResult {
  readonly request: Buffer
  /** The answer, when one came (1xx answers are skipped). */
  readonly response: HttpMessage | undefined
  /** Why there is no answer: 'closed', 'timeout', or a parse error. */
  readonly error: string | undefined
}

interface Waiting {
  request: Buffer
  resolve: (r: RawResult) => void
}

/** One outbound connection. Requests are answered in order (HTTP/1.1 pipelining). */
export class RawClient {
  readonly url: URL
  readonly secure: boolean
  /** Requests written on this connection. */
  written = 0
  closed = false
  private sock: net.Socket | undefined = undefined
  private readonly o: RawClientOptions
  private readonly stream: HttpStream
  private readonly waiting: Waiting[] = []
  private failure: string | undefined = undefined
  private readonly onClose: Array<() => void> = []

  constructor (url: string | URL, o: RawClientOptions) {
    this.url = new URL(url)
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') {
      throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unsupported protocol ${this.url.protocol}` })
    }
    this.secure = this.url.protocol === 'https:'
    this.o = o
    this.stream = new HttpStream('response', {
      message: (m) => {
        if (m.status !== undefined && m.status < 200) return
        const w = this.waiting.shift()
        w?.resolve({ request: w.request, response: m, error: undefined })
      },
      error: (reason) => {
        this.failure = `unparsable answer: ${reason}`
        this.destroy()
      }
    })
  }

  /** Open the connection. Rejects with SSP_ERR_CONNECT or SSP_ERR_TLS. */
  connect (): Promise<void> {
    if (this.sock !== undefined) return Promise.resolve()
    const host = this.url.hostname.startsWith('[') ? this.url.hostname.slice(1, -1) : this.url.hostname
    const port = this.url.port === '' ? (this.secure ? 443 : 80) : Number(this.url.port)
    return new Promise<void>((resolve, reject) => {
      let sock: net.Socket
      if (this.secure) {
        const opts: tls.ConnectionOptions = { host, port, ALPNProtocols: ['http/1.1'] }
        if (this.o.ca !== undefined) opts.ca = this.o.ca
        if (this.o.rejectUnauthorized !== undefined) opts.rejectUnauthorized = this.o.rejectUnauthorized
        if (net.isIP(host) === 0) opts.servername = host
        sock = tls.connect(opts)
      } else {
        sock = net.connect({ host, port })
      }
      this.sock = sock
      let tcpUp = false
      let up = false
      const timer = setTimeout(() => sock.destroy(new Error(`no connection within ${this.o.connectTimeout} ms`)), this.o.connectTimeout)
      sock.once('connect', () => { tcpUp = true })
      sock.once(this.secure ? 'secureConnect' : 'connect', () => {
        up = true
        clearTimeout(timer)
        sock.setNoDelay(true)
        resolve()
      })
      sock.on('data', (chunk: Buffer) => this.stream.push(chunk))
      sock.on('end', () => this.stream.end())
      sock.on('error', (err: Error) => {
        if (!up) {
          const code = this.secure && tcpUp ? 'SSP_ERR_TLS' : 'SSP_ERR_CONNECT'
          reject(createError(code, { message: `${this.url.href}: ${err.message}`, cause: err }))
        }
      })
      sock.on('close', () => {
        clearTimeout(timer)
        if (!up) reject(createError('SSP_ERR_CONNECT', { message: `${this.url.href}: closed before the connection was up` }))
        this.finishClose()
      })
    })
  }

  /**
   * Write the requests in ONE write and resolve with one result per request,
   * in order: the answer, or why there is none ('closed', 'timeout', parse error).
   */
  send (requests: Buffer[], timeout: number): Promise<RawResult[]> {
    const sock = this.sock
    if (sock === undefined || this.closed) {
      return Promise.resolve(requests.map((request) => ({ request, response: undefined, error: this.failure ?? 'closed' })))
    }
    const promises = requests.map((request) => new Promise<RawResult>((resolve) => this.waiting.push({ request, resolve })))
    this.written += requests.length
    sock.write(Buffer.concat(requests))
    let timer: NodeJS.Timeout | undefined
    const expire = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeout) })
    return Promise.race([Promise.all(promises), expire.then(() => undefined)]).then((done) => {
      clearTimeout(timer)
      if (done !== undefined) return done
      // Timed out: the unanswered ones are settled as 'timeout', in order.
      for (const req of requests) {
        const i = this.waiting.findIndex((w) => w.request === req)
        if (i >= 0) this.waiting.splice(i, 1)[0]!.resolve({ request: req, response: undefined, error: 'timeout' })
      }
      return Promise.all(promises)
    })
  }

  /** Called once the connection is closed (immediately if it already is). */
  whenClosed (fn: () => void): void {
    if (this.closed) fn()
    else this.onClose.push(fn)
  }

  /** Graceful: FIN after what was written. */
  end (): void {
    if (this.sock !== undefined && !this.closed) this.sock.end()
  }

  destroy (): void {
    if (this.sock !== undefined) this.sock.destroy()
    else this.finishClose()
  }

  private finishClose (): void {
    if (this.closed) return
    this.closed = true
    this.stream.stop()
    for (const w of this.waiting.splice(0)) w.resolve({ request: w.request, response: undefined, error: this.failure ?? 'closed' })
    for (const fn of this.onClose.splice(0)) fn()
  }
}

// ---------------------------------------------------------------------------
// Inbound
// ---------------------------------------------------------------------------

export interface InboundConnection {
  /** 1-based over the listener's life. */
  readonly n: number
  readonly socket: net.Socket
  /** Requests received on it so far. */
  requests: number
  closed: boolean
}

/** What to answer one request with. */
export interface Reply {
  bytes: Buffer
  /** Close the connection after this answer (nothing after it on this connection is parsed). */
  close?: boolean
}

export interface RawListenerOptions {
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Decide the answer to one request. Called in request order, synchronously. */
  onRequest (conn: InboundConnection, m: HttpMessage): Reply
  /** Not HTTP: the answer to write (if any) before closing. */
  onError?: (conn: InboundConnection, reason: string) => Buffer | undefined
  onConnection?: (conn: InboundConnection) => void
  onClose?: (conn: InboundConnection) => void
  /**
   * Order the answers to the requests of one read before they are written
   * (in one write). Default: request order. Only fault servers change it.
   */
  arrange?: (answers: Buffer[]) => Buffer[]
}

/** A listening socket that answers each request with whatever `onRequest` returns. */
export class RawListener {
  readonly connections = new Set<InboundConnection>()
  private readonly server: net.Server
  private readonly o: RawListenerOptions
  private count = 0
  private base = ''

  constructor (o: RawListenerOptions) {
    this.o = o
    const onSocket = (s: net.Socket): void => this.accept(s)
    this.server = o.tls === undefined
      ? net.createServer({ noDelay: true }, onSocket)
      : tls.createServer({ cert: o.tls.cert, key: o.tls.key, ALPNProtocols: ['http/1.1'] }, onSocket)
    this.server.on('tlsClientError', () => undefined)
    this.server.on('error', () => undefined)
  }

  get secure (): boolean { return this.o.tls !== undefined }

  /** `http://host:port/` (or https). */
  get url (): string { return this.base }

  listen (port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const onErr = (err: Error): void => reject(createError('SSP_ERR_INVALID_ARGUMENT', { message: `cannot listen on ${host}:${port}: ${err.message}`, cause: err }))
      this.server.once('error', onErr)
      this.server.listen(port, host, () => {
        this.server.off('error', onErr)
        const a = this.server.address() as AddressInfo
        const h = a.family === 'IPv6' ? `[${a.address}]` : a.address
        this.base = `${this.secure ? 'https' : 'http'}://${h}:${a.port}/`
        resolve(this.base)
      })
    })
  }

  /** Destroy every open connection (the listener keeps listening). */
  dropConnections (): void {
    for (const c of this.connections) c.socket.destroy()
  }

  close (): Promise<void> {
    return new Promise((resolve) => {
      this.dropConnections()
      if (!this.server.listening) { resolve(); return }
      this.server.close(() => resolve())
    })
  }

  private accept (socket: net.Socket): void {
    const conn: InboundConnection = { n: ++this.count, socket, requests: 0, closed: false }
    this.connections.add(conn)
    let ending = false
    let answers: Buffer[] = []
    const flush = (): void => {
      if (answers.length === 0) return
      const out = this.o.arrange === undefined ? answers : this.o.arrange(answers)
      answers = []
      if (!socket.destroyed) socket.write(Buffer.concat(out))
    }
    const stream = new HttpStream('request', {
      message: (m) => {
        if (ending) return
        conn.requests++
        const r = this.o.onRequest(conn, m)
        answers.push(r.bytes)
        if (r.close === true) {
          ending = true
          stream.stop()
        }
      },
      error: (reason) => {
        if (ending) return
        ending = true
        const b = this.o.onError?.(conn, reason)
        if (b !== undefined) answers.push(b)
      }
    })
    socket.on('data', (chunk: Buffer) => {
      if (ending) return
      stream.push(chunk)
      flush()
      if (ending) socket.end()
    })
    socket.on('end', () => { stream.end(); flush(); socket.end() })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      conn.closed = true
      stream.stop()
      this.connections.delete(conn)
      this.o.onClose?.(conn)
    })
    this.o.onConnection?.(conn)
  }
}

/** Printable preview of the first bytes of a message: CR, LF and other controls escaped, cut at `max` characters. */
export function preview (raw: Buffer | undefined, max = 240): string {
  if (raw === undefined) return ''
  let out = ''
  let i = 0
  for (; i < raw.length && out.length < max; i++) {
    const c = raw[i]!
    if (c === 0x0d) out += '\\r'
    else if (c === 0x0a) out += '\\n'
    else if (c === 0x09) out += '\\t'
    else if (c < 0x20 || c > 0x7e) out += `\\x${c.toString(16).padStart(2, '0')}`
    else out += String.fromCharCode(c)
  }
  return i < raw.length ? out + '…' : out
}
