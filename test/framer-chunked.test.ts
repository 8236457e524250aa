// Chunked framing limits must not depend on how TCP split the bytes: each
// run of non-body bytes (chunk-size line, extension, trailers) is bounded by
// maxHeaderBytes, counted across reads.
import t from 'tap'
import { runFramer, splitAt } from './helpers/framer-run.js'

const head = 'POST /ssp HTTP/1.1\r\nHost: b\r\nContent-Type: application/vnd.wv.ssp+xml\r\n' +
  'x-wv-transactionid: T1\r\nTransfer-Encoding: chunked\r\n\r\n'

function chunkedRequest (extLen: number, where: 'first' | 'last'): Buffer {
  const ext = ';e=' + 'x'.repeat(extLen)
  const body = where === 'first'
    ? `5${ext}\r\nhello\r\n0\r\n\r\n`
    : `5\r\nhello\r\n0${ext}\r\n\r\n`
  return Buffer.from(head + body + head + '3\r\nbye\r\n0\r\n\r\n', 'latin1')
}

const opts = { maxHeaderBytes: 1024 }
// Split points: whole, and cuts before, inside and after the extension.
const cuts = (b: Buffer): number[] => [0, head.length + 2, head.length + 300, head.length + 900, head.length + 1100, b.length - 40, b.length - 1]

for (const where of ['first', 'last'] as const) {
  t.test(`an extension over the limit on the ${where} chunk line is refused at every split`, async (t) => {
    const input = chunkedRequest(1500, where)
    for (const at of cuts(input)) {
      const r = runFramer(splitAt(input, at), opts)
      t.equal(r.requests.length, 0, `cut ${at}: nothing delivered`)
      t.equal(r.rejects[0]?.code, 'SSP_ERR_BODY_TOO_LARGE', `cut ${at}: 413`)
    }
    const bytes = runFramer(Array.from(input, (_, i) => input.subarray(i, i + 1)), opts)
    t.equal(bytes.rejects[0]?.code, 'SSP_ERR_BODY_TOO_LARGE', 'one byte at a time: 413')
  })

  t.test(`an extension under the limit on the ${where} chunk line passes at every split`, async (t) => {
    const input = chunkedRequest(500, where)
    for (const at of cuts(input)) {
      const r = runFramer(splitAt(input, at), opts)
      t.same(r.requests.map((q) => q.body.toString()), ['hello', 'bye'], `cut ${at}: both requests, bodies intact`)
      t.equal(r.rejects.length, 0, `cut ${at}: no refusal`)
    }
  })
}

t.test('trailers count against maxHeaderBytes and leave the head intact', async (t) => {
  const ok = Buffer.from(head + '2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n', 'latin1')
  const r = runFramer([ok], opts)
  t.equal(r.requests.length, 1)
  t.equal(r.requests[0]?.header('x-wv-transactionid'), 'T1', 'head lookup unaffected by the trailer')
  t.equal(r.requests[0]?.header('x-trailer'), undefined, 'a trailer is not a header')
  const big = Buffer.from(head + '2\r\nhi\r\n0\r\nX-Trailer: ' + 'y'.repeat(2000) + '\r\n\r\n', 'latin1')
  const r2 = runFramer([big], opts)
  t.equal(r2.rejects[0]?.code, 'SSP_ERR_HEADERS_TOO_LARGE', 'oversized trailers refused')
})
