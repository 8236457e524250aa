/**
 * Drive a RequestFramer over a list of chunks and record what it does, in the
 * trace notation of test/cases/framer-basic.md.
 */
import type { ErrorCode } from '../../src/errors.js'
import { ContentType } from '../../src/wire/header-bytes.js'
import type { ObservedMessage } from '../../src/wire/observed.js'
import { FramerState, RequestFramer, type FramerOptions } from '../../src/wire/request-framer.js'
import { DEVIATION_NAMES, type SspRequest } from '../../src/wire/request.js'
import { mulberry32 } from './fault-proxy.js'

export const FRAMER_DEFAULTS = { maxHeaderBytes: 16384, maxHeaderCount: 64, maxBodyBytes: 1024 * 1024 }

export function ctName (ct: number): string {
  if (ct === ContentType.SSP13) return 'ssp13'
  if (ct === ContentType.SSP12) return 'ssp12'
  return 'other'
}

export function devNames (bits: number): string {
  if (bits === 0) return '0'
  const names: string[] = []
  for (const [bit, name] of Object.entries(DEVIATION_NAMES)) {
    if ((bits & Number(bit)) !== 0) names.push(name)
  }
  return names.join(',')
}

export function requestLine (r: SspRequest): string {
  return `request tid=${r.transactionId ?? '-'} sid=${r.sessionId ?? '-'} ct=${ctName(r.contentType)}` +
    ` body=${JSON.stringify(r.body.toString('latin1'))} dev=${devNames(r.deviations)}${r.keepAlive ? '' : ' close'}`
}

export interface FramerRun {
  /** The trace in the .md notation (request / reject / end lines). */
  trace: string[]
  /** Everything, including message-begin and headers-complete events. */
  full: string[]
  requests: SspRequest[]
  rejects: Array<{ code: ErrorCode, detail: string | undefined }>
  framer: RequestFramer
}

export interface RunOptions extends Partial<FramerOptions> {
  /** The sink answers false to every request (pause), and the driver resumes after each push. */
  pausing?: boolean
}

/** Copy a piece into its own ArrayBuffer, as a socket read would be. */
export function ownCopy (b: Uint8Array): Buffer {
  const c = Buffer.alloc(b.length)
  c.set(b)
  return c
}

export function runFramer (chunks: Buffer[], o: RunOptions = {}): FramerRun {
  const trace: string[] = []
  const full: string[] = []
  const requests: SspRequest[] = []
  const rejects: Array<{ code: ErrorCode, detail: string | undefined }> = []
  const pausing = o.pausing === true
  const framer = new RequestFramer({
    onRequest (req) {
      requests.push(req)
      const line = requestLine(req)
      trace.push(line)
      full.push(line)
      return !pausing
    },
    onReject (code, detail) {
      rejects.push({ code, detail })
      trace.push(`reject ${code}`)
      full.push(`reject ${code}`)
    },
    onMessageBegin () { full.push('begin') },
    onHeadersComplete () { full.push('head') }
  }, {
    interop: o.interop ?? false,
    maxHeaderBytes: o.maxHeaderBytes ?? FRAMER_DEFAULTS.maxHeaderBytes,
    maxHeaderCount: o.maxHeaderCount ?? FRAMER_DEFAULTS.maxHeaderCount,
    maxBodyBytes: o.maxBodyBytes ?? FRAMER_DEFAULTS.maxBodyBytes,
    requireHost: o.requireHost === true
  })
  for (const c of chunks) {
    framer.push(c)
    if (pausing) {
      // Resume as the server does when a place frees up; each resume yields at most one request.
      for (let guard = 0; framer.state === FramerState.PAUSED; guard++) {
        if (guard > 100_000) throw new Error('framer does not make progress while pausing')
        framer.resume()
      }
    }
  }
  const end = framer.state === FramerState.STOPPED
    ? 'end stopped'
    : framer.state === FramerState.PAUSED ? 'end paused' : framer.inMessage ? 'end partial' : 'end running'
  trace.push(end)
  full.push(end)
  return { trace, full, requests, rejects, framer }
}

/** input split in two at `at`, each piece in its own buffer. */
export function splitAt (input: Buffer, at: number): Buffer[] {
  return [ownCopy(input.subarray(0, at)), ownCopy(input.subarray(at))]
}

/** input in pieces of `size` bytes, each in its own buffer. */
export function pieces (input: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < input.length; i += size) out.push(ownCopy(input.subarray(i, i + size)))
  return out
}

/** Small deterministic PRNG for seeded random split points (the fault proxy's mulberry32). */
export const prng = mulberry32

/** input cut at `cuts` seeded random points, each piece in its own buffer. */
export function randomPieces (input: Buffer, cuts: number, seed: number): Buffer[] {
  const rnd = prng(seed)
  const points = new Set<number>()
  for (let i = 0; i < cuts && input.length > 1; i++) points.add(1 + Math.floor(rnd() * (input.length - 1)))
  const sorted = [...points].sort((a, b) => a - b)
  const out: Buffer[] = []
  let prev = 0
  for (const p of sorted) {
    out.push(ownCopy(input.subarray(prev, p)))
    prev = p
  }
  out.push(ownCopy(input.subarray(prev)))
  return out
}

export interface ObserveRun {
  /** request lines as in FramerRun, `observed CODE` for a refusal observed, `reject CODE` for a stop, then the end line. */
  trace: string[]
  /** Every complete message, accepted or observed, in order. */
  messages: ObservedMessage[]
  /** The stop, with the bytes it was reported with. */
  reject: { code: ErrorCode, detail: string | undefined, raw: Buffer | undefined } | undefined
  framer: RequestFramer
}

/** Drive a RequestFramer in observe mode (the sink pauses after every message when `pausing`). */
export function runObserving (chunks: Buffer[], o: RunOptions = {}): ObserveRun {
  const trace: string[] = []
  const messages: ObservedMessage[] = []
  let reject: ObserveRun['reject']
  const pausing = o.pausing === true
  const framer = new RequestFramer({
    onRequest (req, m) {
      if (m === undefined) throw new Error('observe mode: onRequest without its message')
      messages.push(m)
      trace.push(requestLine(req))
      return !pausing
    },
    onObserved (code, _detail, m) {
      messages.push(m)
      trace.push(`observed ${code}`)
      return !pausing
    },
    onReject (code, detail, raw) {
      reject = { code, detail, raw }
      trace.push(`reject ${code}`)
    },
    onMessageBegin () {},
    onHeadersComplete () {}
  }, {
    interop: o.interop ?? false,
    maxHeaderBytes: o.maxHeaderBytes ?? FRAMER_DEFAULTS.maxHeaderBytes,
    maxHeaderCount: o.maxHeaderCount ?? FRAMER_DEFAULTS.maxHeaderCount,
    maxBodyBytes: o.maxBodyBytes ?? FRAMER_DEFAULTS.maxBodyBytes,
    requireHost: o.requireHost === true,
    observe: true
  })
  for (const c of chunks) {
    framer.push(c)
    for (let guard = 0; framer.state === FramerState.PAUSED; guard++) {
      if (guard > 100_000) throw new Error('framer does not make progress while pausing')
      framer.resume()
    }
  }
  trace.push(framer.state === FramerState.STOPPED ? 'end stopped' : framer.inMessage ? 'end partial' : 'end running')
  return { trace, messages, reject, framer }
}
