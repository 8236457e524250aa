// A set-up we initiate whose POST is cut off before its 200 (the connection
// dies: SSP_ERR_UNACKNOWLEDGED) is started again from step 1 on a new
// connection, `setupRetries` times, before the requests waiting for it fail.
// The cut is made by a loopback proxy in front of node B that drops its first
// `cut` connections as soon as they carry a byte, without forwarding it.
import t from 'tap'
import * as net from 'node:net'
import { rejectionOf, startNode, type Teardown } from './helpers/ssp-nodes.js'

/** Proxy to `port`: the first `cut` connections are destroyed at their first byte; later ones are piped. */
async function cuttingProxy (t: Teardown, port: number, cut: number): Promise<{ url: string, accepted: () => number }> {
  let accepted = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((c) => {
    sockets.add(c)
    c.on('close', () => sockets.delete(c))
    c.on('error', () => {})
    if (++accepted <= cut) {
      c.once('data', () => c.destroy())
      return
    }
    const up = net.connect(port, '127.0.0.1')
    sockets.add(up)
    up.on('close', () => { sockets.delete(up); c.destroy() })
    up.on('error', () => {})
    c.on('close', () => up.destroy())
    c.pipe(up)
    up.pipe(c)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, accepted: () => accepted }
}

async function pairBehindProxy (t: Teardown, cut: number, setupRetries?: number): Promise<{
  a: import('../src/ssp/node.js').SspNode, accepted: () => number
}> {
  const { node: b, url: ub } = await startNode(t, { domain: 'b.example', handler: (tx) => tx.primitive })
  const proxy = await cuttingProxy(t, Number(new URL(ub).port), cut)
  const { node: a, url: ua } = await startNode(t, {
    domain: 'a.example',
    handler: (tx) => tx.primitive,
    ...(setupRetries === undefined ? {} : { setupRetries }),
    client: { reconnectDelay: 1, maxReconnectDelay: 10 }
  })
  a.addPeer('b.example', proxy.url)
  b.addPeer('a.example', ua)
  return { a, accepted: proxy.accepted }
}

t.test('default (2 retries): a set-up cut off twice succeeds on the third connection; the request is answered', async (t) => {
  const { a, accepted } = await pairBehindProxy(t, 2)
  const answer = await a.request('b.example', '<hello/>')
  t.equal(answer.primitive.toString('utf8'), '<hello/>')
  t.equal(a.getStats().setupRetries, 2, 'two retries counted')
  t.equal(a.getStats().setupFailures, 2, 'each cut attempt is still a failed set-up')
  t.equal(accepted(), 3, 'the third connection carried the set-up')
})

t.test('retries spent: the waiting request fails with SSP_ERR_UNACKNOWLEDGED', async (t) => {
  const { a } = await pairBehindProxy(t, 5, 1)
  t.equal((await rejectionOf(a.request('b.example', '<x/>'))).code, 'SSP_ERR_UNACKNOWLEDGED')
  t.equal(a.getStats().setupRetries, 1)
})

t.test('setupRetries 0: the first cut fails the request, as before this option', async (t) => {
  const { a } = await pairBehindProxy(t, 1, 0)
  t.equal((await rejectionOf(a.request('b.example', '<x/>'))).code, 'SSP_ERR_UNACKNOWLEDGED')
  t.equal(a.getStats().setupRetries, 0)
  // The next request starts a new set-up, which gets through.
  const answer = await a.request('b.example', '<y/>')
  t.equal(answer.primitive.toString('utf8'), '<y/>')
})

t.test('several requests waiting for one set-up are all answered after the retry', async (t) => {
  const { a } = await pairBehindProxy(t, 1)
  const bodies = Array.from({ length: 20 }, (_, i) => `<m i="${i}"/>`)
  const answers = await Promise.all(bodies.map((b) => a.request('b.example', b)))
  t.same(answers.map((x) => x.primitive.toString('utf8')), bodies)
  t.equal(a.getStats().setupRetries, 1)
})

t.test('setupRetries is validated', async (t) => {
  const { SspNode } = await import('../src/ssp/node.js')
  t.throws(() => new SspNode({ domain: 'a.example', resolver: false, setupRetries: -1 }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => new SspNode({ domain: 'a.example', resolver: false, setupRetries: 1.5 }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
})
