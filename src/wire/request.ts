import { findHeader, type ContentTypeClass } from './header-bytes.js'

/** Deviations from the binding that the `interop` posture accepts (bit flags, counted per kind). */
export const Deviation = {
  NONE: 0,
  /** POST without `x-wv-transactionid` (ssp-notes 3: answer POSTs of real peers). */
  TRANSACTION_ID_MISSING: 1,
  /** `x-wv-transactionid` outside `1*(ALPHA / DIGIT / "_")`, e.g. `0000000042-7`. */
  TRANSACTION_ID_GRAMMAR: 2,
  /** `x-wv-sessionid` outside the grammar, e.g. `5@a.example`. */
  SESSION_ID_GRAMMAR: 4,
  /** More than one `x-wv-transactionid` or `x-wv-sessionid` header: the first is used. */
  DUPLICATE_ID_HEADER: 8,
  /** No `Host` header (RFC 9112 3.2 says 400; strict refuses it). */
  HOST_MISSING: 16
} as const

export const DEVIATION_NAMES = {
  1: 'transactionIdMissing',
  2: 'transactionIdGrammar',
  4: 'sessionIdGrammar',
  8: 'duplicateIdHeader',
  16: 'hostMissing'
} as const

/**
 * One complete SSP POST, as the framer hands it to the application.
 *
 * The body is a view of the socket chunk it arrived in (a copy only when it
 * spanned reads). The two id headers are kept as offsets into `src` and become
 * strings only when read; any other header is found by re-scanning the kept
 * header bytes, on demand.
 */
export class SspRequest {
  /** llhttp method code; always POST (3) for a request the server accepted. */
  readonly method: number
  readonly contentType: ContentTypeClass
  /** Bit set of `Deviation` flags accepted in the interop posture (0 in strict). */
  readonly deviations: number
  /** False when the peer asked for `Connection: close` with this request. */
  readonly keepAlive: boolean

  /** @internal buffer holding the header bytes: the socket chunk, or a copy when the head spanned reads */
  readonly src: Buffer
  /** @internal */ readonly headStart: number
  /** @internal */ readonly headEnd: number
  /** @internal */ readonly tidOff: number
  /** @internal */ readonly tidLen: number
  /** @internal */ readonly sidOff: number
  /** @internal */ readonly sidLen: number

  /** @internal where the body lies: the socket chunk, or the one copy joined from several reads */
  readonly bodySrc: Buffer
  /** @internal */ readonly bodyAt: number
  /** @internal */ readonly bodyLen: number

  private tid: string | undefined = undefined
  private sid: string | undefined = undefined
  private view: Buffer | undefined = undefined

  constructor (
    method: number, contentType: ContentTypeClass, bodySrc: Buffer, bodyAt: number, bodyLen: number,
    deviations: number, keepAlive: boolean,
    src: Buffer, headStart: number, headEnd: number,
    tidOff: number, tidLen: number, sidOff: number, sidLen: number
  ) {
    this.method = method
    this.contentType = contentType
    this.bodySrc = bodySrc
    this.bodyAt = bodyAt
    this.bodyLen = bodyLen
    this.deviations = deviations
    this.keepAlive = keepAlive
    this.src = src
    this.headStart = headStart
    this.headEnd = headEnd
    this.tidOff = tidOff
    this.tidLen = tidLen
    this.sidOff = sidOff
    this.sidLen = sidLen
  }

  /**
   * The body: a view (`subarray`) of the socket chunk it arrived in, made on
   * first use (an application that routes by header without reading the body
   * never pays for it). Holding it pins that whole read: copy what you keep.
   */
  get body (): Buffer {
    if (this.view === undefined) this.view = this.bodySrc.subarray(this.bodyAt, this.bodyAt + this.bodyLen)
    return this.view
  }

  /** `x-wv-transactionid`, or undefined when absent (interop posture only). */
  get transactionId (): string | undefined {
    if (this.tid === undefined && this.tidOff >= 0) this.tid = this.src.toString('latin1', this.tidOff, this.tidOff + this.tidLen)
    return this.tid
  }

  /** `x-wv-sessionid`, or undefined when absent (allowed before the session exists). */
  get sessionId (): string | undefined {
    if (this.sid === undefined && this.sidOff >= 0) this.sid = this.src.toString('latin1', this.sidOff, this.sidOff + this.sidLen)
    return this.sid
  }

  /**
   * @internal Is `x-wv-sessionid` exactly `id`? Compared as bytes, no string
   * made; on a match `sessionId` returns `id` itself from then on.
   */
  sessionIdEquals (id: string): boolean {
    const n = this.sidLen
    if (this.sidOff < 0 || n !== id.length) return false
    const src = this.src
    const off = this.sidOff
    for (let i = 0; i < n; i++) if (src[off + i] !== id.charCodeAt(i)) return false
    this.sid = id
    return true
  }

  /** Any header by name (case-insensitive), as a string; first occurrence. Slow path. */
  header (name: string): string | undefined {
    return findHeader(this.src, this.headStart, this.headEnd, name)
  }
}
