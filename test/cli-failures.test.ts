/**
 * The CLI's failures as a user meets them, on the built CLI (dist/): a peer
 * that dies mid-`send`, Ctrl-C on `send` and `demo`, usage errors, a port in
 * use, a missing TLS file. Each ends within a bounded wait (the child is
 * killed by the guard otherwise, and the test fails), with one stderr line.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import * as net from 'node:net'
import { WAIT_GUARD_MS } from './helpers/byte-client.js'
import { freePort, MAIN, runCli, type Running } from './helpers/cli-child.js'

/** The longest any child may run here before the guard kills it (then its exit is a signal, and the test fails). */
const GUARD_MS = 60_000

function run (tt: { teardown: (fn: () => unknown) => void }, args: string[]): Running {
  const r = runCli(args)
  const guard = setTimeout(() => r.child.kill('SIGKILL'), GUARD_MS)
  void r.exit.then(() => clearTimeout(guard))
  tt.teardown(() => {
    clearTimeout(guard)
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL')
  })
  return r
}

async function until (what: string, cond: () => boolean, r: Running): Promise<void> {
  const start = Date.now()
  while (!cond()) {
    if (r.child.exitCode !== null) throw new Error(`exited ${r.child.exitCode} before ${what}: ${r.stderr()}`)
    if (Date.now() - start > WAIT_GUARD_MS) throw new Error(`no ${what}; stdout=${r.stdout()} stderr=${r.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A `serve --domain b.example` peer that knows a.example at `aPort`; resolves with its URL once listening. */
async function peer (tt: { teardown: (fn: () => unknown) => void }, aPort: number): Promise<{ r: Running, url: string }> {
  // Log level info: its "session up" lines tell the test when transactions can flow (stderr is captured).
  const r = run(tt, ['serve', '--domain', 'b.example', '--peer', `a.example=http://127.0.0.1:${aPort}/`, '--log-level', 'info'])
  await until('listening line', () => /^listening on \S+\n/m.test(r.stdout()), r)
  return { r, url: /^listening on (\S+)\n/m.exec(r.stdout())![1]! }
}

interface Summary { count: number, sent: number, answered: number, lost: number, abandoned: number, stopped: string | null }

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} is missing: run \`npm run build\` (npm test does) before this test`)
} else {
  t.test('a peer killed mid-send ends the run: summary, SSP_ERR_PEER_LOST, exit 1', async (t) => {
    const aPort = await freePort()
    const b = await peer(t, aPort)
    const send = run(t, ['send', '--domain', 'a.example', '--port', String(aPort), '--peer', `b.example=${b.url}`, '--to', 'b.example',
      '--count', '5000000', '--json', '--peer-lost-after', '1000', '--log-level', 'silent'])
    // Let transactions flow (a session is up, then some time), then kill the peer outright (no graceful close).
    await until('a session with the sender', () => /session up with a\.example/.test(b.r.stderr()), b.r)
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.equal(send.child.exitCode, null, 'still running while the peer answers')
    b.r.child.kill('SIGKILL')
    const { code, signal } = await send.exit
    t.equal(signal, null, 'ended by itself, not by the guard')
    t.equal(code, 1)
    const s = JSON.parse(send.stdout()) as Summary
    t.ok(s.answered > 0, `some answered (${s.answered})`)
    t.ok(s.answered < s.count, 'not all')
    t.equal(s.lost, s.sent - s.answered, 'every unanswered one is counted lost')
    t.equal(s.stopped, 'SSP_ERR_PEER_LOST')
    const lines = send.stderr().trimEnd().split('\n')
    t.equal(lines.length, 1, 'one line on stderr')
    t.match(lines[0], /^ssp-transport: SSP_ERR_PEER_LOST: /)
  })

  t.test('SIGINT during send: partial summary, exit 130', async (t) => {
    const aPort = await freePort()
    const b = await peer(t, aPort)
    const send = run(t, ['send', '--domain', 'a.example', '--port', String(aPort), '--peer', `b.example=${b.url}`, '--to', 'b.example',
      '--count', '5000000', '--json', '--log-level', 'silent'])
    await until('a session with the sender', () => /session up with a\.example/.test(b.r.stderr()), b.r)
    await new Promise((resolve) => setTimeout(resolve, 500))
    send.child.kill('SIGINT')
    const { code } = await send.exit
    t.equal(code, 130)
    const s = JSON.parse(send.stdout()) as Summary
    t.ok(s.answered > 0 && s.answered < s.count, `partial: ${s.answered} of ${s.count}`)
  })

  t.test('SIGTERM during demo: partial summary, exit 143', async (t) => {
    const demo = run(t, ['demo', '--count', '5000000', '--json', '--log-level', 'silent'])
    await new Promise((resolve) => setTimeout(resolve, 1500))
    demo.child.kill('SIGTERM')
    const { code } = await demo.exit
    t.equal(code, 143)
    const s = JSON.parse(demo.stdout()) as Summary
    t.ok(s.answered < 2 * 5000000, 'partial')
  })

  t.test('usage errors: one line, exit 2, no help text', async (t) => {
    for (const args of [
      ['send', '--domain', 'a.example', '--to', 'b.example', '--bogus'],
      ['send', '--domain', 'a.example', '--to', 'b.example', '--posture', 'lenient'],
      ['send', '--to', 'b.example'],
      ['demo', '--count', '1e3']
    ]) {
      const r = run(t, args)
      const { code } = await r.exit
      t.equal(code, 2, args.join(' '))
      const lines = r.stderr().trimEnd().split('\n')
      t.equal(lines.length, 1, `one line: ${r.stderr()}`)
      t.match(lines[0], /^ssp-transport: SSP_ERR_INVALID_ARGUMENT: /)
      t.notMatch(r.stderr(), /Usage:|Options:/, 'no help dump')
    }
  })

  t.test('a port in use: SSP_ERR_LISTEN naming it, exit 1', async (t) => {
    const busy = net.createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())))
    const port = (busy.address() as net.AddressInfo).port
    for (const args of [['serve', '--port', String(port)], ['serve', '--domain', 'a.example', '--port', String(port)]]) {
      const r = run(t, [...args, '--log-level', 'silent'])
      const { code } = await r.exit
      t.equal(code, 1, args.join(' '))
      t.match(r.stderr(), new RegExp(`^ssp-transport: SSP_ERR_LISTEN: .*127\\.0\\.0\\.1:${port}.*EADDRINUSE`))
      t.equal(r.stderr().trimEnd().split('\n').length, 1)
    }
  })

  t.test('a missing TLS file: SSP_ERR_FILE naming option and path, exit 2', async (t) => {
    const r = run(t, ['serve', '--domain', 'a.example', '--tls-cert', '/nonexistent/c.pem', '--tls-key', '/nonexistent/k.pem'])
    const { code } = await r.exit
    t.equal(code, 2)
    t.match(r.stderr(), /^ssp-transport: SSP_ERR_FILE: .*--tls-cert.*\/nonexistent\/c\.pem/)
    t.equal(r.stderr().trimEnd().split('\n').length, 1)
  })
}
