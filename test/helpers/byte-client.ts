/**
 * A byte-level socket client for the server tests: sends exact bytes (whole,
 * in pieces, slowly) and frames what comes back into answers with the
 * project's response framer in observe mode (src/conformance/http.ts
 * HttpStream), so chunked and close-delimited answers frame as the engine
 * frames them.
 */
import * as net from 'node:net'
import * as tls from 'node:tls'
import { HttpStream, type HttpMessage } from '../../src/conformance/http.js'

export interface Collected {
  /** Everything the server sent, latin1. */
  raw: string
  /** The server closed the connection (false: the guard ran out first). */
  closed: boolean
}

/**
 * Connect, write `pieces` one write each (a turn of the event loop apart, or
 * `gapMs` ms), optionally end our side, and collect everything the server
 * sends until it closes or `guardMs` passes.
 */
export function collectUntilClose (port: number, pieces: Array<string | Buffer>,
  o: { gapMs?: number, end?: boolean, guardMs?: number } = {}): Promise<Collected> {
  const gapMs = o.gapMs ?? 0
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let raw = ''
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(guard)
      sock.destroy()
      resolve({ raw, closed })
    }
    const guard = setTimeout(() => finish(false), o.guardMs ?? 3000)
    sock.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    sock.on('error', () => {})
    sock.on('close', () => finish(true))
    sock.on('connect', () => {
      void (async () => {
        for (const p of pieces) {
          if (done || sock.destroyed) return
          sock.write(p)
          if (gapMs > 0) await delay(gapMs)
          else await new Promise((resolve) => setImmediate(resolve))
        }
        if (o.end === true && !done) sock.end()
      })()
    })
  })
}

export interface ByteAnswer {
  status: number
  /** The status line as sent. */
  startLine: string
  /** Header names lower-cased; the first value of each. */
  headers: Record<string, string>
  /** The answer's bytes. */
  raw: string
  /** The body, chunked framing removed. */
  body: Buffer
}

function toAnswer (m: HttpMessage): ByteAnswer {
  const headers: Record<string, string> = {}
  for (const [k, v] of m.headers) headers[k.toLowerCase()] ??= v
  return { status: m.status ?? -1, startLine: m.startLine, headers, raw: m.raw.toString('latin1'), body: m.body }
}

/**
 * Frame the bytes a server sent (e.g. `collectUntilClose(...).raw`) into its
 * answers with the project's response framer. An answer cut short at the end
 * is not among them; bytes that are not HTTP/1.x end the list.
 */
export function frameAnswers (raw: string | Buffer): ByteAnswer[] {
  const out: ByteAnswer[] = []
  const s = new HttpStream('response', { message: (m) => out.push(toAnswer(m)), error: () => undefined },
    { maxHeadBytes: 64 * 1024, maxBodyBytes: 16 * 1024 * 1024 })
  s.push(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw)
  s.stop()
  return out
}

/** Upper bound for any wait in the tests: a guard against hangs, never a timing assertion. */
export const WAIT_GUARD_MS = 45_000

import { delay, until } from './wait.js'

export { delay, until }

export class ByteClient {
  readonly socket: net.Socket
  readonly answers: ByteAnswer[] = []
  /** Every byte received. */
  received: Buffer = Buffer.alloc(0)
  bytesReceived = 0
  /** The server ended its side (FIN). */
  ended = false
  closed = false
  error: Error | undefined = undefined
  /** Keep only counts (for very long answer streams). */
  countOnly = false
  /** Why the answers stopped framing (the stream is not HTTP/1.x), if they did. */
  parseError: string | undefined = undefined
  private readonly stream: HttpStream
  private readonly closedP: Promise<void>

  constructor (socket: net.Socket) {
    this.socket = socket
    this.stream = new HttpStream('response', {
      message: (m) => { this.answers.push(toAnswer(m)) },
      error: (reason) => { this.parseError = reason }
    }, { maxHeadBytes: 64 * 1024, maxBodyBytes: 16 * 1024 * 1024 })
    this.closedP = new Promise((resolve) => {
      socket.on('close', () => { this.closed = true; this.stream.stop(); resolve() })
    })
    socket.on('data', (b: Buffer) => this.onData(b))
    socket.on('end', () => { this.ended = true; this.stream.end() })
    socket.on('error', (err) => { this.error = err })
  }

  static connect (port: number, host = '127.0.0.1'): Promise<ByteClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host })
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new ByteClient(s))
      })
    })
  }

  static connectTls (port: number, opts: tls.ConnectionOptions): Promise<ByteClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', ...opts })
      s.once('error', reject)
      s.once('secureConnect', () => {
        s.off('error', reject)
        resolve(new ByteClient(s))
      })
    })
  }

  private onData (b: Buffer): void {
    this.bytesReceived += b.length
    if (this.countOnly) return
    this.received = Buffer.concat([this.received, b])
    this.stream.push(b)
  }

  write (b: Buffer | string): void {
    this.socket.write(b)
  }

  /** Write `b` in pieces of `size` bytes, `gapMs` apart (each piece its own TCP segment, in practice its own read). */
  async writeSlowly (b: Buffer, size: number, gapMs = 5): Promise<void> {
    for (let i = 0; i < b.length; i += size) {
      if (this.closed) return
      this.socket.write(b.subarray(i, i + size))
      await delay(gapMs)
    }
  }

  /** Wait for at least n answers, or for the connection to close. */
  async waitAnswers (n: number): Promise<ByteAnswer[]> {
    await until(() => this.answers.length >= n || this.closed, `${n} answers (have ${this.answers.length})`)
    return this.answers
  }

  /** Wait for the connection to close (the server ended or destroyed it). */
  async waitClose (): Promise<void> {
    await Promise.race([this.closedP, delay(WAIT_GUARD_MS).then(() => { throw new Error('timed out waiting for close') })])
  }

  destroy (): void {
    this.socket.destroy()
  }
}
