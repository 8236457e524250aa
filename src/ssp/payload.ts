/**
 * Example SSP primitives for the demo, `send`, `serve` and the benchmarks,
 * shaped like the message Baraza itself sends (../shared/baraza/README.md):
 * the sender named twice (MetaInfo/Requestor and MessageInfo/Sender), the
 * recipient named, base64 content. Baraza dereferences the sender without a
 * check, so a request without one would crash it: these always name it.
 *
 * They are primitives: the node writes the Session/Transaction envelope
 * around them with the ids of the x-wv-* headers. The transport never looks
 * inside them.
 */
import { randomBytes } from 'node:crypto'
import { attrValue } from './messages.js'

export interface SendMessageOptions {
  /** Sender, e.g. `wv:alice@a.example`. Default `wv:alice@a.example`. */
  from?: string
  /** Recipient, e.g. `wv:carol@b.example`. Default `wv:carol@b.example`. */
  to?: string
  /** messageID attribute. Default `m1`. */
  messageId?: string
}

function domainOf (user: string): string {
  const at = user.lastIndexOf('@')
  return at < 0 ? '' : user.slice(at + 1)
}

/**
 * A SendMessageRequest primitive of about `size` bytes (at least the fixed
 * part): text/plain content, base64-encoded as Baraza sends it.
 */
export function sendMessageRequest (size: number, o: SendMessageOptions = {}): Buffer {
  const from = attrValue(o.from ?? 'wv:alice@a.example')
  const to = attrValue(o.to ?? 'wv:carol@b.example')
  const head = '<SendMessageRequest deliveryReport="No"><MetaInfo clientOriginated="Yes">' +
    `<Requestor serviceID="wv:@${attrValue(domainOf(o.from ?? 'wv:alice@a.example'))}"><User userID="${from}"/></Requestor></MetaInfo>` +
    `<MessageInfo messageID="${attrValue(o.messageId ?? 'm1')}" contentType="text/plain" contentSize="`
  const mid = `"><Recipient><User userID="${to}"/></Recipient><Sender><User userID="${from}"/></Sender></MessageInfo>` +
    '<ContentData contentType="text/plain" encoding="base64">'
  const tail = '</ContentData></SendMessageRequest>'
  const fixed = head.length + mid.length + tail.length + 8
  // base64 grows 3 bytes to 4: pick the text length that fills the rest.
  const n = Math.max(1, Math.floor((Math.max(0, size - fixed) * 3) / 4))
  const text = 'x'.repeat(n)
  return Buffer.from(`${head}${n}${mid}${Buffer.from(text).toString('base64')}${tail}`)
}

/**
 * SendMessageRequest primitives with a fresh messageID each (a random prefix
 * and a counter): Baraza keys its delivery queue by messageID and drops a
 * message whose id it has seen.
 */
export function sendMessageRequests (size: number, o: Omit<SendMessageOptions, 'messageId'> = {}): (n: number) => Buffer {
  const prefix = 'm' + randomBytes(8).toString('hex') + '-'
  return (n) => sendMessageRequest(size, { ...o, messageId: prefix + n.toString(36) })
}

const OK_RESPONSE = Buffer.from('<SendMessageResponse><Status code="200"/></SendMessageResponse>')

/** The SendMessageResponse primitive with Status 200 (one shared Buffer when no messageID is given). */
export function sendMessageResponse (messageId?: string): Buffer {
  if (messageId === undefined) return OK_RESPONSE
  return Buffer.from(`<SendMessageResponse messageID="${attrValue(messageId)}"><Status code="200"/></SendMessageResponse>`)
}

const MESSAGE_ID_ATTR = Buffer.from(' messageID="', 'latin1')

/**
 * The messageID of a SendMessageRequest primitive (its first `messageID="…"`
 * attribute), so that an answer can name the message it answers; undefined
 * when there is none. One native indexOf over the primitive.
 */
export function messageIdOf (primitive: Buffer): string | undefined {
  const at = primitive.indexOf(MESSAGE_ID_ATTR)
  if (at < 0) return undefined
  const start = at + MESSAGE_ID_ATTR.length
  const end = primitive.indexOf(0x22, start)
  if (end < 0 || end - start > 256) return undefined
  return primitive.toString('utf8', start, end)
}
