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
 */
import type { ErrorCode } from '../errors.js'
import { LL, Parser, type ParserCallbacks } from './llhttp.js'
import { isRedirectStatus } from './redirect.js'

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
}

export interface ResponseSink {
  /**
   * A response is complete (informational 1xx responses included). `location`
   * is the trimmed `Location` value, only for 3xx responses that carry one.
   * Return false to stop parsing after this response.
   */
  onResponse (status: number, keepAlive: boolean, location: string | undefined, bodyBytes: number): boolean
  /** The input is not a valid HTTP/1.x response stream, or a limit was exceeded. Parsing has stopped. */
  onResponseError (code: ErrorCode, detail: string | undefined): void
}

const EMPTY = Buffer.alloc(0)
/** `location`, lower case, as bytes. */
const LOCATION = Buffer.from('location', 'latin1')
const LOCATION_LEN = 8

const LAST_NONE = 0
const LAST_FIELD = 1
const LAST_VALUE = 2
/** Bytes counted per header line besides name and value (": " and CRLF). */
const LINE_OVERHEAD = 4

export class ResponseFramer implements ParserCallbacks {
  state: ResponseFramerStateValue = ResponseFramerState.RUNNING
  /** A response has begun and is not complete. */
  inMessage = false

  private readonly parser: Parser
  private readonly sink: ResponseSink
  private readonly maxHeaderBytes: number
  private readonly maxBodyBytes: number

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

  constructor (sink: ResponseSink, opts: ResponseFramerOptions) {
    this.sink = sink
    this.maxHeaderBytes = opts.maxHeaderBytes
    this.maxBodyBytes = opts.maxBodyBytes
    this.parser = new Parser(LL.TYPE_RESPONSE, this)
  }

  /** Parse one read. Ignored once stopped. */
  push (chunk: Buffer): void {
    if (this.state !== ResponseFramerState.RUNNING) return
    this.chunk = chunk
    this.executing = true
    let ret: number
    try {
      ret = this.parser.execute(chunk)
    } finally {
      this.executing = false
      this.chunk = EMPTY
    }
    if (this.freeAfterExecute) {
      this.freeAfterExecute = false
      this.parser.destroy()
      return
    }
    if (ret === LL.OK || this.state !== ResponseFramerState.RUNNING) return
    if (ret === LL.PAUSED_UPGRADE) {
      this.fail('SSP_ERR_HTTP_RESPONSE', 'protocol upgrade (101) not supported')
      return
    }
    this.fail('SSP_ERR_HTTP_RESPONSE', this.parser.errorReason())
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
      this.sink.onResponseError(code, detail)
    }
    return LL.USER
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
    return 0
  }

  onUrl (): number { return 0 }

  onStatus (_at: number, len: number): number {
    if (this.countHead(len)) return this.fail('SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', undefined)
    return 0
  }

  onHeaderField (at: number, len: number): number {
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
      return this.fail('SSP_ERR_HTTP_RESPONSE', `HTTP/${this.parser.httpMajor()}.${this.parser.httpMinor()}`)
    }
    if (upgrade && status === 101) return this.fail('SSP_ERR_HTTP_RESPONSE', 'protocol upgrade (101) not supported')
    this.status = status
    this.keepAlive = keepAlive
    this.capturing = false
    if (this.location !== undefined) this.location = this.location.trim()
    return 0
  }

  onBody (_at: number, len: number): number {
    this.bodyBytes += len
    if (this.bodyBytes > this.maxBodyBytes) return this.fail('SSP_ERR_RESPONSE_BODY_TOO_LARGE', undefined)
    return 0
  }

  onMessageComplete (): number {
    this.inMessage = false
    if (this.state !== ResponseFramerState.RUNNING) return LL.USER
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

/** Re-exported for older imports; the definition is redirect.ts's. */
export { isRedirectStatus }
