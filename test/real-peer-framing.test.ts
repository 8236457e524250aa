/**
 * The test real peer frames HTTP with the project's parser (HttpStream,
 * llhttp), not regular expressions: a chunked POST is read whole, and two
 * POSTs in one write are two messages.
 */
import * as net from 'node:net'
import t from 'tap'
import { buildSetup, Mode, SetupKind } from '../src/ssp/messages.js'
import { realPeer } from './helpers/real-peer.js'
import { guarded, until } from './helpers/ssp-nodes.js'

t.test('a chunked step 1 and a pipelined second POST are read by the real peer', async (t) => {
  const silent = net.createServer((s) => { s.on('error', () => {}); s.destroy() })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())))
  const nodeUrl = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/`
  const peer = await realPeer(t, nodeUrl, { timeout: 2000 })
  const body = buildSetup({ kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: 'T1', domain: 'node.example', secret: Buffer.from('s3cret') }, { secretEncoding: 'plain' })
  const half = Math.floor(body.length / 2)
  const chunked = Buffer.concat([
    Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: T1\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1'),
    Buffer.from(`${half.toString(16)}\r\n`, 'latin1'), body.subarray(0, half), Buffer.from('\r\n', 'latin1'),
    Buffer.from(`${(body.length - half).toString(16)}\r\n`, 'latin1'), body.subarray(half), Buffer.from('\r\n0\r\n\r\n', 'latin1')
  ])
  const second = Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
  const sock = net.connect(Number(new URL(peer.url).port), '127.0.0.1')
  sock.on('error', () => {})
  t.teardown(() => sock.destroy())
  let answers = ''
  sock.on('data', (c: Buffer) => { answers += c.toString('latin1') })
  await guarded(new Promise<void>((resolve) => sock.once('connect', () => resolve())), 'connect')
  sock.write(Buffer.concat([chunked, second]))
  await until(() => peer.received.length === 2, 'both POSTs read')
  t.equal(peer.received[0]?.setup?.kind, SetupKind.SEND_SECRET_TOKEN, 'the chunked body parsed as step 1')
  t.equal(peer.received[0]?.headers['transfer-encoding']?.[0], 'chunked')
  t.equal(peer.received[1]?.body, 'hello', 'the second message of the write')
  await until(() => answers.startsWith('HTTP/1.1 200 OK'), 'the 200 to step 1')
})
