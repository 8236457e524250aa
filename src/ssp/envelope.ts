/**
 * The SSP envelope the node writes around an application's primitive:
 *
 *   <?xml …?><WV-SSP-Message xmlns="…SSP1.3"><Session sessionID="ID">
 *     <Transaction mode="Request|Response" transactionID="TID">PRIMITIVE</Transaction>
 *   </Session></WV-SSP-Message>
 *
 * The ids in it are the ones the node also writes in `x-wv-transactionid` and
 * `x-wv-sessionid`, so a peer that reads only the body (Baraza does) and one
 * that reads only the headers see the same transaction.
 *
 * On the hot path this costs one string concatenation (or one Buffer.concat
 * for a Buffer primitive): everything but the transaction id and the
 * primitive is made once per session (`EnvelopeWriter`).
 *
 * Reading goes the other way without a DOM: `peekEnvelopeIds` gives the byte
 * range of each Transaction's content, and `primitiveView` trims it to the
 * primitive as a view of the received body (no copy).
 */
import { createError } from '../errors.js'
import type { WireBody } from '../wire/client.js'
import { attrValue, Mode, ROOT_ELEMENT, rootOpen, SSP_NAMESPACE, SspVersion, type PeekedTransaction } from './messages.js'

const MID = '">'
const TAIL = `</Transaction></Session></${ROOT_ELEMENT}>`
const TAIL_BYTES = Buffer.from(TAIL, 'latin1')
/**
 * Buffer primitives from this size on are sent as the envelope's pieces
 * (WireBody as Buffer[]), not copied into one Buffer: at 1 MiB the copy was
 * ~27 % of the sending node's CPU (native-notes.md, section 10). Below it a copy
 * of a few KiB costs less than the extra writev entries.
 */
const CHUNKED_FROM = 16 * 1024

/** What an envelope is made of: a primitive, serialised XML, inserted verbatim. */
export type Primitive = Buffer | string

/**
 * Writes envelopes for one session: our id for it, the peer's binding
 * version. Heads are precomputed strings (and their bytes, for Buffer
 * primitives).
 */
export class EnvelopeWriter {
  private readonly reqHead: string
  private readonly respHead: string
  private reqHeadBytes: Buffer | undefined
  private respHeadBytes: Buffer | undefined

  constructor (sessionId: string, version: SspVersion = SspVersion.V1_3) {
    if (SSP_NAMESPACE[version] === undefined) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unsupported SSP version ${String(version)}` })
    const open = `${rootOpen(version)}<Session sessionID="${attrValue(sessionId)}">`
    this.reqHead = `${open}<Transaction mode="${Mode.REQUEST}" transactionID="`
    this.respHead = `${open}<Transaction mode="${Mode.RESPONSE}" transactionID="`
  }

  /** A whole request message around `primitive`. */
  request (transactionId: string, primitive: Primitive): WireBody {
    return this.wrap(false, transactionId, primitive)
  }

  /** A whole response message around `primitive` (the request's transaction id). */
  response (transactionId: string, primitive: Primitive): WireBody {
    return this.wrap(true, transactionId, primitive)
  }

  private wrap (response: boolean, tid: string, primitive: Primitive): WireBody {
    const t = attrValue(tid)
    if (typeof primitive === 'string') return (response ? this.respHead : this.reqHead) + t + MID + primitive + TAIL
    let head: Buffer
    if (response) head = this.respHeadBytes ??= Buffer.from(this.respHead, 'utf8')
    else head = this.reqHeadBytes ??= Buffer.from(this.reqHead, 'utf8')
    const parts = [head, Buffer.from(t + MID, 'utf8'), primitive, TAIL_BYTES]
    // A large primitive is not copied: the pieces go to the client as they are
    // and out in the request's one writev.
    return primitive.length >= CHUNKED_FROM ? parts : Buffer.concat(parts)
  }
}

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d

/** The primitive of one peeked Transaction: its content without surrounding whitespace, a view of `body`. */
export function primitiveView (body: Buffer, t: Pick<PeekedTransaction, 'contentStart' | 'contentEnd'>): Buffer {
  let s = t.contentStart
  let e = t.contentEnd
  while (s < e && isSpace(body[s])) s++
  while (e > s && isSpace(body[e - 1])) e--
  return body.subarray(s, e)
}

/** Local name of the first element of a primitive (`SendMessageRequest`), or '' when it starts with none. */
export function primitiveName (primitive: Buffer): string {
  let i = 0
  const n = primitive.length
  // Skip comments and processing instructions before the element.
  while (i < n && primitive[i] === 0x3c && (primitive[i + 1] === 0x21 || primitive[i + 1] === 0x3f)) {
    const close = primitive[i + 1] === 0x21 ? primitive.indexOf('-->', i) : primitive.indexOf('?>', i)
    if (close < 0) return ''
    i = close + (primitive[i + 1] === 0x21 ? 3 : 2)
    while (i < n && isSpace(primitive[i])) i++
  }
  if (primitive[i] !== 0x3c) return ''
  let s = i + 1
  let e = s
  while (e < n) {
    const c = primitive[e]!
    if (isSpace(c) || c === 0x3e || c === 0x2f) break
    if (c === 0x3a) s = e + 1
    e++
  }
  return primitive.toString('latin1', s, e)
}

const TX_OPEN = Buffer.from('<Transaction', 'latin1')
const TX_CLOSE = Buffer.from('</Transaction>', 'latin1')
const TID_ATTR = Buffer.from('transactionID="', 'latin1')
const BANG_OPEN = Buffer.from('<!', 'latin1')

/**
 * The content range of the one Transaction of a body shaped as the
 * envelopes this package and Baraza write: a single unprefixed
 * `<Transaction …transactionID="TID">` start tag (the id its last
 * attribute), then the primitive, then `</Transaction>` followed only by
 * whitespace and end tags. A handful of native `indexOf`s instead of a scan
 * of every tag of the primitive. Undefined for any other shape (a batch,
 * prefixes, comments after the Transaction, the id not last, an entity in
 * the id): the caller then uses `peekEnvelopeIds`, which reads them all.
 */
export function fastTransactionRange (body: Buffer, tid: string): { contentStart: number, contentEnd: number } | undefined {
  const open = body.indexOf(TX_OPEN)
  if (open < 0 || body.indexOf(TX_OPEN, open + TX_OPEN.length) >= 0) return undefined // none, or more than one (or a look-alike)
  // A comment, CDATA or DOCTYPE before it: let the full scan judge. Searched backwards from the
  // start tag, so only the head is read, not the whole body (a 1 MiB primitive has none to find).
  if (open > 0 && body.lastIndexOf(BANG_OPEN, open - 1) >= 0) return undefined
  const c = body[open + TX_OPEN.length]
  if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return undefined
  const attr = body.indexOf(TID_ATTR, open)
  if (attr < 0) return undefined
  const valueStart = attr + TID_ATTR.length
  const valueEnd = body.indexOf(0x22, valueStart)
  if (valueEnd < 0 || valueEnd - valueStart !== Buffer.byteLength(tid) || body.toString('utf8', valueStart, valueEnd) !== tid) return undefined
  // The attribute must belong to the start tag: no `>` between the tag's name and it, and `>` right after it.
  const gt = body.indexOf(0x3e, open)
  if (gt !== valueEnd + 1) return undefined
  const before = body[attr - 1]
  if (before !== 0x20 && before !== 0x09 && before !== 0x0a && before !== 0x0d) return undefined
  const close = body.lastIndexOf(TX_CLOSE)
  if (close <= gt || body.indexOf(TX_CLOSE, gt) !== close) return undefined // none, or more than one end tag
  // After the end tag: only whitespace and end tags (`</Session>`, `</WV-SSP-Message>`).
  for (let i = close + TX_CLOSE.length; i < body.length;) {
    const b = body[i]!
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) { i++; continue }
    if (b !== 0x3c || body[i + 1] !== 0x2f) return undefined
    const end = body.indexOf(0x3e, i)
    if (end < 0) return undefined
    for (let j = i + 2; j < end; j++) {
      const x = body[j]!
      if (x === 0x3c || x === 0x22 || x === 0x27 || x === 0x21) return undefined
    }
    i = end + 1
  }
  return { contentStart: gt + 1, contentEnd: close }
}
