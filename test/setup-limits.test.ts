/**
 * Forged step 1s: a peer's SendSecretToken makes the node resolve the claimed
 * domain and POST its step 3 there. maxSetupsPerPeer (per claimed domain per
 * 10 s) and maxPendingSetups (all domains) bound how often anyone can make the
 * node POST at a third party; the extras are refused by closing, counted in
 * setupsRateLimited, and nothing is POSTed for them.
 */
import t from 'tap'
import * as net from 'node:net'
import { buildSetup, Mode, newSecret, SetupKind } from '../src/ssp/messages.js'
import { SspNode } from '../src/ssp/node.js'
import { delay, until } from './helpers/wait.js'

type Teardown = { teardown: (fn: () => unknown) => void }

/** The claimed domain's server: counts the POSTs it receives and never answers (the set-ups stay in progress). */
async function victim (t: Teardown): Promise<{ url: string, posts: () => number }> {
  let posts = 0
  const socks = new Set<net.Socket>()
  const server = net.createServer((s) => {
    socks.add(s)
    s.on('error', () => {})
    s.on('close', () => socks.delete(s))
    s.on('data', (b) => { posts += b.toString('latin1').split('POST ').length - 1 })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of socks) s.destroy(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, posts: () => posts }
}

/** One step 1 claiming `domain`, on its own connection; resolves once the node has taken it (200) or closed. */
function step1 (port: number, domain: string, i: number): Promise<'acked' | 'closed'> {
  const body = buildSetup({ kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: `T${i}`, domain, secret: newSecret() })
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let got = ''
    const guard = setTimeout(() => { sock.destroy(); resolve('closed') }, 5000)
    sock.on('error', () => {})
    sock.on('data', (b) => { got += b.toString('latin1') })
    sock.on('close', () => { clearTimeout(guard); resolve('closed') })
    sock.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: T${i}\r\nContent-Length: ${body.length}\r\n\r\n`)
    sock.write(body)
    // The node keeps a connection that spoke for a peer open: done once its 200 is here and the node had a turn.
    const check = setInterval(() => {
      if (got.startsWith('HTTP/1.1 200')) { clearInterval(check); clearTimeout(guard); setTimeout(() => { sock.destroy(); resolve('acked') }, 20) }
    }, 5)
    sock.on('close', () => clearInterval(check))
  })
}

t.test('maxSetupsPerPeer: step 1s claiming one domain beyond the limit are refused, nothing POSTed for them', async (t) => {
  const v = await victim(t)
  const node = new SspNode({ domain: 'a.example', resolver: false, peers: { 'victim.example': v.url }, maxSetupsPerPeer: 3, setupTimeout: 30_000 })
  node.on('setupError', () => undefined)
  const [url] = await node.start()
  t.teardown(() => node.close())
  const port = Number(new URL(url!).port)
  for (let i = 0; i < 10; i++) await step1(port, 'victim.example', i)
  await until(() => node.getStats().setupsRateLimited === 7, 'seven refusals')
  await until(() => v.posts() >= 1, 'the admitted set-ups POST their step 3')
  await delay(200) // room for a POST that should not come (it would only make the next check fail)
  t.equal(node.getStats().setupsRateLimited, 7, 'the 4th to 10th step 1 refused')
  t.ok(v.posts() <= 3, `at most 3 step 3s at the claimed domain (saw ${v.posts()})`)
})

t.test('maxPendingSetups: peer-initiated set-ups in progress across domains are bounded', async (t) => {
  const v = await victim(t)
  const peers: Record<string, string> = {}
  for (let i = 0; i < 5; i++) peers[`d${i}.example`] = v.url
  const node = new SspNode({ domain: 'a.example', resolver: false, peers, maxPendingSetups: 2, setupTimeout: 30_000 })
  node.on('setupError', () => undefined)
  const [url] = await node.start()
  t.teardown(() => node.close())
  const port = Number(new URL(url!).port)
  for (let i = 0; i < 5; i++) await step1(port, `d${i}.example`, i)
  await until(() => node.getStats().setupsRateLimited === 3, 'three refusals')
  t.equal(node.getStats().setupsInProgress, 2, 'two set-ups in progress, the limit')
})

t.test('options are checked', async (t) => {
  t.throws(() => new SspNode({ domain: 'a.example', maxSetupsPerPeer: 0 }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
  t.throws(() => new SspNode({ domain: 'a.example', maxPendingSetups: -1 }), { code: 'SSP_ERR_INVALID_ARGUMENT' })
})
