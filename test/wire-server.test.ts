/**
 * WireServer / ServerConnection over real sockets on 127.0.0.1 (port 0):
 * in-order dummy 200s with one write per read, refusals keeping their place,
 * limits, timeouts, backpressure, counters and diagnostics_channel events,
 * the interop posture, TLS and mutual TLS, redirects and graceful close.
 */
import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import * as net from 'node:net'
import { ERRORS, isSspError, type ErrorCode } from '../src/errors.js'
import { ACK, ACK_LEN, errorReply } from '../src/wire/replies.js'
import { resolveServerOptions } from '../src/wire/server-options.js'
import type { ServerConnection } from '../src/wire/server-connection.js'
import type { SspRequest } from '../src/wire/request.js'
import { WireServer } from '../src/wire/server.js'
import { makeCerts } from './helpers/certs.js'
import { randomPieces } from './helpers/framer-run.js'
import { delay, ByteClient, until, type ByteAnswer } from './helpers/byte-client.js'
import { startServer, type ConnSpy, type TestServer } from './helpers/server.js'
import { pipeline, post, tids } from './helpers/ssp-requests.js'

const statuses = (a: ByteAnswer[]): number[] => a.map((x) => x.status)
const ACK_TEXT = ACK.toString('latin1')

/** Every read produced at most one socket write, and no write happened outside a read. */
function assertOneWritePerRead (t: Test, spy: ConnSpy, what: string): void {
  const over = spy.writesPerRead.filter((w) => w > 1)
  t.same(over, [], `${what}: at most one socket write per read (reads=${spy.reads}, writes per read=${JSON.stringify(spy.writesPerRead.slice(0, 20))})`)
}

function spyOf (s: TestServer, i = 0): ConnSpy {
  const spy = s.conns[i]
  if (spy === undefined) throw new Error(`no connection ${i}`)
  return spy
}

/** A handler whose promises the test settles. */
function heldHandler (): { handler: (req: SspRequest) => Promise<void>, resolvers: Array<() => void>, releaseAll: () => number } {
  const resolvers: Array<() => void> = []
  return {
    resolvers,
    handler: () => new Promise<void>((resolve) => { resolvers.push(resolve) }),
    releaseAll: () => {
      const n = resolvers.length
      for (const r of resolvers.splice(0)) r()
      return n
    }
  }
}

/** Settle held requests until `done()` (bounded). */
async function drain (h: { releaseAll: () => number }, done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !done(); i++) {
    h.releaseAll()
    await delay(5)
  }
  if (!done()) throw new Error(`did not drain: ${what}`)
}

t.test('pipelines of 1, 16 and 1000 requests: exactly N 200s, handed over in order, one write per read', async (t) => {
  for (const n of [1, 16, 1000]) {
    await t.test(`${n} in one write`, async (t) => {
      const s = await startServer(t)
      const c = await s.connect()
      c.write(pipeline(n))
      await c.waitAnswers(n)
      await delay(30)
      t.equal(c.answers.length, n, 'exactly N answers')
      t.ok(c.answers.every((a) => a.raw === ACK_TEXT), 'every answer is the dummy 200 with Content-Length: 0')
      t.same(s.handled.map((h) => h.tid), tids(0, n), 'handed over in request order')
      t.ok(s.handled.every((h, i) => h.body === `body-${i}` && h.sid === 'S1'), 'bodies and session ids')
      const spy = spyOf(s)
      assertOneWritePerRead(t, spy, `${n} requests`)
      t.equal(spy.writesOutsideReads, 0, 'no write outside a read')
      t.ok(spy.writes.length <= spy.reads, `writes (${spy.writes.length}) <= reads (${spy.reads})`)
      t.equal(spy.writes.reduce((a, b) => a + b.length, 0), n * ACK_LEN, 'only 200s were written')
      t.notOk(c.closed, 'the connection stays open')
      const st = s.server.getStats()
      t.equal(st.requests, n)
      t.equal(st.acknowledged, n)
      t.equal(spy.conn.stats.requests, n)
      t.equal(spy.conn.stats.acknowledged, n)
      t.equal(spy.conn.stats.bytesOut, n * ACK_LEN)
    })
  }

  await t.test('1000 written in seeded random pieces', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const bytes = pipeline(1000)
    for (const piece of randomPieces(bytes, 300, 7)) {
      c.write(piece)
      await new Promise((resolve) => setImmediate(resolve))
    }
    await c.waitAnswers(1000)
    await delay(30)
    t.equal(c.answers.length, 1000)
    t.same(s.handled.map((h) => h.tid), tids(0, 1000))
    t.ok(s.handled.every((h, i) => h.body === `body-${i}`), 'bodies')
    const spy = spyOf(s)
    t.ok(spy.reads > 1, `arrived in several reads (${spy.reads})`)
    assertOneWritePerRead(t, spy, 'random pieces')
  })
})

t.test('the 200 goes out when the request is handed over, not when the handler finishes', async (t) => {
  const h = heldHandler()
  const s = await startServer(t, { onRequest: h.handler })
  const c = await s.connect()
  c.write(pipeline(3))
  await c.waitAnswers(3)
  t.same(statuses(c.answers), [200, 200, 200])
  t.equal(h.resolvers.length, 3, 'all three handler promises still pending')
  t.equal(s.server.getStats().inFlight, 3)
  t.equal(spyOf(s).conn.inFlight, 3)
  h.releaseAll()
  await until(() => s.server.getStats().inFlight === 0, 'inFlight 0')
  t.equal(spyOf(s).conn.inFlight, 0)
})

t.test('a handler that throws or rejects: the request stays accepted, the error is counted', async (t) => {
  const s = await startServer(t, {
    onRequest: (req) => {
      if (req.transactionId === 'T0') throw new Error('sync failure')
      if (req.transactionId === 'T1') return Promise.reject(new Error('async failure'))
      return undefined
    }
  })
  const c = await s.connect()
  c.write(pipeline(3))
  await c.waitAnswers(3)
  t.same(statuses(c.answers), [200, 200, 200], 'a 200 means accepted by the transport')
  await until(() => s.server.getStats().handlerErrors === 2, 'both counted')
  t.equal(spyOf(s).conn.stats.handlerErrors, 2)
  t.equal(s.server.getStats().inFlight, 0, 'the rejected promise released its place')
  t.notOk(c.closed, 'the connection stays open')
})

const BAD: Array<{ name: string, bytes: Buffer, code: ErrorCode, status: number }> = [
  { name: 'GET', bytes: post({ method: 'GET', tid: 'X' }), code: 'SSP_ERR_METHOD', status: 405 },
  { name: 'text/xml', bytes: post({ contentType: 'text/xml', tid: 'X' }), code: 'SSP_ERR_CONTENT_TYPE', status: 415 },
  { name: 'no content type', bytes: post({ contentType: null, tid: 'X' }), code: 'SSP_ERR_CONTENT_TYPE', status: 415 },
  { name: 'no transaction id', bytes: post({ tid: null }), code: 'SSP_ERR_TRANSACTION_ID_MISSING', status: 400 },
  { name: 'transaction id 0000000042-7', bytes: post({ tid: '0000000042-7' }), code: 'SSP_ERR_TRANSACTION_ID_INVALID', status: 400 },
  { name: 'session id 5@a.example', bytes: post({ tid: 'X', sid: '5@a.example' }), code: 'SSP_ERR_SESSION_ID_INVALID', status: 400 },
  { name: 'HTTP/1.0', bytes: post({ version: '1.0', tid: 'X' }), code: 'SSP_ERR_HTTP_VERSION', status: 505 },
  { name: 'HTTP/2 preface', bytes: Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), code: 'SSP_ERR_HTTP_VERSION', status: 505 },
  { name: 'malformed header line', bytes: Buffer.from('POST / HTTP/1.1\r\nBroken header\r\n\r\n'), code: 'SSP_ERR_HTTP_PARSE', status: 400 },
  { name: 'CL + TE', bytes: post({ tid: 'X', body: 'abc', headers: ['Transfer-Encoding: chunked'] }), code: 'SSP_ERR_HTTP_PARSE', status: 400 }
]

t.test('an invalid request in the middle of a pipeline', async (t) => {
  for (const bad of BAD) {
    await t.test(bad.name, async (t) => {
      const rejects: unknown[] = []
      const onReject = (m: unknown): void => { rejects.push(m) }
      subscribe('ssp-transport:server:reject', onReject)
      t.teardown(() => { unsubscribe('ssp-transport:server:reject', onReject) })
      const s = await startServer(t)
      const c = await s.connect()
      c.write(Buffer.concat([pipeline(3), bad.bytes, pipeline(3, 3)]))
      await c.waitClose()
      t.same(statuses(c.answers), [200, 200, 200, bad.status], 'the earlier requests get their 200s first, then the refusal')
      const last = c.answers[3]
      t.equal(last?.headers['x-ssp-error'], bad.code, 'X-SSP-Error names the code')
      t.equal(last?.headers.connection, 'close')
      t.equal(last?.headers['content-length'], '0')
      if (bad.status === 405) t.equal(last?.headers.allow, 'POST')
      t.equal(ERRORS[bad.code].status, bad.status)
      t.ok(c.ended, 'the server ended the connection')
      t.same(s.handled.map((h) => h.tid), tids(0, 3), 'later requests never reach the handler')
      const spy = spyOf(s)
      assertOneWritePerRead(t, spy, bad.name)
      t.equal(spy.writes.reduce((a, b) => a + b.length, 0), 3 * ACK_LEN + errorReply(bad.code).length, 'nothing else written')
      t.equal(spy.conn.stats.errors[bad.code], 1)
      t.equal(s.server.getStats().errors[bad.code], 1)
      t.equal(s.server.getStats().acknowledged, 3)
      const mine = rejects.filter((m) => (m as { connection: ServerConnection }).connection === spy.conn) as Array<{ code: string }>
      t.same(mine.map((m) => m.code), [bad.code], 'one reject event')
    })
  }

  await t.test('a refusal arriving alone in a later read', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    c.write(pipeline(2))
    await c.waitAnswers(2)
    c.write(post({ method: 'PUT' }))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 200, 405])
  })

  await t.test('a refusal behind a request held for backpressure waits for it', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { maxPipelineDepth: 1, onRequest: h.handler })
    const c = await s.connect()
    c.write(Buffer.concat([pipeline(2), post({ method: 'GET' })]))
    await c.waitAnswers(1)
    await delay(50)
    t.same(statuses(c.answers), [200], 'T1 is held: no answer for it, and no refusal either')
    h.releaseAll()
    await c.waitClose()
    t.same(statuses(c.answers), [200, 200, 405], 'T1 acknowledged, then the refusal in its place')
    t.same(s.handled.map((x) => x.tid), ['T0', 'T1'])
  })
})

t.test('bodies that span reads', async (t) => {
  await t.test('written slowly in small pieces', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const body1 = 'A'.repeat(700) + '<WV-SSP-Message/>' + 'B'.repeat(300)
    const body2 = 'x'.repeat(450)
    const bytes = Buffer.concat([post({ tid: 'Tslow1', body: body1 }), post({ tid: 'Tslow2', body: body2, chunks: 4 })])
    await c.writeSlowly(bytes, 97, 3)
    await c.waitAnswers(2)
    t.same(statuses(c.answers), [200, 200])
    t.same(s.handled.map((h) => [h.tid, h.body]), [['Tslow1', body1], ['Tslow2', body2]])
    const spy = spyOf(s)
    t.ok(spy.reads > 5, `arrived in ${spy.reads} reads`)
    assertOneWritePerRead(t, spy, 'slow pieces')
    t.equal(spy.writes.length, 2, 'one write for each read that completed a request')
  })

  await t.test('a large body in one write', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const body = Buffer.alloc(600 * 1024)
    for (let i = 0; i < body.length; i++) body[i] = 0x41 + (i % 26)
    c.write(Buffer.concat([post({ tid: 'Big', body }), post({ tid: 'Small', body: 'after' })]))
    await c.waitAnswers(2)
    t.same(statuses(c.answers), [200, 200])
    const big = s.handled[0]!
    t.equal(big.tid, 'Big')
    t.ok(big.req.body.equals(body), 'body intact')
    t.equal(s.handled[1]!.body, 'after')
    t.ok(spyOf(s).reads > 1, 'the body spanned reads')
  })
})

t.test('Connection: close', async (t) => {
  await t.test('on the second of three pipelined requests', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    c.write(Buffer.concat([post({ tid: 'T0' }), post({ tid: 'T1', close: true }), post({ tid: 'T2' })]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 200])
    t.equal(c.answers[0]!.headers.connection, undefined, 'the first 200 keeps the connection')
    t.equal(c.answers[1]!.headers.connection, 'close', 'the last 200 says close')
    t.ok(c.ended, 'the server ended the connection')
    t.same(s.handled.map((h) => h.tid), ['T0', 'T1'], 'nothing after it is handed over')
    const spy = spyOf(s)
    assertOneWritePerRead(t, spy, 'Connection: close')
    t.equal(spy.writes.length, spy.reads === 1 ? 1 : spy.writes.length, 'one write when it all came in one read')
  })

  await t.test('alone', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    c.write(post({ tid: 'T0', close: true }))
    await c.waitClose()
    t.same(statuses(c.answers), [200])
    t.equal(c.answers[0]!.headers.connection, 'close')
  })
})

t.test('a handler returning a thenable that settles synchronously: every request answered, in order', async (t) => {
  let calls = 0
  const s = await startServer(t, {
    maxPipelineDepth: 1, // room for one request at a time: each must be settled before the next is handed over
    onRequest: () => {
      calls++
      // Not a Promise: a bare thenable whose then() calls back at once.
      const thenable = { then (resolve: (v: unknown) => void): void { resolve(undefined) } }
      return thenable as unknown as PromiseLike<unknown>
    }
  })
  const c = await s.connect()
  c.write(pipeline(20))
  const answers = await c.waitAnswers(20)
  t.same(statuses(answers), Array(20).fill(200))
  t.equal(calls, 20)
  t.same(s.handled.map((h) => h.tid), tids(0, 20), 'handed over in order')
  t.equal(s.server.getStats().handlerErrors, 0)
})

t.test('a client that disconnects mid-pipeline', async (t) => {
  await t.test('in the middle of a request', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const fourth = post({ tid: 'T3', body: 'partial body' })
    c.write(Buffer.concat([pipeline(3), fourth.subarray(0, fourth.length - 5)]))
    await c.waitAnswers(3)
    const spy = spyOf(s)
    c.destroy()
    await until(() => spy.conn.closed, 'server side closed')
    t.same(s.handled.map((h) => h.tid), tids(0, 3))
    t.equal(spy.conn.stats.incompleteRequests, 1)
    t.equal(s.server.getStats().incompleteRequests, 1)
    t.equal(s.server.getStats().connectionsOpen, 0)
    // the server goes on serving
    const c2 = await s.connect()
    c2.write(pipeline(2, 10))
    await c2.waitAnswers(2)
    t.same(statuses(c2.answers), [200, 200])
  })

  await t.test('with a request held for backpressure', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { maxPipelineDepth: 1, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(3))
    await c.waitAnswers(1)
    const spy = spyOf(s)
    await until(() => spy.conn.stats.requests === 2, 'second request parsed and held')
    c.destroy()
    await until(() => spy.conn.closed, 'server side closed')
    t.equal(spy.conn.stats.unacknowledgedDropped, 1, 'the held request was dropped unacknowledged')
    t.equal(s.server.getStats().unacknowledgedDropped, 1)
    t.same(s.handled.map((x) => x.tid), ['T0'])
    h.releaseAll()
    await until(() => s.server.getStats().inFlight === 0, 'handler settled after the close')
  })

  await t.test('reset in the middle of 1000 pipelined requests', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const bytes = pipeline(1000)
    c.write(bytes.subarray(0, Math.floor(bytes.length / 2)))
    c.socket.resetAndDestroy()
    await until(() => s.conns.length === 1 && spyOf(s).conn.closed, 'server side closed')
    const st = s.server.getStats()
    t.ok(st.requests <= 1000)
    t.equal(st.connectionsOpen, 0)
    const c2 = await s.connect()
    c2.write(pipeline(1))
    await c2.waitAnswers(1)
    t.same(statuses(c2.answers), [200], 'still serving')
  })
})

t.test('431: header limits', async (t) => {
  await t.test('maxHeaderBytes', async (t) => {
    const s = await startServer(t, { maxHeaderBytes: 256 })
    const c = await s.connect()
    c.write(Buffer.concat([post({ tid: 'T0', headers: ['X-Pad: ' + 'p'.repeat(100)] }), post({ tid: 'T1', headers: ['X-Pad: ' + 'p'.repeat(300)] }), post({ tid: 'T2' })]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 431])
    t.equal(c.answers[1]!.headers['x-ssp-error'], 'SSP_ERR_HEADERS_TOO_LARGE')
    t.same(s.handled.map((h) => h.tid), ['T0'])
  })

  await t.test('a header section that never ends is cut at the limit', async (t) => {
    const s = await startServer(t, { maxHeaderBytes: 1024 })
    const c = await s.connect()
    c.write('POST / HTTP/1.1\r\nX-Endless: ')
    for (let i = 0; i < 100 && !c.closed; i++) {
      c.write('e'.repeat(100))
      await delay(2)
    }
    await c.waitClose()
    t.same(statuses(c.answers), [431])
  })

  await t.test('maxHeaderCount', async (t) => {
    // post() sends Host, Content-Type, x-wv-transactionid and Content-Length: 4 lines
    const s = await startServer(t, { maxHeaderCount: 8 })
    const c = await s.connect()
    const four = ['X-1: a', 'X-2: a', 'X-3: a', 'X-4: a']
    c.write(Buffer.concat([post({ tid: 'T0', headers: four }), post({ tid: 'T1', headers: [...four, 'X-5: a'] })]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 431], 'exactly at the limit passes, one more is refused')
    t.equal(c.answers[1]!.headers['x-ssp-error'], 'SSP_ERR_HEADERS_TOO_LARGE')
  })
})

t.test('413: body limit', async (t) => {
  await t.test('declared Content-Length over the limit is refused before the body is sent', async (t) => {
    const s = await startServer(t, { maxBodyBytes: 1000 })
    const c = await s.connect()
    const ok = post({ tid: 'T0', body: 'b'.repeat(1000) })
    const over = post({ tid: 'T1', body: 'b'.repeat(1001) })
    c.write(Buffer.concat([ok, over.subarray(0, over.indexOf('\r\n\r\n') + 4)]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 413])
    t.equal(c.answers[1]!.headers['x-ssp-error'], 'SSP_ERR_BODY_TOO_LARGE')
    t.same(s.handled.map((h) => h.tid), ['T0'])
  })

  await t.test('chunked body over the limit', async (t) => {
    const s = await startServer(t, { maxBodyBytes: 1000 })
    const c = await s.connect()
    c.write(Buffer.concat([post({ tid: 'T0', body: 'b'.repeat(1000), chunks: 3 }), post({ tid: 'T1', body: 'b'.repeat(1001), chunks: 3 })]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 413])
    t.equal(c.answers[1]!.headers['x-ssp-error'], 'SSP_ERR_BODY_TOO_LARGE')
    t.equal(s.server.getStats().errors.SSP_ERR_BODY_TOO_LARGE, 1)
  })
})

t.test('timeouts', async (t) => {
  await t.test('headersTimeout: 408, then close', async (t) => {
    const s = await startServer(t, { headersTimeout: 200, timerResolution: 20, idleTimeout: 60_000, requestTimeout: 60_000 })
    const c = await s.connect()
    c.write(Buffer.concat([pipeline(1), Buffer.from('POST / HTTP/1.1\r\nContent-Type: appl')]))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 408])
    t.equal(c.answers[1]!.headers['x-ssp-error'], 'SSP_ERR_HEADERS_TIMEOUT')
    t.ok(c.ended, 'ended by the server')
    t.equal(s.server.getStats().errors.SSP_ERR_HEADERS_TIMEOUT, 1)
  })

  await t.test('requestTimeout: a body that never completes', async (t) => {
    const s = await startServer(t, { headersTimeout: 60_000, requestTimeout: 200, timerResolution: 20, idleTimeout: 60_000 })
    const c = await s.connect()
    const r = post({ tid: 'T0', body: 'twenty bytes of body' })
    c.write(r.subarray(0, r.length - 5))
    await c.waitClose()
    t.same(statuses(c.answers), [408])
    t.equal(c.answers[0]!.headers['x-ssp-error'], 'SSP_ERR_REQUEST_TIMEOUT')
    t.same(s.handled, [])
  })

  await t.test('idleTimeout: a silent connection is closed', async (t) => {
    const s = await startServer(t, { idleTimeout: 200, timerResolution: 20 })
    const c = await s.connect()
    await c.waitClose()
    t.equal(c.bytesReceived, 0, 'closed without an answer')
    t.equal(s.server.getStats().errors.SSP_ERR_IDLE_TIMEOUT, 1)
    await until(() => s.server.getStats().connectionsOpen === 0, 'server side closed')
  })

  await t.test('idleTimeout after some traffic', async (t) => {
    const s = await startServer(t, { idleTimeout: 60_000, timerResolution: 20 })
    const c = await s.connect()
    c.write(pipeline(2))
    await c.waitAnswers(2)
    s.server.options.idleTimeout = 200
    await c.waitClose()
    t.same(statuses(c.answers), [200, 200], 'answered, then closed when idle')
    t.equal(spyOf(s).conn.stats.errors.SSP_ERR_IDLE_TIMEOUT, 1)
  })

  await t.test('a connection paused by the application queue is not idle', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { maxPipelineDepth: 1, idleTimeout: 60_000, timerResolution: 20, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(2))
    await c.waitAnswers(1)
    const spy = spyOf(s)
    await until(() => spy.conn.stats.requests === 2, 'T1 parsed and held')
    // Only now a short idleTimeout (options are read at each sweep): set before the
    // request is held, event-loop lag on a loaded machine could fire it first.
    s.server.options.idleTimeout = 100
    await delay(400)
    t.notOk(c.closed, 'still open while we hold its request')
    t.equal(spy.conn.stats.errors.SSP_ERR_IDLE_TIMEOUT, undefined)
    h.releaseAll()
    await c.waitAnswers(2)
    t.same(statuses(c.answers), [200, 200])
    h.releaseAll()
    await c.waitClose()
    t.equal(spy.conn.stats.errors.SSP_ERR_IDLE_TIMEOUT, 1, 'idle once reading resumed and nothing came')
  })
})

t.test('backpressure: the application queue (maxInFlight)', async (t) => {
  await t.test('one connection', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { maxInFlight: 4, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(10))
    await c.waitAnswers(4)
    await delay(150)
    const spy = spyOf(s)
    t.equal(c.answers.length, 4, 'exactly 4 acknowledged')
    t.same(s.handled.map((x) => x.tid), tids(0, 4), 'exactly 4 handed over')
    t.equal(s.server.getStats().inFlight, 4)
    t.ok(spy.conn.socket.isPaused(), 'socket reading paused')
    t.equal(spy.conn.stats.backpressurePauses, 1)
    t.equal(spy.conn.stats.requests, 5, 'the fifth is parsed and held, not acknowledged')
    const reads = spy.reads
    c.write(pipeline(5, 10))
    await delay(150)
    t.equal(c.answers.length, 4, 'more requests sent: still not acknowledged')
    t.equal(spy.reads, reads, 'the socket is not read')
    await drain(h, () => c.answers.length >= 15, '15 answers')
    t.same(statuses(c.answers), new Array(15).fill(200))
    t.same(s.handled.map((x) => x.tid), tids(0, 15), 'the rest in order')
    assertOneWritePerRead(t, spy, 'backpressure')
    h.releaseAll()
  })

  await t.test('shared by connections', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { maxInFlight: 4, onRequest: h.handler })
    const a = await s.connect()
    a.write(pipeline(4, 0))
    await a.waitAnswers(4)
    const b = await s.connect()
    b.write(pipeline(4, 100))
    await until(() => s.conns.length === 2 && spyOf(s, 1).conn.stats.requests === 1, 'b parsed one request')
    await delay(50)
    t.equal(b.answers.length, 0, 'the queue is full: b gets nothing')
    t.ok(spyOf(s, 1).conn.socket.isPaused())
    h.resolvers.shift()!()
    await b.waitAnswers(1)
    t.equal(b.answers.length, 1, 'one place freed: b gets exactly one')
    t.equal(s.handled.at(-1)!.tid, 'T100')
    await drain(h, () => b.answers.length === 4, 'b done')
    t.same(s.handled.filter((x) => x.conn === spyOf(s, 1).conn.id).map((x) => x.tid), tids(100, 4))
    h.releaseAll()
  })
})

t.test('backpressure: maxPipelineDepth per connection', async (t) => {
  const h = heldHandler()
  const s = await startServer(t, { maxPipelineDepth: 2, onRequest: h.handler })
  const a = await s.connect()
  const b = await s.connect()
  a.write(pipeline(5, 0))
  b.write(pipeline(5, 100))
  await a.waitAnswers(2)
  await b.waitAnswers(2)
  await delay(100)
  t.equal(a.answers.length, 2, 'a: exactly the depth acknowledged')
  t.equal(b.answers.length, 2, 'b: its own share, not blocked by a')
  t.equal(s.server.getStats().inFlight, 4)
  await drain(h, () => a.answers.length === 5 && b.answers.length === 5, 'both done')
  t.same(s.handled.filter((x) => x.tid!.length < 4).map((x) => x.tid), tids(0, 5))
  t.same(s.handled.filter((x) => x.tid!.length >= 4).map((x) => x.tid), tids(100, 5))
  h.releaseAll()
})

t.test('retain() and release(): a request held without a promise, released from inside another connection\'s parser', async (t) => {
  const retained: ServerConnection[] = []
  let releaseInHandler = 0
  const s = await startServer(t, {
    maxPipelineDepth: 2,
    onRequest: (req, conn) => {
      if (req.transactionId!.length < 4) {
        conn.retain()
        retained.push(conn)
        return
      }
      // A request on connection b frees two places of connection a while b's
      // llhttp callback is running: applied on a microtask, after the parse.
      for (let i = 0; i < 2 && retained.length > 0; i++) {
        retained.shift()!.release()
        releaseInHandler++
      }
    }
  })
  const a = await s.connect()
  a.write(pipeline(5, 0))
  await a.waitAnswers(2)
  await delay(50)
  t.equal(a.answers.length, 2, 'exactly the depth acknowledged while retained')
  t.equal(s.server.getStats().inFlight, 2, 'retained requests count as in flight')
  const b = await s.connect()
  b.write(pipeline(1, 100))
  await b.waitAnswers(1)
  await a.waitAnswers(4)
  t.equal(releaseInHandler, 2)
  t.equal(a.answers.length, 4, 'two places freed, two more handed over')
  b.write(pipeline(2, 101))
  await a.waitAnswers(5)
  t.same(statuses(a.answers), [200, 200, 200, 200, 200])
  t.same(s.handled.filter((x) => x.tid!.length < 4).map((x) => x.tid), tids(0, 5), 'in order')
  while (retained.length > 0) retained.shift()!.release()
  await until(() => s.server.getStats().inFlight === 0, 'all released')
  t.equal(s.server.getStats().inFlight, 0)
})

/** Smallest valid requests: most answer bytes per request byte. */
function tinyPipeline (n: number): Buffer {
  const one = Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: T\r\n\r\n', 'latin1')
  const out = Buffer.allocUnsafe(one.length * n)
  for (let i = 0; i < n; i++) one.copy(out, i * one.length)
  return out
}

/** Send requests on a connection whose client never reads, until the server pauses reading (bounded). */
async function fillUntilPaused (s: TestServer, c: ByteClient): Promise<{ spy: ConnSpy, sent: number }> {
  c.countOnly = true
  c.socket.pause()
  const batch = tinyPipeline(4000)
  let sent = 0
  await until(() => s.conns.length === 1, 'accepted')
  const spy = spyOf(s)
  for (let i = 0; i < 300 && spy.conn.stats.backpressurePauses === 0 && !spy.conn.closed; i++) {
    c.write(batch)
    sent += 4000
    await until(() => spy.conn.stats.requests >= sent || spy.conn.stats.backpressurePauses > 0 || spy.conn.closed, 'progress', 60_000)
  }
  return { spy, sent }
}

t.test('backpressure: a peer that does not read (maxWriteBuffer)', async (t) => {
  const s = await startServer(t, { maxWriteBuffer: 8 * 1024 })
  const c = await s.connect()
  const filled = await fillUntilPaused(s, c)
  const spy = filled.spy
  let sent = filled.sent
  t.equal(spy.conn.stats.backpressurePauses, 1, `paused after ${sent} requests`)
  t.ok(spy.conn.socket.isPaused(), 'socket reading paused')
  t.ok(spy.conn.socket.writableLength > 8 * 1024, 'answers are queued')
  const parsed = spy.conn.stats.requests
  c.write(tinyPipeline(4000))
  sent += 4000
  await delay(200)
  t.equal(spy.conn.stats.requests, parsed, 'nothing more is read while the peer does not read')
  c.socket.resume()
  await until(() => c.bytesReceived === sent * ACK_LEN, `all ${sent} answers`, 60_000)
  t.equal(spy.conn.stats.acknowledged, sent)
  t.equal(spy.conn.stats.requests, sent)
})

t.test('a peer that never reads is cut off after idleTimeout (write stalled)', async (t) => {
  const s = await startServer(t, { maxWriteBuffer: 8 * 1024, idleTimeout: 60_000, timerResolution: 20 })
  const c = await s.connect()
  const { spy } = await fillUntilPaused(s, c)
  t.equal(spy.conn.stats.backpressurePauses, 1, 'paused')
  // A short idleTimeout only now that reading is paused (options are read at each sweep).
  s.server.options.idleTimeout = 200
  await until(() => spy.conn.closed, 'server closed it')
  t.equal(spy.conn.stats.errors.SSP_ERR_WRITE_STALLED, 1, `errors ${JSON.stringify(spy.conn.stats.errors)}`)
})

t.test('counters and diagnostics_channel events', async (t) => {
  const events: Record<string, unknown[]> = { connection: [], request: [], reject: [], close: [] }
  const subs: Array<[string, (m: unknown) => void]> = []
  for (const k of Object.keys(events)) {
    const fn = (m: unknown): void => { events[k]!.push(m) }
    subscribe(`ssp-transport:server:${k}`, fn)
    subs.push([`ssp-transport:server:${k}`, fn])
  }
  t.teardown(() => { for (const [n, fn] of subs) unsubscribe(n, fn) })
  const mine = (k: string, conn: ServerConnection): unknown[] =>
    events[k]!.filter((m) => (m as { connection: ServerConnection }).connection === conn)

  await t.test('a connection with two requests and a refusal', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    const bytes = Buffer.concat([pipeline(2), post({ tid: 'X', contentType: 'text/plain' })])
    c.write(bytes)
    await c.waitClose()
    const spy = spyOf(s)
    await until(() => spy.conn.closed, 'closed')
    t.equal(mine('connection', spy.conn).length, 1, 'one connection event')
    t.same(mine('request', spy.conn).map((m) => (m as { request: SspRequest }).request.transactionId), ['T0', 'T1'], 'one request event per hand-over')
    t.same(mine('reject', spy.conn).map((m) => (m as { code: string }).code), ['SSP_ERR_CONTENT_TYPE'])
    t.equal(mine('close', spy.conn).length, 1, 'one close event')
    const cs = spy.conn.stats.snapshot()
    t.equal(cs.requests, 2)
    t.equal(cs.acknowledged, 2)
    t.equal(cs.bytesIn, bytes.length)
    t.equal(cs.bytesOut, 2 * ACK_LEN + errorReply('SSP_ERR_CONTENT_TYPE').length)
    t.same(cs.errors, { SSP_ERR_CONTENT_TYPE: 1 })
    t.same(cs.interop, {})
    const st = s.server.getStats()
    t.equal(st.requests, 2)
    t.equal(st.acknowledged, 2)
    t.equal(st.bytesIn, bytes.length)
    t.equal(st.bytesOut, cs.bytesOut)
    t.same(st.errors, { SSP_ERR_CONTENT_TYPE: 1 })
    t.equal(st.connectionsAccepted, 1)
    t.equal(st.connectionsOpen, 0)
    t.equal(st.connectionsRefused, 0)
    // a snapshot is a copy
    cs.errors.SSP_ERR_CONTENT_TYPE = 99
    t.equal(spy.conn.stats.errors.SSP_ERR_CONTENT_TYPE, 1)
  })

  await t.test('a refused request is counted under its error code only, not as incomplete', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    // A GET head whose body never arrives: refused (405) at the end of its head, then the connection closes.
    c.write(Buffer.concat([pipeline(2), Buffer.from('GET /ssp HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc')]))
    await c.waitClose()
    const spy = spyOf(s)
    await until(() => spy.conn.closed, 'server side closed')
    t.same(statuses(c.answers), [200, 200, 405])
    t.equal(spy.conn.stats.errors.SSP_ERR_METHOD, 1, 'counted as its error')
    t.equal(spy.conn.stats.incompleteRequests, 0, 'not also as an incomplete request')
  })

  await t.test('a connection reset by the peer: one close event', async (t) => {
    const s = await startServer(t)
    const c = await s.connect()
    c.write(pipeline(1))
    await c.waitAnswers(1)
    c.write(post({ tid: 'Tpartial', body: 'xxxxxxxx' }).subarray(0, 40))
    await until(() => spyOf(s).conn.stats.bytesIn > 0 && spyOf(s).conn.stats.requests === 1, 'read')
    await delay(20)
    c.socket.resetAndDestroy()
    const spy = spyOf(s)
    await until(() => spy.conn.closed, 'closed')
    await delay(20)
    t.equal(mine('close', spy.conn).length, 1, 'exactly one close event for the connection')
    const ev = mine('close', spy.conn)[0] as { error?: unknown } | undefined
    if (spy.conn.stats.errors.SSP_ERR_SOCKET === 1) {
      t.ok(isSspError(ev?.error), 'the close event carries the socket error')
    }
    t.equal(spy.conn.stats.incompleteRequests, 1)
  })
})

t.test('interop posture accepts real-peer deviations and counts them; strict refuses them', async (t) => {
  const deviant = [post({ tid: null, sid: 'S1', body: 'a' }), post({ tid: '0000000042-7', body: 'b' }), post({ tid: 'T3', sid: '5@a.example', body: 'c' })]

  await t.test('interop', async (t) => {
    const s = await startServer(t, { posture: 'interop' })
    const c = await s.connect()
    c.write(Buffer.concat(deviant))
    await c.waitAnswers(3)
    t.same(statuses(c.answers), [200, 200, 200])
    t.same(s.handled.map((h) => [h.tid, h.sid, h.body]), [[undefined, 'S1', 'a'], ['0000000042-7', undefined, 'b'], ['T3', '5@a.example', 'c']])
    const expected = { transactionIdMissing: 1, transactionIdGrammar: 1, sessionIdGrammar: 1 }
    t.same(s.server.getStats().interop, expected, 'server counters')
    t.same(spyOf(s).conn.stats.snapshot().interop, expected, 'connection counters')
    t.same(s.server.getStats().errors, {})
    t.equal(s.server.options.posture, 'interop')
  })

  await t.test('strict (the default)', async (t) => {
    const s = await startServer(t)
    const codes: ErrorCode[] = ['SSP_ERR_TRANSACTION_ID_MISSING', 'SSP_ERR_TRANSACTION_ID_INVALID', 'SSP_ERR_SESSION_ID_INVALID']
    for (let i = 0; i < deviant.length; i++) {
      const c = await s.connect()
      c.write(deviant[i]!)
      await c.waitClose()
      t.same(statuses(c.answers), [400])
      t.equal(c.answers[0]!.headers['x-ssp-error'], codes[i])
    }
    t.same(s.handled, [], 'none handed over')
    t.same(s.server.getStats().interop, {})
    t.equal(s.server.options.posture, 'strict')
  })
})

t.test('TLS', async (t) => {
  const certs = makeCerts()

  await t.test('server certificate', async (t) => {
    const s = await startServer(t, { tls: { cert: certs.serverCert, key: certs.serverKey } })
    t.ok(s.server.secure)
    const c = await ByteClient.connectTls(s.port, { ca: certs.ca, servername: 'localhost' })
    t.teardown(() => c.destroy())
    c.write(pipeline(16))
    await c.waitAnswers(16)
    t.same(statuses(c.answers), new Array(16).fill(200))
    t.same(s.handled.map((h) => h.tid), tids(0, 16))
  })

  await t.test('mutual TLS', async (t) => {
    const s = await startServer(t, { tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requestClientCert: true } })

    // without a client certificate: refused (during the handshake, or right after it with TLS 1.3)
    let refused = false
    let noCert: ByteClient | undefined
    try {
      noCert = await ByteClient.connectTls(s.port, { ca: certs.ca, servername: 'localhost' })
    } catch {
      refused = true
    }
    if (noCert !== undefined) {
      const nc = noCert
      t.teardown(() => nc.destroy())
      nc.write(pipeline(1))
      await nc.waitClose()
      refused = nc.answers.length === 0
    }
    t.ok(refused, 'connection without a client certificate refused')
    t.same(s.handled, [], 'nothing handed over')
    await until(() => (s.server.getStats().errors.SSP_ERR_TLS ?? 0) >= 1, 'TLS failure counted')

    const c = await ByteClient.connectTls(s.port, { ca: certs.ca, servername: 'localhost', cert: certs.clientCert, key: certs.clientKey })
    t.teardown(() => c.destroy())
    c.write(pipeline(2))
    await c.waitAnswers(2)
    t.same(statuses(c.answers), [200, 200], 'with a certificate signed by the CA: accepted')
  })
})

t.test('redirectCurrent from a handler', async (t) => {
  await t.test('default status 307', async (t) => {
    const s = await startServer(t, {
      onRequest: (req, conn) => {
        if (req.transactionId === 'T1') conn.redirectCurrent('https://c.example:8443/ssp')
      }
    })
    const c = await s.connect()
    c.write(pipeline(3))
    await c.waitClose()
    t.same(statuses(c.answers), [200, 307], 'earlier 200 first, then the redirect in place of the 200')
    t.equal(c.answers[1]!.headers.location, 'https://c.example:8443/ssp')
    t.equal(c.answers[1]!.headers.connection, 'close')
    t.ok(c.ended)
    t.same(s.handled.map((h) => h.tid), ['T0', 'T1'], 'nothing after it is handed over')
    t.equal(s.server.getStats().acknowledged, 1)
    assertOneWritePerRead(t, spyOf(s), 'redirect')
  })

  await t.test('explicit status, first request on the connection', async (t) => {
    const s = await startServer(t, { onRequest: (_req, conn) => { conn.redirectCurrent('http://d.example/', 302) } })
    const c = await s.connect()
    c.write(pipeline(1))
    await c.waitClose()
    t.same(statuses(c.answers), [302])
    t.equal(c.answers[0]!.headers.location, 'http://d.example/')
  })
})

t.test('graceful close', async (t) => {
  await t.test('waits for the handler promises it holds', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { closeTimeout: 30_000, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(2))
    await c.waitAnswers(2)
    let closed = false
    let closeEvent = false
    s.server.on('close', () => { closeEvent = true })
    const p = s.server.close().then(() => { closed = true })
    await c.waitClose()
    t.ok(c.ended, 'the connection was ended')
    await delay(100)
    t.notOk(closed, 'close() still waits: two requests held by the application')
    await t.rejects(ByteClient.connect(s.port), 'no longer accepting')
    h.resolvers.shift()!()
    await delay(50)
    t.notOk(closed, 'still one held')
    h.releaseAll()
    await p
    t.ok(closed)
    t.ok(closeEvent, "'close' emitted")
    t.equal(s.server.getStats().inFlight, 0)
  })

  await t.test('bounded by closeTimeout', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { closeTimeout: 200, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(1))
    await c.waitAnswers(1)
    const t0 = performance.now()
    await s.server.close()
    const waited = performance.now() - t0
    t.ok(waited >= 190, `close() waited for the held request up to closeTimeout (${waited.toFixed(0)} ms of 200)`)
    t.equal(s.server.getStats().inFlight, 1, 'closed although the handler never finished')
    await c.waitClose()
    t.equal(s.server.close(), s.server.close(), 'close() is idempotent')
  })

  await t.test('a connection with a request held for backpressure', async (t) => {
    const h = heldHandler()
    const s = await startServer(t, { closeTimeout: 30_000, maxPipelineDepth: 1, onRequest: h.handler })
    const c = await s.connect()
    c.write(pipeline(3))
    await c.waitAnswers(1)
    await until(() => spyOf(s).conn.stats.requests === 2, 'held')
    const p = s.server.close()
    h.releaseAll()
    let closed = false
    void p.then(() => { closed = true })
    await until(() => closed, 'close() once the handler finished', 5_000)
    t.ok(closed, 'closed once the handler finished, long before closeTimeout (30 s)')
    t.equal(s.server.getStats().unacknowledgedDropped, 1)
    t.same(s.handled.map((x) => x.tid), ['T0'], 'the held request is not handed over once closing')
    t.same(statuses(c.answers), [200])
  })
})

t.test('maxConnections', async (t) => {
  const s = await startServer(t, { maxConnections: 1 })
  const a = await s.connect()
  const b = await s.connect()
  await b.waitClose()
  t.equal(b.answers.length, 0, 'the second connection is closed at once')
  t.equal(s.server.getStats().connectionsRefused, 1)
  a.write(pipeline(1))
  await a.waitAnswers(1)
  t.same(statuses(a.answers), [200], 'the first is served')
})

t.test('options are validated', async (t) => {
  const code = (fn: () => unknown): string => {
    try { fn() } catch (err) { return isSspError(err) ? err.code : String(err) }
    return 'no error'
  }
  t.equal(code(() => resolveServerOptions({ maxInFlight: 0 })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(code(() => resolveServerOptions({ maxBodyBytes: 1.5 })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(code(() => resolveServerOptions({ posture: 'lenient' as 'strict' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(code(() => new WireServer({ idleTimeout: -1 })), 'SSP_ERR_INVALID_ARGUMENT')
  const r = resolveServerOptions({ maxPipelineDepth: 3 })
  t.equal(r.maxPipelineDepth, 3)
  t.equal(r.posture, 'strict')
})

t.test('listen errors are reported', async (t) => {
  const s = await startServer(t)
  const other = new WireServer()
  // An SspError naming the address, with the system error as its cause.
  const err = await other.listen(s.port, '127.0.0.1').then(() => undefined, (e: unknown) => e) as { code?: string, message?: string, cause?: { code?: string } } | undefined
  t.equal(err?.code, 'SSP_ERR_LISTEN')
  t.match(err?.message, `127.0.0.1:${s.port}`)
  t.equal(err?.cause?.code, 'EADDRINUSE')
  await other.close()
  t.equal(net.isIP(s.server.address()?.address ?? ''), 4)
})
