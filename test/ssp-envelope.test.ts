/**
 * The envelope the node writes (src/ssp/envelope.ts) and the primitive views
 * it hands the application: what is written reads back with the same ids and
 * the primitive byte for byte, for string and Buffer primitives, both
 * versions, ids that need escaping; and the content offsets of
 * peekEnvelopeIds name exactly each Transaction's content.
 */
import t from 'tap'
import fc from 'fast-check'
import { XMLValidator } from 'fast-xml-parser'
import { EnvelopeWriter, primitiveName, primitiveView } from '../src/ssp/envelope.js'
import { buildSession, peekEnvelopeIds, SSP_NAMESPACE } from '../src/ssp/messages.js'

const PRIM = '<SendMessageRequest deliveryReport="No"><MessageInfo messageID="m1"/><ContentData>hi &amp; bye</ContentData></SendMessageRequest>'

t.test('request and response envelopes read back with their ids and primitive', async (t) => {
  for (const version of ['1.3', '1.2'] as const) {
    const w = new EnvelopeWriter('S7@a.example', version)
    for (const prim of [PRIM, Buffer.from(PRIM)]) {
      for (const [mode, body] of [['Request', w.request('T_1', prim)], ['Response', w.response('0000000002-0', prim)]] as const) {
        const buf = Buffer.isBuffer(body) ? body : typeof body === 'string' ? Buffer.from(body) : Buffer.concat(body)
        t.equal(typeof body, typeof prim === 'string' ? 'string' : 'object', 'a string primitive stays a string (one concatenation)')
        t.equal(XMLValidator.validate(buf.toString()), true, `${version} ${mode}: well-formed`)
        t.ok(buf.toString().includes(`xmlns="${SSP_NAMESPACE[version]}"`), 'namespace of the peer\'s version')
        const ids = peekEnvelopeIds(buf)
        t.equal(ids.kind, 'session')
        t.equal(ids.sessionId, 'S7@a.example')
        t.equal(ids.transactions.length, 1)
        const tx = ids.transactions[0]!
        t.equal(tx.mode, mode)
        t.equal(tx.transactionId, mode === 'Request' ? 'T_1' : '0000000002-0')
        t.equal(primitiveView(buf, tx).toString(), PRIM, 'the primitive back, byte for byte')
        t.equal(primitiveName(primitiveView(buf, tx)), 'SendMessageRequest')
      }
    }
  }
})

t.test('a Buffer primitive is never copied: the envelope comes as pieces, the same bytes as the string form', async (t) => {
  const w = new EnvelopeWriter('S7@a.example')
  for (const size of [0, 100, 16 * 1024 - 1, 16 * 1024, 300_000]) {
    const text = '<SendMessageRequest>' + 'x'.repeat(size) + '</SendMessageRequest>'
    const prim = Buffer.from(text)
    for (const [kind, body] of [['request', w.request('T1', prim)], ['response', w.response('T1', prim)]] as const) {
      const asString = kind === 'request' ? w.request('T1', text) : w.response('T1', text)
      t.ok(Array.isArray(body), `${kind} ${prim.length} B: pieces`)
      t.ok((body as Buffer[]).includes(prim), 'the primitive itself is one of them (no copy)')
      t.same(Buffer.concat(body as Buffer[]), Buffer.from(asString as string), 'same bytes as the string form')
    }
  }
})

t.test('ids that need escaping are escaped and read back', async (t) => {
  const w = new EnvelopeWriter('a"b&c<d')
  const body = Buffer.from(w.request("t'1>", '<x/>') as string)
  t.equal(XMLValidator.validate(body.toString()), true)
  const ids = peekEnvelopeIds(body)
  t.equal(ids.sessionId, 'a"b&c<d')
  t.equal(ids.transactions[0]?.transactionId, "t'1>")
})

t.test('unsupported version is refused with a code', async (t) => {
  t.throws(() => new EnvelopeWriter('s', '9.9' as '1.3'), { code: 'SSP_ERR_INVALID_ARGUMENT' })
})

t.test('primitive view is a view of the body (no copy), trimmed; batches give one per Transaction', async (t) => {
  const body = Buffer.from(`<WV-SSP-Message><Session sessionID="6@x.example">
<Transaction mode="Response" transactionID="a1">
  <SendMessageResponse><Status code="200"/></SendMessageResponse>
</Transaction><Transaction mode="Request" transactionID="a2"><!-- c --><ssp:Status code="200"/></Transaction>
<Transaction mode="Request" transactionID="a3"/></Session></WV-SSP-Message>`)
  const ids = peekEnvelopeIds(body)
  t.equal(ids.transactions.length, 3)
  const [a, b, c] = ids.transactions.map((x) => primitiveView(body, x))
  t.equal(a?.toString(), '<SendMessageResponse><Status code="200"/></SendMessageResponse>')
  t.equal(a?.buffer, body.buffer, 'shares the body\'s memory')
  t.equal(b?.toString(), '<!-- c --><ssp:Status code="200"/>')
  t.equal(primitiveName(b!), 'Status', 'name after a comment, without prefix')
  t.equal(c?.length, 0, 'a self-closing Transaction has an empty primitive')
  t.equal(primitiveName(c!), '')
})

t.test('content offsets: whatever buildSession writes, the view is the inner XML', async (t) => {
  const inner = fc.constantFrom('<Status code="200"/>', '<A><B x="1">t</B></A>', ' <C/> ', '<D>&lt;Transaction&gt;</D>')
  const tr = fc.record({ mode: fc.constantFrom('Request' as const, 'Response' as const), transactionId: fc.stringMatching(/^[A-Za-z0-9_]{1,8}$/), inner })
  fc.assert(fc.property(fc.array(tr, { minLength: 1, maxLength: 5 }), (trs) => {
    const body = buildSession('s', trs)
    const r = peekEnvelopeIds(body)
    return r.transactions.length === trs.length &&
      r.transactions.every((x, i) => primitiveView(body, x).toString() === trs[i]!.inner.trim())
  }), { seed: 7, numRuns: 300 })
  t.pass('property held for 300 generated sessions')
})

t.test('fast transaction range: agrees with the full scan wherever it answers, and answers for our own envelopes', async (t) => {
  const { fastTransactionRange } = await import('../src/ssp/envelope.js')
  const w = new EnvelopeWriter('S1@a.example')
  for (const prim of [PRIM, '<x/>', '', ' <a>t</a> ']) {
    for (const body of [Buffer.from(w.request('T_9', prim) as string), Buffer.from(w.response('0000000002-0', prim) as string)]) {
      const tid = peekEnvelopeIds(body).transactions[0]!.transactionId!
      const fast = fastTransactionRange(body, tid)
      t.ok(fast !== undefined, 'answers for an envelope we wrote')
      t.equal(primitiveView(body, fast!).toString(), prim.trim())
    }
  }
  // A comment, CDATA or DOCTYPE before the start tag is left to the full scan; one inside the primitive is content.
  const env = w.request('T_9', '<x/>') as string
  const at = env.indexOf('<Transaction')
  for (const junk of ['<!-- c -->', '<!DOCTYPE x>', '<![CDATA[y]]>']) {
    t.equal(fastTransactionRange(Buffer.from(env.slice(0, at) + junk + env.slice(at)), 'T_9'), undefined, `${junk} before the Transaction: the full scan decides`)
  }
  const inside = Buffer.from(w.request('T_9', '<x><!-- c --></x>') as string)
  t.equal(primitiveView(inside, fastTransactionRange(inside, 'T_9')!).toString(), '<x><!-- c --></x>', 'a comment inside the primitive is the primitive\'s')
  // Start tags that almost have the shape: each left to the full scan, never misread (and never a hang).
  for (const tag of ['<Transaction transactionID=">', '<Transaction transactionID="T_9" x=">', '<Transaction mode="Request"transactionID="T_9">',
    '<Transaction mode="Request" transactionID="T_9"/>', '<Transaction transactionID="T_90">', '<Transaction\ttransactionID="T_">']) {
    const b = Buffer.from(env.slice(0, at) + tag + '<x/></Transaction></Session></WV-SSP-Message>')
    t.equal(fastTransactionRange(b, 'T_9'), undefined, `not the shape: ${tag}`)
  }
  for (const ws of [' ', '\t', '\n', '\r\n ']) {
    const b = Buffer.from(env.slice(0, at) + `<Transaction${ws}mode="Request"${ws}transactionID="T_9"><x/></Transaction></Session></WV-SSP-Message>`)
    t.equal(primitiveView(b, fastTransactionRange(b, 'T_9')!).toString(), '<x/>', `whitespace ${JSON.stringify(ws)} between attributes`)
  }
  const nonAscii = Buffer.from(env.slice(0, at) + '<Transaction transactionID="Tä"><x/></Transaction></Session></WV-SSP-Message>')
  t.ok(fastTransactionRange(nonAscii, 'Tä') !== undefined, 'a non-ASCII id (not in the grammar) is still compared as UTF-8')
  t.equal(fastTransactionRange(nonAscii, 'Ta'), undefined)
  // Baraza's shape: whitespace and newlines everywhere, single-quoted declaration.
  const baraza = Buffer.from("<?xml version='1.0'?>\n<WV-SSP-Message xmlns=\"x\">\n<Session sessionID=\"6@x.example\">\n<Transaction mode=\"Request\" transactionID=\"0000000002-0\">\n<SendMessageRequest deliveryReport=\"No\">\n</SendMessageRequest>\n\n</Transaction>\n</Session>\n</WV-SSP-Message>\n")
  const fb = fastTransactionRange(baraza, '0000000002-0')
  t.equal(fb === undefined ? undefined : primitiveView(baraza, fb).toString(), '<SendMessageRequest deliveryReport="No">\n</SendMessageRequest>')
  const pieces = fc.constantFrom('<Status code="200"/>', '<A x="a>b"/>', '<!-- </Transaction> -->', '<Transaction mode="Request" transactionID="T1"/>',
    '<ssp:Transaction/>', ' ', '\n', '&amp;', '<![CDATA[<Transaction transactionID="T1">]]>', '</Transaction>', '<B/>')
  const tid = fc.constantFrom('T1', 'T2', 'a&b', '0000000002-0')
  fc.assert(fc.property(fc.array(fc.record({ mode: fc.constantFrom('Request' as const, 'Response' as const), transactionId: tid, inner: fc.array(pieces, { maxLength: 4 }).map((x) => x.join('')) }), { minLength: 1, maxLength: 3 }), tid, fc.constantFrom('', '<!-- c -->', ' '), (trs, want, tailJunk) => {
    const body = Buffer.concat([buildSession('s', trs), Buffer.from(tailJunk)])
    const fast = fastTransactionRange(body, want)
    if (fast === undefined) return true
    const full = peekEnvelopeIds(body).transactions.find((x) => x.transactionId === want)
    return full !== undefined && full.contentStart === fast.contentStart && full.contentEnd === fast.contentEnd
  }), { seed: Number(process.env.FAST_SEED ?? 11), numRuns: Number(process.env.FAST_RUNS ?? 2000) })
  t.pass('2,000 generated bodies: the fast path never disagreed with the full scan')
})
