/** Build raw SSP POST requests (bytes) for the wire tests. */
export const CT13 = 'application/vnd.wv.ssp+xml'
export const CT12 = 'application/vnd.wv.ssp.xml'

export interface PostOptions {
  method?: string
  target?: string
  version?: string
  /** Content-Type value; null leaves the header out. Default: the 1.3 type. */
  contentType?: string | null
  /** x-wv-transactionid value; null leaves the header out. Default: T1. */
  tid?: string | null
  /** x-wv-sessionid value; null (default) leaves the header out. */
  sid?: string | null
  body?: string | Buffer
  /** Send the body chunked (in this many chunks). */
  chunks?: number
  close?: boolean
  /** Extra header lines, without CRLF. */
  headers?: string[]
}

export function post (o: PostOptions = {}): Buffer {
  const body = typeof o.body === 'string' ? Buffer.from(o.body, 'latin1') : (o.body ?? Buffer.alloc(0))
  const lines = [`${o.method ?? 'POST'} ${o.target ?? '/ssp'} HTTP/${o.version ?? '1.1'}`, 'Host: b.example']
  const ct = o.contentType === undefined ? CT13 : o.contentType
  if (ct !== null) lines.push(`Content-Type: ${ct}`)
  const tid = o.tid === undefined ? 'T1' : o.tid
  if (tid !== null) lines.push(`x-wv-transactionid: ${tid}`)
  if (o.sid !== undefined && o.sid !== null) lines.push(`x-wv-sessionid: ${o.sid}`)
  if (o.close === true) lines.push('Connection: close')
  for (const h of o.headers ?? []) lines.push(h)
  if (o.chunks !== undefined) {
    lines.push('Transfer-Encoding: chunked')
    const parts: Buffer[] = [Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')]
    const n = Math.max(1, o.chunks)
    const size = Math.ceil(body.length / n)
    for (let i = 0; i < body.length; i += size) {
      const piece = body.subarray(i, i + size)
      parts.push(Buffer.from(piece.length.toString(16) + '\r\n', 'latin1'), piece, Buffer.from('\r\n', 'latin1'))
    }
    parts.push(Buffer.from('0\r\n\r\n', 'latin1'))
    return Buffer.concat(parts)
  }
  lines.push(`Content-Length: ${body.length}`)
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body])
}

/** n valid requests T<i> (tid `T0`..`T{n-1}`), body `body-<i>`, concatenated. */
export function pipeline (n: number, from = 0, extra: PostOptions = {}): Buffer {
  const parts: Buffer[] = []
  for (let i = from; i < from + n; i++) parts.push(post({ tid: `T${i}`, sid: 'S1', body: `body-${i}`, ...extra }))
  return Buffer.concat(parts)
}

export function tids (from: number, n: number): string[] {
  const out: string[] = []
  for (let i = from; i < from + n; i++) out.push(`T${i}`)
  return out
}
