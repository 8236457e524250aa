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
 * of fixed size plus a set: O(1) per request, bounded memory.
 */
export class DedupeWindow {
  /**
   * Grows with traffic up to `size`, then wraps: an idle session holds nothing.
   * Measured against two generations of Sets (no delete per id, but a fresh
   * Set every `size` ids): the same ~165-190 ns per check including the
   * header string's slice, and no less in the e2e profile, so the exact
   * window stays.
   */
  private readonly ring: string[] = []
  private readonly seen = new Set<string>()
  private readonly size: number
  private i = 0

  constructor (size: number) {
    this.size = size
  }

  /** True when `id` was already seen (a duplicate); otherwise remembers it. */
  check (id: string): boolean {
    if (this.size === 0) return false
    // add() and a size test: one hash lookup for both "seen?" and "remember".
    const before = this.seen.size
    this.seen.add(id)
    if (this.seen.size === before) return true
    if (this.ring.length < this.size) {
      this.ring.push(id)
    } else {
      this.seen.delete(this.ring[this.i]!)
      this.ring[this.i] = id
      this.i = (this.i + 1) % this.size
    }
    return false
  }

  /** Ids held now (at most `size`). */
  get held (): number {
    return this.seen.size
  }
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
