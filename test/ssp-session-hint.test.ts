/**
 * The node's per-connection session hint (src/ssp/node.ts onIncoming): the
 * session last seen on an inbound connection is matched by comparing the
 * `x-wv-sessionid` bytes, without making the id's string or looking it up.
 * It must never change what is served: traffic of two sessions interleaved on
 * one connection (pair reuse) goes to the right session, and a session that
 * ended is not reached through the hint.
 */
import t from 'tap'
import { SspRequest } from '../src/wire/request.js'
import { ContentType } from '../src/wire/header-bytes.js'
import { Role } from '../src/ssp/session.js'
import type { SspNode } from '../src/ssp/node.js'
import type { WireClient } from '../src/wire/client.js'
import { guarded, nodePair, recordPosts, until } from './helpers/ssp-nodes.js'

t.test('SspRequest.sessionIdEquals compares the header bytes and then hands back the same string', async (t) => {
  const src = Buffer.from('xx Sabc@a.example yy')
  const req = (off: number, len: number): SspRequest =>
    new SspRequest(3, ContentType.SSP13, Buffer.alloc(0), 0, 0, 0, true, src, 0, src.length, -1, 0, off, len)
  const id = 'Sabc@a.example'
  const r = req(3, id.length)
  t.notOk(r.sessionIdEquals('Sabc@a.exampl'), 'shorter')
  t.notOk(r.sessionIdEquals('Sabc@a.examplf'), 'same length, last byte differs')
  t.notOk(r.sessionIdEquals('Tabc@a.example'), 'first byte differs')
  t.notOk(req(-1, 0).sessionIdEquals(''), 'no header: never equal')
  const same = 'Sabc@a.' + 'example'
  t.ok(r.sessionIdEquals(same), 'equal bytes')
  t.equal(r.sessionId, same, 'sessionId is that string')
  t.equal(req(3, id.length).sessionId, id, 'without the comparison the getter decodes the bytes')
})

/** The node's private peer table, read for the test's raw POST only. */
function outboundOf (n: SspNode, peer: string): WireClient {
  return (n as unknown as { peers: Map<string, { shared?: WireClient[] }> }).peers.get(peer)!.shared![0]!
}

t.test('two sessions interleaved on one connection each reach their own session; an ended one is not reached', async (t) => {
  const servedBy: Record<string, string[]> = { a: [], b: [] }
  const { a, b, ub } = await nodePair(t,
    { handler: (tx) => { servedBy.a!.push(`${tx.kind}:${tx.sessionId}:${tx.primitive.toString()}`); return tx.primitive } },
    { handler: (tx) => { servedBy.b!.push(`${tx.kind}:${tx.sessionId}:${tx.primitive.toString()}`); return tx.primitive } })
  const posts = recordPosts(t, [Number(new URL(ub).port)])
  // A's requests to B (A's requestor session) and B's requests to A (B's requestor
  // session): with pair reuse, A's answers to B travel on A's connection to B too.
  await guarded(a.request('b.example', '<a0/>'), 'A set up')
  await guarded(b.request('a.example', '<b0/>'), 'B set up')
  const aSession = a.session('b.example', Role.REQUESTOR)!
  const bSession = b.session('a.example', Role.REQUESTOR)!
  const bProvider = b.session('a.example', Role.PROVIDER)!
  for (let i = 1; i <= 20; i++) {
    const [x, y] = await guarded(Promise.all([a.request('b.example', `<a${i}/>`), b.request('a.example', `<b${i}/>`)]), `round ${i}`)
    t.equal(x.primitive.toString(), `<a${i}/>`)
    t.equal(y.primitive.toString(), `<b${i}/>`)
  }
  const connIds = new Set(posts.filter((p) => p.sid !== undefined).map((p) => p.connId))
  t.equal(connIds.size, 1, 'all of A\'s session POSTs to B came on one connection')
  const sids = new Set(posts.filter((p) => p.sid !== undefined).map((p) => p.sid))
  t.same([...sids].sort(), [aSession.id, bSession.peerId].sort(), 'and carried both sessions\' ids, interleaved')
  t.equal(servedBy.b!.length, 21, 'B served each of A\'s requests once')
  t.ok(servedBy.b!.every((s) => s.startsWith(`request:${bProvider.id}:`)), 'in B\'s provider session')
  t.equal(b.getStats().lateAnswers, 0, 'every answer to B settled its transaction')
  t.equal(b.getStats().unknownSession, 0)

  // The last POST on the connection is in B's provider session (so the hint holds it);
  // B ends that session; A still posts in it on the same connection.
  await guarded(a.request('b.example', '<last/>'), 'last in the provider session')
  b.endSession('a.example', Role.PROVIDER)
  const before = b.getStats().unknownSession
  const status = await outboundOf(a, 'b.example').send('<late/>', { transactionId: 'X1', sessionId: aSession.id }).then((r) => r.status)
  t.equal(status, 200, 'acknowledged on the wire')
  await until(() => b.getStats().unknownSession > before, 'counted as an unknown session')
  t.notOk(servedBy.b!.some((s) => s.endsWith('<late/>')), 'not handed to B\'s application')
  // B's own session on that connection still works.
  t.equal((await guarded(b.request('a.example', '<after/>'), 'B after')).primitive.toString(), '<after/>')
})
