/** The run summary printed by `demo` and `send`, as text or as one JSON object. */
import type * as hdr from 'hdr-histogram-js'
import type { NodeStats } from '../ssp/node.js'
import type { LoadResult } from './load.js'

const PCTS = [50, 90, 99, 99.9] as const

export interface SummaryExtras {
  /** Bytes on the node's connections; omitted for a part of a run whose bytes are not told apart. */
  bytesIn?: number
  bytesOut?: number
  interopFallbacks: number
  label?: string
}

function fmtUs (v: number): string {
  return v >= 10_000 ? `${(v / 1000).toFixed(1)} ms` : `${v} µs`
}

function percentiles (h: hdr.Histogram): string {
  if (h.totalCount === 0) return '(no samples)'
  return PCTS.map((p) => `p${p} ${fmtUs(h.getValueAtPercentile(p))}`).join('  ')
}

/** A small text histogram of round-trip latency: one row per power of two of microseconds. */
export function textHistogram (buckets: readonly number[], width = 40): string {
  const lo = buckets.findIndex((n) => n > 0)
  if (lo < 0) return '  (no samples)\n'
  let hi = buckets.length - 1
  while (hi > lo && buckets[hi] === 0) hi--
  const rows: Array<[string, number]> = []
  for (let e = lo; e <= hi; e++) rows.push([`${fmtUs(2 ** e)} – ${fmtUs(2 ** (e + 1))}`, buckets[e] ?? 0])
  const peak = Math.max(...rows.map((r) => r[1]), 1)
  const label = Math.max(...rows.map((r) => r[0].length))
  return rows.map(([l, n]) => `  ${l.padStart(label)} │${'█'.repeat(Math.round((n / peak) * width)).padEnd(width)} ${n}`).join('\n') + '\n'
}

/** Every interop fallback of a node: its own (ids from bodies...) and its listeners' accepted deviations. */
export function interopFallbacks (st: NodeStats): number {
  let n = 0
  for (const v of Object.values(st.interop)) n += v
  for (const w of st.wire) for (const v of Object.values(w.interop)) n += v
  return n
}

export function printSummary (r: LoadResult, x: SummaryExtras, out: NodeJS.WritableStream = process.stdout): void {
  const tps = r.elapsedMs > 0 ? (r.answered / r.elapsedMs) * 1000 : 0
  const lines = [
    `${x.label ?? 'run'}: ${r.answered}/${r.sent} transactions answered in ${(r.elapsedMs / 1000).toFixed(2)} s`,
    `  transactions/s   ${tps.toFixed(0)}`,
    `  acknowledgement  ${percentiles(r.ack)}${r.acksOvertaken > 0 ? `  (${r.acksOvertaken} answers overtook their 200: round trip only)` : ''}`,
    `  round trip       ${percentiles(r.rtt)}`,
    ...(x.bytesIn === undefined || x.bytesOut === undefined
      ? []
      : [`  bytes moved      ${x.bytesOut + x.bytesIn} (${x.bytesOut} sent, ${x.bytesIn} received, POSTs and 200s)`]),
    `  interop fallbacks ${x.interopFallbacks}`,
    `  errors           ${Object.keys(r.errors).length === 0 ? 0 : JSON.stringify(r.errors)}`,
    ...(r.stopped === undefined
      ? []
      : [`  stopped          ${r.stopped}${r.lostReason === undefined ? '' : ` (${r.lostReason})`}: ${r.lost} lost, ${r.abandoned} of them abandoned in flight`]),
    '  round-trip latency:'
  ]
  out.write(lines.join('\n') + '\n' + textHistogram(r.rttBuckets))
}

export function summaryJson (r: LoadResult, x: SummaryExtras): Record<string, unknown> {
  const tps = r.elapsedMs > 0 ? (r.answered / r.elapsedMs) * 1000 : 0
  const errorCount = Object.values(r.errors).reduce((a, b) => a + b, 0)
  return {
    sent: r.sent,
    answered: r.answered,
    lost: r.lost,
    tps: Math.round(tps),
    elapsed_ms: Math.round(r.elapsedMs),
    p50_us: r.rtt.getValueAtPercentile(50),
    p90_us: r.rtt.getValueAtPercentile(90),
    p99_us: r.rtt.getValueAtPercentile(99),
    p999_us: r.rtt.getValueAtPercentile(99.9),
    ack_p50_us: r.ack.totalCount === 0 ? null : r.ack.getValueAtPercentile(50),
    ack_p99_us: r.ack.totalCount === 0 ? null : r.ack.getValueAtPercentile(99),
    acks_overtaken: r.acksOvertaken,
    bytes_in: x.bytesIn ?? null,
    bytes_out: x.bytesOut ?? null,
    interop_fallbacks: x.interopFallbacks,
    errors: errorCount,
    errors_by_code: r.errors,
    abandoned: r.abandoned,
    stopped: r.stopped ?? null
  }
}
