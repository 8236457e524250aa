/**
 * Observe mode of the framers (request-framer.ts, response-framer.ts): what a
 * conformance lab or a test peer needs from the engine's own HTTP/1.1 parsing.
 *
 * In observe mode a message the engine would refuse (a GET, HTTP/1.0, a wrong
 * Content-Type, a missing or malformed id header, an unmet expectation, an
 * HTTP/2 status line) is not a stop: it is reported with the stable code the
 * engine would have refused it with, and parsing goes on with the next
 * message. Every message, accepted or not, is handed over whole: its exact
 * bytes, its start line, its header lines in order as sent, its body with the
 * chunked framing removed.
 *
 * What still stops: whatever llhttp itself cannot parse (there is no next
 * message to find), a protocol upgrade (what follows is not HTTP/1.1), and the
 * size limits (maxHeaderBytes, maxHeaderCount, maxBodyBytes): observe mode
 * keeps every byte of a message, and the limits are what bound that memory.
 *
 * None of this runs when observe mode is off: the recorder below is only
 * created by a framer constructed with `observe: true`.
 */
import type { ErrorCode } from '../errors.js'
import { isOws } from './header-bytes.js'

/** What the engine would have done with a message: refuse it with `code`. */
export interface Refusal {
  readonly code: ErrorCode
  readonly detail: string | undefined
}

/** One HTTP/1.1 message as it travelled, framed by llhttp. */
export interface ObservedMessage {
  /** The message exactly as it travelled, start line to the last byte (CR/LF between messages not included). */
  readonly raw: Buffer
  /** Bytes of `raw` that are the head: start line, header lines and the empty line. */
  readonly headLength: number
  /** Request line or status line, without its CRLF. */
  readonly startLine: string
  /** Request method as sent (requests only). */
  readonly method: string | undefined
  /** Request target as sent (requests only). */
  readonly target: string | undefined
  /** Status code (responses only). */
  readonly status: number | undefined
  /** `1.1`, `1.0`, `2.0`. */
  readonly version: string
  /** Header lines in order, names as sent, values without surrounding blanks. Trailers are not included. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** The body, chunked framing removed (its own memory, not a view of a read). */
  readonly body: Buffer
  readonly keepAlive: boolean
  /** How the engine would have refused it; undefined when it would have accepted it. */
  readonly refusal: Refusal | undefined
}

const EMPTY = Buffer.alloc(0)

/** The header value between its first and last non-blank byte (llhttp already dropped the leading blanks). */
export function trimmedValue (src: Buffer, start: number, end: number): string {
  let s = start
  let e = end
  while (s < e && isOws(src[s]!)) s++
  while (e > s && isOws(src[e - 1]!)) e--
  return src.toString('latin1', s, e)
}

/**
 * @internal Keeps the bytes of the message being framed, as views of the
 * reads, and joins them once when it ends.
 *
 * Positions are offsets in the chunk llhttp is executing. llhttp is paused at
 * the end of each head and each message (observe mode only), so both ends are
 * exact. A message starts right after the previous one ended: llhttp skips
 * CR/LF there, which is dropped from the front of the message.
 */
export class Recorder {
  /** Offset in the current chunk where the not yet kept bytes of the message start. */
  from = 0
  private pieces: Buffer[] = []
  private bytes = 0
  private headAt = -1

  /** A new chunk is being executed. */
  rebase (): void { this.from = 0 }

  /** Keep chunk[from, end). */
  take (chunk: Buffer, end: number): void {
    if (end > this.from) {
      this.pieces.push(chunk.subarray(this.from, end))
      this.bytes += end - this.from
    }
    this.from = end
  }

  /** The head ends at `pos` in `chunk`. */
  markHead (chunk: Buffer, pos: number): void {
    this.take(chunk, pos)
    this.headAt = this.bytes
  }

  /** The end of the current chunk: keep the rest of it while a message is open, else skip it (CR/LF only). */
  endOfChunk (chunk: Buffer, inMessage: boolean): void {
    if (inMessage) this.take(chunk, chunk.length)
    else this.from = chunk.length
  }

  /**
   * The message ends at `pos` in `chunk`: its bytes in one copy (the caller
   * keeps them; they must not pin the reads), leading CR/LF dropped, and where
   * its head ends in them.
   */
  finish (chunk: Buffer, pos: number): { raw: Buffer, headLength: number } {
    this.take(chunk, pos)
    const all = this.pieces.length === 0 ? EMPTY : Buffer.concat(this.pieces, this.bytes)
    let s = 0
    while (s < all.length && (all[s] === 0x0d || all[s] === 0x0a)) s++
    const headLength = this.headAt < 0 ? all.length - s : this.headAt - s
    this.reset()
    return { raw: s === 0 ? all : all.subarray(s), headLength }
  }

  /** The bytes of the message so far and the rest of `chunk`: what a stop is reported with. */
  partial (chunk: Buffer): Buffer {
    const out = Buffer.concat([...this.pieces, chunk.subarray(Math.min(this.from, chunk.length))])
    this.reset()
    let s = 0
    while (s < out.length && (out[s] === 0x0d || out[s] === 0x0a)) s++
    return out.subarray(s)
  }

  reset (): void {
    if (this.pieces.length !== 0) this.pieces = []
    this.bytes = 0
    this.headAt = -1
  }
}

/** The start line of a validated message: `raw` up to its first CRLF (llhttp accepted only CRLF line ends). */
export function startLineOf (raw: Buffer): string {
  const eol = raw.indexOf(0x0d)
  return raw.toString('latin1', 0, eol < 0 ? raw.length : eol)
}

/**
 * Method and target of a validated request line `method SP target SP version`
 * (llhttp refuses any other shape, so the first and last SP are the separators).
 */
export function requestLineParts (line: string): { method: string, target: string } {
  const a = line.indexOf(' ')
  const b = line.lastIndexOf(' ')
  return { method: line.slice(0, a), target: a < b ? line.slice(a + 1, b) : '' }
}
