/**
 * The set-up engine (src/ssp/setup-engine.ts) on its own: the seven steps
 * between an initiator and a responder, each acceptance of the posture and
 * each deviation a test instrument may commit. And the one redirect rule
 * (src/wire/redirect.ts) the client, the lab and the fault server share.
 */
import t from 'tap'
import { isSspError } from '../src/errors.js'
import { Mode, parseSetup, buildSetup, SetupKind, type ParsedSetupMessage, type SetupMessage } from '../src/ssp/messages.js'
import { SetupInitiator, SetupResponder, type SetupPolicy } from '../src/ssp/setup-engine.js'
import { isRedirectStatus, redirectLocation, redirectTarget } from '../src/wire/redirect.js'

/** Through the codec, as on the wire. */
function wire (m: SetupMessage, secretEncoding: 'plain' | 'base64' = 'plain'): ParsedSetupMessage {
  return parseSetup(buildSetup(m, { secretEncoding }))
}

function codeOf (fn: () => unknown): string {
  try { fn() } catch (err) { return isSspError(err) ? `${err.code}${err.scr === undefined ? '' : ` ${err.scr}`}` : String(err) }
  return 'no error'
}

const A: SetupPolicy = { domain: 'a.example', timeToLive: 600 }
const B: SetupPolicy = { domain: 'b.example', timeToLive: 3600 }

t.test('the seven steps: one transaction id for 1, 4, 6; digests; session ids; the lower timeToLive', async (t) => {
  const a = new SetupInitiator(A, 'b.example', { transactionId: 'T1', sessionId: 'SA' })
  const step1 = wire(a.step1())
  t.equal(step1.transactionId, 'T1')
  const b = new SetupResponder(B, step1, { sessionId: 'SB' })
  t.equal(b.peer, 'a.example', 'the responder names the peer by step 1\'s domain')
  const step3 = wire(b.step3())
  t.equal(step3.transactionId, 'T1', 'step 3 carries step 1\'s id')
  t.ok(a.awaits(step3))
  const step4 = wire(a.onStep3(step3))
  t.equal(step4.transactionId, 'T1', 'step 4 carries step 1\'s id')
  t.ok(b.awaits(step4))
  const step5 = wire(b.onStep4(step4))
  t.equal(step5.transactionId, 'T1')
  const step6 = wire(a.onStep5(step5))
  t.equal(step6.transactionId, 'T1', 'step 6 carries step 1\'s id')
  t.ok(b.awaits(step6))
  t.notOk(b.awaits({ ...step6, transactionId: 'T2' }), 'a step 6 with another id is not this set-up\'s')
  const { step7, result } = b.onStep6(step6)
  t.same(result, { sessionId: 'SB', peerSessionId: 'SA', timeToLive: 600 })
  const s7 = wire(step7)
  t.ok(a.awaits(s7))
  t.same(a.onStep7(s7), { sessionId: 'SA', peerSessionId: 'SB', timeToLive: 600 })
  t.equal(a.awaited, 0)
  t.equal(b.awaited, 0)
})

t.test('posture: a step 3 with an id of its own (S-005) and session ids outside 5.6 (S-012)', async (t) => {
  const own: SetupPolicy = { ...B, deviate: { step3Tid: () => '0000000007-7' } }
  const strict = new SetupInitiator(A, 'b.example', { transactionId: 'T1', sessionId: 'SA' })
  const b = new SetupResponder(own, wire(strict.step1()), { sessionId: '5@b.example' })
  const step3 = wire(b.step3())
  t.equal(step3.transactionId, '0000000007-7', 'the deviation is committed')
  t.equal(codeOf(() => strict.onStep3(step3)), 'SSP_ERR_SETUP_PROTOCOL S-005', 'strict refuses it')

  const accepted: string[] = []
  const lenient = new SetupInitiator({ ...A, accept: { foreignStep3Tid: true }, onAccepted: (k) => accepted.push(k) }, 'b.example', { transactionId: 'T1', sessionId: 'SA' })
  const b2 = new SetupResponder(own, wire(lenient.step1()), { sessionId: '5@b.example' })
  const s5 = b2.onStep4(wire(lenient.onStep3(wire(b2.step3()))))
  t.same(accepted, ['setupTransactionId'], 'interop accepts and counts it')
  const { step7 } = b2.onStep6(wire(lenient.onStep5(wire(s5))))
  t.equal(codeOf(() => lenient.onStep7(wire(step7))), 'SSP_ERR_SETUP_PROTOCOL S-012', 'a session id like 5@b.example is refused unless accepted')

  const any = new SetupResponder({ ...B, accept: { anySessionId: true } }, wire(lenient.step1()), { sessionId: 'SB' })
  t.equal(codeOf(() => new SetupResponder(B, wire(lenient.step1()), { sessionId: 'SB' }).onStep6(wire({ kind: SetupKind.LOGIN_RESPONSE, mode: Mode.REQUEST, transactionId: 'T1', sessionId: '5@a.example', statusCode: 200 }))), 'SSP_ERR_SETUP_PROTOCOL S-012')
  t.equal(any.onStep6(wire({ kind: SetupKind.LOGIN_RESPONSE, mode: Mode.REQUEST, transactionId: 'T1', sessionId: '5@a.example', statusCode: 200 })).result.peerSessionId, '5@a.example')
})

t.test('deviations: a wrong digest fails step 4 and step 5', async (t) => {
  const liar: SetupPolicy = { ...A, deviate: { wrongDigest: true } }
  const a = new SetupInitiator(liar, 'b.example', { transactionId: 'T1', sessionId: 'SA' })
  const b = new SetupResponder(B, wire(a.step1()), { sessionId: 'SB' })
  t.equal(codeOf(() => b.onStep4(wire(a.onStep3(wire(b.step3()))))), 'SSP_ERR_SETUP_DIGEST', 'step 4')
  t.equal(b.awaited, 4, 'still waiting for a good step 4')

  const a2 = new SetupInitiator(A, 'b.example', { transactionId: 'T2', sessionId: 'SA' })
  const b2 = new SetupResponder({ ...B, deviate: { wrongDigest: true } }, wire(a2.step1()), { sessionId: 'SB' })
  const step5 = wire(b2.onStep4(wire(a2.onStep3(wire(b2.step3())))))
  t.equal(codeOf(() => a2.onStep5(step5)), 'SSP_ERR_SETUP_DIGEST', 'step 5')
})

t.test('deviations: a secret kept as a C string (cut at its NUL) gives a digest the sender does not expect', async (t) => {
  const secret = Buffer.from([0x61, 0x00, 0x62, 0x63])
  const a = new SetupInitiator(A, 'b.example', { transactionId: 'T1', sessionId: 'SA', secret })
  const step1 = wire(a.step1(), 'base64')
  const cut = new SetupResponder({ ...B, deviate: { nulCutSecrets: true } }, step1, { sessionId: 'SB' })
  t.same(cut.peerSecret, Buffer.from('a'))
  t.equal(codeOf(() => a.onStep5(wire(cut.onStep4(wire(a.onStep3(wire(cut.step3()))))))), 'SSP_ERR_SETUP_DIGEST')
  const whole = new SetupResponder(B, step1, { sessionId: 'SB' })
  t.same(whole.peerSecret, secret, 'without the deviation the secret is kept whole')
})

t.test('refusals: a login refused, a step out of order', async (t) => {
  const a = new SetupInitiator(A, 'b.example', { transactionId: 'T1', sessionId: 'SA' })
  const b = new SetupResponder(B, wire(a.step1()), { sessionId: 'SB' })
  const step6 = a.onStep5(wire(b.onStep4(wire(a.onStep3(wire(b.step3()))))))
  const refused = wire({ ...b.onStep6(wire(step6)).step7, statusCode: 401 })
  t.match(codeOf(() => a.onStep7(refused)), 'SSP_ERR_SETUP_PROTOCOL')
  const c = new SetupInitiator(A, 'b.example', { transactionId: 'T9', sessionId: 'SC' })
  t.equal(codeOf(() => c.onStep5(wire(b.step3()))), 'SSP_ERR_SETUP_PROTOCOL', 'a SendSecretToken where step 5 was due')
  t.notOk(c.awaits(wire(step6)), 'a request is never an awaited answer')
  t.equal(codeOf(() => new SetupResponder(B, wire(step6), { sessionId: 'SB' })), 'SSP_ERR_SETUP_PROTOCOL', 'a responder starts from step 1 only')
})

t.test('one redirect rule: 301/302/303/307/308 with a Location', async (t) => {
  for (const s of [301, 302, 303, 307, 308]) {
    t.ok(isRedirectStatus(s), `${s}`)
    t.equal(redirectLocation(s, '/x'), '/x')
  }
  for (const s of [200, 300, 304, 305, 306, 309, 400]) t.notOk(isRedirectStatus(s), `${s} is not a redirect`)
  t.equal(redirectLocation(307, undefined), undefined, 'no Location: not a redirect to follow')
  t.equal(redirectLocation(307, ''), undefined)
  t.equal(redirectLocation(304, '/x'), undefined)
  t.equal(redirectLocation(undefined, '/x'), undefined)
})

t.test('one resolution of a redirect target: relative to the URL that answered, http(s) only', async (t) => {
  const from = 'http://127.0.0.1:7000/ssp/in'
  t.equal(redirectTarget('/other', from)?.href, 'http://127.0.0.1:7000/other', 'absolute path')
  t.equal(redirectTarget('next', from)?.href, 'http://127.0.0.1:7000/ssp/next', 'relative path')
  t.equal(redirectTarget('https://b.example:8443/x', new URL(from))?.href, 'https://b.example:8443/x', 'absolute URL, other scheme')
  t.equal(redirectTarget('//c.example/y', from)?.href, 'http://c.example/y', 'scheme-relative')
  t.equal(redirectTarget('ftp://c.example/y', from), undefined, 'not http(s): unusable')
  t.equal(redirectTarget('mailto:x@y', from), undefined, 'not http(s): unusable')
  t.equal(redirectTarget('http://[::1', from), undefined, 'not a URL: unusable')
})
