/**
 * nginx in front of a WireServer, with the example config the README points
 * to (docs/nginx.conf.example): pipelined SSP POSTs through nginx are
 * answered 200; the same config without its two REQUIRED lines (nginx's
 * default HTTP/1.0 upstream) gets 505 SSP_ERR_HTTP_VERSION, which is why the
 * README asks for them. Skipped only when nginx is not installed.
 */
import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WireServer } from '../src/wire/server.js'
import { ByteClient, type ByteAnswer } from './helpers/byte-client.js'
import { delay, until } from './helpers/wait.js'

function findNginx (): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
    try {
      execFileSync(p, ['-v'], { stdio: 'ignore', timeout: 5000 })
      return p
    } catch {}
  }
  return undefined
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

const CT = 'Content-Type: application/vnd.wv.ssp+xml\r\n'
function post (tid: string, body: string): string {
  return `POST /ssp HTTP/1.1\r\nHost: b.example\r\n${CT}x-wv-transactionid: ${tid}\r\nx-wv-sessionid: S1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

const nginx = findNginx()

interface Teardown { teardown (fn: () => unknown): void }

/** Start nginx with the example config (optionally edited) in front of `upstreamPort`; resolves with its port. */
async function startNginx (t: Teardown, upstreamPort: number, edit: (conf: string) => string = (c) => c): Promise<number> {
  const prefix = mkdtempSync(join(tmpdir(), 'ssp-nginx-'))
  const port = await freePort()
  const conf = edit(readFileSync(new URL('../docs/nginx.conf.example', import.meta.url), 'utf8'))
    .replaceAll('@@PREFIX@@', prefix)
    .replaceAll('@@LISTEN_PORT@@', String(port))
    .replaceAll('@@UPSTREAM_PORT@@', String(upstreamPort))
  writeFileSync(join(prefix, 'nginx.conf'), conf)
  let stderr = ''
  // In the foreground, one process (no master/worker), so one kill stops it.
  const child: ChildProcess = spawn(nginx!, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf'),
    '-g', 'daemon off; master_process off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  let exited = false
  child.on('exit', () => { exited = true })
  t.teardown(async () => {
    if (!exited) {
      child.kill('SIGTERM')
      await until(() => exited, 'nginx exits', 10_000).catch(() => { child.kill('SIGKILL') })
    }
    rmSync(prefix, { recursive: true, force: true })
  })
  // Bounded: nginx listens within a few hundred ms.
  for (let i = 0; i < 200; i++) {
    if (exited) throw new Error(`nginx exited: ${stderr}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) return port
    await delay(25)
  }
  throw new Error(`nginx did not listen: ${stderr}`)
}

/** Write `bytes` at once and read until `n` answers came back (framed by the project's response framer). */
async function exchange (port: number, bytes: string, n: number): Promise<ByteAnswer[]> {
  const c = await ByteClient.connect(port)
  try {
    c.write(bytes)
    const answers = await c.waitAnswers(n)
    if (answers.length < n) throw new Error(`closed after ${answers.length} answers: ${JSON.stringify(c.received.toString('latin1'))}`)
    return answers.slice(0, n)
  } finally {
    c.destroy()
  }
}

t.test('nginx in front (docs/nginx.conf.example): pipelined SSP POSTs get 200 through it', { skip: nginx === undefined ? 'nginx is not installed (apt-get install nginx-light)' : false }, async (t) => {
  const handled: string[] = []
  const server = new WireServer({ closeTimeout: 200, onRequest: (req) => { handled.push(`${req.transactionId ?? '-'}:${req.body.toString()}`) } })
  const { port: upstream } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  const port = await startNginx(t, upstream)
  const heads = await exchange(port, post('T1', '<a/>') + post('T2', '<b/>') + post('T3', '<c/>'), 3)
  t.same(heads.map((a) => a.startLine), ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK'], 'three 200s, in order')
  t.same(handled, ['T1:<a/>', 'T2:<b/>', 'T3:<c/>'], 'the three reached the server, ids and bodies intact')
  t.equal(server.getStats().errors.SSP_ERR_HTTP_VERSION, undefined, 'no HTTP/1.0 from nginx')
  t.ok(server.getStats().connectionsAccepted <= 2, `upstream connections kept alive (${server.getStats().connectionsAccepted} accepted)`)
})

t.test('nginx without the REQUIRED lines (HTTP/1.0 upstream): 505 SSP_ERR_HTTP_VERSION', { skip: nginx === undefined ? 'nginx is not installed (apt-get install nginx-light)' : false }, async (t) => {
  const server = new WireServer({ closeTimeout: 200 })
  const { port: upstream } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  const port = await startNginx(t, upstream, (c) => c.split('\n').filter((l) => !l.includes('REQUIRED:')).join('\n'))
  const heads = await exchange(port, post('T1', '<a/>'), 1)
  t.equal(heads[0]?.status, 505, '505')
  t.equal(heads[0]?.headers['x-ssp-error'], 'SSP_ERR_HTTP_VERSION', 'with SSP_ERR_HTTP_VERSION')
})
