/**
 * HTTP/1.1 for the conformance lab and its deliberately broken servers.
 *
 * The lab must see every byte the system under test (SUT) sends and must be
 * free to send bytes the engine's own client refuses to write (a wrong
 * Content-Type in the middle of a pipelined batch, an answer with a body).
 * So it does not use WireClient/WireServer, but it frames with their framers
 * (../wire/request-framer.ts, ../wire/response-framer.ts) in observe mode
 * (../wire/observed.ts): a message the engine would refuse is reported, with
 * the code the engine would have refused it with, instead of ending the
 * stream, and every message comes with its exact bytes.
 *
 *  - `HttpStream`: bytes in, one `HttpMessage` (raw bytes, start line, headers
 *    as received, body) per request or response out.
 *  - `buildPost`: an SSP POST as bytes, laid out as the engine's client writes
 *    one (../wire/request-head.ts), with any header left out or added.
 *  - `ProbeClient`: one outbound connection; `send` writes a batch of requests
 *    in one write and resolves with their responses, matched in order.
 *  - `ProbeListener`: a listening socket; every request is handed to a
 *    callback that returns the answer bytes, written in request order.
 *
 * Everything is bounded: message sizes (head and body limits), waits
 * (timeouts), and loops (each turn consumes input or stops).
 */
import * as net from 'node:net'
import * as tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createError, type ErrorCode } from '../errors.js'
import type { ObservedMessage } from '../wire/observed.js'
import { RequestFramer } from '../wire/request-framer.js'
import { postHeadStart } from '../wire/request-head.js'
import { ResponseFramer } from '../wire/response-framer.js'

/**
 * One request or response as it travelled (see ObservedMessage): `raw`,
 * `startLine`, `headers` in order, de-chunked `body`, and `refusal`, the code
 * the engine's strict framer would have refused it with (undefined: accepted).
 */
export type HttpMessage = ObservedMessage

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
  /** Header lines per message. Default 1024. */
  maxHeaderCount?: number
}

const DEFAULT_LIMITS: StreamLimits = { maxHeadBytes: 64 * 1024, maxBodyBytes: 4 * 1024 * 1024 }

const noop = (): void => undefined

/**
 * Frames a byte stream into HTTP messages with the engine's framers in
 * observe mode. Requests are judged as the strict server judges them (Host
 * required), responses as the client does; the judgement is the message's
 * `refusal`, never a stop.
 */
export class HttpStream {
  private readonly sink: StreamSink
  private readonly req: RequestFramer | undefined
  private readonly res: ResponseFramer | undefined
  private stopped = false
  private released = false
  /** Inside push()/end(): the framer is only released once they return. */
  private pushing = false

  constructor (kind: 'request' | 'response', sink: StreamSink, limits: StreamLimits = DEFAULT_LIMITS) {
    this.sink = sink
    if (kind === 'request') {
      this.req = new RequestFramer({
        onRequest: (_req, m) => this.deliver(m!),
        onObserved: (_code, _detail, m) => this.deliver(m),
        onReject: (code, detail) => this.fail(code, detail),
        onMessageBegin: noop,
        onHeadersComplete: noop
      }, {
        interop: false,
        requireHost: true,
        observe: true,
        maxHeaderBytes: limits.maxHeadBytes,
        maxHeaderCount: limits.maxHeaderCount ?? 1024,
        maxBodyBytes: limits.maxBodyBytes
      })
    } else {
      this.res = new ResponseFramer({
        onResponse: (_status, _keepAlive, _location, _bodyBytes, m) => this.deliver(m!),
        onObserved: (_code, _detail, m) => this.deliver(m),
        onResponseError: (code, detail) => this.fail(code, detail)
      }, { maxHeaderBytes: limits.maxHeadBytes, maxBodyBytes: limits.maxBodyBytes, observe: true })
    }
  }

  /** A message has begun and is not complete. */
  get busy (): boolean { return (this.req ?? this.res)!.inMessage }

  push (chunk: Buffer): void {
    if (this.stopped) return
    this.pushing = true
    try {
      if (this.req !== undefined) this.req.push(chunk)
      else this.res!.push(chunk)
    } finally {
      this.pushing = false
    }
    if (this.stopped) this.release()
  }

  /** The peer closed: completes a response whose body runs to the end of the connection. */
  end (): void {
    if (this.stopped) return
    this.pushing = true
    try {
      if (this.res !== undefined) this.res.finish()
      else if (this.req!.inMessage) this.fail('SSP_ERR_HTTP_PARSE', 'connection closed in the middle of a message')
    } finally {
      this.pushing = false
    }
    this.stop()
  }

  /** Nothing more is parsed (safe from inside the sink). */
  stop (): void {
    if (!this.stopped) {
      this.stopped = true
      // A request framer is stopped in place; it is released once push() returns.
      if (this.pushing) this.req?.stop()
    }
    if (!this.pushing) this.release()
  }

  private release (): void {
    if (this.released) return
    this.released = true
    this.req?.destroy()
    this.res?.destroy()
  }

  /** Hand one message on; false (stop the response framer) once the sink stopped the stream. */
  private deliver (m: HttpMessage): boolean {
    if (this.stopped) return false
    this.sink.message(m)
    return !this.stopped
  }

  private fail (code: ErrorCode, detail: string | undefined): void {
    if (this.stopped) return
    this.stop()
    this.sink.error(detail === undefined ? code : `${code}: ${detail}`)
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

/**
 * An SSP POST as bytes: request line, Host, Content-Type, the x-wv-* headers,
 * any extra lines, Content-Length, body. The engine's client writes the same
 * lines in the same order (../wire/request-head.ts); here each may be left out.
 */
export function buildPost (p: PostSpec): Buffer {
  const body = typeof p.body === 'string' ? Buffer.from(p.body, 'utf8') : p.body
  let head = postHeadStart(p.url, p.contentType)
  if (p.transactionId !== undefined) head += `x-wv-transactionid: ${p.transactionId}\r\n`
  if (p.sessionId !== undefined) head += `x-wv-sessionid: ${p.sessionId}\r\n`
  for (const e of p.extra ?? []) head += `${e}\r\n`
  head += `Content-Length: ${body.length}\r\n\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), body])
}

// ---------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------

export interface ProbeClientOptions {
  /** Connect (and TLS handshake) must finish within this many ms. */
  connectTimeout: number
  ca?: string | Buffer
  rejectUnauthorized?: boolean
}

export interface ProbeResult {
  readonly request: Buffer
  /** The answer, when one came (1xx answers are skipped). */
  readonly response: HttpMessage | undefined
  /** Why there is no answer: 'closed', 'timeout', or a parse error. */
  readonly error: string | undefined
}

interface Waiting {
  request: Buffer
  resolve: (r: ProbeResult) => void
}

/** One outbound connection. Requests are answered in order (HTTP/1.1 pipelining). */
export class ProbeClient {
  readonly url: URL
  readonly secure: boolean
  /** Requests written on this connection. */
  written = 0
  closed = false
  private sock: net.Socket | undefined = undefined
  private readonly o: ProbeClientOptions
  private readonly stream: HttpStream
  private readonly waiting: Waiting[] = []
  private failure: string | undefined = undefined
  private readonly onClose: Array<() => void> = []

  constructor (url: string | URL, o: ProbeClientOptions) {
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
  send (requests: Buffer[], timeout: number): Promise<ProbeResult[]> {
    const sock = this.sock
    if (sock === undefined || this.closed) {
      return Promise.resolve(requests.map((request) => ({ request, response: undefined, error: this.failure ?? 'closed' })))
    }
    const promises = requests.map((request) => new Promise<ProbeResult>((resolve) => this.waiting.push({ request, resolve })))
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

export interface ProbeListenerOptions {
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
export class ProbeListener {
  readonly connections = new Set<InboundConnection>()
  private readonly server: net.Server
  private readonly o: ProbeListenerOptions
  private count = 0
  private base = ''

  constructor (o: ProbeListenerOptions) {
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
