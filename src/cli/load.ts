/**
 * Runs N transactions from one node to a peer at a fixed pipeline depth and
 * records each one's acknowledgement and round-trip latency (per request,
 * in microseconds) in HDR histograms.
 */
import * as hdr from 'hdr-histogram-js'
import type { SspNode } from '../ssp/node.js'

export interface LoadResult {
  sent: number
  answered: number
  lost: number
  errors: Record<string, number>
  elapsedMs: number
  /** Time to the dummy 200, only for transactions whose 200 came before their answer. */
  ack: hdr.Histogram
  /** Answers that overtook their own 200: no acknowledgement time is recorded for them. */
  acksOvertaken: number
  rtt: hdr.Histogram
  /** Round-trip counts by power of two: rttBuckets[e] counts samples in [2^e, 2^(e+1)) µs. */
  rttBuckets: number[]
  bytesSent: number
}

export function newHistogram (): hdr.Histogram {
  // 1 µs .. 10 minutes, 3 significant digits.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })
}

export interface LoadOptions {
  count: number
  depth: number
  /** The request primitive, or a function making the n-th one (e.g. with its own messageID). */
  body: Buffer | ((n: number) => Buffer)
  onProgress?: (done: number) => void
}

/** Keep `depth` transactions outstanding until `count` have ended; never more than count are sent. */
export function runLoad (node: SspNode, peer: string, o: LoadOptions): Promise<LoadResult> {
  const ack = newHistogram()
  const rtt = newHistogram()
  const errors: Record<string, number> = {}
  const rttBuckets = new Array<number>(40).fill(0)
  let sent = 0
  let bytesSent = 0
  let answered = 0
  let acksOvertaken = 0
  let ended = 0
  const start = performance.now()
  return new Promise((resolve) => {
    const finish = (): void => {
      resolve({
        sent,
        answered,
        lost: sent - answered,
        errors,
        elapsedMs: performance.now() - start,
        ack,
        acksOvertaken,
        rtt,
        rttBuckets,
        bytesSent
      })
    }
    const pump = (): void => {
      while (sent - ended < o.depth && sent < o.count) {
        const body = typeof o.body === 'function' ? o.body(sent) : o.body
        sent++
        bytesSent += body.length
        node.request(peer, body).then((a) => {
          answered++
          const us = Math.max(1, Math.round(a.rttMicros))
          rtt.recordValue(us)
          rttBuckets[Math.min(39, Math.floor(Math.log2(us)))]!++
          // An answer that overtook its 200 has no acknowledgement time: it is not recorded as one.
          if (a.ackMicros === undefined) acksOvertaken++
          else ack.recordValue(Math.max(1, Math.round(a.ackMicros)))
          done()
        }, (err: { code?: string }) => {
          const code = err.code ?? 'ERROR'
          errors[code] = (errors[code] ?? 0) + 1
          done()
        })
      }
    }
    const done = (): void => {
      ended++
      if (o.onProgress !== undefined && (ended & 255) === 0) o.onProgress(ended)
      if (ended === o.count) {
        o.onProgress?.(ended)
        finish()
      } else {
        pump()
      }
    }
    if (o.count === 0) finish()
    else pump()
  })
}
