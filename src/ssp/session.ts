/**
 * Peers and sessions.
 *
 * A peer is another SSP server, known by domain. Between us and a peer there
 * are at most two sessions: the one where we are the requestor (we set it
 * up; our service requests and their notifications travel in it) and the one
 * where we are the provider (they set it up). Each session has a connection
 * pair: our outbound clients (connections we originated, the only ones we
 * POST on, S-007) and the peer's inbound connections to us. With pair reuse
 * (S-008) both sessions share one set of outbound clients; with multiple
 * pairs (S-009) a session has `pairs` outbound clients.
 */
import type { WireClient } from '../wire/client.js'
import type { ServerConnection } from '../wire/server-connection.js'
import type { PeerEntry } from './directory.js'
import type { EnvelopeWriter } from './envelope.js'

export const Role = {
  /** We set the session up; we send service requests in it. */
  REQUESTOR: 'requestor',
  /** The peer set it up; we serve its requests and may send it notifications. */
  PROVIDER: 'provider'
} as const
export type Role = typeof Role[keyof typeof Role]

/**
 * Recently seen transaction ids of incoming requests, for at-most-once
 * hand-over to the application when a peer resends after a lost 200. A ring
 * of fixed size plus an index over it: O(1) per request, bounded memory.
 *
 * The index is our own open-addressing table (linear probing, backward-shift
 * deletion) of ring positions keyed by a seeded hash of the id, not a
 * `Set<string>`: a Set's add plus the evicted id's delete cost ~240 ns per
 * request on a window of 4096 (fresh strings, a table of 8 K entries), this
 * ~60 ns (native-notes.md §11). A hash match is confirmed by comparing the
 * ids themselves, so the window stays exact. The seed is drawn per process so
 * a peer cannot aim colliding ids at the table blind.
 */
export class DedupeWindow {
  private readonly size: number
  /** The ids, oldest at `next` once full; grows with traffic, up to `size`. */
  private ring: string[] = []
  private hashes: Int32Array = EMPTY
  /** ring position + 1 per slot, 0 = empty; at most half full. */
  private slots: Int32Array = EMPTY
  private mask = -1
  private next = 0

  constructor (size: number) {
    this.size = size
  }

  /** True when `id` was already seen (a duplicate); otherwise remembers it. */
  check (id: string): boolean {
    if (this.size === 0) return false
    const h = hashId(id)
    const ring = this.ring
    const slots = this.slots
    const mask = this.mask
    // One probe answers "seen?" and, when not, ends at the slot a new id takes.
    let i = h & mask
    if (slots.length !== 0) {
      for (let s = slots[i]!; s !== 0; s = slots[i]!) {
        if (this.hashes[s - 1] === h && ring[s - 1] === id) return true
        i = (i + 1) & mask
      }
    }
    let pos: number
    if (ring.length === this.size) {
      // Full: the new id takes the oldest one's ring position. The removal may
      // shift entries back into the probe path, so the free slot is found again.
      pos = this.next
      this.next = pos + 1 === this.size ? 0 : pos + 1
      this.remove(pos)
      i = this.freeSlot(h)
      ring[pos] = id
    } else {
      pos = ring.length
      if (pos === this.hashes.length) { this.grow(); i = this.freeSlot(h) }
      ring.push(id)
    }
    this.hashes[pos] = h
    this.slots[i] = pos + 1
    return false
  }

  /** Ids held now (at most `size`). */
  get held (): number {
    return this.ring.length
  }

  /** The first empty slot on `h`'s probe path. */
  private freeSlot (h: number): number {
    const slots = this.slots
    const mask = this.mask
    let i = h & mask
    while (slots[i] !== 0) i = (i + 1) & mask
    return i
  }

  /** Take ring position `pos` out of the table (backward-shift deletion: no tombstones). */
  private remove (pos: number): void {
    const slots = this.slots
    const mask = this.mask
    let i = this.hashes[pos]! & mask
    while (slots[i] !== pos + 1) i = (i + 1) & mask
    let j = i
    for (;;) {
      slots[i] = 0
      for (;;) {
        j = (j + 1) & mask
        const s = slots[j]!
        if (s === 0) return
        const home = this.hashes[s - 1]! & mask
        // The entry at j may move back to the hole at i unless its home lies cyclically in (i, j].
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
          slots[i] = s
          i = j
          break
        }
      }
    }
  }

  /** Double the ring's room (up to `size`) and rebuild the table at twice that. */
  private grow (): void {
    const room = Math.min(this.size, Math.max(16, this.hashes.length * 2))
    const hashes = new Int32Array(room)
    hashes.set(this.hashes)
    let cap = 16
    while (cap < room * 2) cap *= 2
    const slots = new Int32Array(cap)
    const mask = cap - 1
    for (let pos = 0; pos < this.ring.length; pos++) {
      let i = hashes[pos]! & mask
      while (slots[i] !== 0) i = (i + 1) & mask
      slots[i] = pos + 1
    }
    this.hashes = hashes
    this.slots = slots
    this.mask = mask
  }
}

const EMPTY = new Int32Array(0)
const SEED = (Math.random() * 0x100000000) | 0

/** FNV-1a over the id's UTF-16 code units, from a per-process seed. */
function hashId (id: string): number {
  let h = SEED ^ 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return h
}

export class Session {
  /**
   * Our name for the session (our LoginResponse). It goes in the body and the
   * `x-wv-sessionid` header of every POST we send in the session.
   */
  readonly id: string
  /** The peer's name for it: what it sends in its own POSTs. Either name finds the session on receipt. */
  readonly peerId: string
  readonly role: Role
  readonly peer: Peer
  /** Outbound clients this session POSTs on. Shared with the other session under pair reuse. */
  readonly clients: WireClient[]
  readonly createdAt = Date.now()
  expiresAt: number
  ended = false
  /** Our transactions in this session still waiting for their answer (maintained by the node). */
  pending = 0
  readonly recent: DedupeWindow
  /** Writes our messages in this session: our id in the body, as in the x-wv-sessionid header. */
  readonly writer: EnvelopeWriter

  constructor (id: string, peerId: string, role: Role, peer: Peer, clients: WireClient[], ttlSeconds: number, dedupe: number,
    writer: EnvelopeWriter) {
    this.id = id
    this.peerId = peerId
    this.role = role
    this.peer = peer
    this.clients = clients
    this.expiresAt = this.createdAt + ttlSeconds * 1000
    this.recent = new DedupeWindow(dedupe)
    this.writer = writer
  }

  /** Least-pending outbound client (S-009: spread over the pairs). */
  pickClient (): WireClient {
    const cs = this.clients
    let best = cs[0]!
    if (cs.length === 1) return best
    let load = best.inFlight + best.queued
    for (let i = 1; i < cs.length; i++) {
      const c = cs[i]!
      const l = c.inFlight + c.queued
      if (l < load) { best = c; load = l }
    }
    return best
  }
}

export class Peer {
  readonly domain: string
  entry: PeerEntry | undefined = undefined
  /** Outbound clients shared by both sessions (pair reuse). */
  shared: WireClient[] | undefined = undefined
  /** Connections the peer originated to us. */
  readonly inbound = new Set<ServerConnection>()
  requestor: Session | undefined = undefined
  provider: Session | undefined = undefined
  /** Our transactions in flight towards this peer. */
  pending = 0
  /** Their body bytes. */
  pendingBytes = 0
  /** Transactions waiting for the requestor session to come up. */
  readonly waiting: Array<{ resolve: (s: Session) => void, reject: (e: Error) => void }> = []

  constructor (domain: string) {
    this.domain = domain
  }
}
