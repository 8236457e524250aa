/** The CLI's node log: session ids are not logged whole at info level (they admit POSTs into the session). */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { logNodeEvents, redactId } from '../src/cli/node-log.js'
import type { Logger } from '../src/cli/log.js'
import type { SspNode } from '../src/ssp/node.js'

function capture (): { log: Logger, info: string[], debug: string[] } {
  const info: string[] = []
  const debug: string[] = []
  return { log: { error: () => undefined, info: (m) => info.push(m), debug: (m) => debug.push(m) }, info, debug }
}

t.test('session ids: a prefix at info, whole at debug', async (t) => {
  const node = new EventEmitter()
  const c = capture()
  logNodeEvents(node as unknown as SspNode, c.log)
  const id = 'Sabcdefghijklmnopqrstuv'
  const peerId = 'zyxwvutsrq@b.example'
  node.emit('session', { peer: 'b.example', role: 'requestor', id, peerId })
  t.equal(c.info.length, 1)
  t.notMatch(c.info[0], id, 'our id not whole at info')
  t.notMatch(c.info[0], peerId, 'their id not whole at info')
  t.match(c.info[0], `ours ${id.slice(0, 6)}…`, 'a prefix tells sessions apart')
  t.match(c.debug.join('\n'), id, 'whole at debug')
  t.match(c.debug.join('\n'), peerId)
  t.equal(redactId('short'), '…', 'a short id is not shown at all')
})
