/**
 * Property-based fuzzing (fast-check) of the server framer and the set-up
 * parser.
 *
 * CI runs a FIXED seed and a moderate number of runs. For a longer run on
 * demand:
 *
 *   SSP_FUZZ_RUNS=20000 npx tap test/fuzz-framer.test.ts            # random seed, printed
 *   SSP_FUZZ_RUNS=20000 SSP_FUZZ_SEED=123 npx tap test/fuzz-framer.test.ts
 *
 * Inputs: HTTP requests built from a grammar of good and bad parts (methods,
 * versions, header lines, line endings, Content-Length, chunked bodies,
 * pipelining), then mutated (byte flips, insertions, deletions, duplicated
 * slices, truncation), plus plain random bytes; fed at random split points.
 *
 * Properties:
 *  - RequestFramer never throws; the outcome is defined: requests, then at
 *    most one refusal with a known code, then nothing; the same bytes give
 *    the same outcome whatever the split and whether the sink pauses; nothing
 *    stays buffered in a running framer, nothing after destroy().
 *  - A live WireServer, fed the same bytes over TCP at random split points,
 *    answers exactly that outcome: one 200 per request, then the refusal's
 *    status and X-SSP-Error, and stays up and serving.
 *  - parseSetup returns or throws an SspError SSP_ERR_XML or
 *    SSP_ERR_SETUP_PROTOCOL, and nothing else, for any input.
 */
import t from 'tap'
import fc from 'fast-check'
import { ERRORS, isSspError, type ErrorCode } from '../src/errors.js'
import { buildSetup, Mode, parseSetup, SetupKind, type SetupMessage } from '../src/ssp/messages.js'
import { FramerState, RequestFramer } from '../src/wire/request-framer.js'
import { WireServer } from '../src/wire/server.js'
import { collectUntilClose, frameAnswers } from './helpers/byte-client.js'

const LONG = process.env.SSP_FUZZ_RUNS !== undefined
const RUNS = LONG ? Math.max(1, Number(process.env.SSP_FUZZ_RUNS)) : 0
const SEED = process.env.SSP_FUZZ_SEED !== undefined
  ? Number(process.env.SSP_FUZZ_SEED)
  : LONG ? (Date.now() ^ (process.pid << 8)) >>> 0 : 0x55f0_2024
/** Runs per property: fixed and moderate in CI, SSP_FUZZ_RUNS on demand. */
function runs (ci: number, share = 1): number {
  return LONG ? Math.max(1, Math.round(RUNS * share)) : ci
}
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns, endOnFailure: true })
t.comment(`fast-check seed ${SEED}${LONG ? ` (SSP_FUZZ_RUNS=${RUNS})` : ' (fixed, CI)'}`)

/** Codes the framer (and so the server) may refuse a request with. */
const FRAMER_CODES = new Set<ErrorCode>([
  'SSP_ERR_HTTP_PARSE', 'SSP_ERR_HTTP_VERSION', 'SSP_ERR_METHOD', 'SSP_ERR_CONTENT_TYPE',
  'SSP_ERR_TRANSACTION_ID_MISSING', 'SSP_ERR_TRANSACTION_ID_INVALID', 'SSP_ERR_SESSION_ID_INVALID',
  'SSP_ERR_HEADERS_TOO_LARGE', 'SSP_ERR_BODY_TOO_LARGE'
])

// ------------------------------------------------------------------ input generators

const CRLF = fc.oneof({ weight: 20, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\r\n', '\n\r') })
const token = fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/)
const junk = fc.string({ unit: 'binary-ascii', maxLength: 12 })
const idValue = fc.oneof({ weight: 8, arbitrary: token }, { weight: 1, arbitrary: fc.constantFrom('', ' ', '5@a.example', '0000000042-7', 'a b', 'T\u00e9') }, { weight: 1, arbitrary: junk })

const method = fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'HEAD', 'PRI', 'post', 'POS', 'CONNECT', 'OPTIONS', '') })
const target = fc.oneof({ weight: 10, arbitrary: fc.constant('/') }, { weight: 1, arbitrary: fc.constantFrom('*', '/ssp?x=1', 'http://a.example/', '', '/a b') })
const version = fc.oneof({ weight: 12, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.12', 'HTTP/9.9') })

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('application/vnd.wv.ssp+xml', 'application/vnd.wv.ssp.xml', 'Application/VND.WV.SSP+XML; charset=UTF-8') },
  { weight: 1, arbitrary: fc.constantFrom('text/xml', '', 'application/vnd.wv.ssp+xml;', 'application/vnd.wv.ssp+xmlx') })

/** One extra header line (name: value) from good, odd and hostile shapes. */
const extraHeader: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('Host: x', 'Connection: keep-alive', 'Connection: Keep-Alive', 'Connection: close', 'User-Agent: fuzz') },
  fc.constantFrom('Transfer-Encoding: chunked',
    'Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: chunked, identity', 'Content-Length: 0', 'Content-Length: 3, 3',
    'Expect: 100-continue', 'Upgrade: h2c', 'Connection: upgrade', 'X-A: a\r\n b', 'X-A: a\rb', 'X-A: a\0b', 'Content-Length : 1',
    'x-wv-transactionid: T2', 'x-wv-sessionid: S2', 'Trailer: x', ': empty-name', 'NoColon'),
  fc.tuple(token, junk).map(([n, v]) => `${n}: ${v}`)
)

interface Shape {
  method: string
  target: string
  version: string
  ct: string | undefined
  tid: string | undefined
  sid: string | undefined
  extras: string[]
  body: string
  framing: 'length' | 'chunked' | 'none' | 'wrong-length'
  chunks: number[]
  ext: string
  eol: string
}

const shape: fc.Arbitrary<Shape> = fc.record({
  method,
  target,
  version,
  ct: fc.option(contentType, { freq: 8, nil: undefined }),
  tid: fc.option(idValue, { freq: 10, nil: undefined }),
  sid: fc.option(idValue, { freq: 2, nil: undefined }),
  extras: fc.array(extraHeader, { maxLength: 2 }),
  body: fc.oneof(fc.constant('<WV-SSP-Message/>'), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 })),
  framing: fc.constantFrom('length', 'length', 'length', 'length', 'chunked', 'chunked', 'none', 'wrong-length'),
  chunks: fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 4 }),
  ext: fc.constantFrom('', '', ';a=b', ';' + 'e'.repeat(40), ' ', ';\r'),
  eol: CRLF
})

function render (s: Shape): Buffer {
  const body = Buffer.from(s.body, 'utf8')
  const lines = [`${s.method} ${s.target} ${s.version}`]
  if (s.ct !== undefined) lines.push(`Content-Type: ${s.ct}`)
  if (s.tid !== undefined) lines.push(`x-wv-transactionid: ${s.tid}`)
  if (s.sid !== undefined) lines.push(`x-wv-sessionid: ${s.sid}`)
  lines.push(...s.extras)
  let payload: Buffer
  if (s.framing === 'chunked') {
    lines.push('Transfer-Encoding: chunked')
    const parts: Buffer[] = []
    let off = 0
    for (const n of s.chunks) {
      if (off >= body.length) break
      const piece = body.subarray(off, off + n)
      off += piece.length
      parts.push(Buffer.from(`${piece.length.toString(16)}${s.ext}\r\n`, 'latin1'), piece, Buffer.from('\r\n'))
    }
    if (off < body.length) parts.push(Buffer.from(`${(body.length - off).toString(16)}\r\n`), body.subarray(off), Buffer.from('\r\n'))
    parts.push(Buffer.from('0\r\n\r\n'))
    payload = Buffer.concat(parts)
  } else if (s.framing === 'length') {
    lines.push(`Content-Length: ${body.length}`)
    payload = body
  } else if (s.framing === 'wrong-length') {
    lines.push(`Content-Length: ${body.length + 2}`)
    payload = body
  } else {
    payload = Buffer.alloc(0)
  }
  return Buffer.concat([Buffer.from(lines.join(s.eol) + s.eol + s.eol, 'latin1'), payload])
}

type Mutation = { kind: 'flip' | 'insert' | 'delete' | 'dup' | 'truncate', at: number, byte: number, len: number }
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('flip', 'insert', 'delete', 'dup', 'truncate'),
  at: fc.nat(),
  byte: fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x00, 0x20, 0x3a, 0x3b, 0x7f, 0xff, 0x09), fc.integer({ min: 0, max: 255 })),
  len: fc.integer({ min: 1, max: 16 })
})

function mutate (input: Buffer, ms: Mutation[]): Buffer {
  let b = input
  for (const m of ms) {
    if (b.length === 0) break
    const at = m.at % b.length
    switch (m.kind) {
      case 'flip': b = Buffer.from(b); b[at] = m.byte; break
      case 'insert': b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]); break
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]); break
      case 'dup': b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]); break
      case 'truncate': b = b.subarray(0, at); break
    }
  }
  return b
}

/** Pipelined requests, maybe mutated; or plain random bytes. */
const httpInput: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: fc.array(shape, { minLength: 1, maxLength: 4 }).map((ss) => Buffer.concat(ss.map(render))) },
  { weight: 4, arbitrary: fc.tuple(fc.array(shape, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([ss, ms]) => mutate(Buffer.concat(ss.map(render)), ms)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom('POST / HTTP/1.1\r\n', 'Content-Length: 1\r\n', 'Transfer-Encoding: chunked\r\n', '\r\n', '0\r\n', 'x', ':', ' '), { maxLength: 20 }).map((a) => Buffer.from(a.join(''), 'latin1')) }
)

/** Cut points (fractions of the length) for the split. */
const splits = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 })

function split (input: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * input.length)))].filter((p) => p > 0 && p < input.length).sort((a, b) => a - b)
  const out: Buffer[] = []
  let prev = 0
  for (const p of points) { out.push(Buffer.from(input.subarray(prev, p))); prev = p }
  out.push(Buffer.from(input.subarray(prev)))
  return out
}

// ------------------------------------------------------------------ driving the framer

interface Outcome {
  events: string[]
  /** The code of the refusal, if any. */
  reject: ErrorCode | undefined
  requests: number
  end: 'stopped' | 'running' | 'partial' | 'paused'
}

const FRAMER_OPTS = { interop: false, maxHeaderBytes: 16 * 1024, maxHeaderCount: 64, maxBodyBytes: 1024 * 1024 }
/** Small limits, so that inputs reach the header and body limits too. */
const SMALL_LIMITS = { maxHeaderBytes: 160, maxHeaderCount: 6, maxBodyBytes: 24 }

function drive (pieces: Buffer[], interop: boolean, pauseEvery: number, limits: Partial<typeof FRAMER_OPTS> & { requireHost?: boolean } = {}): Outcome {
  const events: string[] = []
  let reject: ErrorCode | undefined
  let requests = 0
  let afterReject = 0
  const framer = new RequestFramer({
    onRequest (req) {
      if (reject !== undefined) afterReject++
      requests++
      events.push(`req tid=${req.transactionId ?? '-'} sid=${req.sessionId ?? '-'} body=${req.body.toString('hex')} ka=${String(req.keepAlive)} dev=${req.deviations}`)
      return pauseEvery === 0 || requests % pauseEvery !== 0
    },
    onReject (code) {
      if (reject !== undefined) afterReject++
      reject = code
      events.push(`reject ${code}`)
    },
    onMessageBegin () {},
    onHeadersComplete () {}
  }, { ...FRAMER_OPTS, ...limits, interop })
  for (const p of pieces) {
    framer.push(p)
    for (let guard = 0; framer.state === FramerState.PAUSED && guard < 10_000; guard++) framer.resume()
    if (framer.state === FramerState.RUNNING && framer.bufferedBytes !== 0) throw new Error('running framer holds unparsed bytes')
  }
  if (afterReject !== 0) throw new Error('events after the refusal')
  const end = framer.state === FramerState.STOPPED ? 'stopped' : framer.state === FramerState.PAUSED ? 'paused' : framer.inMessage ? 'partial' : 'running'
  framer.destroy()
  if (framer.bufferedBytes !== 0) throw new Error('destroyed framer holds bytes')
  // Pushing after destroy is a no-op, never a crash.
  framer.push(Buffer.from('POST / HTTP/1.1\r\n'))
  return { events, reject, requests, end }
}

t.test('RequestFramer: random and mutated HTTP at random split points', async (t) => {
  const variants = [
    { name: 'strict posture', interop: false, limits: {} },
    { name: 'interop posture', interop: true, limits: {} },
    { name: 'strict posture, small limits', interop: false, limits: SMALL_LIMITS }
  ]
  for (const { name, interop, limits } of variants) {
    await t.test(name, async (t) => {
      const stats = { rejects: 0, requests: 0, partial: 0 }
      const codes: Record<string, number> = {}
      fc.assert(fc.property(httpInput, splits, fc.integer({ min: 0, max: 3 }), (input, cuts, pauseEvery) => {
        const whole = drive([Buffer.from(input)], interop, 0, limits)
        const pieces = drive(split(input, cuts), interop, pauseEvery, limits)
        // A defined outcome: requests, then at most one refusal with a known code, then nothing.
        if (whole.reject !== undefined && !FRAMER_CODES.has(whole.reject)) return false
        if (whole.reject !== undefined && whole.end !== 'stopped') return false
        stats.rejects += whole.reject === undefined ? 0 : 1
        if (whole.reject !== undefined) codes[whole.reject] = (codes[whole.reject] ?? 0) + 1
        stats.requests += whole.requests
        stats.partial += whole.end === 'partial' ? 1 : 0
        // The same bytes, the same outcome, whatever the reads and the pauses.
        const same = JSON.stringify(whole.events) === JSON.stringify(pieces.events) && whole.end === pieces.end
        if (!same) throw new Error(`split changed the outcome:\n${JSON.stringify(whole)}\n${JSON.stringify(pieces)}`)
        return true
      }), params(runs(1000, 0.4)))
      t.comment(`requests ${stats.requests}, refusals ${stats.rejects} ${JSON.stringify(codes)}, partial ${stats.partial}`)
      // The generator reaches every kind of outcome (otherwise the property proves little).
      t.ok(stats.requests > 0 && stats.rejects > 0 && stats.partial > 0, 'inputs produced requests, refusals and partial messages')
    })
  }
})

// ------------------------------------------------------------------ a live server

interface Wire { statuses: number[], codes: Array<string | undefined>, closed: boolean }

/** Write the pieces a turn apart, end our side (a partial request stays unanswered), read until the server closes. */
async function sendPieces (port: number, pieces: Buffer[], guardMs: number): Promise<Wire> {
  const { raw, closed } = await collectUntilClose(port, pieces, { end: true, guardMs })
  const answers = frameAnswers(raw)
  return { statuses: answers.map((a) => a.status), codes: answers.map((a) => a.headers['x-ssp-error']), closed }
}

t.test('live WireServer: the same inputs over TCP end in the framer\'s outcome', async (t) => {
  let handed = 0
  const server = new WireServer({ onRequest: () => { handed++ }, timerResolution: 50 })
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  let mismatches = 0
  await fc.assert(fc.asyncProperty(httpInput, splits, async (input, cuts) => {
    // The server requires Host (RFC 9112 3.2); the framer's own properties run without it.
    const expected = drive([Buffer.from(input)], false, 0, { requireHost: true })
    const before = handed
    const got = await sendPieces(port, split(input, cuts), 3000)
    const oks = got.statuses.filter((s) => s === 200).length
    const refusal = got.statuses.length > oks ? got.codes[got.codes.length - 1] : undefined
    const ok =
      got.closed && // every exchange ends: the server closes (refusal, Connection: close, or our EOF)
      oks === expected.requests &&
      handed - before === expected.requests &&
      refusal === expected.reject &&
      got.statuses.slice(0, oks).every((s) => s === 200) &&
      (refusal === undefined || got.statuses[got.statuses.length - 1] === ERRORS[refusal as ErrorCode].status)
    if (!ok) {
      mismatches++
      throw new Error(`server ${JSON.stringify(got)} vs framer ${JSON.stringify(expected)}`)
    }
    return true
  }), params(runs(150, 0.1)))
  t.equal(mismatches, 0, 'the server answered every input as the framer framed it')
  // Still up, nothing left open, and serving.
  for (let i = 0; i < 200 && server.getStats().connectionsOpen > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(server.getStats().connectionsOpen, 0, 'no connection left open')
  const health = await sendPieces(port, [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: T1\r\nContent-Length: 0\r\n\r\n')], 3000)
  t.same(health.statuses, [200], 'a valid request after the fuzzing is served')
})

// ------------------------------------------------------------------ the set-up parser

const SETUP_CODES = new Set(['SSP_ERR_XML', 'SSP_ERR_SETUP_PROTOCOL'])

const setupMessages: SetupMessage[] = [
  { kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: 'T1', domain: 'a.example', secret: Buffer.from('s3cret') },
  { kind: SetupKind.LOGIN_REQUEST, mode: Mode.RESPONSE, transactionId: 'T2', domain: 'b.example', digest: Buffer.alloc(16, 7), timeToLive: 600 },
  { kind: SetupKind.LOGIN_RESPONSE, mode: Mode.REQUEST, transactionId: 'T3', sessionId: 'S1', timeToLive: 600, statusCode: 200 }
]
const validSetups = setupMessages.flatMap((m) => [buildSetup(m).toString('utf8'), buildSetup(m, { version: '1.2' }).toString('utf8')])

/** XML-ish fragments that matter to a parser. */
const xmlBits = fc.constantFrom('<', '>', '/>', '</', '&', '&amp;', '&#0;', '&#x110000;', '&lt', ';', '"', "'", '=', '<!DOCTYPE x>', '<!ENTITY e "x">',
  '<![CDATA[', ']]>', '<?xml version="1.0"?>', '<!--', '-->', '__proto__', 'constructor', 'xmlns=', 'xmlns:a=', '\u0000', '\uFEFF', '\uD800', ' ', '\n')

type TextMutation = { at: number, len: number, insert: string }
const textMutation: fc.Arbitrary<TextMutation> = fc.record({
  at: fc.nat(),
  len: fc.integer({ min: 0, max: 12 }),
  insert: fc.oneof(xmlBits, fc.string({ maxLength: 6 }), fc.constant(''))
})

function mutateText (s: string, ms: TextMutation[]): string {
  let out = s
  for (const m of ms) {
    const at = out.length === 0 ? 0 : m.at % (out.length + 1)
    out = out.slice(0, at) + m.insert + out.slice(at + m.len)
  }
  return out
}

const setupInput: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...validSetups), fc.array(textMutation, { minLength: 1, maxLength: 4 })).map(([s, ms]) => mutateText(s, ms)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...validSetups), fc.array(textMutation, { minLength: 1, maxLength: 3 })).map(([s, ms]) => Buffer.from(mutateText(s, ms), 'latin1')) },
  { weight: 1, arbitrary: fc.array(xmlBits, { maxLength: 30 }).map((a) => a.join('')) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) }
)

t.test('parseSetup: only SSP_ERR_XML or SSP_ERR_SETUP_PROTOCOL, for any input', async (t) => {
  for (const v of validSetups) t.doesNotThrow(() => parseSetup(v), 'control: a valid set-up message parses')
  const seen = { parsed: 0, xml: 0, protocol: 0 }
  fc.assert(fc.property(setupInput, (input) => {
    try {
      parseSetup(input)
      seen.parsed++
    } catch (err) {
      if (!isSspError(err) || !SETUP_CODES.has(err.code)) {
        throw new Error(`parseSetup threw ${isSspError(err) ? err.code : String(err)} for ${JSON.stringify(typeof input === 'string' ? input : Buffer.from(input).toString('latin1'))}`)
      }
      if (err.code === 'SSP_ERR_XML') seen.xml++
      else seen.protocol++
    }
    return true
  }), params(runs(2000, 1)))
  t.comment(`parsed ${seen.parsed}, SSP_ERR_XML ${seen.xml}, SSP_ERR_SETUP_PROTOCOL ${seen.protocol}`)
  t.ok(seen.parsed > 0 && seen.xml > 0 && seen.protocol > 0, 'inputs reached all three outcomes')
})
