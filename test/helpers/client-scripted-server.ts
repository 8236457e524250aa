/**
 * A scripted HTTP/1.1 peer for WireClient tests: a plain net (or tls) server on
 * 127.0.0.1, port 0, that frames the byte stream into requests with the
 * project's request framer in observe mode (src/conformance/http.ts
 * HttpStream: chunked bodies too, and requests the engine would refuse are
 * still seen) and asks a script what to answer to each one.
 *
 * Answers are written in request order per connection (a per-connection
 * promise chain), so a delayed answer delays the ones behind it, as HTTP/1.1
 * pipelining requires.
 */
import * as net from 'node:net'
import * as tls from 'node:tls'
import { HttpStream, type HttpMessage } from '../../src/conformance/http.js'

export interface SeenRequest {
  /** 1-based number of the connection it arrived on. */
  conn: number
  /** 0-based position on its connection. */
  seq: number
  /** 0-based position over the whole server. */
  index: number
  method: string
  path: string
  /** Header names lower-cased; repeated headers joined with ', '. */
  headers: Record<string, string>
  /** The raw head, request line to the blank line included. */
  rawHead: string
  /** The body, chunked framing removed. */
  body: Buffer
  /** The whole request as framed (raw bytes, header list in order, what the strict engine would refuse it with). */
  message: HttpMessage
  socket: net.Socket
}

export interface AnswerSpec {
  /** Bytes to write (the whole answer, status line included). */
  write?: string | Buffer
  /** Write the answer one byte at a time (each after a setImmediate). */
  byteByByte?: boolean
  /** Wait this long (ms) before writing. */
  delay?: number
  /** End the connection after writing (FIN). */
  end?: boolean
  /** Destroy the connection after writing (no more answers). */
  destroy?: boolean
}

/** What to do with one request: a raw answer, a spec, or null for "no answer now". */
export type Answer = string | Buffer | AnswerSpec | null

export type Script = (req: SeenRequest, server: ScriptedServer) => Answer

export interface ScriptedServer {
  port: number
  url: string
  requests: SeenRequest[]
  /** Bytes received over all connections. */
  bytes: number
  connections: number
  sockets: Set<net.Socket>
  /** TLS only: client certificates' CNs seen, per authorised connection. */
  peerCNs: string[]
  close: () => Promise<void>
}

export interface ScriptedOptions {
  tls?: tls.TlsOptions
  path?: string
}

/** `HTTP/1.1 <status>` answer with an empty body and optional extra header lines. */
export function answer (status: number, extra: string[] = []): string {
  const reason = status === 200 ? 'OK' : 'X'
  return `HTTP/1.1 ${status} ${reason}\r\n${extra.map(h => h + '\r\n').join('')}Content-Length: 0\r\n\r\n`
}

export const OK = answer(200)

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

interface TeardownTarget { teardown: (fn: () => unknown) => void }

export async function scriptedServer (t: TeardownTarget, script: Script, opts: ScriptedOptions = {}): Promise<ScriptedServer> {
  const state: ScriptedServer = {
    port: 0,
    url: '',
    requests: [],
    bytes: 0,
    connections: 0,
    sockets: new Set(),
    peerCNs: [],
    close: async () => undefined
  }

  const onSocket = (sock: net.Socket): void => {
    const connNo = ++state.connections
    state.sockets.add(sock)
    if (opts.tls !== undefined) {
      const peer = (sock as tls.TLSSocket).getPeerCertificate()
      if (peer?.subject?.CN !== undefined) state.peerCNs.push(String(peer.subject.CN))
    }
    let seq = 0
    let dead = false
    let chain: Promise<void> = Promise.resolve()
    const onMessage = (m: HttpMessage): void => {
      const headers: Record<string, string> = {}
      for (const [name, v] of m.headers) {
        const k = name.toLowerCase()
        headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`
      }
      const req: SeenRequest = {
        conn: connNo,
        seq: seq++,
        index: state.requests.length,
        method: m.method ?? '',
        path: m.target ?? '',
        headers,
        rawHead: m.raw.toString('latin1', 0, m.headLength),
        body: m.body,
        message: m,
        socket: sock
      }
      state.requests.push(req)
      if (dead) return
      const a = script(req, state)
      if (a === null) return
      const spec: AnswerSpec = typeof a === 'string' || Buffer.isBuffer(a) ? { write: a } : a
      if (spec.delay === undefined && !spec.byteByByte) {
        // Still through the chain: an earlier delayed answer must go out first.
        chain = chain.then(() => { apply(spec) })
      } else {
        chain = chain.then(async () => {
          if (spec.delay !== undefined) await sleep(spec.delay)
          if (spec.byteByByte && spec.write !== undefined && !dead) {
            const bytes = Buffer.from(spec.write)
            for (let i = 0; i < bytes.length && !dead; i++) {
              sock.write(bytes.subarray(i, i + 1))
              await new Promise(resolve => setImmediate(resolve))
            }
            apply({ ...spec, write: undefined })
          } else {
            apply(spec)
          }
        })
      }
      if (spec.destroy || spec.end) dead = true
    }
    // Not HTTP/1.1 at all (or over the stream's limits): a real server would close.
    const stream = new HttpStream('request', { message: onMessage, error: () => { dead = true; sock.destroy() } })
    sock.on('error', () => undefined)
    sock.on('close', () => { dead = true; stream.stop(); state.sockets.delete(sock) })
    sock.on('data', (chunk: Buffer) => {
      state.bytes += chunk.length
      stream.push(chunk)
    })
    function apply (spec: AnswerSpec): void {
      if (sock.destroyed) return
      if (spec.write !== undefined) sock.write(spec.write)
      if (spec.destroy) sock.destroy()
      else if (spec.end) sock.end()
    }
  }

  const server = opts.tls === undefined
    ? net.createServer(onSocket)
    : tls.createServer({ ...opts.tls, ALPNProtocols: ['http/1.1'] }, onSocket)
  server.on('tlsClientError', () => undefined)
  server.on('error', () => undefined)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  state.port = (server.address() as net.AddressInfo).port
  state.url = `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${state.port}${opts.path ?? '/ssp'}`
  state.close = () => new Promise<void>(resolve => {
    for (const s of state.sockets) s.destroy()
    server.close(() => resolve())
  })
  t.teardown(() => state.close())
  return state
}
