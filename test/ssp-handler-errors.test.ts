// A node's handler that throws, rejects or returns something that is not a
// body: counted in handlerErrors, no answer sent, nothing left waiting (the
// node still closes promptly), and the node goes on serving.
import t from 'tap'
import { SspNode } from '../src/ssp/node.js'
import { until } from './helpers/wait.js'

t.test('handler errors are counted, never crash, and leave nothing pending', async (t) => {
  const mode = { now: 'ok' as 'ok' | 'throw' | 'reject' | 'undefined' | 'resolve-number' }
  const b = new SspNode({
    domain: 'b.example',
    resolver: false,
    transactionTimeout: 300,
    closeTimeout: 30_000,
    handler: (tx) => {
      switch (mode.now) {
        case 'throw': throw new Error('boom')
        case 'reject': return Promise.reject(new Error('boom'))
        case 'undefined': return undefined as unknown as string
        case 'resolve-number': return Promise.resolve(42 as unknown as string)
        default: return tx.primitive
      }
    }
  })
  const a = new SspNode({ domain: 'a.example', resolver: false, transactionTimeout: 300 })
  const [ua] = await a.start()
  const [ub] = await b.start()
  a.addPeer('b.example', ub!)
  b.addPeer('a.example', ua!)
  t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
  t.equal((await a.request('b.example', '<ok/>')).primitive.toString(), '<ok/>')
  for (const m of ['throw', 'reject', 'undefined', 'resolve-number'] as const) {
    mode.now = m
    await t.rejects(a.request('b.example', `<${m}/>`), { code: 'SSP_ERR_TRANSACTION_TIMEOUT' }, `${m}: no answer, the requester times out`)
  }
  t.equal(b.getStats().handlerErrors, 4, 'each one counted')
  mode.now = 'ok'
  t.equal((await a.request('b.example', '<again/>')).primitive.toString(), '<again/>', 'still serving')
  // The last answer's own 200 reaches B just after A has its answer.
  await until(() => b.getStats().serving === 0, 'B to finish serving')
  t.equal(b.getStats().serving, 0, 'no served request left unfinished (close() would wait for it)')
})
