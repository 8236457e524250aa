/**
 * Observe mode of the wire framers (src/wire/observed.ts): what the
 * conformance lab and the test peers frame with.
 *
 *  - Every framer case (test/cases/framer-*.md) in observe mode: the same
 *    outcome however the input is split, requests before the first refusal
 *    exactly as without observe mode, each refusal reported with the code the
 *    engine answers that request with on its own, and each message's bytes
 *    exactly the input's.
 *  - A refused request in a pipeline is reported and the next one delivered,
 *    at every split; limits and llhttp errors still stop.
 *  - The response framer in observe mode, and the test helpers built on it
 *    (ByteClient, the scripted server) with chunked messages.
 */
import * as net from 'node:net'
import t from 'tap'
import type { ErrorCode } from '../src/errors.js'
import type { ObservedMessage } from '../src/wire/observed.js'
import { FramerState, RequestFramer } from '../src/wire/request-framer.js'
import { ResponseFramer, ResponseFramerState } from '../src/wire/response-framer.js'
import { ByteClient } from './helpers/byte-client.js'
import { answer, scriptedServer } from './helpers/client-scripted-server.js'
import { ownCopy, pieces, runFramer, runObserving, splitAt, type ObserveRun, type RunOptions } from './helpers/framer-run.js'
import { loadFramerCases } from './helpers/md-cases.js'
import { post } from './helpers/ssp-requests.js'
import { until } from './helpers/wait.js'

/** Codes that stop the framer in observe mode too: llhttp cannot go on, or a limit bounds the kept bytes. */
const STOPS: ReadonlySet<string> = new Set(['SSP_ERR_HTTP_PARSE', 'SSP_ERR_HEADERS_TOO_LARGE', 'SSP_ERR_BODY_TOO_LARGE'])

/** The run as one comparable value: trace, and each message's bytes and head length. */
function shape (r: ObserveRun): string {
  return JSON.stringify({ trace: r.trace, raw: r.messages.map((m) => [m.raw.toString('latin1'), m.headLength]) })
}

/** The messages' bytes lie end to end in the input (CR/LF between messages skipped); returns where they end. */
function coverage (input: Buffer, messages: readonly ObservedMessage[]): number | string {
  let at = 0
  for (const [i, m] of messages.entries()) {
    while (input[at] === 0x0d || input[at] === 0x0a) at++
    if (!input.subarray(at, at + m.raw.length).equals(m.raw)) return `message ${i} is not the input's bytes at ${at}`
    at += m.raw.length
  }
  return at
}

const cases = loadFramerCases()

for (const c of cases) {
  for (const posture of ['strict', 'interop'] as const) {
    t.test(`observe: ${c.file}: ${c.name} [${posture}]`, async (t) => {
      const o: RunOptions = { ...c.meta, interop: posture === 'interop' }
      const whole = runObserving([ownCopy(c.input)], o)
      const want = shape(whole)

      // However it is split, and with a sink that pauses after every message.
      let bad = -1
      for (let at = 1; at < c.input.length && bad < 0; at++) {
        const r = runObserving(splitAt(c.input, at), o)
        if (shape(r) !== want) {
          bad = at
          t.same(JSON.parse(shape(r)), JSON.parse(want), `split at byte ${at}`)
        }
      }
      t.equal(bad, -1, `identical at every one of ${c.input.length - 1} byte boundaries`)
      t.equal(shape(runObserving(pieces(c.input, 1), o)), want, '1-byte pieces')
      t.equal(shape(runObserving(pieces(c.input, 1), { ...o, pausing: true })), want, '1-byte pieces, pausing after every message')

      // Up to the first refusal, exactly what the framer does without observe mode; there, the same code.
      const plain = runFramer([ownCopy(c.input)], o).trace
      const k = plain.findIndex((l) => l.startsWith('reject '))
      const upTo = k < 0 ? plain.length - 1 : k
      t.same(whole.trace.slice(0, upTo), plain.slice(0, upTo), 'the same requests before the first refusal')
      if (k >= 0) {
        const code = plain[k]!.slice('reject '.length)
        const got = whole.trace[k] ?? ''
        const sameCode = got === `observed ${code}` || got === `reject ${code}`
        // A refusal observed, then a limit crossed later in the same message, stops there.
        const laterStop = !STOPS.has(code) && got.startsWith('reject ') && STOPS.has(got.slice('reject '.length))
        t.ok(sameCode || laterStop, `at the refusal: ${got} (without observe mode: ${plain[k]!})`)
        if (STOPS.has(code)) {
          // A stop is a stop in observe mode too; an upgrade request is reported first, then the framer stops.
          const upgrade = got === `observed ${code}` && whole.trace[k + 1] === `reject ${code}` && /upgrade/i.test(whole.reject?.detail ?? '')
          t.ok(got === `reject ${code}` || upgrade, `a stop is a stop in observe mode too (${got})`)
        }
      }

      // Each message alone gets the verdict it got in the stream: accepted alike, refused with the same code.
      const verdicts = whole.trace.filter((l) => l.startsWith('request ') || l.startsWith('observed '))
      t.equal(verdicts.length, whole.messages.length, 'one message per verdict')
      whole.messages.forEach((m, i) => {
        const alone = runFramer([ownCopy(m.raw)], o).trace[0]
        t.equal(alone, verdicts[i]!.replace(/^observed /, 'reject '), `message ${i} alone`)
        t.equal(m.refusal?.code, verdicts[i]!.startsWith('observed ') ? verdicts[i]!.slice('observed '.length) : undefined, 'refusal on the message')
        t.ok(m.raw.subarray(0, m.headLength).toString('latin1').endsWith('\r\n\r\n'), 'the head ends with the empty line')
        t.equal(m.raw.indexOf('\r\n\r\n'), m.headLength - 4, 'and nowhere before')
        t.equal(m.startLine, m.raw.toString('latin1', 0, m.raw.indexOf('\r\n')), 'start line')
      })

      // Byte-exact: the messages are the input, end to end; a stop reports the rest of it.
      const end = coverage(c.input, whole.messages)
      if (typeof end === 'string') t.fail(end)
      else if (whole.reject !== undefined) {
        let at = end
        while (c.input[at] === 0x0d || c.input[at] === 0x0a) at++
        t.equal(whole.reject.raw?.toString('latin1'), c.input.toString('latin1', at), 'the stop comes with the bytes from the unfinished message on')
      }
    })
  }
}

t.test('a refused request in a pipeline: reported with its code and exact bytes, the next one delivered, at every split', async (t) => {
  const first = post({ tid: 'T0', body: 'zero' })
  const get = post({ method: 'GET', tid: 'BAD', body: 'no' })
  const wrongType = post({ tid: 'T2', contentType: 'text/plain', body: 'two', chunks: 2 })
  const last = post({ tid: 'T3', body: 'three' })
  const input = Buffer.concat([first, get, wrongType, last])
  const expected = [
    'request tid=T0 sid=- ct=ssp13 body="zero" dev=0',
    'observed SSP_ERR_METHOD',
    'observed SSP_ERR_CONTENT_TYPE',
    'request tid=T3 sid=- ct=ssp13 body="three" dev=0',
    'end running'
  ]
  const check = (r: ObserveRun, where: string): boolean => {
    const ok = JSON.stringify(r.trace) === JSON.stringify(expected) &&
      r.messages.length === 4 &&
      r.messages[1]!.raw.equals(get) && r.messages[2]!.raw.equals(wrongType) &&
      r.messages[1]!.method === 'GET' && r.messages[1]!.body.toString() === 'no' &&
      r.messages[2]!.body.toString() === 'two' && r.messages[3]!.raw.equals(last)
    if (!ok) t.fail(`${where}: ${JSON.stringify(r.trace)}`)
    return ok
  }
  t.ok(check(runObserving([ownCopy(input)]), 'whole'))
  let all = true
  for (let at = 1; at < input.length && all; at++) all = check(runObserving(splitAt(input, at)), `split at ${at}`)
  t.ok(all, `every one of ${input.length - 1} splits`)
  t.ok(check(runObserving(pieces(input, 1), { pausing: true }), '1-byte pieces, pausing'))

  const r = runObserving([ownCopy(input)])
  const m = r.messages[2]!
  t.same(m.refusal, { code: 'SSP_ERR_CONTENT_TYPE', detail: undefined })
  t.equal(m.raw.toString('latin1', 0, m.headLength), wrongType.toString('latin1', 0, wrongType.indexOf('\r\n\r\n') + 4), 'head length of a chunked message')
  t.same(m.headers.map(([k]) => k), ['Host', 'Content-Type', 'x-wv-transactionid', 'Transfer-Encoding'], 'header lines in order, names as sent')
  t.equal(m.target, '/ssp')
  t.equal(m.version, '1.1')

  // Without observe mode the same input stops at the GET.
  t.same(runFramer([ownCopy(input)]).trace, [expected[0], 'reject SSP_ERR_METHOD', 'end stopped'])
})

t.test('observe mode: expectations, upgrades, limits', async (t) => {
  const runWith = (input: Buffer, o: RunOptions = {}): { r: ObserveRun, continues: number } => {
    let continues = 0
    const messages: ObservedMessage[] = []
    const trace: string[] = []
    let reject: ObserveRun['reject']
    const framer = new RequestFramer({
      onRequest: (_req, m) => { messages.push(m!); trace.push('request'); return true },
      onObserved: (code, _d, m) => { messages.push(m); trace.push(`observed ${code}`); return true },
      onReject: (code, detail, raw) => { reject = { code, detail, raw }; trace.push(`reject ${code}`) },
      onMessageBegin () {},
      onHeadersComplete () {},
      onContinue: () => { continues++ }
    }, { interop: false, maxHeaderBytes: 4096, maxHeaderCount: 32, maxBodyBytes: o.maxBodyBytes ?? 1024, observe: true })
    framer.push(ownCopy(input))
    return { r: { trace, messages, reject, framer }, continues }
  }

  await t.test('an unmet expectation is observed, its body read; 100-continue is answered only for an accepted request', async (t) => {
    const odd = post({ tid: 'E1', body: 'abc', headers: ['Expect: something'] })
    const fine = post({ tid: 'E2', body: 'def', headers: ['Expect: 100-continue'] })
    const refusedToo = post({ tid: 'E3', contentType: 'text/plain', body: 'ghi', headers: ['Expect: 100-continue'] })
    const { r, continues } = runWith(Buffer.concat([odd, fine, refusedToo]))
    t.same(r.trace, ['observed SSP_ERR_EXPECTATION', 'request', 'observed SSP_ERR_CONTENT_TYPE'])
    t.equal(r.messages[0]!.body.toString(), 'abc', 'the body of the refused request is read')
    t.equal(continues, 1, 'one 100 Continue: for the request the engine accepts')
  })

  await t.test('an upgrade is observed, then the framer stops with the bytes after it', async (t) => {
    const up = post({ tid: 'U1', headers: ['Connection: upgrade', 'Upgrade: websocket'] })
    const { r } = runWith(Buffer.concat([up, Buffer.from('\x00\x01binary')]))
    t.same(r.trace, ['observed SSP_ERR_HTTP_PARSE', 'reject SSP_ERR_HTTP_PARSE'])
    t.ok(r.messages[0]!.raw.equals(up), 'the upgrade request, exactly')
    t.equal(r.reject?.raw?.toString('latin1'), '\x00\x01binary', 'what followed it')
    t.equal(r.framer.state, FramerState.STOPPED)
  })

  await t.test('a body over maxBodyBytes stops, after a refusal too', async (t) => {
    const big = post({ method: 'PUT', tid: 'B1', body: 'x'.repeat(2000) })
    const { r } = runWith(big)
    t.same(r.trace, ['reject SSP_ERR_BODY_TOO_LARGE'], 'a limit is a stop: observe mode keeps every byte')
    t.ok(r.reject?.raw?.equals(big), 'reported with the message as far as it was read')
    const chunked = post({ tid: 'B2', body: 'y'.repeat(2000), chunks: 4 })
    t.same(runWith(chunked).r.trace, ['reject SSP_ERR_BODY_TOO_LARGE'])
  })

  await t.test('an llhttp error stops, with the bytes', async (t) => {
    const ok = post({ tid: 'P1' })
    const { r } = runWith(Buffer.concat([ok, Buffer.from('POST / HTTP/1.1\r\nBad Header\r\n\r\n')]))
    t.same(r.trace, ['request', 'reject SSP_ERR_HTTP_PARSE'])
    t.equal(r.reject?.raw?.toString('latin1'), 'POST / HTTP/1.1\r\nBad Header\r\n\r\n')
  })

  await t.test('HTTP/1.0 is observed; it closes the connection, so parsing ends after it', async (t) => {
    const old = post({ version: '1.0', tid: 'V1' })
    const { r } = runWith(Buffer.concat([old, post({ tid: 'V2' })]))
    t.same(r.trace, ['observed SSP_ERR_HTTP_VERSION'])
    t.equal(r.messages[0]!.version, '1.0')
    t.equal(r.messages[0]!.keepAlive, false)
    t.equal(r.framer.state, FramerState.STOPPED)
  })

  await t.test('observe mode needs onObserved; without observe mode no message is built', async (t) => {
    const sink = { onRequest: () => true, onReject () {}, onMessageBegin () {}, onHeadersComplete () {} }
    t.throws(() => new RequestFramer(sink, { interop: false, maxHeaderBytes: 100, maxHeaderCount: 4, maxBodyBytes: 100, observe: true }), TypeError)
    const args: unknown[][] = []
    const f = new RequestFramer({ ...sink, onRequest: (...a: unknown[]) => { args.push(a); return true } },
      { interop: false, maxHeaderBytes: 4096, maxHeaderCount: 32, maxBodyBytes: 1024 })
    f.push(ownCopy(Buffer.concat([post({ tid: 'N1' }), post({ tid: 'N2', chunks: 1, body: 'b' })])))
    t.equal(args.length, 2)
    t.ok(args.every((a) => a.length === 1), 'onRequest gets the record only')
    f.destroy()
  })
})

// ---------------------------------------------------------------------------
// ResponseFramer

interface ResponseEvent { kind: 'response' | 'observed', code: ErrorCode | undefined, location: string | undefined, m: ObservedMessage }

function observeResponses (chunks: Buffer[], finish: boolean): { events: ResponseEvent[], error: { code: ErrorCode, raw: Buffer | undefined } | undefined, framer: ResponseFramer } {
  const events: ResponseEvent[] = []
  let error: { code: ErrorCode, raw: Buffer | undefined } | undefined
  const framer = new ResponseFramer({
    onResponse: (_s, _k, location, _n, m) => { events.push({ kind: 'response', code: undefined, location, m: m! }); return true },
    onObserved: (code, _d, m) => { events.push({ kind: 'observed', code, location: undefined, m }); return true },
    onResponseError: (code, _d, raw) => { error = { code, raw } }
  }, { maxHeaderBytes: 4096, maxBodyBytes: 4096, observe: true })
  for (const c of chunks) framer.push(c)
  if (finish) framer.finish()
  return { events, error, framer }
}

function responseShape (r: ReturnType<typeof observeResponses>): string {
  return JSON.stringify({
    events: r.events.map((e) => [e.kind, e.code, e.location, e.m.status, e.m.version, e.m.raw.toString('latin1'), e.m.headLength, e.m.headers, e.m.body.toString('latin1'), e.m.keepAlive]),
    error: r.error === undefined ? undefined : r.error.code
  })
}

t.test('response framer, observe mode: each response whole and byte-exact, however split', async (t) => {
  const parts = [
    'HTTP/1.1 100 Continue\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK',
    'HTTP/1.1 307 Temporary Redirect\r\nLocation:  /there \r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n',
    'HTTP/2.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nz',
    'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end'
  ]
  const input = Buffer.from(parts.join(''), 'latin1')
  const whole = observeResponses([ownCopy(input)], true)
  t.same(whole.events.map((e) => [e.kind, e.code, e.m.status]), [
    ['response', undefined, 100], ['response', undefined, 200], ['response', undefined, 307],
    ['observed', 'SSP_ERR_HTTP_RESPONSE', 200], ['response', undefined, 200]
  ])
  t.same(whole.events.map((e) => e.m.raw.toString('latin1')), parts, 'every response exactly as sent')
  const redirect = whole.events[2]!
  t.equal(redirect.location, '/there', 'Location still found')
  t.equal(redirect.m.body.toString(), 'abcde', 'chunked body without its framing')
  t.same(redirect.m.headers, [['Location', '/there'], ['Transfer-Encoding', 'chunked']], 'header lines, trailers not among them')
  t.equal(redirect.m.headLength, parts[2]!.indexOf('\r\n\r\n') + 4)
  t.equal(whole.events[3]!.m.version, '2.0')
  t.equal(whole.events[4]!.m.body.toString(), 'until the end', 'a body that runs to the end of the connection')
  t.equal(whole.error, undefined)

  const want = responseShape(whole)
  let bad = -1
  for (let at = 1; at < input.length && bad < 0; at++) {
    if (responseShape(observeResponses(splitAt(input, at), true)) !== want) bad = at
  }
  t.equal(bad, -1, `identical at every one of ${input.length - 1} byte boundaries`)
  t.equal(responseShape(observeResponses(pieces(input, 1), true)), want, '1-byte pieces')

  // Without observe mode the HTTP/2.0 response is the end of the stream.
  const plain: string[] = []
  const f = new ResponseFramer({
    onResponse: (status, _k, _l, _n, m) => { plain.push(`${status} ${m === undefined ? 'no message' : 'message'}`); return true },
    onResponseError: (code) => { plain.push(code) }
  }, { maxHeaderBytes: 4096, maxBodyBytes: 4096 })
  f.push(ownCopy(input))
  t.same(plain, ['100 no message', '200 no message', '307 no message', 'SSP_ERR_HTTP_RESPONSE'])
  f.destroy()
})

t.test('response framer, observe mode: what still stops', async (t) => {
  const up = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'
  const r = observeResponses([Buffer.from(up + '\x81\x00', 'latin1')], false)
  t.same(r.events.map((e) => [e.kind, e.code]), [['observed', 'SSP_ERR_HTTP_RESPONSE']], 'a 101 is observed')
  t.equal(r.error?.code, 'SSP_ERR_HTTP_RESPONSE', 'then the framer stops')
  t.equal(r.error?.raw?.toString('latin1'), '\x81\x00', 'with the bytes after it')

  const garbage = observeResponses([Buffer.from('HTTP/1.1 204 No Content\r\n\r\nnot http', 'latin1')], false)
  t.equal(garbage.events.length, 1)
  t.equal(garbage.error?.raw?.toString('latin1'), 'not http')

  const big = observeResponses([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5000)}`, 'latin1')], false)
  t.equal(big.error?.code, 'SSP_ERR_RESPONSE_BODY_TOO_LARGE')

  const cut = observeResponses([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', 'latin1')], true)
  t.equal(cut.error?.code, 'SSP_ERR_HTTP_RESPONSE', 'closed in the middle of a response')
  t.equal(cut.error?.raw?.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab')

  t.throws(() => new ResponseFramer({ onResponse: () => true, onResponseError () {} }, { maxHeaderBytes: 1, maxBodyBytes: 1, observe: true }), TypeError)

  // The sink may stop or destroy the framer from inside its callback (it runs between llhttp executes).
  const two = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1')
  let n = 0
  const stopping = new ResponseFramer({ onResponse: () => { n++; return false }, onObserved: () => true, onResponseError () {} }, { maxHeaderBytes: 99, maxBodyBytes: 9, observe: true })
  stopping.push(two)
  t.equal(n, 1, 'false stops after the first')
  t.equal(stopping.state, ResponseFramerState.STOPPED)
  stopping.destroy()
  let m = 0
  const destroying: ResponseFramer = new ResponseFramer({ onResponse: () => { m++; destroying.destroy(); return true }, onObserved: () => true, onResponseError () {} }, { maxHeaderBytes: 99, maxBodyBytes: 9, observe: true })
  destroying.push(two)
  destroying.push(two)
  t.equal(m, 1, 'destroyed from inside the sink: nothing more')
})

// ---------------------------------------------------------------------------
// The test helpers frame with it

t.test('ByteClient frames a chunked answer as the engine does', async (t) => {
  const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n'
  const plain = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop'
  const server = net.createServer((s) => {
    s.on('error', () => undefined)
    // One byte at a time: the answers arrive split everywhere.
    const bytes = Buffer.from(chunked + plain, 'latin1')
    let i = 0
    const next = (): void => {
      if (i >= bytes.length || s.destroyed) return
      s.write(bytes.subarray(i, ++i), next)
    }
    next()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const c = await ByteClient.connect((server.address() as net.AddressInfo).port)
  t.teardown(() => c.destroy())
  const answers = await c.waitAnswers(2)
  t.equal(answers.length, 2)
  t.equal(answers[0]!.status, 200)
  t.equal(answers[0]!.body.toString(), 'Wikipedia', 'de-chunked')
  t.equal(answers[0]!.raw, chunked, 'the answer exactly as sent')
  t.equal(answers[0]!.headers['x-a'], '1')
  t.equal(answers[1]!.status, 404)
  t.equal(answers[1]!.body.toString(), 'nop')
  t.equal(c.parseError, undefined)
})

t.test('the scripted server frames chunked requests and sees requests the engine would refuse', async (t) => {
  const srv = await scriptedServer(t, () => answer(200))
  const sock = net.connect(srv.port, '127.0.0.1')
  t.teardown(() => sock.destroy())
  sock.on('error', () => undefined)
  const a = post({ tid: 'C1', body: 'chunked body', chunks: 3 })
  const b = post({ method: 'GET', tid: 'G1' })
  const both = Buffer.concat([a, b])
  for (let i = 0; i < both.length; i += 7) sock.write(both.subarray(i, i + 7))
  await until(() => srv.requests.length === 2, 'both requests framed')
  const [r1, r2] = srv.requests
  t.equal(r1!.body.toString(), 'chunked body', 'de-chunked')
  t.equal(r1!.rawHead, a.toString('latin1', 0, a.indexOf('\r\n\r\n') + 4), 'the head exactly as sent')
  t.equal(r1!.headers['transfer-encoding'], 'chunked')
  t.equal(r1!.message.refusal, undefined, 'a request the engine accepts')
  t.equal(r2!.method, 'GET')
  t.equal(r2!.message.refusal?.code, 'SSP_ERR_METHOD', 'still seen, with what the engine would answer')
})
