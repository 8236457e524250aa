/**
 * The listening side: node:net or node:tls, a set of connections, the
 * application-queue accounting shared by them, and one timer that sweeps
 * every connection's timeouts (no timer per request or per connection).
 */
import { EventEmitter } from 'node:events'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import * as tls from 'node:tls'
import { channel } from 'node:diagnostics_channel'
import { createError } from '../errors.js'
import { ServerConnection, type ConnectionHost } from './server-connection.js'
import { resolveServerOptions, type ResolvedServerOptions, type WireServerOptions } from './server-options.js'
import { WireStats, type WireStatsSnapshot } from './stats.js'

const chConnection = channel('ssp-transport:server:connection')

export interface WireServerStats extends WireStatsSnapshot {
  connectionsAccepted: number
  connectionsRefused: number
  connectionsOpen: number
  /** Requests currently held by the application (handler promises pending). */
  inFlight: number
  /** Bytes of partially received requests held by all connections (budget: maxBufferedBytes). */
  bufferedBytes: number
}

/**
 * Events: 'connection' (ServerConnection), 'connectionClose' (ServerConnection),
 * 'listening', 'close', 'error' (listener errors; emitted only with a listener).
 */
export class WireServer extends EventEmitter implements ConnectionHost {
  readonly options: ResolvedServerOptions
  readonly stats = new WireStats()
  readonly connections = new Set<ServerConnection>()
  now = Date.now()
  inFlight = 0
  bufferedBytes = 0

  private readonly server: net.Server
  private readonly waiting: ServerConnection[] = []
  private sweep: NodeJS.Timeout | undefined = undefined
  private accepted = 0
  private refused = 0
  private closing: Promise<void> | undefined = undefined
  private onIdle: (() => void) | undefined = undefined

  constructor (options: WireServerOptions = {}) {
    super()
    this.options = resolveServerOptions(options)
    const t = this.options.tls
    const onSocket = (socket: net.Socket): void => this.accept(socket)
    if (t === undefined) {
      this.server = net.createServer({ noDelay: true }, onSocket)
    } else {
      this.server = tls.createServer({
        cert: t.cert,
        key: t.key,
        ca: t.ca,
        requestCert: t.requestClientCert === true,
        rejectUnauthorized: t.requestClientCert === true,
        ALPNProtocols: ['http/1.1'],
        // A TCP connection that never completes TLS is destroyed (node's own timer per handshake).
        handshakeTimeout: this.options.handshakeTimeout
      }, onSocket)
      // Handshake failures are the peer's problem: count them, never crash.
      // With a listener, node leaves the socket to us: destroy it (a timed-out handshake would stay open).
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.stats.countError(err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'SSP_ERR_HANDSHAKE_TIMEOUT' : 'SSP_ERR_TLS')
        socket.destroy()
      })
      // maxConnections counts TCP connections, before the handshake: silent
      // sockets cannot exhaust the fds. node closes the extra ones ('drop').
      this.server.maxConnections = this.options.maxConnections
      this.server.on('drop', () => {
        this.refused++
        this.stats.countError('SSP_ERR_SERVER_CLOSING')
      })
    }
    this.server.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err)
    })
  }

  get secure (): boolean { return this.options.tls !== undefined }

  /** Start listening; resolves with the bound address. Port 0 picks a free port. */
  listen (port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error & { code?: string }): void => reject(createError('SSP_ERR_LISTEN', { message: `${host}:${port}: ${err.code ?? err.message}`, cause: err }))
      this.server.once('error', onError)
      this.server.listen(port, host, () => {
        this.server.off('error', onError)
        this.startSweep()
        this.emit('listening')
        resolve(this.server.address() as AddressInfo)
      })
    })
  }

  address (): AddressInfo | undefined {
    const a = this.server.address()
    return a !== null && typeof a === 'object' ? a : undefined
  }

  /** Server-wide counters plus connection figures. */
  getStats (): WireServerStats {
    return {
      ...this.stats.snapshot(),
      connectionsAccepted: this.accepted,
      connectionsRefused: this.refused,
      connectionsOpen: this.connections.size,
      inFlight: this.inFlight,
      bufferedBytes: this.bufferedBytes
    }
  }

  /**
   * Graceful close: stop accepting, stop parsing, flush owed answers, end
   * every connection; wait (at most closeTimeout) for the application to
   * finish the requests it holds; then destroy whatever is still open.
   */
  close (): Promise<void> {
    if (this.closing !== undefined) return this.closing
    this.closing = new Promise<void>((resolve) => {
      this.server.close()
      for (const c of this.connections) c.shutdown()
      const finish = (): void => {
        clearTimeout(timer)
        this.onIdle = undefined
        for (const c of this.connections) c.socket.destroy()
        this.stopSweep()
        this.emit('close')
        resolve()
      }
      const timer = setTimeout(finish, this.options.closeTimeout)
      timer.unref()
      this.onIdle = () => {
        if (this.inFlight === 0 && this.connections.size === 0) finish()
      }
      this.onIdle()
    })
    return this.closing
  }

  // ------------------------------------------------------------------ ConnectionHost

  waitForRoom (conn: ServerConnection): void {
    this.waiting.push(conn)
  }

  released (): void {
    // Wake connections waiting for the shared queue, oldest first, while there is room.
    while (this.waiting.length > 0 && this.inFlight < this.options.maxInFlight) {
      this.waiting.shift()!.wake()
    }
    if (this.onIdle !== undefined) this.onIdle()
  }

  overBudget (): void {
    // Refuse the largest holders of partial requests until under budget (bounded by the connection count).
    for (let i = this.connections.size; i > 0 && this.bufferedBytes > this.options.maxBufferedBytes; i--) {
      let worst: ServerConnection | undefined
      for (const c of this.connections) {
        if (c.bufferedBytes > (worst?.bufferedBytes ?? 0)) worst = c
      }
      if (worst === undefined) return
      worst.refuseBuffered()
    }
  }

  connectionClosed (conn: ServerConnection): void {
    this.connections.delete(conn)
    const i = this.waiting.indexOf(conn)
    if (i >= 0) this.waiting.splice(i, 1)
    this.emit('connectionClose', conn)
    if (this.onIdle !== undefined) this.onIdle()
  }

  // ------------------------------------------------------------------ internals

  private accept (socket: net.Socket): void {
    if (this.closing !== undefined || this.connections.size >= this.options.maxConnections) {
      this.refused++
      this.stats.countError('SSP_ERR_SERVER_CLOSING')
      socket.on('error', () => {})
      socket.destroy()
      return
    }
    this.accepted++
    const conn = new ServerConnection(socket, this)
    this.connections.add(conn)
    if (chConnection.hasSubscribers) chConnection.publish({ connection: conn })
    this.emit('connection', conn)
  }

  private startSweep (): void {
    if (this.sweep !== undefined) return
    this.sweep = setInterval(() => {
      this.now = Date.now()
      for (const c of this.connections) c.checkTimeouts(this.now)
    }, this.options.timerResolution)
    this.sweep.unref()
  }

  private stopSweep (): void {
    if (this.sweep !== undefined) clearInterval(this.sweep)
    this.sweep = undefined
  }
}

export function createWireServer (options?: WireServerOptions): WireServer {
  return new WireServer(options)
}
