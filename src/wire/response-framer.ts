/**
 * Client-side framing: socket chunks in, one `onResponse` per HTTP/1.1
 * response out, in order.
 *
 * llhttp in response mode. The callbacks only count and compare bytes: the
 * status code and keep-alive come from llhttp itself, the header section is
 * counted against `maxHeaderBytes`, a body is counted (against
 * `maxBodyBytes`) and discarded, and the one header the binding needs on this
 * side, `Location`, is matched byte by byte as its name arrives, so nothing is
 * allocated per response unless it carries a `Location` on a 3xx.
 *
 * Every callback works on whatever part of the response the current chunk
 * holds, so responses may be split at any byte boundary.
 *
 * The sink is called from inside llhttp's `execute`: it must only record (no
 * user code, no parser calls). Returning false from `onResponse` stops parsing
 * after that response, for good.
 *
 * The one fast path: this engine's own dummy 200 (replies.ts ACK), byte for
 * byte, is recognised without llhttp when a read holds it whole at a message
 * boundary (llhttp between messages, nothing of the next one fed to it yet).
 * It is the answer a federation of these engines sends to every request, and
 * parsing it cost node B more than its own request's head did (native-notes
 * section 12). A run of them is one native comparison with the 200 slab; any
 * other byte, a split 200 or a limit below its size sends the rest of the read
 * to llhttp, so the events are those llhttp gives (tests split every answer
 * stream at every byte boundary).
 *
 * Observe mode (`observe: true`, observed.ts), for the conformance lab and
 * the test clients: a response the engine would refuse (not HTTP/1.x) goes to
 * `onObserved` instead of stopping the framer, every response comes whole
 * (exact bytes, header lines, body kept), and llhttp is paused at the end of
 * each head and each response, so the sink runs outside llhttp's execute.
 * Nothing of it runs with observe mode off.
 */
import type { ErrorCode } from '../errors.js'
import { LL, Parser, type ParserCallbacks } from './llhttp.js'
import { Recorder, startLineOf, type ObservedMessage, type Refusal } from './observed.js'
import { isRedirectStatus } from './redirect.js'
import { ACK, ACK_LEN, acks } from './replies.js'

export const ResponseFramerState = {
  RUNNING: 0,
  /** The sink stopped parsing, the peer asked to close, or the input was refused. */
  STOPPED: 1
} as const
export type ResponseFramerStateValue = typeof ResponseFramerState[keyof typeof ResponseFramerState]

export interface ResponseFramerOptions {
  /** Bytes of reason phrase, header names and values (plus 4 per header line) allowed per response. */
  maxHeaderBytes: number
  /** Body bytes allowed per response (they are read and discarded). */
  maxBodyBytes: number
  /** Observe mode (observed.ts): responses the engine would refuse go to `onObserved`; every response also comes whole. */
  observe?: boolean
}

export interface ResponseSink {
  /**
   * A response is complete (informational 1xx responses included). `location`
   * is the trimmed `Location` value, only for 3xx responses that carry one.
   * Return false to stop parsing after this response. In observe mode `m` is
   * the whole response.
   */
  onResponse (status: number, keepAlive: boolean, location: string | undefined, bodyBytes: number, m?: ObservedMessage): boolean
  /**
   * The input is not a valid HTTP/1.x response stream, or a limit was
   * exceeded. Parsing has stopped. In observe mode `raw` holds the bytes of
   * the unfinished response and the rest of the read it stopped in.
   */
  onResponseError (code: ErrorCode, detail: string | undefined, raw?: Buffer): void
  /**
   * Observe mode only (required there): a complete response the engine would
   * have refused with `code`. Return false to stop parsing after it.
   */
  onObserved? (code: ErrorCode, detail: string | undefined, m: ObservedMessage): boolean
}

/** execute(): the framer was destroyed from a callback (not an llhttp code). */
const FREED = -1
const EMPTY = Buffer.alloc(0)
/** `location`, lower case, as bytes. */
const LOCATION = Buffer.from('location', 'latin1')
const LOCATION_LEN = 8
/**
 * What the dummy 200 counts against maxHeaderBytes on llhttp's path: reason "OK"
 * (2), the name Content-Length (14) plus LINE_OVERHEAD, the value "0" (1).
 */
const ACK_HEAD_BYTES = 2 + 14 + 4 + 1
/** `HTTP/1.1 2`: the status's first digit, checked before any comparison. */
const ACK_STATUS_AT = 9

const LAST_NONE = 0
const LAST_FIELD = 1
const LAST_VALUE = 2
/** Bytes counted per header line besides name and value (": " and CRLF). */
const LINE_OVERHEAD = 4
/** Observe mode: why llhttp was paused. */
const MARK_NONE = 0
const MARK_END = 1
const MARK_HEAD = 2

export class ResponseFramer implements ParserCallbacks {
  state: ResponseFramerStateValue = ResponseFramerState.RUNNING
  /** A response has begun and is not complete. */
  inMessage = false

  private readonly parser: Parser
  private readonly sink: ResponseSink
  private readonly maxHeaderBytes: number
  private readonly maxBodyBytes: number
  /** The dummy 200 may skip llhttp: not in observe mode, and within maxHeaderBytes. */
  private readonly ackFastPath: boolean

  private chunk: Buffer = EMPTY
  private executing = false
  private freeAfterExecute = false

  // ---- the current response
  private headerBytes = 0
  private bodyBytes = 0
  private status = 0
  private keepAlive = true
  private last = LAST_NONE
  /** Bytes of the current header name seen so far. */
  private fieldLen = 0
  /** The current header name still matches `location` (as far as seen). */
  private fieldMatch = false
  /** The current header value is a Location value being kept. */
  private capturing = false
  private location: string | undefined = undefined

  // ---- observe mode only (observed.ts); `rec` is undefined otherwise
  private readonly rec: Recorder | undefined
  private mark = MARK_NONE
  private refusal: Refusal | undefined = undefined
  private obsHeaders: Array<[string, string]> = []
  private obsHeadDone = false
  private obsBody: Buffer[] = []
  private obsVersion = ''
  private upgraded = false

  constructor (sink: ResponseSink, opts: ResponseFramerOptions) {
    this.sink = sink
    this.maxHeaderBytes = opts.maxHeaderBytes
    this.maxBodyBytes = opts.maxBodyBytes
    this.parser = new Parser(LL.TYPE_RESPONSE, this)
    if (opts.observe === true) {
      if (sink.onObserved === undefined) throw new TypeError('observe mode needs a sink with onObserved')
      this.rec = new Recorder()
    }
    this.ackFastPath = this.rec === undefined && opts.maxHeaderBytes >= ACK_HEAD_BYTES
  }

  /**
   * One llhttp execute over `data` (kept as this.chunk for the callbacks'
   * views). FREED when a callback destroyed the framer meanwhile: the parser
   * is freed now, after execute returned, and nothing more may run.
   */
  private execute (data: Buffer): number {
    this.chunk = data
    this.executing = true
    let ret: number
    try {
      ret = this.parser.execute(data)
    } finally {
      this.executing = false
    }
    if (this.freeAfterExecute) {
      this.freeAfterExecute = false
      this.parser.destroy()
      return FREED
    }
    return ret
  }

  /** Parse one read. Ignored once stopped. */
  push (chunk: Buffer): void {
    if (this.state !== ResponseFramerState.RUNNING) return
    if (this.rec !== undefined) {
      this.pushObserved(chunk, this.rec)
      return
    }
    let data = chunk
    if (this.ackFastPath && !this.inMessage && chunk.length >= ACK_LEN && chunk[ACK_STATUS_AT] === 0x32) {
      const used = this.skipAcks(chunk)
      if (used === chunk.length || this.state !== ResponseFramerState.RUNNING) return
      if (used !== 0) data = chunk.subarray(used)
    }
    const ret = this.execute(data)
    this.chunk = EMPTY
    if (ret === FREED) return
    if (ret === LL.OK || this.state !== ResponseFramerState.RUNNING) return
    if (ret === LL.PAUSED_UPGRADE) {
      this.fail('SSP_ERR_HTTP_RESPONSE', 'protocol upgrade (101) not supported')
      return
    }
    this.fail('SSP_ERR_HTTP_RESPONSE', this.parser.errorReason())
  }

  /**
   * The dummy 200s at the start of `chunk`, each handed to the sink as llhttp's
   * path would (status 200, keep-alive, no Location, no body); returns the bytes
   * used. The common case, a read of nothing but whole 200s, is one comparison
   * with a slab of them; otherwise they are compared one at a time.
   */
  private skipAcks (chunk: Buffer): number {
    const whole = (chunk.length / ACK_LEN) | 0
    let n = whole
    if (chunk.compare(acks(whole), 0, whole * ACK_LEN, 0, whole * ACK_LEN) !== 0) {
      n = 0
      while (n < whole && chunk[n * ACK_LEN + ACK_STATUS_AT] === 0x32 &&
        chunk.compare(ACK, 0, ACK_LEN, n * ACK_LEN, (n + 1) * ACK_LEN) === 0) n++
    }
    for (let i = 0; i < n; i++) {
      if (!this.sink.onResponse(200, true, undefined, 0)) {
        this.state = ResponseFramerState.STOPPED
        return (i + 1) * ACK_LEN
      }
      // The sink may have destroyed the framer (a client torn down from a callback).
      if (this.state !== ResponseFramerState.RUNNING) return (i + 1) * ACK_LEN
    }
    return n * ACK_LEN
  }

  /**
   * Observe mode: llhttp pauses at the end of each head and each response;
   * the response is handed over between executes, with its exact bytes.
   * Bounded: each turn resumes after at least the head or message just ended.
   */
  private pushObserved (chunk: Buffer, rec: Recorder): void {
    let data = chunk
    rec.rebase()
    for (;;) {
      const ret = this.execute(data)
      if (ret === FREED) {
        this.chunk = EMPTY
        return
      }
      if (this.state !== ResponseFramerState.RUNNING) break
      if (ret === LL.OK) {
        rec.endOfChunk(data, this.inMessage)
        break
      }
      if (ret !== LL.PAUSED || this.mark === MARK_NONE) {
        this.fail('SSP_ERR_HTTP_RESPONSE', ret === LL.PAUSED_UPGRADE ? 'protocol upgrade (101) not supported' : this.parser.errorReason())
        break
      }
      const pos = this.parser.errorOffset()
      const mark = this.mark
      this.mark = MARK_NONE
      if (mark === MARK_HEAD) rec.markHead(data, pos)
      else if (!this.deliverObserved(data, pos, rec)) break
      this.parser.resume()
      data = data.subarray(pos)
      rec.rebase()
    }
    this.chunk = EMPTY
  }

  /** Observe mode: hand the response that ended at `pos` in `data` to the sink; false when parsing ends. */
  private deliverObserved (data: Buffer, pos: number, rec: Recorder): boolean {
    const { raw, headLength } = rec.finish(data, pos)
    const refusal = this.refusal
    const body = this.obsBody.length === 0 ? EMPTY : Buffer.concat(this.obsBody)
    const m: ObservedMessage = {
      raw, headLength, startLine: startLineOf(raw), method: undefined, target: undefined, status: this.status,
      version: this.obsVersion, headers: this.obsHeaders, body, keepAlive: this.keepAlive, refusal
    }
    const location = this.location
    this.location = undefined
    this.refusal = undefined
    this.obsHeaders = []
    this.obsBody = []
    const more = refusal === undefined
      ? this.sink.onResponse(this.status, this.keepAlive, location, this.bodyBytes, m)
      : this.sink.onObserved!(refusal.code, refusal.detail, m)
    if (this.state !== ResponseFramerState.RUNNING) return false
    if (this.upgraded) {
      this.upgraded = false
      this.chunk = data
      this.fail('SSP_ERR_HTTP_RESPONSE', 'protocol upgrade (101): what follows it is not HTTP/1.1')
      return false
    }
    if (!more || !this.keepAlive) {
      this.state = ResponseFramerState.STOPPED
      return false
    }
    return true
  }

  /**
   * The peer closed its side. Completes a response whose body runs to the end
   * of the connection; a response cut short is an error.
   */
  finish (): void {
    if (this.state !== ResponseFramerState.RUNNING) return
    this.executing = true
    let ret: number
    try {
      ret = this.parser.finish()
    } finally {
      this.executing = false
    }
    if (this.freeAfterExecute) {
      this.freeAfterExecute = false
      this.parser.destroy()
      return
    }
    if (ret === LL.PAUSED && this.mark === MARK_END && this.rec !== undefined) {
      // Observe mode: a body that ran to the end of the connection is complete.
      this.mark = MARK_NONE
      this.deliverObserved(EMPTY, 0, this.rec)
      return
    }
    if (ret === LL.OK || this.state !== ResponseFramerState.RUNNING) return
    this.fail('SSP_ERR_HTTP_RESPONSE', 'connection closed in the middle of a response')
  }

  /** Stop for good and release the parser (deferred when called from inside a callback). */
  destroy (): void {
    this.state = ResponseFramerState.STOPPED
    if (this.executing) this.freeAfterExecute = true
    else this.parser.destroy()
  }

  private fail (code: ErrorCode, detail: string | undefined): number {
    if (this.state === ResponseFramerState.RUNNING) {
      this.state = ResponseFramerState.STOPPED
      if (this.rec === undefined) this.sink.onResponseError(code, detail)
      else this.sink.onResponseError(code, detail, this.rec.partial(this.chunk))
    }
    return LL.USER
  }

  /** A response the engine refuses: a stop, or in observe mode noted (the first one) and parsing goes on. */
  private refuse (code: ErrorCode, detail: string | undefined): boolean {
    if (this.rec === undefined) {
      this.fail(code, detail)
      return true
    }
    this.refusal ??= { code, detail }
    return false
  }

  private countHead (len: number): boolean {
    this.headerBytes += len
    return this.headerBytes > this.maxHeaderBytes
  }

  // ---------------------------------------------------------------- llhttp callbacks

  onMessageBegin (): number {
    if (this.state !== ResponseFramerState.RUNNING) return LL.USER
    this.inMessage = true
    this.headerBytes = 0
    this.bodyBytes = 0
    this.status = 0
    this.keepAlive = true
    this.last = LAST_NONE
    this.fieldLen = 0
    this.fieldMatch = false
    this.capturing = false
    this.location = undefined
    if (this.rec !== undefined) {
      this.obsHeadDone = false
      this.obsHeaders = []
      this.obsBody = []
    }
    return 0
  }

  onUrl (): number { return 0 }

  onStatus (_at: number, len: number): number {
    if (this.countHead(len)) return this.fail('SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeaderField (at: number, len: number): number {
    if (this.rec !== undefined && !this.obsHeadDone) {
      const s = this.chunk.toString('latin1', at, at + len)
      const h = this.obsHeaders[this.obsHeaders.length - 1]
      if (this.last === LAST_FIELD && h !== undefined) h[0] += s
      else this.obsHeaders.push([s, ''])
    }
    let count = len
    if (this.last !== LAST_FIELD) {
      this.last = LAST_FIELD
      this.fieldLen = 0
      this.fieldMatch = true
      this.capturing = false
      count += LINE_OVERHEAD
    }
    if (this.fieldMatch) {
      const chunk = this.chunk
      let pos = this.fieldLen
      if (pos + len > LOCATION_LEN) {
        this.fieldMatch = false
      } else {
        for (let i = 0; i < len; i++, pos++) {
          if ((chunk[at + i]! | 0x20) !== LOCATION[pos]) { this.fieldMatch = false; break }
        }
      }
    }
    this.fieldLen += len
    if (this.countHead(count)) return this.fail('SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeaderValue (at: number, len: number): number {
    if (this.rec !== undefined && !this.obsHeadDone) {
      const h = this.obsHeaders[this.obsHeaders.length - 1]
      if (h !== undefined) h[1] += this.chunk.toString('latin1', at, at + len)
    }
    if (this.last !== LAST_VALUE) {
      this.last = LAST_VALUE
      // The first Location header of a 3xx is kept; any other is ignored.
      this.capturing = this.fieldMatch && this.fieldLen === LOCATION_LEN && this.location === undefined &&
        isRedirectStatus(this.parser.statusCode())
      if (this.capturing) this.location = ''
    }
    if (this.capturing) this.location += this.chunk.toString('latin1', at, at + len)
    if (this.countHead(len)) return this.fail('SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeadersComplete (status: number, upgrade: boolean, keepAlive: boolean): number {
    if (this.parser.httpMajor() !== 1) {
      if (this.refuse('SSP_ERR_HTTP_RESPONSE', `HTTP/${this.parser.httpMajor()}.${this.parser.httpMinor()}`)) return LL.USER
    }
    if (upgrade && status === 101) {
      if (this.refuse('SSP_ERR_HTTP_RESPONSE', 'protocol upgrade (101) not supported')) return LL.USER
      // Observe mode: the response is reported, then the framer stops.
      this.upgraded = true
    }
    this.status = status
    this.keepAlive = keepAlive
    this.capturing = false
    if (this.location !== undefined) this.location = this.location.trim()
    if (this.rec === undefined) return 0
    // Observe mode: values without surrounding blanks (llhttp dropped the leading ones), then pause where the head ends.
    for (const h of this.obsHeaders) h[1] = trimOws(h[1])
    this.obsHeadDone = true
    this.obsVersion = `${this.parser.httpMajor()}.${this.parser.httpMinor()}`
    this.mark = MARK_HEAD
    return LL.PAUSED
  }

  onBody (at: number, len: number): number {
    this.bodyBytes += len
    if (this.bodyBytes > this.maxBodyBytes) return this.fail('SSP_ERR_RESPONSE_BODY_TOO_LARGE', undefined)
    // Observe mode keeps the body, copied out of the read.
    if (this.rec !== undefined) this.obsBody.push(Buffer.from(this.chunk.subarray(at, at + len)))
    return 0
  }

  onMessageComplete (): number {
    this.inMessage = false
    if (this.state !== ResponseFramerState.RUNNING) return LL.USER
    if (this.rec !== undefined) {
      // Delivered by pushObserved() (or finish()) once llhttp, paused here, says where the response ends.
      this.mark = MARK_END
      return LL.PAUSED
    }
    const location = this.location
    this.location = undefined
    const more = this.sink.onResponse(this.status, this.keepAlive, location, this.bodyBytes)
    if (!more || !this.keepAlive) {
      this.state = ResponseFramerState.STOPPED
      return LL.USER
    }
    return 0
  }
}

/** SP / HTAB trimmed from both ends of a header value kept as a string. */
function trimOws (v: string): string {
  let s = 0
  let e = v.length
  while (s < e && (v.charCodeAt(s) === 0x20 || v.charCodeAt(s) === 0x09)) s++
  while (e > s && (v.charCodeAt(e - 1) === 0x20 || v.charCodeAt(e - 1) === 0x09)) e--
  return s === 0 && e === v.length ? v : v.slice(s, e)
}

/** Re-exported for older imports; the definition is redirect.ts's. */
export { isRedirectStatus }
