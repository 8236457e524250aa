/**
 * Security of the SSP layer (issue 8):
 *  - with mutual TLS, a peer's certificate must name the domain it claims in
 *    SendSecretToken (and the peer whose session id a new connection uses);
 *  - a session id is honoured only on connections of the peer that owns it;
 *    one connection speaks for one peer;
 *  - per-peer limits (pending transactions, bytes in flight) with finite
 *    defaults; failed peer-initiated set-ups leave nothing behind.
 *
 * Certificates are made here with the openssl CLI (skipped without it): one
 * CA and, per domain, one certificate naming the domain (and 127.0.0.1, so
 * the same certificate serves the node's listener and its client side).
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isSspError, type SspError } from '../src/errors.js'
import { buildSetup, Mode, newSecret, SetupKind } from '../src/ssp/messages.js'
import { SspNode } from '../src/ssp/node.js'
import { NODE_DEFAULTS, type IncomingTransaction, type SspNodeOptions } from '../src/ssp/options.js'
import { Role } from '../src/ssp/session.js'
import { WireClient } from '../src/wire/client.js'
import { delay, until } from './helpers/wait.js'

type Teardown = { teardown: (fn: () => unknown) => void }


function codeOf (p: Promise<unknown>): Promise<string> {
  return p.then(() => 'resolved', (err: unknown) => isSspError(err) ? err.code : `not an SspError: ${String(err)}`)
}

/** The node's private tables, read for assertions only. */
function internals (n: SspNode): { peers: Map<string, { shared?: WireClient[] }> } {
  return n as unknown as { peers: Map<string, { shared?: WireClient[] }> }
}

// ------------------------------------------------------------------ certificates

interface Pki { ca: Buffer, cert: (domain: string) => { cert: Buffer, key: Buffer } }

function makePki (domains: string[]): Pki | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  const dir = mkdtempSync(join(tmpdir(), 'ssp-security-'))
  try {
    const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 }) }
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ssp security test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    const out = new Map<string, { cert: Buffer, key: Buffer }>()
    for (const d of domains) {
      writeFileSync(join(dir, `${d}.ext`), `basicConstraints=CA:FALSE\nsubjectAltName=DNS:${d},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`)
      run(['req', ...ec, '-keyout', `${d}.key`, '-out', `${d}.csr`, '-subj', `/CN=${d}`])
      run(['x509', '-req', '-in', `${d}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${d}.crt`, '-days', '2', '-extfile', `${d}.ext`])
      out.set(d, { cert: readFileSync(join(dir, `${d}.crt`)), key: readFileSync(join(dir, `${d}.key`)) })
    }
    const ca = readFileSync(join(dir, 'ca.crt'))
    return { ca, cert: (d) => out.get(d)! }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ------------------------------------------------------------------ nodes

function baseOptions (domain: string, o: Partial<SspNodeOptions> = {}): SspNodeOptions {
  return {
    domain,
    resolver: false,
    transactionTimeout: 5_000,
    setupTimeout: 3_000,
    closeTimeout: 300,
    client: { reconnectDelay: 5, maxReconnectDelay: 50, maxReconnectAttempts: 2 },
    ...o
  }
}

/** A node whose listener asks for client certificates and whose client presents `certOf`'s. */
function tlsOptions (pki: Pki, domain: string, certOf = domain, o: Partial<SspNodeOptions> = {}): SspNodeOptions {
  const mine = pki.cert(certOf)
  return baseOptions(domain, {
    listen: [{ host: '127.0.0.1', port: 0, tls: { cert: mine.cert, key: mine.key, ca: pki.ca, requestClientCert: true } }],
    client: { ca: pki.ca, cert: mine.cert, key: mine.key, reconnectDelay: 5, maxReconnectDelay: 50, maxReconnectAttempts: 2 },
    ...o
  })
}

async function startNode (t: Teardown, o: SspNodeOptions): Promise<{ node: SspNode, url: string }> {
  const node = new SspNode(o)
  t.teardown(() => node.close())
  const [url] = await node.start()
  return { node, url: url! }
}

const echo = (tx: IncomingTransaction): Buffer => tx.primitive

// ------------------------------------------------------------------ mutual TLS identity

const pki = makePki(['a.example', 'b.example', 'c.example'])

t.test('mutual TLS: the certificate must name the domain claimed in SendSecretToken', { skip: pki === undefined ? 'openssl not available' : false }, async (t) => {
  const p = pki!
  const handledByA: string[] = []
  const { node: a, url: ua } = await startNode(t, tlsOptions(p, 'a.example', 'a.example', { handler: (tx) => { handledByA.push(tx.peer); return tx.primitive } }))
  const identityErrors: SspError[] = []
  a.on('setupError', (e: { error: SspError }) => { if (e.error.code === 'SSP_ERR_PEER_IDENTITY') identityErrors.push(e.error) })

  const { node: b, url: ub } = await startNode(t, tlsOptions(p, 'b.example', 'b.example', { handler: echo }))

  await t.test('an impostor claiming b.example with c.example\'s certificate is refused', async (t) => {
    // The impostor's directory sends it to A; it claims to be b.example.
    const { node: impostor } = await startNode(t, tlsOptions(p, 'b.example', 'c.example', { handler: echo }))
    impostor.addPeer('a.example', ua)
    const code = await codeOf(impostor.request('a.example', '<steal/>'))
    t.not(code, 'resolved', `the impostor gets no session (${code})`)
    await until(() => identityErrors.length > 0, 'A reports the identity failure')
    t.equal(identityErrors[0]?.code, 'SSP_ERR_PEER_IDENTITY', 'A reports SSP_ERR_PEER_IDENTITY')
    t.ok(a.getStats().peerIdentityRefused > 0, 'counted in peerIdentityRefused')
    t.equal(a.session('b.example', Role.PROVIDER), undefined, 'no session for b.example came up')
    t.equal(a.getStats().sessions, 0, 'no session at all')
    t.same(handledByA, [], 'nothing reached the application')
    await impostor.close()
  })

  await t.test('control: b.example with its own certificate sets up and is served', async (t) => {
    a.addPeer('b.example', ub)
    b.addPeer('a.example', ua)
    const before = a.getStats().peerIdentityRefused
    const ans = await b.request('a.example', '<hello/>')
    t.equal(ans.primitive.toString(), '<hello/>', 'answered over mutual TLS')
    t.same(handledByA, ['b.example'], 'A served b.example')
    t.equal(a.getStats().peerIdentityRefused, before, 'nothing refused')
  })

  await t.test('a new connection using b.example\'s session id is honoured only with b.example\'s certificate', async (t) => {
    const sid = b.session('a.example')!.peerId // the id B puts in its headers
    handledByA.length = 0
    const before = a.getStats().peerIdentityRefused
    const send = async (certOf: string, tid: string): Promise<void> => {
      const c = p.cert(certOf)
      const client = new WireClient(ua, { ca: p.ca, cert: c.cert, key: c.key, reconnectDelay: 5, maxReconnectAttempts: 1 })
      client.on('error', () => {})
      t.teardown(() => client.destroy())
      await client.send('<inject/>', { transactionId: tid, sessionId: sid }).catch(() => {})
      await client.close()
    }
    await send('c.example', 'X1')
    await until(() => a.getStats().peerIdentityRefused > before, 'the c.example connection is refused')
    t.same(handledByA, [], 'c.example\'s certificate: not handed over')
    await send('b.example', 'X2')
    await until(() => handledByA.length === 1, 'the b.example connection is served')
    t.same(handledByA, ['b.example'], 'b.example\'s certificate: served in B\'s session')
  })
})

// ------------------------------------------------------------------ session ids and connections

t.test('a session id is honoured only on connections of the peer that owns it', async (t) => {
  const handled: Array<{ peer: string, body: string }> = []
  const { node: a, url: ua } = await startNode(t, baseOptions('a.example', { handler: (tx) => { handled.push({ peer: tx.peer, body: tx.primitive.toString() }); return tx.primitive } }))
  const { node: b, url: ub } = await startNode(t, baseOptions('b.example', { handler: echo }))
  const { node: c, url: uc } = await startNode(t, baseOptions('c.example', { handler: echo }))
  a.addPeer('b.example', ub)
  a.addPeer('c.example', uc)
  b.addPeer('a.example', ua)
  c.addPeer('a.example', ua)
  await b.request('a.example', '<b/>')
  await c.request('a.example', '<c/>')
  handled.length = 0
  const bSid = b.session('a.example')!.peerId
  // C writes on its own connection to A (bound to c.example) with B's session id.
  const cClient = internals(c).peers.get('a.example')!.shared![0]!
  const before = a.getStats().crossPeerRefused
  const status = await cClient.send('<inject/>', { transactionId: 'X1', sessionId: bSid }).then((r) => r.status, (e: SspError) => e.code)
  t.equal(status, 200, 'the POST itself is acknowledged (the wire does not know sessions)')
  await until(() => a.getStats().crossPeerRefused > before, 'refused')
  t.same(handled, [], 'B\'s session id on C\'s connection reached nothing')
  // B's own traffic is unaffected, and C's too.
  t.equal((await b.request('a.example', '<b2/>')).primitive.toString(), '<b2/>', 'B still served')
  t.equal((await c.request('a.example', '<c2/>')).primitive.toString(), '<c2/>', 'C still served')
  t.same(handled.map((h) => h.peer).sort(), ['b.example', 'c.example'], 'each in its own session')

  await t.test('a connection of one peer cannot start a set-up for another domain', async (t) => {
    const beforeRefused = a.getStats().crossPeerRefused
    const body = buildSetup({ kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: 'X2', domain: 'd.example', secret: newSecret() })
    await cClient.send(body, { transactionId: 'X2', setup: true }).catch(() => {})
    await until(() => a.getStats().crossPeerRefused > beforeRefused, 'refused')
    t.notOk(internals(a).peers.has('d.example'), 'no peer d.example was created')
    t.equal(a.getStats().setupsInProgress, 0, 'no set-up started')
    // C's connection was closed; C reconnects and is still served.
    t.equal((await c.request('a.example', '<c3/>')).primitive.toString(), '<c3/>', 'C served after reconnecting')
  })
})

t.test('failed peer-initiated set-ups leave nothing behind (made-up domains)', async (t) => {
  const { node: a, url: ua } = await startNode(t, baseOptions('a.example', { handler: echo }))
  const port = Number(new URL(ua).port)
  const baseline = internals(a).peers.size
  const rounds = 300
  // Each claim on its own connection (one connection speaks for one peer).
  for (let i = 0; i < rounds; i++) {
    const body = buildSetup({ kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: `T${i}`, domain: `x${i}.invalid`, secret: newSecret() })
    await new Promise<void>((resolve) => {
      const sock = net.connect(port, '127.0.0.1')
      const guard = setTimeout(() => { sock.destroy(); resolve() }, 2000)
      sock.on('error', () => {})
      sock.on('close', () => { clearTimeout(guard); resolve() })
      sock.on('data', () => {})
      sock.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: T${i}\r\nContent-Length: ${body.length}\r\n\r\n`)
      sock.end(body)
    })
  }
  await until(() => a.getStats().setupFailures === rounds, 'every set-up failed (unknown peer)')
  await until(() => internals(a).peers.size === baseline, 'the peer table is back to its size')
  t.equal(internals(a).peers.size, baseline, `no peer left behind after ${rounds} claims`)
  t.equal(a.getStats().setupsInProgress, 0, 'no set-up left in progress')
  await until(() => a.getStats().wire[0]!.connectionsOpen === 0, 'connections closed')
})

// ------------------------------------------------------------------ per-peer limits

t.test('per-peer limits: bytes in flight, pending transactions; finite defaults', async (t) => {
  t.ok(Number.isFinite(NODE_DEFAULTS.maxPendingPerPeer) && NODE_DEFAULTS.maxPendingPerPeer > 0, 'maxPendingPerPeer has a finite default')
  t.ok(Number.isFinite(NODE_DEFAULTS.maxPendingBytesPerPeer) && NODE_DEFAULTS.maxPendingBytesPerPeer > 0, 'maxPendingBytesPerPeer has a finite default')
  t.ok(Number.isFinite(NODE_DEFAULTS.maxWaitingPerPeer) && NODE_DEFAULTS.maxWaitingPerPeer > 0, 'maxWaitingPerPeer has a finite default')
  t.throws(() => new SspNode(baseOptions('a.example', { maxPendingBytesPerPeer: 0 })), { code: 'SSP_ERR_INVALID_ARGUMENT' }, 'maxPendingBytesPerPeer is checked')

  const release: Array<() => void> = []
  const { node: a, url: ua } = await startNode(t, baseOptions('a.example', { maxPendingBytesPerPeer: 2100 }))
  const { node: b, url: ub } = await startNode(t, baseOptions('b.example', {
    handler: (tx) => new Promise<Buffer>((resolve) => release.push(() => resolve(tx.primitive)))
  }))
  t.teardown(() => { for (const r of release.splice(0)) r() })
  a.addPeer('b.example', ub)
  b.addPeer('a.example', ua)
  await a.connect('b.example')
  // Counted are the bytes on the wire: about 867 per request with the envelope (~255 bytes) around it.
  const body = (n: number): string => `<q n="${n}">${'x'.repeat(600)}</q>`
  const first = a.request('b.example', body(1))
  const second = a.request('b.example', body(2))
  t.equal(await codeOf(a.request('b.example', body(3))), 'SSP_ERR_PEER_LIMIT', 'a third such request would pass 2100 bytes in flight')
  const small = a.request('b.example', '<small/>')
  await until(() => release.length === 3, 'B holds three')
  t.equal(a.getStats().pending, 3, 'a small body still fits: the limit is on bytes')
  for (const r of release.splice(0)) r()
  t.equal((await first).primitive.toString(), body(1), 'first answered')
  t.equal((await second).primitive.toString(), body(2), 'second answered')
  t.equal((await small).primitive.toString(), '<small/>', 'small answered')
  const again = a.request('b.example', body(4))
  await until(() => release.length === 1, 'B holds the next one')
  for (const r of release.splice(0)) r()
  t.equal((await again).primitive.toString(), body(4), 'room again once the answers came back')
})
