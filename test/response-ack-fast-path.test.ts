// The response framer's one fast path: this engine's own dummy 200, recognised
// whole at a message boundary without llhttp (src/wire/response-framer.ts).
// Its events must be exactly llhttp's, however the reads split the stream, and
// it must be taken in the case it exists for (a read of nothing but 200s).
import t from 'tap'
import { ResponseFramer, type ResponseSink } from '../src/wire/response-framer.js'
import { Parser } from '../src/wire/llhttp.js'
import { ACK } from '../src/wire/replies.js'
import { assertEverySplit, assertRandomSplits } from './helpers/splits.js'

interface Seen { status: number, keepAlive: boolean, location: string | undefined, bodyBytes: number }
interface Outcome { seen: Seen[], error: string | undefined }

const LIMITS = { maxHeaderBytes: 16 * 1024, maxBodyBytes: 1024 * 1024 }

/** Feed `pieces`; `stopAfter`: the sink returns false on that response (1-based). */
function frame (pieces: Buffer[], opts = LIMITS, stopAfter = 0): Outcome {
  const seen: Seen[] = []
  let error: string | undefined
  const sink: ResponseSink = {
    onResponse (status, keepAlive, location, bodyBytes) {
      seen.push({ status, keepAlive, location, bodyBytes })
      return seen.length !== stopAfter
    },
    onResponseError (code) { error = code }
  }
  const f = new ResponseFramer(sink, opts)
  for (const p of pieces) f.push(p)
  f.destroy()
  return { seen, error }
}

/** llhttp's calls while `fn` runs. */
function executes (fn: () => void): number {
  const proto = Parser.prototype as unknown as { execute: (data: Buffer) => number }
  const orig = proto.execute
  let n = 0
  proto.execute = function (this: unknown, data: Buffer) { n++; return orig.call(this, data) }
  try { fn() } finally { proto.execute = orig }
  return n
}

const OK200: Seen = { status: 200, keepAlive: true, location: undefined, bodyBytes: 0 }
const A = ACK.toString('latin1')
// Near misses of the dummy 200: each must go to llhttp and come out as llhttp says.
const NEAR = [
  'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', // another case: same 200, llhttp's path
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', // same length as the 200 up to the digit
  'HTTP/1.1 201 OK\r\nContent-Length: 0\r\n\r\n', // another status, same size
  `HTTP/1.1 200 OK\r\nContent-Length: ${ACK.length}\r\n\r\n${ACK.toString('latin1')}`, // a body that is a 200: a read starting in it is not at a boundary
  'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' // the last answer: stops
]
const NEAR_SEEN: Seen[] = [
  OK200,
  { status: 200, keepAlive: true, location: undefined, bodyBytes: 2 },
  { status: 201, keepAlive: true, location: undefined, bodyBytes: 0 },
  { status: 200, keepAlive: true, location: undefined, bodyBytes: ACK.length },
  { status: 200, keepAlive: false, location: undefined, bodyBytes: 0 }
]
const MIXED = Buffer.from(A.repeat(5) + NEAR[0]! + A.repeat(3) + NEAR[1]! + A + NEAR[2]! + NEAR[3]! + A.repeat(2) + NEAR[4]!, 'latin1')
const MIXED_SEEN: Seen[] = [
  ...Array(5).fill(OK200), NEAR_SEEN[0]!, ...Array(3).fill(OK200), NEAR_SEEN[1]!, OK200, NEAR_SEEN[2]!, NEAR_SEEN[3]!,
  ...Array(2).fill(OK200), NEAR_SEEN[4]!
]

t.test('a read of nothing but dummy 200s is answered without llhttp', async t => {
  let out: Outcome | undefined
  const calls = executes(() => { out = frame([Buffer.from(A.repeat(64), 'latin1')]) })
  t.same(out, { seen: Array(64).fill(OK200), error: undefined }, '64 responses, as llhttp gives them')
  t.equal(calls, 0, 'llhttp not called')
  // One 200 more than a slab's first size, and one alone.
  t.equal(frame([Buffer.from(A.repeat(65), 'latin1')]).seen.length, 65)
  t.equal(frame([ACK]).seen.length, 1)
})

t.test('a mixed answer stream gives llhttp\'s events, split at every byte boundary', async t => {
  t.same(frame([MIXED]), { seen: MIXED_SEEN, error: undefined }, 'whole')
  assertEverySplit(t, MIXED, frame, { seen: MIXED_SEEN, error: undefined })
  assertRandomSplits(MIXED, 16, 500, pieces => {
    const r = frame(pieces)
    return JSON.stringify(r.seen) === JSON.stringify(MIXED_SEEN) && r.error === undefined
  })
  t.pass('500 random multi-way splits agree')
})

t.test('after a 200 split across reads, llhttp finishes it and the next read is fast again', async t => {
  const two = Buffer.from(A + A, 'latin1')
  let out: Outcome | undefined
  const calls = executes(() => {
    out = frame([two.subarray(0, 50), two.subarray(50), Buffer.from(A.repeat(4), 'latin1')])
  })
  t.same(out?.seen, Array(6).fill(OK200))
  t.equal(calls, 2, 'llhttp parses the split 200 (its two reads), not the four after it')
})

t.test('the sink stopping, garbage after 200s, a limit below the 200\'s size', async t => {
  const ten = Buffer.from(A.repeat(10), 'latin1')
  t.same(frame([ten], LIMITS, 3).seen, Array(3).fill(OK200), 'sink returns false on the 3rd: nothing after it')
  t.same(frame([ten, ten], LIMITS, 12).seen.length, 12, 'stopped in a second read')
  const garbage = frame([Buffer.from(A.repeat(2) + 'HTTX/1.1 200 OK\r\n\r\n' + A, 'latin1')])
  t.same(garbage, { seen: [OK200, OK200], error: 'SSP_ERR_HTTP_RESPONSE' }, 'the 200s before the garbage, then the error')
  // The 200 counts 21 header bytes on llhttp's path; a limit of 20 refuses it either way.
  t.same(frame([ten], { maxHeaderBytes: 20, maxBodyBytes: 0 }), { seen: [], error: 'SSP_ERR_RESPONSE_HEADERS_TOO_LARGE' }, 'limit 20: refused')
  t.equal(frame([ten], { maxHeaderBytes: 21, maxBodyBytes: 0 }).seen.length, 10, 'limit 21: accepted')
  const one = Array.from({ length: ACK.length }, (_, i) => ACK.subarray(i, i + 1))
  t.same(frame(one, { maxHeaderBytes: 20, maxBodyBytes: 0 }).error, 'SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', 'limit 20, byte by byte: refused too')
  t.same(frame([Buffer.from(NEAR[4]! + A, 'latin1')]).seen, [NEAR_SEEN[4]], 'nothing after Connection: close')
})
