/**
 * A loopback TCP proxy that injects faults, for reliability tests.
 *
 *   client ──▶ proxy (127.0.0.1:0) ──▶ target
 *
 * Every accepted connection gets one upstream connection; bytes are copied in
 * both directions, in order. Faults are drawn per connection (and per chunk)
 * from a seeded PRNG, so a run is reproducible as far as the scheduler allows:
 *
 *  - kill:  the connection pair is cut (destroy, or TCP RST) after a random
 *           number of forwarded bytes, possibly in the middle of a chunk (the
 *           first part is forwarded, the rest is lost) and so in the middle of
 *           an HTTP message;
 *  - delay: every chunk waits a random time before it is forwarded (order kept);
 *  - split: every chunk is written as random pieces, down to single bytes, one
 *           macrotask apart, so the far end sees them as separate reads;
 *  - stall: reading from the source stops for a random time (TCP pushes back).
 *
 * Bounded: at most `maxQueuedBytes` are held per direction (the source is
 * paused beyond that), and a write that the far end does not drain pauses
 * the source too. Only node builtins are imported: bench/soak.mjs transpiles
 * this file as it is.
 */
import * as net from 'node:net'

export interface Faults {
  /** Probability that a new connection will be killed at a random point. Default 0. */
  killProbability: number
  /** The kill comes after a uniformly random number of bytes (both directions) in this range. */
  killAfterBytes: [number, number]
  /** Probability that a new connection delays its chunks. Default 0. */
  delayProbability: number
  /** Upper bound of one chunk's delay, ms. */
  maxDelayMs: number
  /** Probability that a new connection splits its writes into pieces. Default 0. */
  splitProbability: number
  /** Largest piece when splitting (pieces are 1..maxPiece bytes). */
  maxPiece: number
  /** Probability, per chunk read, that reading from its source stalls. Default 0. */
  stallProbability: number
  /** Upper bound of one stall, ms. */
  maxStallMs: number
  /** Probability that a kill is a TCP RST rather than a plain destroy. Default 0.5. */
  resetProbability: number
}

export const NO_FAULTS: Faults = {
  killProbability: 0,
  killAfterBytes: [1, 65536],
  delayProbability: 0,
  maxDelayMs: 5,
  splitProbability: 0,
  maxPiece: 16,
  stallProbability: 0,
  maxStallMs: 20,
  resetProbability: 0.5
}

/**
 * The reliability profile of test/reliability.test.ts and bench/soak.mjs: every
 * connection killed after a random number of bytes in `killAfterBytes`, 20 % of
 * connections delayed, 10 % split down to 8-byte pieces, 0.2 % of reads stalled.
 */
export function killingLink (killAfterBytes: [number, number]): Partial<Faults> {
  return {
    killProbability: 1,
    killAfterBytes,
    delayProbability: 0.2,
    maxDelayMs: 2,
    splitProbability: 0.1,
    maxPiece: 8,
    stallProbability: 0.002,
    maxStallMs: 20
  }
}

/**
 * Give every proxy `faults` and cut the connections they carry now (opened for a
 * fault-free warm-up), so that every connection from here on draws the faults.
 */
export function startFaults (proxies: Array<{ setFaults: (f: Partial<Faults>) => void, killAll: () => number }>, faults: Partial<Faults>): void {
  for (const p of proxies) p.setFaults(faults)
  for (const p of proxies) p.killAll()
}

export interface FaultProxyOptions {
  /** Where to forward: `http://host:port/...` or `{ host, port }`. */
  target: string | { host: string, port: number }
  /** PRNG seed. Default 1. */
  seed?: number
  faults?: Partial<Faults>
  /** Bytes held per direction before the source is paused. Default 256 KiB. */
  maxQueuedBytes?: number
}

export interface FaultProxyStats {
  connections: number
  open: number
  kills: number
  resets: number
  delayedConnections: number
  splitConnections: number
  stalls: number
  bytesForwarded: number
  /** Bytes discarded by kills (read from one side, never written to the other). */
  bytesDropped: number
}

/** mulberry32: a small, fast, seedable PRNG with a full 2^32 period. */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function parseTarget (t: FaultProxyOptions['target']): { host: string, port: number } {
  if (typeof t !== 'string') return t
  const u = new URL(t)
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  return { host, port: Number(u.port === '' ? 80 : u.port) }
}

/** One direction of a proxied connection. */
class Pipe {
  readonly pair: ProxiedPair
  readonly from: net.Socket
  readonly to: net.Socket
  readonly queue: Buffer[] = []
  queued = 0
  pumping = false
  /** Why reading `from` is paused (bits). */
  paused = 0

  constructor (pair: ProxiedPair, from: net.Socket, to: net.Socket) {
    this.pair = pair
    this.from = from
    this.to = to
    from.on('data', (chunk: Buffer) => this.onData(chunk))
    to.on('drain', () => this.resume(PAUSE_DRAIN))
  }

  private onData (chunk: Buffer): void {
    const pair = this.pair
    if (pair.dead) return
    const proxy = pair.proxy
    this.queue.push(chunk)
    this.queued += chunk.length
    if (this.queued > proxy.maxQueued) this.pause(PAUSE_QUEUE)
    const f = proxy.faults
    if (f.stallProbability > 0 && proxy.rand() < f.stallProbability) {
      proxy.counts.stalls++
      this.pause(PAUSE_STALL)
      proxy.timer(() => this.resume(PAUSE_STALL), 1 + Math.floor(proxy.rand() * f.maxStallMs))
    }
    if (!this.pumping) void this.pump()
  }

  pause (why: number): void {
    if (this.paused === 0) this.from.pause()
    this.paused |= why
  }

  resume (why: number): void {
    if ((this.paused & why) === 0) return
    this.paused &= ~why
    if (this.paused === 0 && !this.pair.dead) this.from.resume()
  }

  /** Forward queued chunks in order, applying the connection's faults. */
  private async pump (): Promise<void> {
    this.pumping = true
    const pair = this.pair
    const proxy = pair.proxy
    try {
      while (this.queue.length > 0 && !pair.dead) {
        let chunk = this.queue.shift()!
        this.queued -= chunk.length
        if (this.queued <= proxy.maxQueued) this.resume(PAUSE_QUEUE)
        if (pair.delay) await proxy.sleep(Math.floor(proxy.rand() * (proxy.faults.maxDelayMs + 1)))
        if (pair.dead) { proxy.counts.bytesDropped += chunk.length; break }
        // The kill point may fall inside this chunk: forward the part before it, then cut.
        let killNow = false
        if (pair.killAt >= 0 && pair.bytes + chunk.length >= pair.killAt) {
          const keep = Math.max(0, pair.killAt - pair.bytes)
          proxy.counts.bytesDropped += chunk.length - keep
          chunk = chunk.subarray(0, keep)
          killNow = true
        }
        if (pair.split && chunk.length > 1) {
          let off = 0
          while (off < chunk.length && !pair.dead) {
            const n = Math.min(chunk.length - off, 1 + Math.floor(proxy.rand() * proxy.faults.maxPiece))
            this.write(chunk.subarray(off, off + n))
            off += n
            if (off < chunk.length) await proxy.sleep(0)
          }
        } else if (chunk.length > 0) {
          this.write(chunk)
        }
        if (killNow) {
          // Let what was forwarded leave first (it may or may not arrive: an RST can overtake it).
          await proxy.sleep(0)
          pair.kill()
          break
        }
      }
    } finally {
      this.pumping = false
    }
  }

  private write (b: Buffer): void {
    if (this.pair.dead || this.to.destroyed) return
    this.pair.bytes += b.length
    this.pair.proxy.counts.bytesForwarded += b.length
    if (!this.to.write(b)) this.pause(PAUSE_DRAIN)
  }
}

const PAUSE_QUEUE = 1
const PAUSE_DRAIN = 2
const PAUSE_STALL = 4

class ProxiedPair {
  readonly proxy: FaultProxy
  readonly down: net.Socket
  readonly up: net.Socket
  /** Kill after this many bytes (-1: never). */
  readonly killAt: number
  readonly delay: boolean
  readonly split: boolean
  bytes = 0
  dead = false

  constructor (proxy: FaultProxy, down: net.Socket) {
    this.proxy = proxy
    this.down = down
    const f = proxy.faults
    const r = proxy.rand
    const [lo, hi] = f.killAfterBytes
    this.killAt = r() < f.killProbability ? lo + Math.floor(r() * (hi - lo + 1)) : -1
    this.delay = r() < f.delayProbability
    this.split = r() < f.splitProbability
    if (this.delay) proxy.counts.delayedConnections++
    if (this.split) proxy.counts.splitConnections++
    down.setNoDelay(true)
    // Nothing is read from the client until the upstream connection is up.
    down.pause()
    this.up = net.connect(proxy.target)
    this.up.setNoDelay(true)
    const onError = (): void => this.close()
    down.on('error', onError)
    this.up.on('error', onError)
    down.on('close', () => this.close())
    this.up.on('close', () => this.close())
    // A half-close is passed on (a peer that sent Connection: close ends its side).
    down.on('end', () => { if (!this.dead) this.up.end() })
    this.up.on('end', () => { if (!this.dead) this.down.end() })
    new Pipe(this, down, this.up)
    new Pipe(this, this.up, down)
    this.up.on('connect', () => { if (!this.dead) down.resume() })
  }

  /** A fault: cut both sides now, counted. */
  kill (): void {
    if (this.dead) return
    const p = this.proxy
    p.counts.kills++
    if (p.rand() < p.faults.resetProbability) {
      p.counts.resets++
      this.dead = true
      p.pairs.delete(this)
      // RST on both sides (Node >= 18.3): unread data is discarded, the peers see ECONNRESET.
      for (const s of [this.down, this.up]) {
        if (s.destroyed) continue
        if (s.connecting) s.destroy()
        else s.resetAndDestroy()
      }
      return
    }
    this.close()
  }

  /** Not a fault: one side went away, so does the other. */
  close (): void {
    if (this.dead) return
    this.dead = true
    this.proxy.pairs.delete(this)
    this.down.destroy()
    this.up.destroy()
  }
}

export class FaultProxy {
  readonly target: { host: string, port: number }
  readonly rand: () => number
  readonly maxQueued: number
  readonly pairs = new Set<ProxiedPair>()
  readonly counts: Omit<FaultProxyStats, 'open'> = {
    connections: 0, kills: 0, resets: 0, delayedConnections: 0, splitConnections: 0, stalls: 0, bytesForwarded: 0, bytesDropped: 0
  }

  faults: Faults
  private readonly server: net.Server
  /** Pending timers and what to run if the proxy closes first (so no pump waits forever). */
  private readonly timers = new Map<NodeJS.Timeout, () => void>()
  private closed = false

  constructor (options: FaultProxyOptions) {
    this.target = parseTarget(options.target)
    this.rand = mulberry32(options.seed ?? 1)
    this.faults = { ...NO_FAULTS, ...options.faults }
    this.maxQueued = options.maxQueuedBytes ?? 256 * 1024
    this.server = net.createServer((sock) => this.accept(sock))
  }

  /** Listen on 127.0.0.1, a free port. */
  listen (): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve(this)
      })
    })
  }

  get port (): number {
    const a = this.server.address()
    if (a === null || typeof a !== 'object') throw new Error('fault proxy is not listening')
    return a.port
  }

  /** The proxy's URL, e.g. as a peer directory entry. */
  url (path = '/'): string {
    return `http://127.0.0.1:${this.port}${path}`
  }

  get kills (): number { return this.counts.kills }

  stats (): FaultProxyStats {
    return { ...this.counts, open: this.pairs.size }
  }

  /** Change the faults applied from now on (per-connection draws apply to new connections). */
  setFaults (f: Partial<Faults>): void {
    this.faults = { ...this.faults, ...f }
  }

  /** Kill every open connection now (counted as kills). */
  killAll (): number {
    const n = this.pairs.size
    for (const p of [...this.pairs]) p.kill()
    return n
  }

  /** Stop listening, cut every connection, cancel every timer. */
  close (): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    const pending = [...this.timers]
    this.timers.clear()
    for (const [t, fn] of pending) { clearTimeout(t); fn() }
    for (const p of [...this.pairs]) p.close()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  /** @internal */
  timer (fn: () => void, ms: number): void {
    if (this.closed) return
    const t = setTimeout(() => { this.timers.delete(t); fn() }, ms)
    this.timers.set(t, fn)
  }

  /** @internal A promise that always settles, even after close (so no pump hangs). */
  sleep (ms: number): Promise<void> {
    if (ms <= 0) return new Promise((resolve) => setImmediate(resolve))
    return new Promise((resolve) => {
      if (this.closed) { resolve(); return }
      const t = setTimeout(() => { this.timers.delete(t); resolve() }, ms)
      this.timers.set(t, resolve)
    })
  }

  private accept (sock: net.Socket): void {
    if (this.closed) { sock.destroy(); return }
    this.counts.connections++
    this.pairs.add(new ProxiedPair(this, sock))
  }
}

export async function startFaultProxy (options: FaultProxyOptions): Promise<FaultProxy> {
  return new FaultProxy(options).listen()
}
