/**
 * The peer directory: where a domain's SSP server listens. A static map
 * first (from options or `--peer DOMAIN=URL`), then DNS SRV
 * `_imps-server._tcp.<domain>` through node:dns, as ssp-notes section 2 says
 * real servers find each other.
 */
import { promises as dnsPromises } from 'node:dns'
import { createError } from '../errors.js'
import type { SspVersion } from './messages.js'

export interface PeerEntry {
  /** `http://host:port/path` or `https://…`. */
  url: string
  /** Binding version the peer speaks; 1.2 peers are sent `application/vnd.wv.ssp.xml`. Default 1.3. */
  version?: SspVersion
  /**
   * How our SendSecretToken carries the secret: `plain` (default) printable
   * text with no `encoding` attribute, which every peer reads; `base64` for a
   * peer known to decode it into bytes safely (Baraza does not: it keeps the
   * decoded secret as a C string).
   */
  secretEncoding?: 'plain' | 'base64'
  /**
   * POSTs outstanding at once on each connection to this peer (overrides
   * `client.pipelineDepth`). Baraza needs 1: its HTTP server (Kannel's)
   * leaves pipelined requests in its read buffer until more bytes arrive, so
   * the last requests of a burst wait forever (measured: 2 of 200 at depth 4).
   */
  pipelineDepth?: number
}

export type Resolver = (domain: string) => Promise<PeerEntry | undefined>

export type StaticPeers = Record<string, string | PeerEntry>

export function normalizePeer (domain: string, v: string | PeerEntry): PeerEntry {
  const e = typeof v === 'string' ? { url: v } : v
  let u: URL
  try {
    u = new URL(e.url)
  } catch {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `peer ${domain}: not a URL: ${e.url}` })
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `peer ${domain}: URL must be http: or https:, got ${u.protocol}` })
  }
  if (e.secretEncoding !== undefined && e.secretEncoding !== 'plain' && e.secretEncoding !== 'base64') {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `peer ${domain}: secretEncoding must be plain or base64` })
  }
  if (e.pipelineDepth !== undefined && (!Number.isInteger(e.pipelineDepth) || e.pipelineDepth < 1)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `peer ${domain}: pipelineDepth must be a positive integer` })
  }
  return {
    url: u.toString(),
    version: e.version ?? '1.3',
    ...(e.secretEncoding === undefined ? {} : { secretEncoding: e.secretEncoding }),
    ...(e.pipelineDepth === undefined ? {} : { pipelineDepth: e.pipelineDepth })
  }
}

export function staticResolver (peers: StaticPeers): Resolver {
  const map = new Map<string, PeerEntry>()
  for (const [d, v] of Object.entries(peers)) map.set(d.toLowerCase(), normalizePeer(d, v))
  return async (domain) => map.get(domain.toLowerCase())
}

export interface SrvOptions {
  /** Scheme for SRV targets (SRV has none). Default https. */
  scheme?: 'http' | 'https'
  /** Path on the target. Default `/`. */
  path?: string
  resolveSrv?: (name: string) => Promise<Array<{ name: string, port: number, priority: number, weight: number }>>
}

/** DNS SRV `_imps-server._tcp.<domain>`: lowest priority, then highest weight. */
export function srvResolver (o: SrvOptions = {}): Resolver {
  const scheme = o.scheme ?? 'https'
  const path = o.path ?? '/'
  const resolveSrv = o.resolveSrv ?? ((name: string) => dnsPromises.resolveSrv(name))
  return async (domain) => {
    let records
    try {
      records = await resolveSrv(`_imps-server._tcp.${domain}`)
    } catch {
      return undefined
    }
    if (records.length === 0) return undefined
    records.sort((a, b) => a.priority - b.priority || b.weight - a.weight)
    const r = records[0]!
    const host = r.name.includes(':') ? `[${r.name}]` : r.name
    return { url: `${scheme}://${host}:${r.port}${path}`, version: '1.3' }
  }
}

/** First resolver that knows the domain wins. */
export function chainResolvers (...rs: Resolver[]): Resolver {
  return async (domain) => {
    for (const r of rs) {
      const e = await r(domain)
      if (e !== undefined) return e
    }
    return undefined
  }
}
