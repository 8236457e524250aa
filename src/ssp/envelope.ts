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
 * On the hot path this costs one string concatenation for a string primitive,
 * or, for a Buffer primitive, one small Buffer (the transaction id) and an
 * array of four pieces, never a copy of the primitive: the wire client copies
 * pieces of up to 16 KiB into its batch buffer (the one copy there is) and
 * writes larger ones as they are. Everything but the transaction id and the
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
    // Not concatenated here: the client copies small bodies into its batch
    // buffer anyway (a concat was a second copy, measured in native-notes.md §11)
    // and sends a large primitive uncopied.
    return [head, Buffer.from(t + MID, 'utf8'), primitive, TAIL_BYTES]
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

const TX_CLOSE = Buffer.from('</Transaction>', 'latin1')
const TX_WORD = Buffer.from('Transaction', 'latin1')
const TID_ATTR = Buffer.from('transactionID="', 'latin1')

/**
 * The content range of the one Transaction of a body shaped as the
 * envelopes this package and Baraza write: a single unprefixed
 * `<Transaction …transactionID="TID">` start tag (the id its last
 * attribute), then the primitive, then `</Transaction>` followed only by
 * whitespace and end tags. One native search (the word `Transaction`
 * between the tags, over the primitive) and plain loops over the rest: the
 * head up to the start tag, the tag, and the end tags read backwards from the
 * body's end, instead of a scan of every tag of the primitive. Undefined for
 * any other shape (a batch, prefixes, comments before or after the
 * Transaction, the id not last, an entity in the id, the word `Transaction`
 * in the primitive): the caller then uses `peekEnvelopeIds`, which reads
 * them all.
 */
export function fastTransactionRange (body: Buffer, tid: string): { contentStart: number, contentEnd: number } | undefined {
  const n = body.length
  // The head, byte by byte up to the first `<Transaction` (a few hundred bytes: one loop costs
  // less than a native indexOf call plus a second pass for `<!`). A comment, CDATA or DOCTYPE
  // before it: let the full scan judge.
  let open = -1
  for (let i = 0; i < n; i++) {
    if (body[i] !== 0x3c) continue
    const c = body[i + 1]
    if (c === 0x21) return undefined
    if (c === 0x54 && startsAt(body, i + 1, TX_WORD)) { open = i; break }
  }
  if (open < 0) return undefined
  const name = open + 1 + TX_WORD.length
  if (!isSpace(body[name])) return undefined
  // The tag ends at the first `>`; its last attribute must be transactionID="TID", right before it.
  let gt = name
  while (gt < n && body[gt] !== 0x3e) {
    if (body[gt] === 0x3c) return undefined // a `<` inside the tag: not well-formed, the full scan judges
    gt++
  }
  if (gt >= n || body[gt - 1] !== 0x22) return undefined
  const attr = indexWithin(body, TID_ATTR, name, gt)
  if (attr < 0 || !isSpace(body[attr - 1])) return undefined
  const valueStart = attr + TID_ATTR.length
  let valueEnd = valueStart
  while (valueEnd < gt && body[valueEnd] !== 0x22) valueEnd++
  if (valueEnd !== gt - 1 || !sameId(body, valueStart, valueEnd, tid)) return undefined
  // From the end backwards: whitespace and end tags (`</WV-SSP-Message>`, `</Session>`) up to
  // the last `</Transaction>`, which is therefore the last one in the body.
  let close = -1
  for (let i = n - 1; i > gt;) {
    const b = body[i]!
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) { i--; continue }
    if (b !== 0x3e) return undefined
    let lt = i - 1
    for (; lt > gt; lt--) {
      const x = body[lt]!
      if (x === 0x3c) break
      if (x === 0x3e || x === 0x22 || x === 0x27 || x === 0x21) return undefined
    }
    if (lt <= gt || body[lt + 1] !== 0x2f) return undefined
    if (i - lt + 1 === TX_CLOSE.length && startsAt(body, lt, TX_CLOSE)) { close = lt; break }
    i = lt - 1
  }
  // Between the start tag and it, no other `Transaction` at all: one scan rules out a second
  // Transaction (start or end tag) inside; a primitive that merely says "Transaction" goes to
  // the full scan, which is slower, not wrong.
  if (close < 0 || body.indexOf(TX_WORD, gt) !== close + 2) return undefined
  return { contentStart: gt + 1, contentEnd: close }
}

/** Does body hold `needle` at `at`? (A short needle: a plain loop.) */
function startsAt (body: Buffer, at: number, needle: Buffer): boolean {
  if (at + needle.length > body.length) return false
  for (let j = 0; j < needle.length; j++) if (body[at + j] !== needle[j]) return false
  return true
}

/** First position of `needle` wholly inside body[from, to), or -1 (a short range: a plain loop). */
function indexWithin (body: Buffer, needle: Buffer, from: number, to: number): number {
  const first = needle[0]!
  const last = to - needle.length
  outer: for (let i = from; i <= last; i++) {
    if (body[i] !== first) continue
    for (let j = 1; j < needle.length; j++) if (body[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}

/** Are body[start, end) the UTF-8 bytes of `id`? ASCII ids (every id the grammar allows) without decoding. */
function sameId (body: Buffer, start: number, end: number, id: string): boolean {
  if (end - start === id.length) {
    let ascii = true
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i)
      if (c > 0x7f) { ascii = false; break }
      if (body[start + i] !== c) return false
    }
    if (ascii) return true
  }
  return end - start === Buffer.byteLength(id) && body.toString('utf8', start, end) === id
}
