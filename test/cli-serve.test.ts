/**
 * `ssp-transport serve` as a process: prints `listening on http://H:P` once
 * ready, acknowledges SSP POSTs, closes gracefully on SIGTERM / SIGINT with
 * exit code 0; bad arguments exit 2 with one line on stderr.
 *
 * Runs the built CLI (dist/): `npm test` builds before tap.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import * as net from 'node:net'
import { makeCerts } from './helpers/certs.js'
import { MAIN, runCli, type Running } from './helpers/cli-child.js'
import { ByteClient, WAIT_GUARD_MS } from './helpers/byte-client.js'
import { pipeline, post } from './helpers/ssp-requests.js'

const run = runCli

function stopOnTeardown (tt: { teardown: (fn: () => unknown) => void }, r: Running): void {
  tt.teardown(() => {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL')
  })
}

/** Wait for the `listening on` line; returns the URL parts. */
async function listening (r: Running): Promise<{ scheme: string, host: string, port: number, line: string }> {
  const start = Date.now()
  for (;;) {
    const m = /^listening on (https?):\/\/([^\s:]+):(\d+)\n/.exec(r.stdout())
    if (m !== null) return { scheme: m[1]!, host: m[2]!, port: Number(m[3]), line: m[0].trimEnd() }
    if (r.child.exitCode !== null) throw new Error(`exited ${r.child.exitCode} before listening: ${r.stderr()}`)
    if (Date.now() - start > WAIT_GUARD_MS) throw new Error(`no listening line; stdout=${r.stdout()} stderr=${r.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} is missing: run \`npm run build\` (npm test does) before this test`)
} else {
  t.test('serve: listening line, 200 for a valid POST, SIGTERM closes with exit code 0', async (t) => {
    const r = run(['serve', '--port', '0'])
    stopOnTeardown(t, r)
    const l = await listening(r)
    t.equal(l.scheme, 'http')
    t.equal(l.host, '127.0.0.1', 'default host is loopback')
    t.ok(l.port > 0 && l.port < 65536, `port ${l.port}`)
    const c = await ByteClient.connect(l.port)
    t.teardown(() => c.destroy())
    c.write(post({ tid: 'T1', sid: 'S1', body: '<WV-SSP-Message/>' }))
    await c.waitAnswers(1)
    t.equal(c.answers[0]?.status, 200)
    t.equal(c.answers[0]?.headers['content-length'], '0')
    c.write(pipeline(16, 2))
    await c.waitAnswers(17)
    t.same(c.answers.map((a) => a.status), new Array(17).fill(200), 'a pipeline too')
    c.write(post({ method: 'GET' }))
    await c.waitClose()
    t.equal(c.answers[17]?.status, 405, 'strict by default')
    r.child.kill('SIGTERM')
    const e = await r.exit
    t.same(e, { code: 0, signal: null }, 'exit code 0 after SIGTERM')
    t.equal(r.stdout(), `${l.line}\n`, 'stdout is the one listening line')
  })

  t.test('SIGINT with an open connection: graceful close, exit code 0', async (t) => {
    const r = run(['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'])
    stopOnTeardown(t, r)
    const l = await listening(r)
    const c = await ByteClient.connect(l.port)
    t.teardown(() => c.destroy())
    c.write(pipeline(3))
    await c.waitAnswers(3)
    r.child.kill('SIGINT')
    await c.waitClose()
    t.ok(c.ended, 'the server ended the open connection')
    t.same(await r.exit, { code: 0, signal: null })
    t.equal(r.stderr(), '', 'silent')
  })

  t.test('--posture interop accepts real-peer ids', async (t) => {
    const r = run(['serve', '--port', '0', '--posture', 'interop', '--log-level', 'error'])
    stopOnTeardown(t, r)
    const l = await listening(r)
    const c = await ByteClient.connect(l.port)
    t.teardown(() => c.destroy())
    c.write(Buffer.concat([post({ tid: '0000000042-7', sid: '5@a.example' }), post({ tid: null })]))
    await c.waitAnswers(2)
    t.same(c.answers.map((a) => a.status), [200, 200])
    r.child.kill('SIGTERM')
    t.same(await r.exit, { code: 0, signal: null })
  })

  t.test('--tls-cert / --tls-key: https', async (t) => {
    const certs = makeCerts()
    const r = run(['serve', '--port', '0', '--tls-cert', certs.paths.serverCert, '--tls-key', certs.paths.serverKey])
    stopOnTeardown(t, r)
    const l = await listening(r)
    t.equal(l.scheme, 'https')
    const c = await ByteClient.connectTls(l.port, { ca: certs.ca, servername: 'localhost' })
    t.teardown(() => c.destroy())
    c.write(post())
    await c.waitAnswers(1)
    t.equal(c.answers[0]?.status, 200)
    r.child.kill('SIGTERM')
    t.same(await r.exit, { code: 0, signal: null })
  })

  t.test('bad arguments: exit code 2 and one line on stderr', async (t) => {
    const bad: string[][] = [
      ['serve', '--port', 'abc'],
      ['serve', '--port', '70000'],
      ['serve', '--port', ''],
      ['serve', '--port', '0x50'],
      ['serve', '--port', '1e3'],
      ['serve', '--port', '0', '--tls-cert', 'cert.pem'],
      ['serve', '--port', '0', '--posture', 'lenient']
    ]
    for (const args of bad) {
      const r = run(args)
      stopOnTeardown(t, r)
      const e = await r.exit
      t.same(e, { code: 2, signal: null }, `${JSON.stringify(args)}: exit code 2`)
      t.equal(r.stdout(), '', 'nothing on stdout')
      const lines = r.stderr().split('\n').filter((x) => x.length > 0)
      if (args.includes('--posture')) {
        t.match(r.stderr(), /invalid/i, 'commander explains the bad choice')
      } else {
        t.equal(lines.length, 1, `one line: ${r.stderr()}`)
        t.match(lines[0], /^ssp-transport: SSP_ERR_INVALID_ARGUMENT: /)
      }
    }
  })

  t.test('a port in use: exit code 1 and one line', async (t) => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())))
    const port = (holder.address() as net.AddressInfo).port
    const r = run(['serve', '--port', String(port)])
    stopOnTeardown(t, r)
    t.same(await r.exit, { code: 1, signal: null })
    const lines = r.stderr().split('\n').filter((x) => x.length > 0)
    t.equal(lines.length, 1, `one line: ${r.stderr()}`)
    t.match(lines[0], /EADDRINUSE/)
    t.equal(r.stdout(), '')
  })
}
