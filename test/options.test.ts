/**
 * Options are checked once, in the constructors: unknown keys refused by name
 * (nested ones with their dotted name), values type- and range-checked, the
 * defaults table merged into a frozen resolved object.
 */
import t from 'tap'
import { SspNode } from '../src/ssp/node.js'
import { NODE_DEFAULTS, type SspNodeOptions } from '../src/ssp/options.js'
import { WireClient } from '../src/wire/client.js'
import { WireServer } from '../src/wire/server.js'
import { SERVER_DEFAULTS, type WireServerOptions } from '../src/wire/server-options.js'
import type { WireClientOptions } from '../src/wire/client.js'

const base = { domain: 'a.example', resolver: false } as const
const node = (o: Record<string, unknown>): SspNode => new SspNode({ ...base, ...o } as unknown as SspNodeOptions)

t.test('unknown keys are refused by name', async (t) => {
  t.throws(() => node({ foo: 1 }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'foo'/ }, 'node')
  t.throws(() => node({ setupTimout: 5 }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'setupTimout'/ }, 'node: a typo')
  t.throws(() => new WireServer({ maxHeaderByte: 10 } as unknown as WireServerOptions), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'maxHeaderByte'/ }, 'server')
  t.throws(() => new WireClient('http://127.0.0.1:1/', { pipelinedepth: 2 } as unknown as WireClientOptions), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'pipelinedepth'/ }, 'client')
})

t.test('nested server/client options are checked at construction, with their dotted name', async (t) => {
  t.throws(() => node({ server: { foo: 1 } }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'server\.foo'/ })
  t.throws(() => node({ client: { foo: 1 } }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /unknown option 'client\.foo'/ })
  t.throws(() => node({ server: { maxBodyBytes: 0 } }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /server\.maxBodyBytes/ }, 'bad nested server value')
  t.throws(() => node({ client: { pipelineDepth: 'deep' } }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /client\.pipelineDepth/ }, 'bad nested client value')
  // the node owns these: not settable through the nested objects
  t.throws(() => node({ server: { posture: 'interop' } }), { message: /unknown option 'server\.posture'/ })
  t.throws(() => node({ client: { version: '1.2' } }), { message: /unknown option 'client\.version'/ })
  t.throws(() => node({ listen: [{ port: 0, hots: 'x' }] }), { message: /unknown option 'listen\[0\]\.hots'/ })
})

t.test('enumerated values: a posture typo is refused, not run as strict', async (t) => {
  t.throws(() => node({ posture: 'lenient' }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /posture/ })
  t.throws(() => new WireServer({ posture: 'lenient' } as unknown as WireServerOptions), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /posture/ })
  t.throws(() => node({ pairReuse: 'yes' }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: /pairReuse/ })
})

t.test('every numeric option is type- and range-checked', async (t) => {
  for (const k of ['pairs', 'timeToLive', 'setupTimeout', 'transactionTimeout', 'maxPendingPerPeer', 'maxPendingBytesPerPeer', 'maxWaitingPerPeer', 'closeTimeout', 'busyPollMicros', 'maxResends', 'dedupeWindow', 'setupRetries', 'setupStepRetries']) {
    t.throws(() => node({ [k]: -1 }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: new RegExp(k) }, `node ${k}: -1`)
    t.throws(() => node({ [k]: '5' }), { code: 'SSP_ERR_INVALID_ARGUMENT', message: new RegExp(k) }, `node ${k}: a string`)
  }
  for (const k of Object.keys(SERVER_DEFAULTS).filter((k) => k !== 'posture')) {
    t.throws(() => new WireServer({ [k]: 1.5 } as unknown as WireServerOptions), { code: 'SSP_ERR_INVALID_ARGUMENT', message: new RegExp(k) }, `server ${k}: 1.5`)
  }
  for (const k of ['pipelineDepth', 'maxQueued', 'queueHighWater', 'highWaterMark', 'maxRedirects', 'connectTimeout', 'reconnectDelay', 'maxReconnectDelay', 'maxReconnectAttempts', 'initialConnectAttempts', 'closeTimeout', 'maxResponseHeaderBytes', 'maxResponseBodyBytes', 'busyPollMicros']) {
    t.throws(() => new WireClient('http://127.0.0.1:1/', { [k]: -1 } as unknown as WireClientOptions), { code: 'SSP_ERR_INVALID_ARGUMENT', message: new RegExp(k) }, `client ${k}: -1`)
  }
})

t.test('defaults are applied once, into a resolved object (frozen for the node)', async (t) => {
  const n = new SspNode({ ...base })
  for (const [k, v] of Object.entries(NODE_DEFAULTS)) t.equal((n.options as Record<string, unknown>)[k], v, `node ${k} defaults to ${String(v)}`)
  t.ok(Object.isFrozen(n.options), 'node options are frozen')
  const m = new SspNode({ ...base, pairs: 3, setupTimeout: undefined })
  t.equal(m.options.pairs, 3, 'a given value wins')
  t.equal(m.options.setupTimeout, NODE_DEFAULTS.setupTimeout, 'an undefined value does not override the default')
  const s = new WireServer({ maxBodyBytes: 100 })
  t.equal(s.options.maxBodyBytes, 100)
  t.equal(s.options.maxHeaderBytes, SERVER_DEFAULTS.maxHeaderBytes)
})

t.test('node events are typed: the payload of session is a SessionEvent', async (t) => {
  const n = new SspNode({ ...base })
  const seen: string[] = []
  // compiles without a cast only with the typed overloads (tsc over test/ would refuse `e.peer` on any-less payloads otherwise)
  n.on('session', (e) => { seen.push(e.peer + e.peerId) })
  n.emit('session', { peer: 'b.example', role: 'requestor', id: 'x', peerId: 'y' } as Parameters<Parameters<typeof n.on<'session'>>[1]>[0])
  t.same(seen, ['b.exampley'])
})
