/** Turning CLI flags into node options: --peer DOMAIN=URL, TLS files. */
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { createError } from '../errors.js'
import type { StaticPeers } from '../ssp/directory.js'
import type { ListenSpec } from '../ssp/options.js'

/** commander collector for a repeatable --peer DOMAIN=URL[,1.2][,depth=N]. */
export function collectPeer (value: string, prev: string[] = []): string[] {
  return [...prev, value]
}

export function parsePeers (list: readonly string[] = []): StaticPeers {
  const peers: StaticPeers = {}
  for (const item of list) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--peer wants DOMAIN=URL, got ${item}` })
    const domain = item.slice(0, eq)
    // URL first, then comma-separated flags: `1.2` (a version 1.2 peer), `depth=N` (its pipeline depth; 1 for Baraza).
    const [url = '', ...flags] = item.slice(eq + 1).split(',')
    let version: '1.3' | '1.2' = '1.3'
    let pipelineDepth: number | undefined
    for (const f of flags) {
      if (f === '1.2') version = '1.2'
      else if (f.startsWith('depth=')) pipelineDepth = parseCount('--peer depth', f.slice(6), 1)
      else throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--peer ${item}: unknown flag ${f} (1.2 or depth=N)` })
    }
    peers[domain] = { url, version, ...(pipelineDepth === undefined ? {} : { pipelineDepth }) }
  }
  return peers
}

export interface TlsFlags {
  tlsCert?: string
  tlsKey?: string
  tlsCa?: string
  requireClientCert?: boolean
}

/** Read a file named by an option: SSP_ERR_FILE naming the option and path when it cannot be read. */
export function readOptionFile (option: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw createError('SSP_ERR_FILE', { message: `${option} ${path}: ${(err as { code?: string }).code ?? String(err)}`, cause: err })
  }
}

/** The PEM must parse (and the key match the certificate): SSP_ERR_FILE naming the option, not a bare OpenSSL error later. */
function checkPem (option: string, path: string, o: { cert?: Buffer, key?: Buffer, ca?: Buffer }): void {
  try {
    createSecureContext(o)
  } catch (err) {
    throw createError('SSP_ERR_FILE', { message: `${option} ${path}: ${err instanceof Error ? err.message : String(err)}`, cause: err })
  }
}

function readTls (f: TlsFlags): { cert?: Buffer, key?: Buffer, ca?: Buffer } {
  const cert = f.tlsCert === undefined ? undefined : readOptionFile('--tls-cert', f.tlsCert)
  const key = f.tlsKey === undefined ? undefined : readOptionFile('--tls-key', f.tlsKey)
  const ca = f.tlsCa === undefined ? undefined : readOptionFile('--tls-ca', f.tlsCa)
  if (ca !== undefined) checkPem('--tls-ca', f.tlsCa!, { ca })
  if (cert !== undefined) checkPem('--tls-cert', f.tlsCert!, { cert })
  if (cert !== undefined && key !== undefined) checkPem('--tls-key', f.tlsKey!, { cert, key })
  return { cert, key, ca }
}

export function listenSpec (port: number, host: string, f: TlsFlags): ListenSpec {
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: '--tls-cert and --tls-key go together' })
  }
  const t = readTls(f)
  if (t.cert === undefined || t.key === undefined) return { port, host }
  return { port, host, tls: { cert: t.cert, key: t.key, ca: t.ca, requestClientCert: f.requireClientCert === true } }
}

/** Outbound TLS: trust --tls-ca, present --tls-cert/--tls-key as client certificate. */
export function clientTls (f: TlsFlags): { ca?: Buffer, cert?: Buffer, key?: Buffer } {
  return readTls(f)
}

export function parseCount (name: string, s: string, min = 0): number {
  // Digits only: Number('') is 0 and Number('1e3') is 1000, neither of which anyone typed as a count.
  const n = /^[0-9]{1,15}$/.test(s) ? Number(s) : NaN
  if (!Number.isInteger(n) || n < min) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${name} must be an integer >= ${min}, got ${s}` })
  return n
}

/** --busy-poll <µs>: busyPollMicros for the node or server (validated by them too). */
export function parseBusyPoll (s: string | undefined): number {
  return s === undefined ? 0 : parseCount('--busy-poll', s, 0)
}

export function parsePort (s: string): number {
  // Decimal digits only: Number() would also take '', ' ', '0x50' and '1e3'.
  const n = /^[0-9]{1,5}$/.test(s) ? Number(s) : NaN
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `port must be 0..65535, got ${s}` })
  return n
}
