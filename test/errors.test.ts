// createError: the one place errors are made. Load-shedding refusals carry no stack
// (made once per refused request under overload; the stack is the engine's own write
// path); every other error keeps its stack, and the global limit is left as it was.
import t from 'tap'
import { ERRORS, createError, isSspError, type ErrorCode } from '../src/errors.js'
import { WireClient } from '../src/wire/client.js'

t.test('every code: a typed error with its code, status and message', async (t) => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const e = createError(code, { message: 'detail' })
    t.ok(isSspError(e), `${code} is an SspError`)
    t.equal(e.code, code)
    t.equal(e.status, ERRORS[code].status)
    t.equal(e.message, `${ERRORS[code].message}: detail`)
  }
})

t.test('queue full and peer limit carry no stack frames; the others do', async (t) => {
  const frames = (e: Error): number => (e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).length
  t.equal(frames(createError('SSP_ERR_QUEUE_FULL')), 0, 'SSP_ERR_QUEUE_FULL: no frames')
  t.equal(frames(createError('SSP_ERR_PEER_LIMIT')), 0, 'SSP_ERR_PEER_LIMIT: no frames')
  t.ok(frames(createError('SSP_ERR_UNACKNOWLEDGED')) > 0, 'SSP_ERR_UNACKNOWLEDGED keeps its stack')
  t.ok(frames(createError('SSP_ERR_INTERNAL')) > 0, 'SSP_ERR_INTERNAL keeps its stack')
  t.match(createError('SSP_ERR_QUEUE_FULL').stack, /^SspError: send queue full/, 'the stack string still names the error')
})

t.test('the global Error.stackTraceLimit is restored, also when the constructor throws', async (t) => {
  const before = Error.stackTraceLimit
  createError('SSP_ERR_QUEUE_FULL')
  t.equal(Error.stackTraceLimit, before, 'restored')
  Error.stackTraceLimit = 7
  createError('SSP_ERR_PEER_LIMIT', { cause: new Error('x') })
  t.equal(Error.stackTraceLimit, 7, 'restored to a non-default value')
  Error.stackTraceLimit = before
})

t.test('a client refusing on a full queue rejects with the stackless error', async (t) => {
  // Nothing listens: the client stays connecting, so writes queue up to maxQueued.
  const client = new WireClient('http://127.0.0.1:9/', { maxQueued: 1, pipelineDepth: 1, maxReconnectAttempts: 0 })
  t.teardown(() => client.close())
  client.send('a', { transactionId: 'T1' }).catch(() => {})
  const err = await client.send('b', { transactionId: 'T2' }).then(() => null, (e: unknown) => e)
  t.ok(isSspError(err), 'rejected with an SspError')
  t.equal((err as { code?: string }).code, 'SSP_ERR_QUEUE_FULL')
  t.notMatch((err as Error).stack ?? '', /\n\s+at /, 'no frames')
})
