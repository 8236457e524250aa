/**
 * Issue 13.3: a redirect followed during a set-up lasts as long as that
 * set-up and its session, not longer. The node's directory maps the peer's
 * domain to a front (a load balancer) that redirects the first set-up to a
 * back-end; that back-end then goes away. Under pair reuse the session in the
 * other role keeps the redirected connections, so without the rule the next
 * set-up goes on to the dead back-end instead of the directory's URL.
 */
import t from 'tap'
import { Role } from '../src/ssp/session.js'
import { realPeer } from './helpers/real-peer.js'
import { guarded, startNode, until } from './helpers/ssp-nodes.js'

const DOMAIN = 'lb.example'

t.test('a set-up after the redirected session ended goes to the static URL', async (t) => {
  const { node, url } = await startNode(t, {
    domain: 'node.example', posture: 'interop', pairReuse: true, setupTimeout: 4000, handler: (tx) => tx.primitive
  })
  const back = await realPeer(t, url, { domain: DOMAIN, timeout: 4000 })
  const front = await realPeer(t, url, { domain: DOMAIN, timeout: 4000, redirectFirstSetup: back.url })
  node.addPeer(DOMAIN, front.url)

  // Session B (we request): step 1 to the front is redirected to the back-end, which sets it up.
  await guarded(node.connect(DOMAIN), 'first set-up')
  t.equal(front.redirectsSent, 1, 'the front redirected step 1')
  t.ok(back.provided !== undefined, 'the back-end set the session up')
  // Session A (we provide), on the same (redirected) connections: pair reuse.
  await guarded(back.connect(), 'the back-end\'s set-up')
  t.ok(node.session(DOMAIN, Role.PROVIDER) !== undefined, 'the provider session is up')

  // The back-end goes away and our session ends; the provider session still holds the connections.
  await back.close()
  node.endSession(DOMAIN, Role.REQUESTOR)
  t.equal(node.session(DOMAIN, Role.REQUESTOR), undefined, 'the requestor session ended')

  // The next set-up goes to the directory's URL (the front, which no longer redirects) and succeeds.
  const s = await guarded(node.connect(DOMAIN), 'second set-up')
  t.ok(s !== undefined && !s.ended, 'the second set-up succeeded')
  await until(() => front.provided !== undefined, 'the front set the session up')
  const steps1 = front.received.filter((r) => r.setup?.kind === 'SendSecretToken')
  t.equal(steps1.length, 2, 'the front received step 1 twice (redirected, then set up)')
})
