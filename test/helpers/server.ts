/**
 * Start a WireServer on 127.0.0.1 port 0 for one test, closed in t.teardown,
 * with every connection recorded and its socket writes and reads counted.
 */
import type { Socket } from 'node:net'
import { WireServer } from '../../src/wire/server.js'
import type { ServerConnection } from '../../src/wire/server-connection.js'
import type { WireServerOptions } from '../../src/wire/server-options.js'
import type { SspRequest } from '../../src/wire/request.js'
import { ByteClient } from './byte-client.js'

interface Teardown { teardown (fn: () => unknown): void }

export interface ConnSpy {
  conn: ServerConnection
  /**
   * Socket writes answering each read (one entry per read). The server writes
   * a turn's 200s once at the end of the event-loop turn, so a write made after
   * one or more reads, before any other write, answers the latest of them.
   */
  writesPerRead: number[]
  /** Socket writes that answer no read (wake-ups, timers, close). */
  writesOutsideReads: number
  writes: Buffer[]
  reads: number
}

export interface TestServer {
  server: WireServer
  port: number
  conns: ConnSpy[]
  /** Requests handed to the handler, in order, with the connection id. */
  handled: Array<{ conn: number, tid: string | undefined, sid: string | undefined, body: string, req: SspRequest }>
  connect (): Promise<ByteClient>
}

/**
 * `options.onRequest` is wrapped: every hand-over is recorded first.
 */
export async function startServer (t: Teardown, options: WireServerOptions = {}): Promise<TestServer> {
  const handled: TestServer['handled'] = []
  const user = options.onRequest
  const server = new WireServer({
    closeTimeout: 200,
    ...options,
    onRequest: (req, conn) => {
      handled.push({ conn: conn.id, tid: req.transactionId, sid: req.sessionId, body: req.body.toString('latin1'), req })
      return user === undefined ? undefined : user(req, conn)
    }
  })
  const conns: ConnSpy[] = []
  server.on('connection', (conn: ServerConnection) => {
    const spy: ConnSpy = { conn, writesPerRead: [], writesOutsideReads: 0, writes: [], reads: 0 }
    conns.push(spy)
    const socket = conn.socket as Socket
    let unanswered = false
    socket.prependListener('data', () => { unanswered = true; spy.reads++; spy.writesPerRead.push(0) })
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    socket.write = ((...args: unknown[]): boolean => {
      spy.writes.push(Buffer.from(args[0] as Buffer))
      if (unanswered) {
        spy.writesPerRead[spy.writesPerRead.length - 1]!++
        unanswered = false
      } else {
        spy.writesOutsideReads++
      }
      return write(...args)
    }) as typeof socket.write
  })
  const clients: ByteClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.destroy()
    await server.close()
  })
  const addr = await server.listen(0, '127.0.0.1')
  return {
    server,
    port: addr.port,
    conns,
    handled,
    connect: async () => {
      const c = await ByteClient.connect(addr.port)
      clients.push(c)
      return c
    }
  }
}
