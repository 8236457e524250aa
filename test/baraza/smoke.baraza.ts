/**
 * Smoke test of the Baraza harness (test/helpers/baraza-peer.ts): the recipe
 * builds, barazad starts on loopback with our SRV map, answers on its HTTP
 * port, and stops again. A file of its own so that a broken build or start
 * shows up by itself, in seconds, not as a failure deep inside the federation
 * suite.
 */
import t from 'tap'
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { BARAZA_URL, BARAZA_WORK, barazaAlive, barazaLog, buildBaraza, startBaraza, stopBaraza } from '../helpers/baraza-peer.js'

interface Answer { status?: number, headers?: Record<string, unknown>, body: string, error?: string, ms: number }

/**
 * One POST on a fresh connection. A refusal by Baraza is a TCP close with no
 * HTTP answer, so a socket error is a result here, not a test crash; the
 * timeout only guards against a hang.
 */
function post (contentType: string, body: string, timeoutMs = 10_000): Promise<Answer> {
  const start = Date.now()
  return new Promise((resolve) => {
    const req = request(BARAZA_URL, {
      method: 'POST',
      headers: { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), Connection: 'close' },
      timeout: timeoutMs
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text, ms: Date.now() - start }))
      res.on('error', (e) => resolve({ status: res.statusCode, body: text, error: e.message, ms: Date.now() - start }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)))
    req.on('error', (e) => resolve({ body: '', error: e.message, ms: Date.now() - start }))
    req.end(body)
  })
}

/** Recent barazad log lines, for failure diagnostics only (the log is megabytes: read it only then). */
const logTail = (n = 20): string => barazaLog().slice(-n).join('\n')

t.setTimeout(25 * 60_000) // build.sh may install Debian packages on a fresh machine

// A real listener behind a.example, so the map names a live loopback address
// (the smoke test itself never makes Baraza connect to it).
const peer = createServer((s) => s.destroy())
t.teardown(async () => {
  await stopBaraza()
  peer.close()
})

t.test('build.sh builds barazad', async (t) => {
  const start = Date.now()
  await buildBaraza()
  t.comment(`build.sh took ${Date.now() - start} ms`)
  t.pass(`built ${BARAZA_WORK}/build/barazad`)
})

t.test('start.sh starts it on 127.0.0.1:28181 with our SRV map', async (t) => {
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve))
  const port = (peer.address() as AddressInfo).port
  const start = Date.now()
  await startBaraza({ srvMap: { 'a.example': `127.0.0.1:${port}` } })
  t.comment(`start.sh took ${Date.now() - start} ms`)
  t.ok(barazaAlive(), 'barazad is running (pid file, kill -0)')
})

t.test('an SSP POST it cannot parse gets HTTP 400', async (t) => {
  const a = await post('application/vnd.wv.ssp+xml', 'this is not <xml')
  t.comment(`answer: ${JSON.stringify(a)}`)
  if (!t.equal(a.error, undefined, 'an HTTP answer, not a close')) t.comment(logTail())
  t.equal(a.status, 400, 'status 400')
  t.ok(barazaAlive(), 'barazad still running afterwards')
})

t.test('stop.sh stops it', async (t) => {
  // barazad does not finish its SIGTERM shutdown: stop.sh KILLs it after its 10 s wait.
  const start = Date.now()
  await stopBaraza()
  t.comment(`stop.sh took ${Date.now() - start} ms`)
  t.notOk(barazaAlive(), 'barazad is gone')
})
