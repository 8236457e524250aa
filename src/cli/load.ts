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
  /** Transactions still in flight when the run stopped early (counted in `lost`, not in `errors`). */
  abandoned: number
  /** Why the run stopped before `count` ended: the peer was judged lost, or a signal. */
  stopped: 'SSP_ERR_PEER_LOST' | 'SIGINT' | 'SIGTERM' | undefined
  /** What made the peer count as lost (set with stopped === 'SSP_ERR_PEER_LOST'). */
  lostReason?: string
}

/** Default for LoadOptions.peerLostAfter (and `send --peer-lost-after`): 5 s without an answer. */
export const PEER_LOST_AFTER_MS = 5000
/** Once the run stops early, in-flight transactions get at most this long to end before they are abandoned. */
export const DRAIN_MS = 1000

/** A transaction failing with one of these means the peer cannot be reached or a new session cannot be set up. */
const UNREACHABLE = new Set(['SSP_ERR_CONNECT', 'SSP_ERR_TLS', 'SSP_ERR_SETUP_TIMEOUT', 'SSP_ERR_SETUP_PROTOCOL', 'SSP_ERR_SETUP_DIGEST', 'SSP_ERR_UNACKNOWLEDGED', 'SSP_ERR_UNKNOWN_PEER', 'SSP_ERR_PEER_IDENTITY'])

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
  /**
   * Judge the peer lost (stop issuing, finish with stopped = SSP_ERR_PEER_LOST) when no transaction
   * has been answered for this many ms, or at once when one fails as unreachable (UNREACHABLE codes).
   * 0 or undefined: never.
   */
  peerLostAfter?: number
  /** Aborted with reason 'SIGINT' or 'SIGTERM': stop issuing and finish with what was done. */
  signal?: AbortSignal
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
  let finished = false
  let stopped: LoadResult['stopped']
  let lostReason: string | undefined
  const start = performance.now()
  let lastAnswerAt = start
  const lostAfter = o.peerLostAfter ?? 0
  return new Promise((resolve) => {
    let watch: NodeJS.Timeout | undefined
    let drain: NodeJS.Timeout | undefined
    const finish = (): void => {
      if (finished) return
      finished = true
      if (watch !== undefined) clearInterval(watch)
      if (drain !== undefined) clearTimeout(drain)
      o.signal?.removeEventListener('abort', onAbort)
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
        bytesSent,
        abandoned: sent - ended,
        stopped,
        ...(lostReason === undefined ? {} : { lostReason })
      })
    }
    /** Stop issuing; finish once in-flight ones have ended, or after `wait` ms abandoning them. */
    const stop = (why: NonNullable<LoadResult['stopped']>, wait: number, reason?: string): void => {
      if (stopped !== undefined || finished) return
      stopped = why
      lostReason = reason
      if (sent === ended || wait === 0) { finish(); return }
      drain = setTimeout(finish, wait)
    }
    const onAbort = (): void => stop(o.signal?.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT', 0)
    const pump = (): void => {
      while (stopped === undefined && sent - ended < o.depth && sent < o.count) {
        const body = typeof o.body === 'function' ? o.body(sent) : o.body
        sent++
        bytesSent += body.length
        node.request(peer, body).then((a) => {
          if (finished) return
          answered++
          lastAnswerAt = performance.now()
          const us = Math.max(1, Math.round(a.rttMicros))
          rtt.recordValue(us)
          rttBuckets[Math.min(39, Math.floor(Math.log2(us)))]!++
          // An answer that overtook its 200 has no acknowledgement time: it is not recorded as one.
          if (a.ackMicros === undefined) acksOvertaken++
          else ack.recordValue(Math.max(1, Math.round(a.ackMicros)))
          done()
        }, (err: { code?: string, message?: string }) => {
          if (finished) return
          const code = err.code ?? 'ERROR'
          errors[code] = (errors[code] ?? 0) + 1
          if (lostAfter > 0 && UNREACHABLE.has(code)) stop('SSP_ERR_PEER_LOST', DRAIN_MS, `${code}: ${err.message ?? ''}`)
          done()
        })
      }
    }
    const done = (): void => {
      ended++
      if (o.onProgress !== undefined && (ended & 255) === 0) o.onProgress(ended)
      if (ended === o.count || (stopped !== undefined && ended === sent)) {
        o.onProgress?.(ended)
        finish()
      } else {
        pump()
      }
    }
    if (o.signal?.aborted === true) { onAbort(); return }
    o.signal?.addEventListener('abort', onAbort)
    if (lostAfter > 0) {
      watch = setInterval(() => {
        const quiet = performance.now() - lastAnswerAt
        if (quiet >= lostAfter) stop('SSP_ERR_PEER_LOST', DRAIN_MS, `no transaction answered for ${lostAfter} ms`)
      }, Math.max(10, Math.min(250, Math.floor(lostAfter / 4))))
    }
    if (o.count === 0) finish()
    else pump()
  })
}
