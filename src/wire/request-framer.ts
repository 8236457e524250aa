/**
 * Server-side framing: socket chunks in, `SspRequest` records out, in order.
 *
 * A numeric-state loop around llhttp (request mode, strict). The llhttp
 * callbacks only record offsets: header names and values go into small typed
 * arrays owned by the framer, so a request costs no allocation until it is
 * complete; then the few headers the binding cares about are checked as bytes
 * (length first, then a case-insensitive compare) and the record is built.
 *
 * Header bytes are addressed in a "head stream": position 0 is the first byte
 * of the request target. While the head lies in one chunk, the head stream is
 * that chunk shifted by where the head began. When a head spans reads, the
 * part already seen is kept as views and, at the end of the head, joined with
 * one copy; positions stay valid because the copy is exactly the head stream.
 * A body that spans reads is joined the same way, once.
 *
 * Observe mode (`observe: true`, observed.ts) is for the conformance lab and
 * the test peers: a request the engine would refuse is reported to
 * `onObserved` with its code instead of stopping the framer, and every
 * message comes with its exact bytes, header lines and body. llhttp is then
 * paused at the end of each head and each message, so both ends are exact.
 * Nothing of it runs with observe mode off.
 */
import type { ErrorCode } from '../errors.js'
import {
  ContentType, type ContentTypeClass, classifyContentType, equalsLower, isIdBytes, isOws, parseDecimal
} from './header-bytes.js'
import { LL, Parser, type ParserCallbacks } from './llhttp.js'
import {
  Recorder, requestLineParts, startLineOf, trimmedValue, type ObservedMessage, type Refusal
} from './observed.js'
import { Deviation, SspRequest } from './request.js'

export const FramerState = {
  RUNNING: 0,
  /** The sink asked for a pause; the rest of the chunk is kept. */
  PAUSED: 1,
  /** A request was refused or the peer asked to close: nothing more is parsed. */
  STOPPED: 2
} as const
export type FramerStateValue = typeof FramerState[keyof typeof FramerState]

export interface FramerOptions {
  /** interop posture: accept ssp-notes section 3 deviations, flag them on the record */
  interop: boolean
  maxHeaderBytes: number
  maxHeaderCount: number
  maxBodyBytes: number
  /** Refuse (strict) or flag (interop) a request without Host (RFC 9112 3.2). Off when absent (the framer's .md cases). */
  requireHost?: boolean
  /**
   * Observe mode (observed.ts): a request the engine would refuse goes to
   * `onObserved` and parsing goes on; every message also comes whole. For the
   * conformance lab and test peers, never for serving.
   */
  observe?: boolean
}

export interface FramerSink {
  /**
   * A request is complete. Return false to pause parsing after it. In observe
   * mode `m` is the whole message.
   */
  onRequest (req: SspRequest, m?: ObservedMessage): boolean
  /**
   * The request at this pipeline position is refused; parsing has stopped for
   * good. In observe mode `raw` holds the bytes of the unfinished message and
   * the rest of the read it stopped in.
   */
  onReject (code: ErrorCode, detail: string | undefined, raw?: Buffer): void
  /**
   * Observe mode only (required there): a complete request the engine would
   * have refused with `code`. Parsing goes on; return false to pause after it.
   */
  onObserved? (code: ErrorCode, detail: string | undefined, m: ObservedMessage): boolean
  /** A request's first byte was parsed (header timer starts). */
  onMessageBegin (): void
  /** A request's head is complete (header timer stops). */
  onHeadersComplete (): void
  /**
   * The head just accepted carries `Expect: 100-continue` and a body follows:
   * answer `100 Continue` now (after every earlier answer), before the body.
   */
  onContinue? (): void
}

const EMPTY = Buffer.alloc(0)
const H_TRANSACTION_ID = Buffer.from('x-wv-transactionid')
const H_SESSION_ID = Buffer.from('x-wv-sessionid')
const H_CONTENT_LENGTH = Buffer.from('content-length')
const H_CONTENT_TYPE = Buffer.from('content-type')
const H_TRANSFER_ENCODING = Buffer.from('transfer-encoding')
const H_HOST = Buffer.from('host')
const H_EXPECT = Buffer.from('expect')
const V_100_CONTINUE = Buffer.from('100-continue')

const LAST_NONE = 0
const LAST_FIELD = 1
const LAST_VALUE = 2
const EXPECT_CONTINUE = 1
const EXPECT_UNKNOWN = 2
/** Bytes counted per header line besides name and value (": " and CRLF). */
const LINE_OVERHEAD = 4
/** Why llhttp was paused by a callback (beyond the sink's own pause). */
const MARK_NONE = 0
/** A message ended; run() measures where, then delivers it. */
const MARK_END = 1
/** Observe mode: a head ended. */
const MARK_HEAD = 2

export class RequestFramer implements ParserCallbacks {
  state: FramerStateValue = FramerState.RUNNING
  /** A request has begun and is not complete. */
  inMessage = false

  private readonly parser: Parser
  private readonly sink: FramerSink
  private readonly opts: FramerOptions

  // ---- the chunk being parsed, and input kept while paused
  private chunk: Buffer = EMPTY
  private rest: Buffer | undefined = undefined
  private backlog: Buffer[] = []

  // ---- head stream of the current request
  private headStartInChunk = -1
  private headBase = 0
  private headEnd = 0
  private headPieces: Buffer[] = []
  private headBytes = 0
  private headDone = false
  private nHeaders = 0
  private last = LAST_NONE
  private readonly fOff: Int32Array
  private readonly fLen: Int32Array
  private readonly vOff: Int32Array
  private readonly vLen: Int32Array

  // ---- results of the head, consumed when the message completes
  private src: Buffer = EMPTY
  private shift = 0
  private contentType: ContentTypeClass = ContentType.OTHER
  private deviations = 0
  private keepAlive = true
  private tidOff = -1
  private tidLen = 0
  private sidOff = -1
  private sidLen = 0

  // ---- body
  private bodyChunk: Buffer = EMPTY
  private bodyAt = 0
  private bodyLen = 0
  private bodyPieces: Buffer[] | undefined = undefined
  // ---- chunked framing accounting (see addGap)
  private chunked = false
  /** Non-body bytes since the last body byte of the current message. */
  private gap = 0
  /** Where the last body span (or the head) ended in the current chunk. */
  private lastEnd = 0
  /** A chunked request complete but not yet delivered: its end position is measured first. */
  private deferred: SspRequest | undefined = undefined
  private mark = MARK_NONE

  // ---- observe mode only (observed.ts); `rec` is undefined otherwise
  private readonly rec: Recorder | undefined
  private refusal: Refusal | undefined = undefined
  private obsHeaders: Array<readonly [string, string]> = []
  private obsVersion = ''
  private obsBody: Buffer = EMPTY
  private upgraded = false

  constructor (sink: FramerSink, opts: FramerOptions) {
    this.sink = sink
    this.opts = opts
    this.parser = new Parser(LL.TYPE_REQUEST, this)
    if (opts.observe === true) {
      if (sink.onObserved === undefined) throw new TypeError('observe mode needs a sink with onObserved')
      this.rec = new Recorder()
    }
    const n = opts.maxHeaderCount
    this.fOff = new Int32Array(n)
    this.fLen = new Int32Array(n)
    this.vOff = new Int32Array(n)
    this.vLen = new Int32Array(n)
  }

  /** Parse one read. While paused the chunk is queued, in order. */
  push (chunk: Buffer): void {
    if (this.state !== FramerState.RUNNING) {
      if (this.state === FramerState.PAUSED) this.backlog.push(chunk)
      return
    }
    this.run(chunk)
  }

  /** Continue after a pause: the kept rest of the paused chunk, then the backlog. */
  resume (): void {
    if (this.state !== FramerState.PAUSED) return
    this.state = FramerState.RUNNING
    this.parser.resume()
    const rest = this.rest
    this.rest = undefined
    if (rest !== undefined && rest.length > 0) this.run(rest)
    while (this.state === FramerState.RUNNING && this.backlog.length > 0) {
      this.run(this.backlog.shift()!)
    }
  }

  /** Stop parsing for good (safe inside a callback); the parser is kept until destroy(). */
  stop (): void {
    this.state = FramerState.STOPPED
    this.rest = undefined
    this.backlog.length = 0
    // Let go of the partial request's chunks at once (a refused body may pin many reads).
    this.bodyPieces = undefined
    this.bodyChunk = EMPTY
    this.headPieces.length = 0
    this.rec?.reset()
  }

  /** Stop parsing for good and release the parser. Never call from inside a callback. */
  destroy (): void {
    this.state = FramerState.STOPPED
    this.rest = undefined
    this.backlog.length = 0
    this.parser.destroy()
  }

  /** Bytes received but not parsed because of a pause. */
  get bufferedBytes (): number {
    let n = this.rest === undefined ? 0 : this.rest.length
    for (const b of this.backlog) n += b.length
    return n
  }

  /**
   * Bytes of received input this framer holds that are not yet a complete
   * request: the current request's head and body so far, plus input queued
   * while paused. What the server's maxBufferedBytes budget counts.
   */
  get retainedBytes (): number {
    if (this.state === FramerState.STOPPED) return 0
    let n = this.inMessage ? this.headBytes + this.bodyLen : 0
    if (this.state === FramerState.PAUSED) n += this.bufferedBytes
    return n
  }

  private run (chunk: Buffer): void {
    // A head that began in the previous chunk: keep its tail as a view.
    if (this.inMessage && !this.headDone && this.headStartInChunk >= 0) {
      const piece = this.chunk.subarray(this.headStartInChunk)
      this.headPieces.push(piece)
      this.headBase += piece.length
      this.headStartInChunk = 0
    }
    this.chunk = chunk
    if (this.rec !== undefined) this.rec.rebase()
    if (this.inMessage && this.headDone) this.lastEnd = 0
    let ret = this.parser.execute(chunk)
    while (ret === LL.PAUSED && this.mark !== MARK_NONE) {
      const pos = this.parser.errorOffset()
      if (this.mark === MARK_HEAD) {
        // Observe mode: the head ends at `pos`; parsing goes on from there.
        this.rec!.markHead(chunk, pos)
        this.lastEnd -= pos
      } else {
        // A chunked request (or any, in observe mode) just ended at `pos`: its
        // last framing run (final chunk line, trailers) is measured before the
        // request is delivered.
        const req = this.deferred
        this.deferred = undefined
        this.mark = MARK_NONE
        if (this.addGap(pos - this.lastEnd)) return
        const code = this.rec === undefined ? this.deliver(req!) : this.deliverObserved(req, chunk, pos)
        if (code === LL.USER) return
        if (code === LL.PAUSED) {
          this.rest = chunk.subarray(pos)
          return
        }
      }
      this.mark = MARK_NONE
      this.parser.resume()
      chunk = chunk.subarray(pos)
      this.chunk = chunk
      if (this.rec !== undefined) this.rec.rebase()
      ret = this.parser.execute(chunk)
    }
    if (ret === LL.OK) {
      // Still inside a body: the rest of this read after the last body byte is framing.
      if (this.inMessage && this.headDone && this.state === FramerState.RUNNING) {
        this.addGap(chunk.length - this.lastEnd)
        this.lastEnd = chunk.length
      }
      if (this.rec !== undefined) this.rec.endOfChunk(chunk, this.inMessage)
      return
    }
    if (this.state === FramerState.STOPPED) return
    if (ret === LL.PAUSED && this.state === FramerState.PAUSED) {
      this.rest = chunk.subarray(this.parser.errorOffset())
      return
    }
    if (ret === LL.PAUSED_H2_UPGRADE) {
      this.reject('SSP_ERR_HTTP_VERSION', 'HTTP/2 connection preface')
      return
    }
    this.reject('SSP_ERR_HTTP_PARSE', this.parser.errorReason())
  }

  private reject (code: ErrorCode, detail: string | undefined): number {
    if (this.state !== FramerState.STOPPED) {
      this.state = FramerState.STOPPED
      if (this.rec === undefined) this.sink.onReject(code, detail)
      else this.sink.onReject(code, detail, this.rec.partial(this.chunk))
    }
    return LL.USER
  }

  /**
   * A request the engine refuses with an answer: a stop (the caller returns
   * LL.USER when this returns true), or in observe mode noted, the first one
   * only (it is the one the engine would have answered), and parsing goes on.
   */
  private refuse (code: ErrorCode, detail: string | undefined): boolean {
    if (this.rec === undefined) {
      this.reject(code, detail)
      return true
    }
    this.refusal ??= { code, detail }
    return false
  }

  /**
   * Chunked framing (size lines, extensions, the CRLFs around data) is not
   * reported by llhttp's callbacks; it is what lies between body spans. Each
   * run of it is bounded by maxHeaderBytes, counted across reads, so the
   * outcome does not depend on how TCP split the bytes, and an endless chunk
   * extension is refused with 413 (as Node does since CVE-2024-22019).
   */
  private addGap (n: number): boolean {
    this.gap += n
    if (this.gap <= this.opts.maxHeaderBytes) return false
    this.reject('SSP_ERR_BODY_TOO_LARGE', 'chunked framing (chunk line or extension) exceeds maxHeaderBytes')
    return true
  }

  private overHead (len: number): boolean {
    this.headBytes += len
    return this.headBytes > this.opts.maxHeaderBytes
  }

  // ---------------------------------------------------------------- llhttp callbacks

  onMessageBegin (): number {
    this.inMessage = true
    this.headDone = false
    this.headStartInChunk = -1
    this.headBase = 0
    this.headEnd = 0
    // Setting an array's length is not free; the pieces are rare.
    if (this.headPieces.length !== 0) this.headPieces.length = 0
    this.headBytes = 0
    this.nHeaders = 0
    this.last = LAST_NONE
    this.bodyLen = 0
    this.bodyPieces = undefined
    this.sink.onMessageBegin()
    return 0
  }

  onUrl (at: number, len: number): number {
    if (this.headStartInChunk < 0) this.headStartInChunk = at
    this.headEnd = this.headBase + (at - this.headStartInChunk) + len
    if (this.overHead(len)) return this.reject('SSP_ERR_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onStatus (): number { return 0 }

  onHeaderField (at: number, len: number): number {
    if (this.headDone) return this.overHead(len + LINE_OVERHEAD) ? this.reject('SSP_ERR_HEADERS_TOO_LARGE', 'trailers') : 0
    const pos = this.headBase + (at - this.headStartInChunk)
    this.headEnd = pos + len
    if (this.last === LAST_FIELD) {
      this.fLen[this.nHeaders - 1]! += len
    } else {
      const i = this.nHeaders
      if (i === this.opts.maxHeaderCount) return this.reject('SSP_ERR_HEADERS_TOO_LARGE', 'too many header lines')
      this.fOff[i] = pos
      this.fLen[i] = len
      this.vOff[i] = -1
      this.vLen[i] = 0
      this.nHeaders = i + 1
      this.last = LAST_FIELD
      len += LINE_OVERHEAD
    }
    if (this.overHead(len)) return this.reject('SSP_ERR_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeaderValue (at: number, len: number): number {
    if (this.headDone) return this.overHead(len) ? this.reject('SSP_ERR_HEADERS_TOO_LARGE', 'trailers') : 0
    const pos = this.headBase + (at - this.headStartInChunk)
    const i = this.nHeaders - 1
    if (this.last === LAST_VALUE) {
      this.vLen[i]! += len
    } else {
      this.vOff[i] = pos
      this.vLen[i] = len
      this.last = LAST_VALUE
    }
    this.headEnd = pos + len
    if (this.overHead(len)) return this.reject('SSP_ERR_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeadersComplete (_status: number, upgrade: boolean, keepAlive: boolean): number {
    this.headDone = true
    this.sink.onHeadersComplete()
    const p = this.parser

    // The head stream as one buffer: the chunk itself, or one copy of the pieces.
    if (this.headPieces.length === 0) {
      this.src = this.chunk
      this.shift = this.headStartInChunk
    } else {
      const need = this.headEnd - this.headBase
      if (need > 0) this.headPieces.push(this.chunk.subarray(0, need))
      this.src = Buffer.concat(this.headPieces)
      this.shift = 0
      this.headPieces.length = 0
    }

    if (p.httpMajor() !== 1 || p.httpMinor() !== 1) {
      if (this.refuse('SSP_ERR_HTTP_VERSION', `HTTP/${p.httpMajor()}.${p.httpMinor()}`)) return LL.USER
    }
    if (p.method() !== LL.METHOD_POST && this.refuse('SSP_ERR_METHOD', undefined)) return LL.USER
    if (upgrade) {
      if (this.refuse('SSP_ERR_HTTP_PARSE', 'protocol upgrade not supported')) return LL.USER
      // Observe mode: the message is reported, then the framer stops (what follows is not HTTP/1.1).
      this.upgraded = true
    }

    const src = this.src
    const shift = this.shift
    let ct: ContentTypeClass = ContentType.OTHER
    let ctSeen = false
    let tidOff = -1
    let tidLen = 0
    let sidOff = -1
    let sidLen = 0
    let dev = 0
    let dupTid = false
    let dupSid = false
    let chunked = false
    let host = false
    let expect = 0
    let declared = -1
    for (let i = 0; i < this.nHeaders; i++) {
      const flen = this.fLen[i]!
      // Length first: only seven names matter, of lengths 18, 17, 14, 12, 6 and 4.
      if (flen !== 18 && flen !== 14 && flen !== 12 && flen !== 17) {
        if (flen === 4) {
          if (equalsLower(src, this.fOff[i]! + shift, 4, H_HOST)) host = true
        } else if (flen === 6 && equalsLower(src, this.fOff[i]! + shift, 6, H_EXPECT)) {
          expect = this.expectation(src, i, shift)
        }
        continue
      }
      const foff = this.fOff[i]! + shift
      if (flen === 17) {
        // llhttp (strict) accepts Transfer-Encoding on a request only with chunked last.
        if (equalsLower(src, foff, flen, H_TRANSFER_ENCODING)) chunked = true
        continue
      }
      const voff = this.vOff[i]!
      let vs = voff < 0 ? 0 : voff + shift
      let ve = voff < 0 ? 0 : vs + this.vLen[i]!
      if (flen === 18) {
        if (!equalsLower(src, foff, flen, H_TRANSACTION_ID)) continue
        while (ve > vs && isOws(src[ve - 1]!)) ve--
        if (tidOff >= 0) { dev |= Deviation.DUPLICATE_ID_HEADER; dupTid = true; continue }
        tidOff = vs
        tidLen = ve - vs
      } else if (flen === 12) {
        if (ctSeen || !equalsLower(src, foff, flen, H_CONTENT_TYPE)) continue
        ctSeen = true
        ct = classifyContentType(src, vs, ve - vs)
      } else if (equalsLower(src, foff, flen, H_SESSION_ID)) {
        while (ve > vs && isOws(src[ve - 1]!)) ve--
        if (sidOff >= 0) { dev |= Deviation.DUPLICATE_ID_HEADER; dupSid = true; continue }
        sidOff = vs
        sidLen = ve - vs
      } else if (equalsLower(src, foff, flen, H_CONTENT_LENGTH)) {
        declared = parseDecimal(src, vs, ve - vs)
        if (declared > this.opts.maxBodyBytes) return this.reject('SSP_ERR_BODY_TOO_LARGE', undefined)
      }
    }

    if (ct === ContentType.OTHER && this.refuse('SSP_ERR_CONTENT_TYPE', undefined)) return LL.USER
    const interop = this.opts.interop
    if (!host && this.opts.requireHost === true) {
      if (interop) dev |= Deviation.HOST_MISSING
      else if (this.refuse('SSP_ERR_HOST_MISSING', undefined)) return LL.USER
    }
    if (tidOff < 0 || tidLen === 0) {
      if (interop) dev |= Deviation.TRANSACTION_ID_MISSING
      else if (this.refuse('SSP_ERR_TRANSACTION_ID_MISSING', undefined)) return LL.USER
      tidOff = -1
    } else if (!isIdBytes(src, tidOff, tidLen)) {
      if (interop) dev |= Deviation.TRANSACTION_ID_GRAMMAR
      else if (this.refuse('SSP_ERR_TRANSACTION_ID_INVALID', undefined)) return LL.USER
    }
    if (sidOff >= 0 && !isIdBytes(src, sidOff, sidLen)) {
      if (interop) dev |= Deviation.SESSION_ID_GRAMMAR
      else if (this.refuse('SSP_ERR_SESSION_ID_INVALID', undefined)) return LL.USER
    }
    if (dev !== 0 && !interop) {
      // Only a duplicate id header gets here in strict: refuse it as the id it duplicates.
      const refused = dupSid && !dupTid
        ? this.refuse('SSP_ERR_SESSION_ID_INVALID', 'duplicate x-wv-sessionid header')
        : this.refuse('SSP_ERR_TRANSACTION_ID_INVALID', 'duplicate x-wv-transactionid header')
      if (refused) return LL.USER
    }

    this.contentType = ct
    this.deviations = dev
    this.keepAlive = keepAlive
    this.chunked = chunked
    this.gap = 0
    this.lastEnd = Math.max(0, this.headEnd - this.headBase + Math.max(0, this.headStartInChunk))
    this.tidOff = tidOff
    this.tidLen = tidLen
    this.sidOff = sidOff
    this.sidLen = sidLen
    if (expect !== 0) {
      // RFC 9110 10.1.1: an expectation we cannot meet is refused before the body;
      // 100-continue is answered now, so the peer sends the body it holds back.
      if (expect === EXPECT_UNKNOWN) {
        if (this.refuse('SSP_ERR_EXPECTATION', undefined)) return LL.USER
      } else if ((declared > 0 || chunked) && this.refusal === undefined) {
        this.sink.onContinue?.()
      }
    }
    if (this.rec === undefined) return 0
    return this.observeHead(src, shift)
  }

  /** Observe mode: keep the header lines and version, and pause llhttp where the head ends. */
  private observeHead (src: Buffer, shift: number): number {
    const list: Array<readonly [string, string]> = []
    for (let i = 0; i < this.nHeaders; i++) {
      const f = this.fOff[i]! + shift
      const v = this.vOff[i]!
      const value = v < 0 ? '' : trimmedValue(src, v + shift, v + shift + this.vLen[i]!)
      list.push([src.toString('latin1', f, f + this.fLen[i]!), value])
    }
    this.obsHeaders = list
    this.obsVersion = `${this.parser.httpMajor()}.${this.parser.httpMinor()}`
    this.mark = MARK_HEAD
    return LL.PAUSED
  }

  /** The Expect header at index i: 100-continue, or an expectation this server cannot meet. */
  private expectation (src: Buffer, i: number, shift: number): number {
    const voff = this.vOff[i]!
    if (voff < 0) return EXPECT_UNKNOWN
    const vs = voff + shift
    let ve = vs + this.vLen[i]!
    while (ve > vs && isOws(src[ve - 1]!)) ve--
    return ve - vs === 12 && equalsLower(src, vs, 12, V_100_CONTINUE) ? EXPECT_CONTINUE : EXPECT_UNKNOWN
  }

  onBody (at: number, len: number): number {
    if (this.addGap(at - this.lastEnd)) return LL.USER
    this.gap = 0
    this.lastEnd = at + len
    const total = this.bodyLen + len
    if (total > this.opts.maxBodyBytes) return this.reject('SSP_ERR_BODY_TOO_LARGE', undefined)
    if (this.bodyLen === 0) {
      this.bodyChunk = this.chunk
      this.bodyAt = at
    } else {
      // The body continues in another callback: keep views, join once at the end.
      if (this.bodyPieces === undefined) {
        this.bodyPieces = [this.bodyChunk.subarray(this.bodyAt, this.bodyAt + this.bodyLen)]
      }
      this.bodyPieces.push(this.chunk.subarray(at, at + len))
    }
    this.bodyLen = total
    return 0
  }

  onMessageComplete (): number {
    this.inMessage = false
    const n = this.bodyLen
    let bodySrc = this.bodyChunk
    let bodyAt = this.bodyAt
    if (n === 0) {
      bodySrc = EMPTY
      bodyAt = 0
    } else if (this.bodyPieces !== undefined) {
      // The body spanned reads: its one copy.
      bodySrc = Buffer.concat(this.bodyPieces, n)
      bodyAt = 0
    }
    this.bodyPieces = undefined
    this.bodyChunk = EMPTY
    if (this.rec !== undefined) return this.observeEnd(bodySrc, bodyAt, n)
    const shift = this.shift
    const req = new SspRequest(
      LL.METHOD_POST, this.contentType, bodySrc, bodyAt, n, this.deviations, this.keepAlive,
      this.src, shift, this.headEnd + shift,
      this.tidOff, this.tidLen, this.sidOff, this.sidLen
    )
    this.src = EMPTY
    if (this.chunked) {
      // Delivered by run() once the end of the message is known (see addGap).
      this.deferred = req
      this.mark = MARK_END
      return LL.PAUSED
    }
    return this.deliver(req)
  }

  /**
   * Observe mode: the body in its own memory, the record when the engine
   * would accept the request; delivered by run() once llhttp, paused here,
   * says where the message ends.
   */
  private observeEnd (bodySrc: Buffer, bodyAt: number, n: number): number {
    const body = n === 0 ? EMPTY : Buffer.from(bodySrc.subarray(bodyAt, bodyAt + n))
    this.obsBody = body
    const shift = this.shift
    this.deferred = this.refusal !== undefined
      ? undefined
      : new SspRequest(
        LL.METHOD_POST, this.contentType, body, 0, n, this.deviations, this.keepAlive,
        this.src, shift, this.headEnd + shift,
        this.tidOff, this.tidLen, this.sidOff, this.sidLen
      )
    this.src = EMPTY
    this.mark = MARK_END
    return LL.PAUSED
  }

  /** Observe mode: hand the message that ended at `pos` in `chunk` to the sink. */
  private deliverObserved (req: SspRequest | undefined, chunk: Buffer, pos: number): number {
    const { raw, headLength } = this.rec!.finish(chunk, pos)
    const startLine = startLineOf(raw)
    const { method, target } = requestLineParts(startLine)
    const refusal = this.refusal
    const m: ObservedMessage = {
      raw, headLength, startLine, method, target, status: undefined, version: this.obsVersion,
      headers: this.obsHeaders, body: this.obsBody, keepAlive: this.keepAlive, refusal
    }
    this.refusal = undefined
    this.obsHeaders = []
    this.obsBody = EMPTY
    const more = refusal === undefined ? this.sink.onRequest(req!, m) : this.sink.onObserved!(refusal.code, refusal.detail, m)
    if (this.state !== FramerState.STOPPED && this.upgraded) {
      this.upgraded = false
      return this.reject('SSP_ERR_HTTP_PARSE', 'protocol upgrade: what follows it is not HTTP/1.1')
    }
    return this.delivered(more)
  }

  /** Hand a complete request to the sink; the llhttp code says whether parsing goes on. */
  private deliver (req: SspRequest): number {
    return this.delivered(this.sink.onRequest(req))
  }

  /** After a hand-over: stop (sink stopped us, or the message ends the connection), pause (no room) or go on. */
  private delivered (more: boolean): number {
    if (this.state === FramerState.STOPPED) return LL.USER
    if (!this.keepAlive) {
      this.state = FramerState.STOPPED
      return LL.USER
    }
    if (!more && this.state === FramerState.RUNNING) {
      this.state = FramerState.PAUSED
      return LL.PAUSED
    }
    return 0
  }
}

