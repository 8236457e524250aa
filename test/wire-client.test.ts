import t from 'tap'
import * as http from 'node:http'
import * as net from 'node:net'
import * as tls from 'node:tls'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { isSspError } from '../src/errors.js'
import { WireClient, type WireClientOptions, type WireRequestError } from '../src/wire/client.js'
import { ResponseFramer, type ResponseSink } from '../src/wire/response-framer.js'
import { createWireServer } from '../src/wire/server.js'
import { CONTENT_TYPE_12, CONTENT_TYPE_13 } from '../src/wire/header-bytes.js'
import { OK, answer, scriptedServer, type ScriptedServer } from './helpers/client-scripted-server.js'
import { makeCerts } from './helpers/client-certs.js'
import { assertEverySplit, assertRandomSplits } from './helpers/splits.js'

// ------------------------------------------------------------------ helpers

interface Outcome { tid: string, status: number, err: WireRequestError | null }

/** Write every tid now (no waiting), resolve with all outcomes in callback order. */
function sendAll (client: WireClient, tids: string[], body: (tid: string) => Buffer | string = tid => `<m>${tid}</m>`, setup: (i: number) => boolean = () => false): Promise<Outcome[]> {
  return new Promise(resolve => {
    const out: Outcome[] = []
    if (tids.length === 0) { resolve(out); return }
    tids.forEach((tid, i) => {
      client.write(body(tid), tid, 'S1', setup(i), (err, status) => {
        out.push({ tid, status, err })
        if (out.length === tids.length) resolve(out)
      })
    })
  })
}

const range = (n: number, prefix = 'T'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`)

async function waitFor (cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('waitFor: condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

function newClient (t: { teardown: (fn: () => unknown) => void }, url: string, opts: WireClientOptions = {}): WireClient {
  const c = new WireClient(url, { reconnectDelay: 5, maxReconnectDelay: 50, ...opts })
  t.teardown(() => c.destroy())
  return c
}

function codeOf (err: unknown): string {
  return isSspError(err) ? err.code : `not an SspError: ${String(err)}`
}

// ------------------------------------------------------------------ ResponseFramer

interface Seen { status: number, keepAlive: boolean, location: string | undefined, bodyBytes: number }

function frame (pieces: Buffer[], opts = { maxHeaderBytes: 16 * 1024, maxBodyBytes: 1024 * 1024 }, eof = false): { seen: Seen[], error: string | undefined } {
  const seen: Seen[] = []
  let error: string | undefined
  const sink: ResponseSink = {
    onResponse (status, keepAlive, location, bodyBytes) { seen.push({ status, keepAlive, location, bodyBytes }); return true },
    onResponseError (code) { error = code }
  }
  const f = new ResponseFramer(sink, opts)
  for (const p of pieces) f.push(p)
  if (eof) f.finish()
  f.destroy()
  return { seen, error }
}

const STREAM_PARTS = [
  'HTTP/1.1 100 Continue\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n3\r\nfgh\r\n0\r\nX-Trailer: y\r\n\r\n',
  'HTTP/1.1 302 Found\r\nLoCaTiOn:   http://b.example:8080/ssp?x=1  \r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nLocation: /ignored-on-200\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 307 Temporary Redirect\r\nLocations: not-it\r\nLocatio: no\r\nlocation: /rel/path\r\nLocation: /second\r\nContent-Length: 4\r\n\r\nmove',
  'HTTP/1.1 415 Unsupported Media Type\r\nContent-Length: 7\r\n\r\nno way!',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'
]
const STREAM = Buffer.from(STREAM_PARTS.join(''), 'latin1')
const STREAM_EXPECTED: Seen[] = [
  { status: 100, keepAlive: true, location: undefined, bodyBytes: 0 },
  { status: 200, keepAlive: true, location: undefined, bodyBytes: 0 },
  { status: 200, keepAlive: true, location: undefined, bodyBytes: 11 },
  { status: 200, keepAlive: true, location: undefined, bodyBytes: 8 },
  { status: 302, keepAlive: true, location: 'http://b.example:8080/ssp?x=1', bodyBytes: 0 },
  { status: 200, keepAlive: true, location: undefined, bodyBytes: 0 },
  { status: 307, keepAlive: true, location: '/rel/path', bodyBytes: 4 },
  { status: 415, keepAlive: true, location: undefined, bodyBytes: 7 },
  { status: 204, keepAlive: true, location: undefined, bodyBytes: 0 },
  { status: 200, keepAlive: false, location: undefined, bodyBytes: 2 }
]

t.test('ResponseFramer: answer stream in one piece', async t => {
  t.same(frame([STREAM]), { seen: STREAM_EXPECTED, error: undefined })
})

t.test('ResponseFramer: the answer stream split at EVERY byte boundary gives identical results', async t => {
  assertEverySplit(t, STREAM, (pieces) => frame(pieces), { seen: STREAM_EXPECTED, error: undefined })
})

t.test('ResponseFramer: random multi-way splits agree (fast-check)', async t => {
  assertRandomSplits(STREAM, 12, 300, pieces => {
    const r = frame(pieces)
    return JSON.stringify(r.seen) === JSON.stringify(STREAM_EXPECTED) && r.error === undefined
  })
  t.pass('300 random splits')
})

t.test('ResponseFramer: every scripted answer stream of the client tests, split at every boundary', async t => {
  // The answers the scripted servers below send, concatenated per connection.
  const streams: Array<[string, string]> = [
    ['close after N', OK + OK + answer(200, ['Connection: close'])],
    ['bodies', 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n' + OK],
    ['redirect', answer(307, ['Location: http://127.0.0.1:1/next'])],
    ['415', OK + answer(415) + OK],
    ['1xx', 'HTTP/1.1 100 Continue\r\n\r\n' + OK]
  ]
  for (const [name, s] of streams) {
    const buf = Buffer.from(s, 'latin1')
    const whole = JSON.stringify(frame([buf]))
    let bad = 0
    for (let i = 1; i < buf.length; i++) {
      if (JSON.stringify(frame([buf.subarray(0, i), buf.subarray(i)])) !== whole) bad++
    }
    t.equal(bad, 0, `${name}: ${buf.length - 1} splits agree with the whole`)
    t.equal(frame([buf]).error, undefined, `${name}: parses`)
  }
})

t.test('ResponseFramer: limits, malformed input, EOF', async t => {
  const big = Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(300)}\r\nContent-Length: 0\r\n\r\n`)
  t.equal(frame([big], { maxHeaderBytes: 256, maxBodyBytes: 10 }).error, 'SSP_ERR_RESPONSE_HEADERS_TOO_LARGE')
  const bytes = Array.from({ length: big.length }, (_, i) => big.subarray(i, i + 1))
  t.equal(frame(bytes, { maxHeaderBytes: 256, maxBodyBytes: 10 }).error, 'SSP_ERR_RESPONSE_HEADERS_TOO_LARGE', 'also byte by byte')
  t.equal(frame([big], { maxHeaderBytes: 1024, maxBodyBytes: 10 }).error, undefined, 'under the limit')
  const body = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world')
  t.equal(frame([body], { maxHeaderBytes: 1024, maxBodyBytes: 10 }).error, 'SSP_ERR_RESPONSE_BODY_TOO_LARGE')
  const bodyBytes = Array.from({ length: body.length }, (_, i) => body.subarray(i, i + 1))
  t.equal(frame(bodyBytes, { maxHeaderBytes: 1024, maxBodyBytes: 10 }).error, 'SSP_ERR_RESPONSE_BODY_TOO_LARGE', 'counted across pieces')
  t.equal(frame(bodyBytes, { maxHeaderBytes: 1024, maxBodyBytes: 11 }).error, undefined, 'exactly at the limit')
  t.equal(frame([Buffer.from('HTTX/1.1 200 OK\r\n\r\n')]).error, 'SSP_ERR_HTTP_RESPONSE', 'garbage')
  t.equal(frame([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n')]).error, 'SSP_ERR_HTTP_RESPONSE', 'upgrade')
  // Body delimited by the end of the connection: completes on finish().
  const eofBody = frame([Buffer.from('HTTP/1.1 200 OK\r\n\r\nuntil close')], undefined, true)
  t.same(eofBody, { seen: [{ status: 200, keepAlive: false, location: undefined, bodyBytes: 11 }], error: undefined })
  const cut = frame([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')], undefined, true)
  t.equal(cut.error, 'SSP_ERR_HTTP_RESPONSE', 'cut short by EOF')
  const h10 = frame([Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n')])
  t.same(h10.seen, [{ status: 200, keepAlive: false, location: undefined, bodyBytes: 0 }], 'HTTP/1.0 without keep-alive closes')
  // After a Connection: close response nothing more is parsed.
  const after = frame([Buffer.from(answer(200, ['Connection: close']) + OK)])
  t.equal(after.seen.length, 1)
})

// ------------------------------------------------------------------ against node:http

t.test('against node:http: sessions switching on one client (and none) each get their own x-wv-sessionid', async t => {
  // The client keeps the session-id line of the last session written; every switch must show.
  const seen: Array<{ tid: string | undefined, sid: string | undefined, len: string | undefined }> = []
  const srv = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({ tid: req.headers['x-wv-transactionid'] as string | undefined, sid: req.headers['x-wv-sessionid'] as string | undefined, len: req.headers['content-length'] })
      res.end()
    })
  })
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  const client = newClient(t, `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/ssp`, { maxQueued: 1000 })
  const sids = ['S1first', 'S2secondLongerId', undefined, 'S1first', 'S1first', undefined, undefined, 'S3']
  const want = Array.from({ length: 40 }, (_, i) => ({ tid: `T${i}x${'y'.repeat(i % 7)}`, sid: sids[i % sids.length], len: String(`<m>${i}</m>`.length) }))
  const out = await new Promise<Array<WireRequestError | null>>(resolve => {
    const errs: Array<WireRequestError | null> = []
    want.forEach((w, i) => client.write(`<m>${i}</m>`, w.tid, w.sid, false, (err) => { errs.push(err); if (errs.length === want.length) resolve(errs) }))
  })
  t.ok(out.every(e => e === null), 'all acknowledged')
  t.same(seen, want, 'each request carried its own ids and length, in order')
})

t.test('against node:http: 300 pipelined POSTs, all acknowledged, headers exactly as the binding says', async t => {
  const seen: Array<{ tid: string | undefined, sid: string | undefined, ct: string | undefined, len: string | undefined, body: string }> = []
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      seen.push({
        tid: req.headers['x-wv-transactionid'] as string | undefined,
        sid: req.headers['x-wv-sessionid'] as string | undefined,
        ct: req.headers['content-type'],
        len: req.headers['content-length'],
        body: Buffer.concat(chunks).toString('utf8')
      })
      res.end()
    })
  })
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  const port = (srv.address() as net.AddressInfo).port
  const client = newClient(t, `http://127.0.0.1:${port}/ssp`, { maxQueued: 1000 })
  const tids = range(300)
  const out = await sendAll(client, tids, tid => (Number(tid.slice(1)) % 2 === 0 ? Buffer.from(`<m>${tid}</m>`) : `<m>${tid} é</m>`))
  t.same(out.map(o => o.tid), tids, 'callbacks in request order')
  t.ok(out.every(o => o.err === null && o.status === 200), 'all 200')
  t.same(seen.map(s => s.tid), tids, 'server saw them in order')
  t.ok(seen.every(s => s.sid === 'S1' && s.ct === CONTENT_TYPE_13), 'session id and 1.3 content type')
  const odd = seen[0]!
  t.equal(odd.body, '<m>T1 é</m>', 'string body encoded as UTF-8')
  t.equal(odd.len, String(Buffer.byteLength('<m>T1 é</m>')), 'Content-Length counts bytes')
  t.equal(client.stats.acknowledged, 300)
  t.equal(client.stats.connects, 1, 'one connection')
  await client.close()
  t.equal(client.inFlight + client.queued, 0)
})

t.test('closing, closed and getStats(): closing from close(), closed only once the last request finished', async t => {
  const hold: Array<() => void> = []
  const srv = await scriptedServer(t, (req) => { hold.push(() => { req.socket.write(OK) }); return null })
  const client = newClient(t, srv.url)
  const sent = client.send(Buffer.from('<a/>'), { transactionId: 'T1', sessionId: 'S1' })
  await waitFor(() => hold.length === 1)
  t.same([client.closing, client.closed], [false, false], 'open')
  t.equal(client.getStats().inFlight, 1, 'one in flight')
  const closed = client.close()
  t.same([client.closing, client.closed], [true, false], 'closing: the request in flight still runs')
  hold.shift()!()
  await sent
  await closed
  t.same([client.closing, client.closed], [true, true], 'closed after it finished')
  const st = client.getStats()
  t.same([st.requests, st.acknowledged, st.inFlight, st.queued], [1, 1, 0, 0])
  st.requests = 99
  t.equal(client.stats.requests, 1, 'getStats() is a copy')
})

t.test('request head: exact bytes, 1.2 content type, no session id, Buffer body sent uncopied', async t => {
  const srv = await scriptedServer(t, () => OK)
  const c13 = newClient(t, srv.url)
  const r1 = await c13.send(Buffer.from('<a/>'), { transactionId: 'Tx_1', sessionId: 'Sess_9' })
  t.equal(r1.status, 200)
  t.equal(srv.requests[0]!.rawHead,
    `POST /ssp HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: ${CONTENT_TYPE_13}\r\n` +
    'x-wv-transactionid: Tx_1\r\nx-wv-sessionid: Sess_9\r\nContent-Length: 4\r\n\r\n')
  const c12 = newClient(t, srv.url + '?q=1', { version: '1.2' })
  await c12.send('', { transactionId: 'T2' })
  t.equal(srv.requests[1]!.rawHead,
    `POST /ssp?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: ${CONTENT_TYPE_12}\r\n` +
    'x-wv-transactionid: T2\r\nContent-Length: 0\r\n\r\n')
  t.equal(srv.requests[1]!.body.length, 0)
})

t.test('a body as Buffers: written in order after the head, Content-Length their sum; anything else in the array is refused', async t => {
  const srv = await scriptedServer(t, () => OK)
  const client = newClient(t, srv.url)
  const big = Buffer.alloc(70_000, 0x61)
  const parts = [Buffer.from('<head>'), big, Buffer.alloc(0), Buffer.from('</head>')]
  t.equal((await client.send(parts, { transactionId: 'T1', sessionId: 'S1' })).status, 200)
  t.equal(srv.requests[0]!.headers['content-length'], String(6 + 70_000 + 7))
  t.same(srv.requests[0]!.body, Buffer.concat(parts), 'the bytes arrive as one body, in order')
  t.equal((await client.send([], { transactionId: 'T2' })).status, 200, 'an empty list is an empty body')
  t.equal(srv.requests[1]!.headers['content-length'], '0')
  const before = srv.bytes
  for (const bad of [[Buffer.from('a'), 'b'], [42], [null]]) {
    t.equal(codeOf(await client.send(bad as unknown as Buffer[], { transactionId: 'T3' }).catch((e: unknown) => e)), 'SSP_ERR_INVALID_ARGUMENT', JSON.stringify(bad))
  }
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(srv.bytes, before, 'nothing written for them')
})

t.test('a batch is one socket write; a body over 16 KiB goes out uncopied between its pieces', async t => {
  const srv = await scriptedServer(t, () => OK)
  const client = newClient(t, srv.url, { pipelineDepth: 32 })
  await client.connect()
  // Spy on what this client hands its socket (the scripted server's own writes go to other sockets).
  const calls: Array<{ chunk: Buffer, corked: boolean }> = []
  const proto = net.Socket.prototype as unknown as { write: (...a: unknown[]) => boolean }
  const orig = proto.write
  proto.write = function (this: net.Socket, ...a: unknown[]) {
    if (this.remotePort === srv.port) calls.push({ chunk: a[0] as Buffer, corked: this.writableCorked > 0 })
    return orig.apply(this, a)
  }
  t.teardown(() => { proto.write = orig })
  const small = (i: number): Buffer | string | Buffer[] => i % 3 === 0 ? `<s>${i}</s>` : i % 3 === 1 ? Buffer.from(`<b>${i}</b>`) : [Buffer.from('<p>'), Buffer.from(String(i)), Buffer.from('</p>')]
  const bodyText = (i: number): string => { const b = small(i); return typeof b === 'string' ? b : Buffer.isBuffer(b) ? b.toString() : Buffer.concat(b).toString() }
  const outs = await Promise.all(range(16).map((tid, i) => client.send(small(i), { transactionId: tid, sessionId: 'S1' })))
  t.ok(outs.every(o => o.status === 200))
  t.equal(calls.length, 1, '16 small requests of one tick: one socket write')
  t.same(srv.requests.slice(0, 16).map(r => r.body.toString()), range(16).map((_, i) => bodyText(i)), 'each body intact and in order')
  calls.length = 0
  // Under highWaterMark (64 KiB) in all, so the three go in one flush.
  const big = Buffer.alloc(40_000, 0x62)
  const tail = Buffer.alloc(16 * 1024, 0x63) // exactly the copy bound: copied
  const batch = [client.send('<x/>', { transactionId: 'B1' }), client.send(big, { transactionId: 'B2' }), client.send(tail, { transactionId: 'B3' })]
  await Promise.all(batch)
  t.equal(calls.filter(c => c.chunk === big).length, 1, 'the large body is handed to the socket itself, not a copy')
  t.notOk(calls.some(c => c.chunk === tail), 'a 16 KiB body is copied into the batch buffer')
  t.equal(calls.length, 3, 'before it, it, after it')
  t.same(calls.map(c => c.corked), [true, true, true], 'all inside one cork: one writev')
  t.same(srv.requests.slice(16).map(r => r.body.length), [4, 40_000, 16 * 1024])
  t.ok(srv.requests[17]!.body.equals(big) && srv.requests[18]!.body.equals(tail), 'bytes arrive as sent')
})

t.test('busy polling: a part batch is written as soon as busyPollBatch requests wait, the rest at the end of the turn', async t => {
  const srv = await scriptedServer(t, () => OK)
  const spy = (port: number): { calls: Buffer[], restore: () => void } => {
    const calls: Buffer[] = []
    const proto = net.Socket.prototype as unknown as { write: (...a: unknown[]) => boolean }
    const orig = proto.write
    proto.write = function (this: net.Socket, ...a: unknown[]) {
      if (this.remotePort === port) calls.push(a[0] as Buffer)
      return orig.apply(this, a)
    }
    return { calls, restore: () => { proto.write = orig } }
  }
  const heads = (b: Buffer): number => b.toString('latin1').split('POST ').length - 1
  // [options, requests written in one turn, requests per socket write while the turn writes them, and by its end]
  const cases: Array<[WireClientOptions, number, number[], number[]]> = [
    [{ pipelineDepth: 32, busyPollMicros: 50, busyPollBatch: 4 }, 10, [4, 4], [4, 4, 2]],
    [{ pipelineDepth: 16, busyPollMicros: 50 }, 16, [8, 8], [8, 8]], // default: half the depth
    [{ pipelineDepth: 64, busyPollMicros: 50 }, 40, [16, 16], [16, 16, 8]], // default above 16: a quarter
    [{ pipelineDepth: 32, busyPollMicros: 50, busyPollBatch: 0 }, 10, [], [10]], // 0: once per turn
    [{ pipelineDepth: 32, busyPollBatch: 4 }, 10, [], [10]], // no busy polling: once per turn
    [{ pipelineDepth: 6, busyPollMicros: 50, busyPollBatch: 4 }, 10, [4, 2], [4, 2]] // never past the depth: the rest after 200s
  ]
  for (const [opts, n, during, byEnd] of cases) {
    const client = newClient(t, srv.url, opts)
    await client.connect()
    const s = spy(srv.port)
    const before = srv.requests.length
    const tids = range(n, `P${byEnd.join('')}x`)
    const done = sendAll(client, tids)
    const duringTurn = s.calls.map(heads)
    // The end-of-turn flush is a nextTick queued by the first write: this one runs after it.
    await new Promise<void>(resolve => process.nextTick(resolve))
    const endOfTurn = s.calls.map(heads)
    const out = await done
    s.restore()
    const label = JSON.stringify(opts)
    t.same(duringTurn, during, `${label}: written during the turn: ${during.join(' + ') || 'nothing'}`)
    t.same(endOfTurn, byEnd, `${label}: by its end: ${byEnd.join(' + ')}`)
    t.ok(out.every(o => o.err === null && o.status === 200), `${label}: all acknowledged`)
    t.same(srv.requests.slice(before).map(r => r.headers['x-wv-transactionid']), tids, `${label}: in order`)
    await client.close()
  }
  t.throws(() => new WireClient(srv.url, { busyPollBatch: -1 }), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'busyPollBatch -1 refused')
})

t.test('busy polling: a part batch written from inside write() never emits drain there', async t => {
  const srv = await scriptedServer(t, () => OK)
  const client = newClient(t, srv.url, { pipelineDepth: 32, busyPollMicros: 50, busyPollBatch: 2, queueHighWater: 2 })
  await client.connect()
  let inside = false
  const drains: boolean[] = []
  client.on('drain', () => { drains.push(inside) })
  const results: boolean[] = []
  const done = new Promise<void>(resolve => {
    let n = 0
    const cb = (): void => { if (++n === 6) resolve() }
    for (const tid of range(6, 'D')) {
      inside = true
      results.push(client.write('<m/>', tid, 'S1', false, cb))
      inside = false
    }
  })
  await done
  t.same(results.slice(0, 2), [true, false], 'the second write reaches queueHighWater')
  t.ok(drains.length >= 1, 'drain came')
  t.same(drains.filter(x => x), [], 'and never from inside write()')
})

// ------------------------------------------------------------------ pipelining and backpressure

t.test('writes up to pipelineDepth without waiting for answers, never more', async t => {
  let release: (() => void) | undefined
  const srv = await scriptedServer(t, (req) => {
    if (req.index < 8) return null // hold the first 8
    return OK
  })
  const client = newClient(t, srv.url, { pipelineDepth: 8 })
  const done = sendAll(client, range(12))
  await waitFor(() => srv.requests.length === 8)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(srv.requests.length, 8, 'exactly the depth is written while no answer came')
  t.equal(client.inFlight, 8)
  t.equal(client.queued, 4)
  release = () => { srv.requests[0]!.socket.write(OK.repeat(8)) }
  release()
  const out = await done
  t.same(out.map(o => o.tid), range(12))
  t.ok(out.every(o => o.status === 200 && o.err === null))
  t.equal(srv.requests.length, 12)
})

t.test('backpressure: write() returns false at queueHighWater, drain when there is room, QUEUE_FULL beyond maxQueued', async t => {
  let answering = false
  const srv = await scriptedServer(t, () => (answering ? OK : null))
  const client = newClient(t, srv.url, { pipelineDepth: 2, queueHighWater: 3, maxQueued: 5 })
  const results: string[] = []
  const cb = (err: WireRequestError | null, status: number): void => { results.push(err === null ? String(status) : err.code) }
  const ret: boolean[] = []
  await client.connect()
  for (let i = 1; i <= 3; i++) ret.push(client.write('x', `T${i}`, undefined, false, cb))
  t.same(ret, [true, true, false], 'false once 3 wait to be written')
  let drains = 0
  client.on('drain', () => { drains++ })
  await waitFor(() => srv.requests.length === 2)
  t.equal(drains, 1, "'drain' after the flush made room")
  for (let i = 4; i <= 8; i++) client.write('x', `T${i}`, undefined, false, cb)
  t.equal(client.queued, 5, 'queue bounded at maxQueued')
  t.equal(client.write('x', 'T9', undefined, false, cb), false)
  await new Promise(resolve => setImmediate(resolve))
  t.same(results, ['SSP_ERR_QUEUE_FULL', 'SSP_ERR_QUEUE_FULL'], 'beyond maxQueued: fails at once')
  t.equal(client.inFlight, 2, 'never more than the depth in flight')
  answering = true
  srv.requests[0]!.socket.write(OK.repeat(2)) // the two held; the script answers the rest
  await waitFor(() => results.length === 9)
  t.same(results.slice(2), Array(7).fill('200'))
  t.equal(srv.requests.length, 7)
  t.equal(client.stats.errors, 0, 'no unsolicited answer')
})

t.test('slow answers: requests wait, callbacks in order', async t => {
  const srv = await scriptedServer(t, () => ({ write: OK, delay: 40 }))
  const client = newClient(t, srv.url)
  const t0 = Date.now()
  const out = await sendAll(client, range(5))
  t.same(out.map(o => o.tid), range(5))
  t.ok(out.every(o => o.status === 200))
  t.ok(Date.now() - t0 >= 5 * 40 - 10, 'each answer waited for')
  t.equal(srv.requests.length, 5)
  t.equal(new Set(srv.requests.map(r => r.conn)).size, 1, 'one connection')
})

t.test('200 with a body (content-length and chunked), written one byte at a time, is read and discarded', async t => {
  const answers = [
    'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n6;x=y\r\nefghij\r\n0\r\nT: 1\r\n\r\n',
    OK,
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nabc'
  ]
  const srv = await scriptedServer(t, req => ({ write: answers[req.index] ?? OK, byteByByte: true }))
  const client = newClient(t, srv.url)
  const out = await sendAll(client, range(4))
  t.same(out.map(o => [o.tid, o.status, o.err]), [['T1', 200, null], ['T2', 200, null], ['T3', 200, null], ['T4', 202, null]])
  t.equal(client.stats.bytesIn, answers.join('').length)
})

t.test('an error status (415) fails exactly that request; the connection stays', async t => {
  const srv = await scriptedServer(t, req => (req.index === 1 ? answer(415, ['Content-Type: text/plain']) : OK))
  const client = newClient(t, srv.url)
  const out = await sendAll(client, range(3))
  t.same(out.map(o => o.status), [200, 415, 200])
  t.equal(out[0]!.err, null)
  t.equal(out[2]!.err, null)
  const err = out[1]!.err!
  t.equal(err.code, 'SSP_ERR_HTTP_STATUS')
  t.equal(err.status, 415)
  t.equal(err.request?.transactionId, 'T2')
  t.equal(client.stats.connects, 1)
  t.equal(client.stats.failed, 1)
  t.equal(client.stats.acknowledged, 2)
})

// ------------------------------------------------------------------ ids

t.test('invalid ids are refused before any byte is written', async t => {
  const srv = await scriptedServer(t, () => OK)
  const client = newClient(t, srv.url)
  for (const [tid, sid] of [['0000000042-7', undefined], ['T1', '5@a.example'], ['', undefined], ['T 1', undefined], ['T\r\nX: y', undefined], ['Tä', undefined]] as Array<[string, string | undefined]>) {
    const err = await client.send('<x/>', { transactionId: tid, sessionId: sid }).then(() => undefined, (e: unknown) => e)
    t.equal(codeOf(err), 'SSP_ERR_INVALID_ID', JSON.stringify([tid, sid]))
  }
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(srv.bytes, 0, 'the server saw 0 bytes')
  t.equal(srv.connections, 0, 'and no connection')
  t.equal(client.stats.requests, 0)
  t.equal(codeOf(await client.send(42 as unknown as string, { transactionId: 'T1' }).catch((e: unknown) => e)), 'SSP_ERR_INVALID_ARGUMENT')

  const loose = newClient(t, srv.url, { allowAnyIds: true })
  t.equal((await loose.send('<x/>', { transactionId: '0000000042-7', sessionId: '5@a.example' })).status, 200, 'allowAnyIds sends deviating ids')
  t.equal(srv.requests[0]!.headers['x-wv-transactionid'], '0000000042-7')
  t.equal(srv.requests[0]!.headers['x-wv-sessionid'], '5@a.example')
  const before = srv.bytes
  for (const bad of ['a\r\nb', 'a\nb', 'a\u0000b', 'a b', '', 'a\u0100']) {
    t.equal(codeOf(await loose.send('<x/>', { transactionId: bad }).catch((e: unknown) => e)), 'SSP_ERR_INVALID_ID', `still refused: ${JSON.stringify(bad)}`)
  }
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(srv.bytes, before, 'nothing written for them')
})

// ------------------------------------------------------------------ connection loss

t.test('Connection: close after N answers: the rest are unacknowledged (with the request), queued ones go out after reconnect', async t => {
  const N = 3
  const answered = new Set<string>()
  const srv = await scriptedServer(t, req => {
    if (req.seq >= N) return null
    answered.add(req.headers['x-wv-transactionid']!)
    return req.seq === N - 1 ? { write: answer(200, ['Connection: close']), end: true } : OK
  })
  const client = newClient(t, srv.url, { pipelineDepth: 5 })
  const disconnects: number[] = []
  client.on('disconnect', (ev: { unacknowledged: number }) => disconnects.push(ev.unacknowledged))
  const tids = range(12)
  const out = await sendAll(client, tids, tid => Buffer.from(`<m>${tid}</m>`))
  const acked = out.filter(o => o.err === null).map(o => o.tid)
  const unacked = out.filter(o => o.err !== null)
  t.same(new Set(acked), answered, 'acknowledged = exactly what the server answered 200')
  t.ok(unacked.length > 0, 'some were written and not answered')
  for (const o of unacked) {
    t.equal(o.err!.code, 'SSP_ERR_UNACKNOWLEDGED', `${o.tid} unacknowledged`)
    t.same(o.err!.request, { body: Buffer.from(`<m>${o.tid}</m>`), transactionId: o.tid, sessionId: 'S1', setup: false }, `${o.tid} carries the request`)
  }
  t.equal(acked.length + unacked.length, tids.length, 'none lost')
  t.ok(srv.connections >= 2, 'reconnected')
  t.ok(client.stats.reconnects >= 1)
  t.equal(client.stats.unacknowledged, unacked.length)
  t.equal(disconnects.reduce((a, b) => a + b, 0), unacked.length)
  // The caller resends the unacknowledged ones: all end up acknowledged.
  const again = await sendAll(client, unacked.map(o => o.tid))
  const stillOut = again.filter(o => o.err !== null).map(o => o.tid)
  t.ok(again.filter(o => o.err === null).length > 0, 'resent ones get through')
  t.ok(stillOut.every(tid => unacked.some(o => o.tid === tid)), 'only resent tids involved')
})

t.test('server closes in the middle of a pipeline: written ones come back unacknowledged, queued ones are sent after reconnect', async t => {
  const srv = await scriptedServer(t, (req, s) => {
    if (req.conn === 1) {
      // Hold until 8 arrived, then answer 3 and cut the connection.
      if (s.requests.filter(r => r.conn === 1).length === 8) return { write: OK.repeat(3), destroy: true }
      return null
    }
    return OK
  })
  const client = newClient(t, srv.url, { pipelineDepth: 8, queueHighWater: 64 })
  const tids = range(14)
  const out = await sendAll(client, tids)
  const conn1 = srv.requests.filter(r => r.conn === 1).map(r => r.headers['x-wv-transactionid']!)
  const later = srv.requests.filter(r => r.conn > 1).map(r => r.headers['x-wv-transactionid']!)
  const acked = out.filter(o => o.err === null).map(o => o.tid)
  const unacked = out.filter(o => o.err !== null)
  t.same(acked.slice(0, 3), ['T1', 'T2', 'T3'], 'the three answered ones')
  t.ok(unacked.length >= 5, `at least the 5 held ones are unacknowledged (${unacked.length})`)
  t.ok(unacked.every(o => o.err!.code === 'SSP_ERR_UNACKNOWLEDGED' && o.err!.request?.transactionId === o.tid), 'with the request')
  t.ok(conn1.slice(3, 8).every(tid => unacked.some(o => o.tid === tid)), 'held ones (T4..T8) unacknowledged')
  t.same(new Set([...acked, ...unacked.map(o => o.tid)]), new Set(tids), 'every request accounted for')
  t.equal(acked.length + unacked.length, tids.length, 'exactly once')
  t.same(later, acked.slice(3), 'after reconnect: exactly the queued ones, in order, acknowledged')
  t.ok(later.length > 0, 'some were still queued')
  t.ok(unacked.every(o => !later.includes(o.tid)), 'unacknowledged ones are not resent behind the caller\'s back')
})

t.test('connection refused: capped, jittered backoff, then SSP_ERR_CONNECT', async t => {
  const probe = net.createServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise<void>(resolve => probe.close(() => resolve()))
  const client = newClient(t, `http://127.0.0.1:${port}/`, { maxReconnectAttempts: 3, reconnectDelay: 20, maxReconnectDelay: 30 })
  const t0 = Date.now()
  const out = await sendAll(client, ['A', 'B'])
  const elapsed = Date.now() - t0
  t.same(out.map(o => o.err?.code), ['SSP_ERR_CONNECT', 'SSP_ERR_CONNECT'])
  t.equal(out[0]!.err!.request?.transactionId, 'A')
  t.equal(client.stats.connects, 4, '1 attempt + 3 retries')
  // delays: [10,20] + [15,30] + [15,30] (capped at 30)
  t.ok(elapsed >= 40, `backed off (${elapsed} ms)`)
  t.ok(elapsed < 2000, 'capped')
})

t.test('connectTimeout: a TLS peer that never answers the handshake → SSP_ERR_CONNECT', async t => {
  const silent = net.createServer(sock => { sock.on('error', () => undefined) })
  const socks = new Set<net.Socket>()
  silent.on('connection', s => socks.add(s))
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of socks) s.destroy(); silent.close() })
  const port = (silent.address() as net.AddressInfo).port
  const client = newClient(t, `https://127.0.0.1:${port}/`, { connectTimeout: 150, maxReconnectAttempts: 0 })
  const t0 = Date.now()
  const err = await client.send('x', { transactionId: 'T1' }).catch((e: unknown) => e)
  t.equal(codeOf(err), 'SSP_ERR_CONNECT')
  t.ok(Date.now() - t0 >= 140, 'after the timeout')
})

// ------------------------------------------------------------------ redirection (spec 5.5)

t.test('redirect of the first set-up request on a fresh connection is followed; the new location becomes the target', async t => {
  const b = await scriptedServer(t, () => OK, { path: '/next' })
  const a = await scriptedServer(t, () => answer(307, [`Location: ${b.url}`]))
  const client = newClient(t, a.url)
  const events: Array<{ from: string, to: string }> = []
  client.on('redirect', (ev: { from: string, to: string }) => events.push({ from: ev.from, to: ev.to }))
  const diag: unknown[] = []
  const onDiag = (m: unknown): void => { diag.push(m) }
  subscribe('ssp-transport:client:redirect', onDiag)
  t.teardown(() => unsubscribe('ssp-transport:client:redirect', onDiag))
  // The set-up request and three more written at once: the barrier keeps the others off A.
  const out = await sendAll(client, ['SETUP1', 'M1', 'M2', 'M3'], tid => `<SendSecretToken>${tid}</SendSecretToken>`, i => i === 0)
  t.ok(out.every(o => o.err === null && o.status === 200), 'all acknowledged')
  t.equal(a.requests.length, 1, 'A saw only the set-up request')
  t.same(b.requests.map(r => r.headers['x-wv-transactionid']), ['SETUP1', 'M1', 'M2', 'M3'], 'B got it again, then the rest')
  t.equal(b.requests[0]!.body.toString(), '<SendSecretToken>SETUP1</SendSecretToken>', 'same body re-POSTed')
  t.equal(b.requests[0]!.path, '/next')
  t.equal(client.url, b.url, 'client targets B afterwards')
  t.same(events, [{ from: a.url, to: b.url }])
  t.equal(diag.length, 1, 'diagnostics_channel redirect published')
  t.equal(client.stats.redirectsFollowed, 1)
  await client.send('later', { transactionId: 'L1' })
  t.equal(b.requests.at(-1)!.headers['x-wv-transactionid'], 'L1')
  t.equal(a.requests.length, 1)
})

t.test('relative Location is resolved against the current URL', async t => {
  const srv = await scriptedServer(t, req => (req.path === '/ssp' ? answer(302, ['Location: /other/ssp']) : OK))
  const client = newClient(t, srv.url)
  const r = await client.send('x', { transactionId: 'S1', setup: true })
  t.equal(r.status, 200)
  t.same(srv.requests.map(q => [q.conn, q.path]), [[1, '/ssp'], [2, '/other/ssp']])
  t.equal(client.url, `http://127.0.0.1:${srv.port}/other/ssp`)
})

t.test('redirect anywhere else is refused with S-011 and counted', async t => {
  const b = await scriptedServer(t, () => OK)
  const a = await scriptedServer(t, req => (req.seq === 1 || req.conn === 2 ? answer(301, [`Location: ${b.url}`]) : OK))
  const client = newClient(t, a.url)
  // later request on the connection, marked setup: refused
  const out = await sendAll(client, ['T1', 'T2', 'T3'], undefined, i => i === 1)
  t.same(out.map(o => o.status), [200, 301, 200])
  const err = out[1]!.err!
  t.equal(err.code, 'SSP_ERR_REDIRECT_NOT_ALLOWED')
  t.equal(err.scr, 'S-011')
  t.equal(err.status, 301)
  t.equal(err.request?.transactionId, 'T2')
  // first request on a fresh connection, but not marked setup: refused too
  a.requests[0]!.socket.destroy()
  await waitFor(() => !client.connected)
  const err2 = await client.send('x', { transactionId: 'T4' }).catch((e: unknown) => e) as WireRequestError
  t.equal(codeOf(err2), 'SSP_ERR_REDIRECT_NOT_ALLOWED')
  t.equal(client.stats.redirectsRefused, 2)
  t.equal(client.stats.redirectsFollowed, 0)
  t.equal(b.connections, 0, 'B never contacted')
  t.equal(client.url, a.url)
})

t.test('redirect loop is detected', async t => {
  let bUrl = ''
  const a = await scriptedServer(t, () => answer(302, [`Location: ${bUrl}`]))
  const b = await scriptedServer(t, () => answer(302, [`Location: ${a.url}`]))
  bUrl = b.url
  const client = newClient(t, a.url)
  const err = await client.send('x', { transactionId: 'S1', setup: true }).catch((e: unknown) => e) as WireRequestError
  t.equal(codeOf(err), 'SSP_ERR_REDIRECT_LOOP')
  t.equal(err.request?.transactionId, 'S1')
  t.equal(a.requests.length, 1)
  t.equal(b.requests.length, 1)
  t.equal(client.url, a.url, 'target back to where the chain started')
  const self = await scriptedServer(t, () => answer(308, ['Location: /ssp']))
  const c2 = newClient(t, self.url)
  t.equal(codeOf(await c2.send('x', { transactionId: 'S1', setup: true }).catch((e: unknown) => e)), 'SSP_ERR_REDIRECT_LOOP', 'self-redirect')
})

t.test('too many hops → SSP_ERR_TOO_MANY_REDIRECTS; exactly maxRedirects hops succeed', async t => {
  const srv = await scriptedServer(t, req => {
    const hop = Number(/\/hop(\d+)/.exec(req.path)?.[1] ?? '0')
    return hop < 5 ? answer(303, [`Location: /hop${hop + 1}`]) : OK
  })
  const short = newClient(t, srv.url, { maxRedirects: 3 })
  const err = await short.send('x', { transactionId: 'S1', setup: true }).catch((e: unknown) => e)
  t.equal(codeOf(err), 'SSP_ERR_TOO_MANY_REDIRECTS')
  t.equal(srv.requests.length, 4, '1 + 3 hops')
  const enough = newClient(t, srv.url, { maxRedirects: 5 })
  t.equal((await enough.send('x', { transactionId: 'S2', setup: true })).status, 200)
  t.equal(enough.stats.redirectsFollowed, 5)
  t.equal(enough.url, `http://127.0.0.1:${srv.port}/hop5`)
})

// ------------------------------------------------------------------ TLS

const certs = makeCerts()
const noTls = certs === undefined ? 'openssl CLI not found: TLS tests skipped' : false

t.test('TLS: a certificate the client does not trust → SSP_ERR_TLS with the cause', { skip: noTls }, async t => {
  const c = certs!
  const srv = await scriptedServer(t, () => OK, { tls: { cert: c.serverCert, key: c.serverKey } })
  const client = newClient(t, srv.url)
  const out = await sendAll(client, ['T1', 'T2'])
  for (const o of out) {
    t.equal(o.err?.code, 'SSP_ERR_TLS')
    t.equal(o.err?.request?.transactionId, o.tid)
  }
  const cause = out[0]!.err!.cause as { code?: string }
  t.match(cause.code, /CERT|SIGN|ISSUER/, `cause: ${String(cause.code)}`)
  t.equal(srv.requests.length, 0)
  t.equal(client.stats.connects, 1, 'not retried')
})

t.test('TLS: trusted CA works; the session is resumed on reconnect', { skip: noTls }, async t => {
  const c = certs!
  const srv = await scriptedServer(t, () => ({ write: answer(200, ['Connection: close']), end: true }), { tls: { cert: c.serverCert, key: c.serverKey } })
  const client = newClient(t, srv.url, { ca: c.ca })
  const connects: Array<{ resumed: boolean }> = []
  client.on('connect', (ev: { resumed: boolean }) => connects.push(ev))
  t.equal((await client.send('a', { transactionId: 'T1' })).status, 200)
  await new Promise(resolve => setTimeout(resolve, 20)) // let the session ticket arrive
  t.equal((await client.send('b', { transactionId: 'T2' })).status, 200)
  t.equal(srv.connections, 2)
  t.same(connects.map(e => e.resumed), [false, true], 'second handshake resumed the session')
})

t.test('mutual TLS: works with a client certificate, fails without', { skip: noTls }, async t => {
  const c = certs!
  const srv = await scriptedServer(t, () => OK, {
    tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requestCert: true, rejectUnauthorized: true }
  })
  const withCert = newClient(t, srv.url, { ca: c.ca, cert: c.clientCert, key: c.clientKey })
  t.equal((await withCert.send('a', { transactionId: 'T1' })).status, 200)
  t.same(srv.peerCNs, ['ssp-client'])
  const without = newClient(t, srv.url, { ca: c.ca, maxReconnectAttempts: 1 })
  const err = await without.send('a', { transactionId: 'T2' }).catch((e: unknown) => e) as WireRequestError
  t.equal(codeOf(err), 'SSP_ERR_TLS', `${String(err)} / cause ${String((err as { cause?: unknown }).cause)}`)
  t.equal(err.request?.transactionId, 'T2')
  t.equal(srv.requests.length, 1, 'the server processed only the authenticated request')
})

// ------------------------------------------------------------------ misbehaving peers, events, shutdown

t.test('garbage or unsolicited answers: non-request error (no crash without a listener), in-flight unacknowledged', async t => {
  const srv = await scriptedServer(t, req => (req.conn === 1 ? 'HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n' : OK))
  const client = newClient(t, srv.url)
  const err = await client.send('x', { transactionId: 'T1' }).catch((e: unknown) => e) as WireRequestError
  t.equal(codeOf(err), 'SSP_ERR_UNACKNOWLEDGED')
  t.equal(codeOf(err.cause), 'SSP_ERR_HTTP_RESPONSE')
  t.equal(client.stats.errors, 1, 'counted, not thrown')
  const errors: unknown[] = []
  client.on('error', e => errors.push(e))
  // An answer nobody asked for.
  const srv2 = await scriptedServer(t, () => OK + OK)
  const c2 = newClient(t, srv2.url)
  c2.on('error', e => errors.push(e))
  t.equal((await c2.send('x', { transactionId: 'T1' })).status, 200)
  await waitFor(() => errors.length === 1)
  t.equal(codeOf(errors[0]), 'SSP_ERR_HTTP_RESPONSE')
})

t.test("events and diagnostics_channel: 'connect', 'disconnect'", async t => {
  const srv = await scriptedServer(t, () => ({ write: answer(200, ['Connection: close']), end: true }))
  const seen: string[] = []
  const onC = (): void => { seen.push('dc:connect') }
  const onD = (): void => { seen.push('dc:disconnect') }
  subscribe('ssp-transport:client:connect', onC)
  subscribe('ssp-transport:client:disconnect', onD)
  t.teardown(() => { unsubscribe('ssp-transport:client:connect', onC); unsubscribe('ssp-transport:client:disconnect', onD) })
  const client = newClient(t, srv.url)
  client.on('connect', () => seen.push('connect'))
  client.on('disconnect', () => seen.push('disconnect'))
  await client.send('x', { transactionId: 'T1' })
  t.same(seen, ['dc:connect', 'connect', 'dc:disconnect', 'disconnect'])
})

t.test('close() waits for in-flight answers then ends; destroy() hands everything back', async t => {
  const srv = await scriptedServer(t, () => ({ write: OK, delay: 30 }))
  const client = newClient(t, srv.url)
  const p = sendAll(client, range(3))
  await waitFor(() => srv.requests.length >= 1)
  await client.close()
  const out = await p
  t.ok(out.every(o => o.status === 200), 'all answered before close resolved')
  t.equal(codeOf(await client.send('x', { transactionId: 'T9' }).catch((e: unknown) => e)), 'SSP_ERR_CLIENT_CLOSED')

  const hold = await scriptedServer(t, () => null)
  const c2 = newClient(t, hold.url, { pipelineDepth: 2 })
  const p2 = sendAll(c2, range(4))
  await waitFor(() => hold.requests.length === 2)
  c2.destroy()
  const out2 = await p2
  t.same(out2.map(o => o.err?.code), ['SSP_ERR_UNACKNOWLEDGED', 'SSP_ERR_UNACKNOWLEDGED', 'SSP_ERR_CLIENT_CLOSED', 'SSP_ERR_CLIENT_CLOSED'])
  t.ok(out2.every(o => o.err?.request?.transactionId === o.tid), 'each carries its request')

  // close() bounded by closeTimeout when the peer never answers
  const c3 = newClient(t, hold.url, { closeTimeout: 100 })
  const p3 = sendAll(c3, ['X1'])
  await waitFor(() => hold.requests.length === 3)
  const t0 = Date.now()
  await c3.close()
  t.ok(Date.now() - t0 >= 90, 'waited for closeTimeout')
  t.equal((await p3)[0]!.err?.code, 'SSP_ERR_UNACKNOWLEDGED')
})

// ------------------------------------------------------------------ against the engine's own server

t.test('WireClient → WireServer: 1,000 pipelined requests', async t => {
  const got: string[] = []
  const server = createWireServer({ onRequest: req => { got.push(req.transactionId ?? '') } })
  const addr = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  const client = newClient(t, `http://127.0.0.1:${addr.port}/ssp`, { maxQueued: 1000 })
  const tids = range(1000)
  const out = await sendAll(client, tids)
  t.ok(out.every(o => o.err === null && o.status === 200), 'all acknowledged')
  t.same(out.map(o => o.tid), tids, 'in order')
  t.same(got, tids, 'server handled them in order')
  t.equal(client.stats.connects, 1)
  await client.close()
})
