/**
 * The framer specification (test/cases/framer-*.md) run against RequestFramer:
 * every input whole, split in two at every byte boundary, in 1-byte pieces, and
 * with a sink that pauses after every request; the trace must be identical.
 * Plus the zero-copy rules for bodies, and large pipelines at seeded random cuts.
 */
import t from 'tap'
import { ERRORS } from '../src/errors.js'
import { FramerState, RequestFramer } from '../src/wire/request-framer.js'
import { loadFramerCases, parseCaseFile, decodeHttpBlock, type FramerCase } from './helpers/md-cases.js'
import {
  ownCopy, pieces, randomPieces, runFramer, splitAt, type RunOptions
} from './helpers/framer-run.js'
import { pipeline, post, tids } from './helpers/ssp-requests.js'

const cases = loadFramerCases()

t.test('the case files load', async (t) => {
  const files = new Set(cases.map((c) => c.file))
  for (const f of ['framer-basic.md', 'framer-content-type.md', 'framer-ids.md', 'framer-http.md', 'framer-limits.md']) {
    t.ok(files.has(f), `${f} has cases`)
  }
  t.ok(cases.length >= 80, `${cases.length} cases`)
  // every reject code in the traces is a real code with a 4xx/5xx status
  for (const c of cases) {
    for (const line of [...c.strict, ...(c.interop ?? [])]) {
      const m = /^reject (\S+)$/.exec(line)
      if (m === null) continue
      const code = m[1]! as keyof typeof ERRORS
      t.ok(ERRORS[code] !== undefined && ERRORS[code].status >= 400, `${c.name}: ${code} answers with an error status`)
    }
  }
})

t.test('notation', async (t) => {
  t.same(decodeHttpBlock(['A', 'B', '', ''], 'x'), Buffer.from('A\r\nB\r\n\r\n'), 'lines joined with CRLF, nothing after the last')
  t.same(decodeHttpBlock(['A\\n\\', 'B'], 'x'), Buffer.from('A\nB'), 'trailing backslash: no line terminator')
  t.same(decodeHttpBlock(['\\r\\t\\\\\\x00\\xff'], 'x'), Buffer.from([0x0d, 0x09, 0x5c, 0x00, 0xff]), 'escapes')
  t.throws(() => decodeHttpBlock(['\\q'], 'x'), 'unknown escape refused')
  const parsed = parseCaseFile('x.md', [
    '# group', '## one', '<!-- meta={"maxBodyBytes": 3} -->', '```http', 'X', '```', '```trace', 'a', '', ' b ', '```',
    '```trace interop', 'c', '```'
  ].join('\n'))
  t.equal(parsed.length, 1)
  t.same(parsed[0]!.meta, { maxBodyBytes: 3 })
  t.same(parsed[0]!.strict, ['a', 'b'])
  t.same(parsed[0]!.interop, ['c'])
  t.throws(() => parseCaseFile('x.md', '## two\n```http\nX\n```\n'), 'a case without a trace is an error')
})

function optionsFor (c: FramerCase, interop: boolean, pausing = false): RunOptions {
  return { ...c.meta, interop, pausing }
}

for (const c of cases) {
  for (const posture of ['strict', 'interop'] as const) {
    const expected = posture === 'interop' ? (c.interop ?? c.strict) : c.strict
    t.test(`${c.file}: ${c.name} [${posture}]`, async (t) => {
      const o = optionsFor(c, posture === 'interop')
      const whole = runFramer([ownCopy(c.input)], o)
      t.same(whole.trace, expected, 'whole input')
      // Compare every other way of feeding it against the whole run, including
      // message-begin / headers-complete events; report only the first mismatch
      // of each kind so a broken framer does not print thousands of failures.
      let splitBad = -1
      for (let at = 1; at < c.input.length; at++) {
        const r = runFramer(splitAt(c.input, at), o)
        if (JSON.stringify(r.full) !== JSON.stringify(whole.full)) {
          splitBad = at
          t.same(r.full, whole.full, `split at byte ${at}`)
          break
        }
      }
      t.equal(splitBad, -1, `identical trace split at every one of ${c.input.length - 1} byte boundaries`)
      t.same(runFramer(pieces(c.input, 1), o).full, whole.full, '1-byte pieces')
      t.same(runFramer([ownCopy(c.input)], { ...o, pausing: true }).full, whole.full, 'whole, pausing after every request')
      t.same(runFramer(pieces(c.input, 1), { ...o, pausing: true }).full, whole.full, '1-byte pieces, pausing after every request')
      // the header accessor finds the id headers the same way the record does
      for (const req of whole.requests) {
        if (req.transactionId !== undefined) t.equal(req.header('X-WV-TransactionId'), req.transactionId, 'header() finds the same transaction id')
        if (req.sessionId !== undefined) t.equal(req.header('x-wv-sessionid'), req.sessionId, 'header() finds the same session id')
      }
    })
  }
}

t.test('zero-copy bodies', async (t) => {
  t.test('a body in one chunk is a view of that chunk', async (t) => {
    const input = ownCopy(Buffer.concat([post({ tid: 'A', body: 'hello world' }), post({ tid: 'B', body: 'second' }), post({ tid: 'C', body: 'x', chunks: 1 })]))
    const r = runFramer([input])
    t.equal(r.requests.length, 3)
    for (const req of r.requests) {
      t.equal(req.body.buffer, input.buffer, `${req.transactionId ?? '?'}: body shares the chunk's memory`)
      t.ok(req.body.byteOffset >= input.byteOffset && req.body.byteOffset + req.body.length <= input.byteOffset + input.length, 'inside the chunk')
      t.equal(req.src.buffer, input.buffer, 'header bytes are the chunk too (no copy)')
    }
    t.equal(r.requests[0]!.body.toString(), 'hello world')
    // a view: writing the chunk shows through the body
    const at = input.indexOf('hello world')
    input[at] = 0x48
    t.equal(r.requests[0]!.body.toString(), 'Hello world', 'the body is the chunk\'s bytes, not a copy')
  })

  t.test('a body in one chunk after a pause/resume is still a view', async (t) => {
    const input = ownCopy(pipeline(3))
    const r = runFramer([input], { pausing: true })
    t.same(r.requests.map((q) => q.transactionId), tids(0, 3))
    for (const req of r.requests) t.equal(req.body.buffer, input.buffer)
  })

  t.test('a head in one chunk and a body in the next: the body is a view of the second chunk', async (t) => {
    const full = post({ tid: 'A', body: 'abcdefgh' })
    const headLen = full.indexOf('\r\n\r\n') + 4
    const chunks = splitAt(full, headLen)
    const r = runFramer(chunks)
    t.equal(r.requests.length, 1)
    t.equal(r.requests[0]!.body.buffer, chunks[1]!.buffer, 'view of the chunk the whole body arrived in')
    t.equal(r.requests[0]!.transactionId, 'A')
  })

  t.test('a body that spans reads is joined once, into new memory', async (t) => {
    const body = 'x'.repeat(100) + 'y'.repeat(100) + 'z'.repeat(100)
    const full = post({ tid: 'A', body })
    const headLen = full.indexOf('\r\n\r\n') + 4
    const chunks = [ownCopy(full.subarray(0, headLen + 50)), ownCopy(full.subarray(headLen + 50, headLen + 170)), ownCopy(full.subarray(headLen + 170))]
    const concat = Buffer.concat
    let concats = 0
    Buffer.concat = function (list: readonly Uint8Array[], totalLength?: number) {
      concats++
      return concat.call(Buffer, list, totalLength)
    } as typeof Buffer.concat
    let r
    try {
      r = runFramer(chunks)
    } finally {
      Buffer.concat = concat
    }
    t.equal(r.requests.length, 1)
    const b = r.requests[0]!.body
    t.equal(b.toString(), body, 'content')
    for (const c of chunks) t.not(b.buffer, c.buffer, 'not a view of any read')
    t.equal(concats, 1, 'one copy for the body (the head was in one read)')
  })

  t.test('a head that spans reads: ids and headers still right', async (t) => {
    const full = post({ tid: 'Tspan', sid: 'Sspan', body: 'b', headers: ['X-Other: other value'] })
    for (let at = 1; at < full.length; at++) {
      const r = runFramer(splitAt(full, at))
      const req = r.requests[0]
      if (req === undefined || req.transactionId !== 'Tspan' || req.sessionId !== 'Sspan' || req.header('x-other') !== 'other value' || req.header('HOST') !== 'b.example') {
        t.fail(`split at ${at}: ${JSON.stringify(r.trace)} x-other=${String(req?.header('x-other'))}`)
        return
      }
    }
    t.pass('every split')
  })

  t.test('a chunked body over several chunk-data pieces in one read is joined', async (t) => {
    const input = ownCopy(post({ tid: 'A', body: 'abcdef', chunks: 3 }))
    const r = runFramer([input])
    t.equal(r.requests[0]!.body.toString(), 'abcdef')
  })
})

t.test('ids are strings only when read', async (t) => {
  const input = ownCopy(post({ tid: 'Tlazy', sid: 'Slazy' }))
  const r = runFramer([input])
  const req = r.requests[0]!
  t.equal(req.src.toString('latin1', req.tidOff, req.tidOff + req.tidLen), 'Tlazy', 'tid kept as an offset into the header bytes')
  t.equal(req.src.toString('latin1', req.sidOff, req.sidOff + req.sidLen), 'Slazy', 'sid kept as an offset into the header bytes')
  t.equal(req.transactionId, 'Tlazy')
  t.equal(req.sessionId, 'Slazy')
  t.equal(req.header('x-absent'), undefined)
})

t.test('large pipelines at seeded random cut points', async (t) => {
  for (const n of [1, 16, 1000]) {
    const input = pipeline(n)
    const whole = runFramer([ownCopy(input)])
    t.equal(whole.requests.length, n, `${n} requests`)
    t.same(whole.requests.map((q) => q.transactionId), tids(0, n), 'in order')
    t.ok(whole.requests.every((q, i) => q.body.toString() === `body-${i}`), 'bodies')
    for (const seed of [1, 2, 3, 4, 5]) {
      const cuts = Math.min(input.length - 1, n * 3)
      t.same(runFramer(randomPieces(input, cuts, seed)).full, whole.full, `n=${n} seed=${seed}: ${cuts} random cuts`)
    }
    t.same(runFramer(randomPieces(input, n, 99), { pausing: true }).full, whole.full, `n=${n}: random cuts, pausing`)
  }

  t.test('an invalid request in the middle of 1000', async (t) => {
    const input = Buffer.concat([pipeline(500), post({ method: 'GET', tid: 'BAD' }), pipeline(499, 501)])
    const whole = runFramer([ownCopy(input)])
    t.equal(whole.requests.length, 500)
    t.same(whole.trace.slice(-2), ['reject SSP_ERR_METHOD', 'end stopped'])
    for (const seed of [11, 12, 13]) {
      t.same(runFramer(randomPieces(input, 3000, seed)).full, whole.full, `seed ${seed}`)
    }
  })
})

t.test('bufferedBytes while paused', async (t) => {
  const a = post({ tid: 'A' })
  const b = post({ tid: 'B' })
  const seen: string[] = []
  const f = new RequestFramer({
    onRequest (r) { seen.push(r.transactionId ?? '-'); return false },
    onReject () { seen.push('reject') },
    onMessageBegin () {},
    onHeadersComplete () {}
  }, { interop: false, maxHeaderBytes: 1000, maxHeaderCount: 10, maxBodyBytes: 1000 })
  f.push(Buffer.concat([a, b]))
  t.same(seen, ['A'])
  t.equal(f.state, FramerState.PAUSED)
  t.equal(f.bufferedBytes, b.length, 'the rest of the read is kept')
  f.push(ownCopy(a))
  t.equal(f.bufferedBytes, b.length + a.length, 'reads while paused are queued')
  f.resume()
  t.same(seen, ['A', 'B'])
  f.resume()
  t.same(seen, ['A', 'B', 'A'], 'in order')
  t.equal(f.bufferedBytes, 0)
  t.equal(f.state, FramerState.PAUSED, 'paused again after the last request (the sink said so)')
  f.stop()
  f.push(ownCopy(b))
  t.same(seen, ['A', 'B', 'A'], 'nothing parsed after stop()')
  f.destroy()
})
