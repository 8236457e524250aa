/**
 * Who writes the SSP envelope, at the node level: `envelope: 'node'` (the
 * default, tested throughout the suite) against `envelope: 'raw'`, where the
 * application writes whole messages and the node checks (strict) or counts
 * (interop) that the body's ids are the headers'. Also the resend backoff
 * that keeps a peer refusing by close from being re-POSTed to in a loop.
 */
import t from 'tap'
import { resendDelay } from '../src/ssp/node.js'
import { peekEnvelopeIds } from '../src/ssp/messages.js'
import type { EnvelopeIds } from '../src/ssp/options.js'
import { guarded, nodePair, portOf, recordPosts, rejectionOf } from './helpers/ssp-nodes.js'

const NS = 'http://www.openmobilealliance.org/DTD/WV-SSP1.3'
const whole = (ids: EnvelopeIds, mode = 'Request', inner = '<Ping/>'): string =>
  `<WV-SSP-Message xmlns="${NS}"><Session sessionID="${ids.sessionId}"><Transaction mode="${mode}" transactionID="${ids.transactionId}">${inner}</Transaction></Session></WV-SSP-Message>`

t.test('raw, strict: a builder gets the ids; its message goes out as written', async (t) => {
  const { a, ub } = await nodePair(t, { envelope: 'raw' }, {})
  const posts = recordPosts(t, [portOf(ub)])
  let seen: EnvelopeIds | undefined
  const ans = await guarded(a.request('b.example', (ids) => { seen = ids; return whole(ids) }), 'raw request')
  t.ok(seen !== undefined && a.tids.owns(seen.transactionId), 'the builder got a transaction id of ours')
  t.equal(seen?.transactionId, ans.transactionId)
  const req = posts.find((p) => p.tid === ans.transactionId)
  t.equal(req?.body, whole(seen!), 'sent byte for byte')
  t.equal(req?.sid, seen?.sessionId, 'the header carries the session id the builder was given')
  t.equal(ans.primitive.toString(), '<Ping/>', 'B (envelope: node) answered the primitive, wrapped')
  t.equal(a.getStats().envelopeMismatches, 0)
})

t.test('raw, strict: a body whose ids differ from the headers is refused before any byte is sent', async (t) => {
  const { a, ub } = await nodePair(t, { envelope: 'raw' }, {})
  await guarded(a.connect('b.example'), 'set-up')
  const posts = recordPosts(t, [portOf(ub)])
  const noEnvelope = await rejectionOf(a.request('b.example', '<Ping/>'))
  t.equal(noEnvelope.code, 'SSP_ERR_ENVELOPE_MISMATCH')
  t.equal(noEnvelope.scr, 'S-005')
  const wrongTid = await rejectionOf(a.request('b.example', (ids) => whole({ ...ids, transactionId: 'T1' })))
  t.equal(wrongTid.code, 'SSP_ERR_ENVELOPE_MISMATCH')
  t.match(wrongTid.message, /transactionID/)
  const wrongSid = await rejectionOf(a.request('b.example', (ids) => whole({ ...ids, sessionId: ids.peerSessionId })))
  t.equal(wrongSid.code, 'SSP_ERR_ENVELOPE_MISMATCH')
  t.equal(wrongSid.scr, 'S-006')
  const wrongMode = await rejectionOf(a.request('b.example', (ids) => whole(ids, 'Response')))
  t.equal(wrongMode.code, 'SSP_ERR_ENVELOPE_MISMATCH')
  t.equal(a.getStats().envelopeMismatches, 4)
  t.equal(a.getStats().pending, 0, 'nothing left pending')
  t.equal(posts.length, 0, 'nothing was sent')
})

t.test('raw, interop: a mismatch is counted and sent as written', async (t) => {
  const { a, ub } = await nodePair(t, { envelope: 'raw', posture: 'interop' }, { posture: 'interop' })
  await guarded(a.connect('b.example'), 'set-up')
  const posts = recordPosts(t, [portOf(ub)])
  const ans = await guarded(a.request('b.example', (ids) => whole({ ...ids, sessionId: 'other@a.example' })), 'answered anyway')
  t.equal(a.getStats().envelopeMismatches, 1)
  t.equal(peekEnvelopeIds(Buffer.from(posts[0]?.body ?? '')).sessionId, 'other@a.example', 'sent as the application wrote it')
  t.equal(ans.primitive.toString(), '<Ping/>')
})

t.test('raw handler answers: strict refuses one whose ids differ from the request\'s', async (t) => {
  const { a, b } = await nodePair(t, {}, {
    envelope: 'raw',
    handler: (tx) => tx.primitiveName === 'Good'
      ? whole({ transactionId: tx.transactionId, sessionId: tx.sessionId, peerSessionId: tx.peerSessionId }, 'Response', '<Fine/>')
      : whole({ transactionId: 'T_other', sessionId: tx.sessionId, peerSessionId: tx.peerSessionId }, 'Response', '<Bad/>')
  })
  const good = await guarded(a.request('b.example', '<Good/>'), 'good')
  t.equal(good.primitive.toString(), '<Fine/>', 'a correct raw answer goes through')
  const bad = await rejectionOf(a.request('b.example', '<Bad/>', { timeout: 300 }))
  t.equal(bad.code, 'SSP_ERR_TRANSACTION_TIMEOUT', 'the mismatched answer was never sent')
  t.equal(b.getStats().handlerErrors, 1, 'counted as a handler error')
  t.equal(b.getStats().envelopeMismatches, 1)
})

t.test('node envelope: the primitive handed to the handler is a view of the body', async (t) => {
  let same = false
  let name = ''
  const { a } = await nodePair(t, {}, {
    handler: (tx) => {
      same = tx.primitive.buffer === tx.body.buffer && tx.body.includes(tx.primitive)
      name = tx.primitiveName
      return '<Ok/>'
    }
  })
  const ans = await guarded(a.request('b.example', Buffer.from('<ns:Hello a="1"><x/></ns:Hello>')), 'answer')
  t.ok(same, 'no copy')
  t.equal(name, 'Hello', 'local name without prefix')
  t.equal(ans.primitiveName, 'Ok')
  t.equal(ans.body.subarray(0, 5).toString(), '<?xml', 'the answer body is the whole message')
})

t.test('options: envelope and posture are checked by name', async (t) => {
  const { SspNode } = await import('../src/ssp/node.js')
  t.throws(() => new SspNode({ domain: 'a.example', envelope: 'xml' as 'raw' }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /envelope/ })
  t.throws(() => new SspNode({ domain: 'a.example', posture: 'lenient' as 'strict' }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /posture/ })
  t.throws(() => new SspNode({ domain: 'a.example', setupStepRetries: -1 }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => new SspNode({ domain: 'a.example', peers: { 'b.example': { url: 'http://127.0.0.1:1/', pipelineDepth: 0 } } }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
})

t.test('resend backoff: the first at once, then doubling from 25-50 ms, capped at 2 s', async (t) => {
  t.equal(resendDelay(1), 0, 'a connection cut by a fault: resent at once')
  for (let attempt = 2; attempt <= 12; attempt++) {
    const cap = Math.min(2000, 50 * 2 ** (attempt - 2))
    for (let i = 0; i < 20; i++) {
      const d = resendDelay(attempt)
      t.ok(d >= cap / 2 && d <= cap, `attempt ${attempt}: ${d.toFixed(1)} ms within [${cap / 2}, ${cap}]`)
    }
  }
  // The sum bounds how often a refusing peer is re-POSTed to within the default 30 s deadline: under 40
  // POSTs even if every jitter drew its shortest delay (about 20 on average), against ~100 in 150 ms without backoff.
  let total = 0
  let n = 0
  while (total < 30_000) total += Math.min(2000, 50 * 2 ** (++n - 1)) / 2
  t.ok(n < 40, `at most ${n} resends within 30 s even at the shortest jitter`)
})
