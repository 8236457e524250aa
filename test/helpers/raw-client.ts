/**
 * A raw socket client for the server tests: sends exact bytes (whole, in
 * pieces, slowly) and parses what comes back into answers (status + headers;
 * every answer this server sends has Content-Length: 0 or none).
 */
import * as net from 'node:net'
import * as tls from 'node:tls'

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

export interface RawAnswer {
  status: number
  headers: Record<string, string>
  /** The answer's bytes. */
  raw: string
}

/** Upper bound for any wait in the tests: a guard against hangs, never a timing assertion. */
export const WAIT_GUARD_MS = 45_000

import { delay, until } from './wait.js'

export { delay, until }

export class RawClient {
  readonly socket: net.Socket
  readonly answers: RawAnswer[] = []
  /** Every byte received. */
  received: Buffer = Buffer.alloc(0)
  bytesReceived = 0
  /** The server ended its side (FIN). */
  ended = false
  closed = false
  error: Error | undefined = undefined
  /** Keep only counts (for very long answer streams). */
  countOnly = false
  private pending: Buffer = Buffer.alloc(0)
  private readonly closedP: Promise<void>

  constructor (socket: net.Socket) {
    this.socket = socket
    this.closedP = new Promise((resolve) => {
      socket.on('close', () => { this.closed = true; resolve() })
    })
    socket.on('data', (b: Buffer) => this.onData(b))
    socket.on('end', () => { this.ended = true })
    socket.on('error', (err) => { this.error = err })
  }

  static connect (port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host })
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new RawClient(s))
      })
    })
  }

  static connectTls (port: number, opts: tls.ConnectionOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', ...opts })
      s.once('error', reject)
      s.once('secureConnect', () => {
        s.off('error', reject)
        resolve(new RawClient(s))
      })
    })
  }

  private onData (b: Buffer): void {
    this.bytesReceived += b.length
    if (this.countOnly) return
    this.received = Buffer.concat([this.received, b])
    this.pending = this.pending.length === 0 ? b : Buffer.concat([this.pending, b])
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = this.pending.toString('latin1', 0, end)
      const lines = head.split('\r\n')
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')
      const headers: Record<string, string> = {}
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':')
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
      }
      const len = Number(headers['content-length'] ?? '0')
      if (this.pending.length < end + 4 + len) return
      this.answers.push({ status: m === null ? -1 : Number(m[1]), headers, raw: this.pending.toString('latin1', 0, end + 4 + len) })
      this.pending = this.pending.subarray(end + 4 + len)
    }
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
  async waitAnswers (n: number): Promise<RawAnswer[]> {
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
