import t from 'tap'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { XMLValidator } from 'fast-xml-parser'
import { Parser, type FinalResults, type Result } from 'tap-parser'
import { Command } from 'commander'
import { FAULTS, FaultServer, type Fault } from './instruments/fault-server.js'
import { HttpStream, parseMessage, type HttpMessage } from '../src/conformance/http.js'
import { ITEM_IDS, itemId, type ItemId, type Report } from '../src/conformance/model.js'
import { formatReport } from '../src/conformance/report.js'
import { conformanceCommand, registerConformance, type ConformanceOptions } from '../src/cli/conformance.js'
import { EXIT } from '../src/cli/exit.js'
import { makeCerts } from './helpers/client-certs.js'
import {
  APP_BODY, faultSut, LAB, LAB12, QUIET, runLab, sspNodeSut, summary, TIMEOUT, type LabResult
} from './helpers/conformance-lab.js'

const MANDATORY: ItemId[] = ['S-001', 'S-004', 'S-005', 'S-006', 'S-007', 'S-010', 'S-011', 'S-012']

/** The checks each fault must fail, and so the items; everything else it must pass or leave optional. */
const BREAKS: Record<Fault, string[]> = {
  'ack-order': ['dummy-reply', 'pipelined-order'],
  'ack-body': ['dummy-reply'],
  'same-connection': ['dummy-reply', 'response-on-own-connection'],
  'no-transaction-id': ['header-extensions', 'initiator-transaction-ids', 'response-transaction-ids'],
  'malformed-ids': ['header-extensions'],
  'wrong-content-type': ['content-type', 'content-type-1.2'],
  'ignores-1.2': ['content-type-1.2'],
  'redirect-later': ['redirects-only-at-setup'],
  'no-redirect': ['follows-redirect-step-1', 'follows-redirect-step-3'],
  'follows-any-redirect': ['refuses-later-redirect'],
  'no-session-id': ['header-extensions', 'session-ids'],
  'body-session-id': ['session-ids'],
  'body-transaction-id': ['response-transaction-ids'],
  'refuses-1.2': ['content-type-1.2']
}

function failedChecks (r: LabResult): string[] {
  return [...new Set(r.items.flatMap((i) => i.checks.filter((c) => c.outcome === 'fail').map((c) => c.check)))].sort()
}

/** Items a failing check belongs to. */
function itemsOf (r: LabResult, checks: string[]): ItemId[] {
  return [...new Set(r.items.flatMap((i) => i.checks.filter((c) => checks.includes(c.check)).map((c) => c.item)))].sort()
}

/** A port nothing listens on (bound, then closed). */
/**
 * A port nothing listens on, used at 127.0.0.3: the lab itself listens on
 * 127.0.0.1 port 0 and could be handed the port just freed there.
 */
async function closedPort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

function parseTap (text: string): Promise<{ final: FinalResults, asserts: Result[] }> {
  return new Promise((resolve) => {
    const asserts: Result[] = []
    const p = new Parser((final) => resolve({ final, asserts }))
    p.on('assert', (r: Result) => asserts.push(r))
    p.end(text)
  })
}

// ---------------------------------------------------------------------------

t.test('the correct SspNode passes every mandatory item', async (t) => {
  const r = await runLab(t, await sspNodeSut(t))
  for (const id of MANDATORY) t.equal(r.verdict(id), 'pass', `${id}\n${summary(r.items)}`)
  t.equal(r.verdict('S-002'), 'pass', 'HTTP exercised')
  t.equal(r.verdict('S-003'), 'not supported', 'no HTTPS URL given')
  t.equal(r.verdict('S-008'), 'pass', 'the node reuses its connection pair by default')
  t.equal(r.verdict('S-009'), 'not supported', 'one pair by default')
  t.equal(r.report.summary.verdict, 'conformant')
  // The decisive probes really ran.
  t.ok(r.run.redirects.step1?.followed, 'step-1 redirect followed')
  t.ok(r.run.redirects.step3?.followed, 'step-3 redirect followed')
  t.ok(r.run.redirects.later !== undefined && r.run.redirects.later.followed === undefined, 'later redirect sent and not followed')
  t.equal(r.run.pipeline?.length, 4)
  t.same(r.run.sessions.map((s) => s.label).sort(), ['A', 'B', 'V12'])
  const p3 = r.run.exchanges[r.run.pipeline![2]! - 1]!
  t.equal(p3.reply?.status, 415, 'the wrong Content-Type in the batch was refused')
})

t.test('the fault server without a fault passes every mandatory item', async (t) => {
  const r = await runLab(t, await faultSut(t, undefined))
  t.same(r.failed, [], summary(r.items))
  for (const id of MANDATORY) t.equal(r.verdict(id), 'pass', id)
  t.equal(r.report.summary.verdict, 'conformant')
})

t.test('each broken server fails exactly the items its fault breaks', async (t) => {
  for (const fault of Object.keys(FAULTS) as Fault[]) {
    await t.test(fault, async (t) => {
      const r = await runLab(t, await faultSut(t, fault))
      const why = summary(r.items)
      t.same(failedChecks(r), [...BREAKS[fault]].sort(), `failing checks\n${why}`)
      const expected = itemsOf(r, BREAKS[fault])
      t.ok(expected.length > 0)
      t.same(r.failed, expected, 'failing items')
      // A SUT that answers on the lab's own connection never POSTs a response half, so the later-redirect
      // probe has nothing to redirect: S-011 then rests on partial evidence and is not passed.
      const partial: readonly string[] = fault === 'same-connection' ? ['S-011'] : []
      for (const id of MANDATORY.filter((i) => !expected.includes(i))) {
        if (partial.includes(id)) {
          t.equal(r.verdict(id), 'not testable', `${id}: partial evidence is not a pass\n${why}`)
          t.match(r.items.find((i) => i.id === id)?.reason ?? '', /partial evidence.*not tested: refuses-later-redirect/)
        } else {
          t.equal(r.verdict(id), 'pass', `${id} still passes\n${why}`)
        }
      }
      t.equal(r.verdict('S-008'), 'pass', 'pair reuse still seen')
      t.equal(r.report.summary.verdict, 'nonconformant')
      // Every failed check shows the exchange that decided it.
      for (const c of r.items.flatMap((i) => i.checks).filter((c) => c.outcome === 'fail' && c.check !== 'pair-reuse')) {
        t.ok(c.evidence.length > 0, `${c.check} has evidence`)
      }
    })
  }
})

t.test('optional items: pair reuse and multiple pairs, claimed or not', async (t) => {
  await t.test('no pair reuse, not claimed: not supported, still conformant', async (t) => {
    const r = await runLab(t, await sspNodeSut(t, { pairReuse: false }), { only: ['S-008', 'S-007'] })
    t.equal(r.verdict('S-008'), 'not supported', summary(r.items))
    t.equal(r.report.summary.verdict, 'conformant')
  })
  await t.test('no pair reuse, claimed: fail, nonconformant', async (t) => {
    const r = await runLab(t, await sspNodeSut(t, { pairReuse: false }), { only: ['S-008'], claims: ['S-008'] })
    t.equal(r.verdict('S-008'), 'fail', summary(r.items))
    t.equal(r.report.summary.verdict, 'nonconformant')
  })
  await t.test('pair reuse claimed: the lab reuses its own connection too', async (t) => {
    const r = await runLab(t, await sspNodeSut(t), { claims: ['S-008'] })
    t.equal(r.verdict('S-008'), 'pass', summary(r.items))
    const a = r.run.exchanges.find((e) => e.dir === 'out' && e.session === 'A')
    const b = r.run.exchanges.find((e) => e.dir === 'out' && e.session === 'B')
    t.equal(a?.conn.id, b?.conn.id, 'session A set up on session B\'s lab connection')
    t.equal(r.report.summary.verdict, 'conformant', summary(r.items))
  })
  await t.test('two pairs, claimed: pass', async (t) => {
    const r = await runLab(t, await sspNodeSut(t, { pairs: 2 }), { only: ['S-009'], claims: ['S-009'] })
    t.equal(r.verdict('S-009'), 'pass', summary(r.items))
  })
  await t.test('one pair, multiple pairs claimed: fail', async (t) => {
    const r = await runLab(t, await sspNodeSut(t), { only: ['S-009'], claims: ['S-009'] })
    t.equal(r.verdict('S-009'), 'fail', summary(r.items))
    t.equal(r.report.summary.verdict, 'nonconformant')
  })
})

const certs = makeCerts()

t.test('HTTP and HTTPS: a second URL in the other scheme', { skip: certs === undefined ? 'openssl CLI not found' : false }, async (t) => {
  if (certs === undefined) return
  const sut = await sspNodeSut(t, { listen: [{ port: 0 }, { port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } }] })
  t.match(sut.urls[1], /^https:/)
  const r = await runLab(t, sut, { altPeer: sut.urls[1]!, ca: certs.ca, only: ['S-001', 'S-002', 'S-003'], claims: ['S-003'] })
  t.equal(r.verdict('S-001'), 'pass', summary(r.items))
  t.equal(r.verdict('S-002'), 'pass')
  t.equal(r.verdict('S-003'), 'pass')
  t.ok(r.run.exchanges.some((e) => e.purpose === 'alt-request' && e.conn.scheme === 'https' && e.reply?.status === 200))
  t.equal(r.report.summary.verdict, 'conformant')

  await t.test('an HTTPS URL the lab cannot verify fails S-003 when claimed', async (t) => {
    // A fresh SUT: a node keeps the directory entry of a peer it has sessions with.
    const sut2 = await sspNodeSut(t, { listen: [{ port: 0 }, { port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } }] })
    const r2 = await runLab(t, sut2, { altPeer: sut2.urls[1]!, only: ['S-003'], claims: ['S-003'] })
    t.equal(r2.verdict('S-003'), 'fail', summary(r2.items))
    t.match(r2.run.notes.join('\n'), /alternative URL .* unreachable/)
  })
})

t.test('a SUT that redirects the lab at set-up (allowed) passes S-011', async (t) => {
  // Every fresh connection to the SUT's first listener is sent to its second at the first SendSecretToken.
  const target: { from?: number, to?: string } = {}
  const sut = await sspNodeSut(t, {
    listen: [{ port: 0 }, { port: 0 }],
    redirect: (_peer, conn) => conn.socket.localPort === target.from ? target.to : undefined
  })
  target.from = Number(new URL(sut.url).port)
  target.to = sut.urls[1]
  const r = await runLab(t, sut)
  t.equal(r.verdict('S-011'), 'pass', summary(r.items))
  t.same(r.failed, [], summary(r.items))
  const redirected = r.run.exchanges.filter((e) => e.dir === 'out' && e.reply?.status === 307)
  t.ok(redirected.length >= 1, 'the SUT did redirect the lab')
  t.ok(redirected.every((e) => e.seq === 0 && (e.purpose === 'setup-1' || e.purpose === 'setup-3')))
  t.match(r.run.notes.join('\n'), /redirected the lab's step/)
})

t.test('without a trigger the SUT never initiates: S-004 not testable, run inconclusive', async (t) => {
  const r = await runLab(t, await sspNodeSut(t), { noTrigger: true })
  t.equal(r.verdict('S-004'), 'not testable', summary(r.items))
  t.equal(r.verdict('S-011'), 'not testable', 'step 3 and later redirects passed, but step 1 was never probed: no pass on partial evidence')
  t.match(r.items.find((i) => i.id === 'S-011')?.reason ?? '', /partial evidence: passed .*not tested: follows-redirect-step-1/)
  t.equal(r.failed.length, 0)
  t.equal(r.report.summary.verdict, 'inconclusive')
})

t.test('--only limits the report and the probes', async (t) => {
  const r = await runLab(t, await sspNodeSut(t), { only: ['S-007'], noTrigger: true })
  t.same(r.items.map((i) => i.id), ['S-007'])
  t.equal(r.run.redirects.step3, undefined, 'no redirect probe without S-011')
  t.equal(r.run.burst, undefined, 'no burst without S-009')
  t.equal(r.report.summary.verdict, 'conformant')
})

t.test('an unreachable SUT: every item not testable, exit 3', async (t) => {
  const sut = await sspNodeSut(t)
  const r = await runLab(t, { ...sut, url: `http://127.0.0.3:${await closedPort()}/` })
  t.equal(r.run.reachable, false)
  t.ok(r.items.every((i) => i.verdict === 'not testable'))
  t.equal(r.report.summary.verdict, 'unreachable')
})

// ---------------------------------------------------------------------------

t.test('report formats', async (t) => {
  const good = await runLab(t, await sspNodeSut(t))
  const bad = await runLab(t, await faultSut(t, 'ack-body'))

  await t.test('tap parses, with a YAML block per item', async (t) => {
    const g = await parseTap(formatReport(good.report, 'tap'))
    t.equal(g.final.ok, true)
    t.equal(g.final.count, 12)
    t.equal(g.final.fail, 0)
    t.equal(g.final.skip, 2, 'S-003 and S-009: not supported')
    t.same(g.asserts.map((a) => a.name.slice(0, 5)), ITEM_IDS)
    const diag = g.asserts[6]?.diag as { verdict: string, checks: Array<{ check: string, evidence?: unknown[] }> } | null
    t.equal(diag?.verdict, 'pass')
    t.ok(diag?.checks.some((c) => c.check === 'pipelined-order' && (c.evidence?.length ?? 0) > 0))
    const b = await parseTap(formatReport(bad.report, 'tap'))
    t.equal(b.final.ok, false)
    t.equal(b.final.fail, 1)
    t.equal(b.final.failures[0]?.name.slice(0, 5), 'S-007')
  })

  await t.test('junit is well-formed XML with one testcase per item', async (t) => {
    for (const [r, failures] of [[good, 0], [bad, 1]] as const) {
      const xml = formatReport(r.report, 'junit')
      t.equal(XMLValidator.validate(xml), true)
      t.equal(xml.match(/<testcase /g)?.length, 12)
      t.match(xml, new RegExp(`<testsuite name="IMPS-SSP-Transport" tests="12" failures="${failures}"`))
      t.equal(xml.match(/<failure /g)?.length ?? 0, failures)
    }
  })

  await t.test('json has every item with its verdict, section and evidence', async (t) => {
    const j = JSON.parse(formatReport(bad.report, 'json')) as Report
    t.same(j.items.map((i) => i.id), ITEM_IDS)
    for (const i of j.items) {
      t.type(i.verdict, 'string')
      t.type(i.section, 'string')
      t.ok(Array.isArray(i.checks))
    }
    const s7 = j.items.find((i) => i.id === 'S-007')!
    t.equal(s7.verdict, 'fail')
    t.match(s7.checks.find((c) => c.check === 'dummy-reply')?.evidence[0]?.reply, /^HTTP\/1\.1 200 OK\\r\\nContent-Length: 2/)
    t.equal(j.summary.verdict, 'nonconformant')
  })

  await t.test('text names every item and the result', async (t) => {
    const text = formatReport(good.report, 'text')
    for (const id of ITEM_IDS) t.match(text, new RegExp(`^${id} `, 'm'))
    t.match(text, /Result: 10 pass, 0 fail, 2 not supported, 0 not testable: conformant$/m)
  })
})

// ---------------------------------------------------------------------------

t.test('the CLI action', async (t) => {
  const base = (peer: string, extra: Partial<ConformanceOptions> = {}): ConformanceOptions =>
    ({ peer, domain: LAB, timeout: String(TIMEOUT), quiet: String(QUIET), ...extra })
  const quietIo = (out: string[] = []): { stdout: (s: string) => void, stderr: (s: string) => void } =>
    ({ stdout: (s) => { out.push(s) }, stderr: () => undefined })

  await t.test('unreachable SUT: 3', async (t) => {
    const out: string[] = []
    const code = await conformanceCommand(base(`http://127.0.0.3:${await closedPort()}/`, { format: 'json' }), quietIo(out))
    t.equal(code, EXIT.UNREACHABLE)
    t.equal((JSON.parse(out.join('')) as Report).summary.verdict, 'unreachable')
  })

  await t.test('usage errors: 2', async (t) => {
    const stderr = process.stderr.write
    process.stderr.write = (() => true) as typeof process.stderr.write
    t.teardown(() => { process.stderr.write = stderr })
    const url = 'http://127.0.0.1:9/'
    t.equal(await conformanceCommand(base(url, { only: 'S-099' }), quietIo()), EXIT.USAGE, 'unknown item')
    t.equal(await conformanceCommand(base(url, { claims: 'S-007' }), quietIo()), EXIT.USAGE, 'a mandatory item cannot be claimed')
    t.equal(await conformanceCommand(base(url, { format: 'xml' }), quietIo()), EXIT.USAGE, 'unknown format')
    t.equal(await conformanceCommand(base(url, { listenPort: '70000' }), quietIo()), EXIT.USAGE, 'bad port')
    t.equal(await conformanceCommand(base('ftp://127.0.0.1/'), quietIo()), EXIT.USAGE, 'not http(s)')
    t.equal(await conformanceCommand(base(url, { timeout: '0' }), quietIo()), EXIT.USAGE, 'bad timeout')
    t.equal(await conformanceCommand(base(url, { tlsCert: 'x.pem' }), quietIo()), EXIT.USAGE, 'cert without key')
  })

  await t.test('a broken server: 4, the report on stdout', async (t) => {
    const sut = await faultSut(t, 'wrong-content-type')
    const out: string[] = []
    const code = await conformanceCommand(base(sut.url, { format: 'tap', v12Domain: LAB12 }), {
      ...quietIo(out), onListening: ({ url }) => sut.addLab(url), trigger: sut.trigger
    })
    t.equal(code, EXIT.NONCONFORMANT)
    const tap = await parseTap(out.join(''))
    t.same(tap.final.failures.map((f) => f.name.slice(0, 5)), ['S-010'])
  })

  await t.test('the correct node: 0; without a trigger: 1 (inconclusive)', async (t) => {
    const sut = await sspNodeSut(t)
    const io = { ...quietIo(), onListening: ({ url }: { url: string }) => sut.addLab(url) }
    t.equal(await conformanceCommand(base(sut.url, { v12Domain: LAB12 }), { ...io, trigger: sut.trigger }), EXIT.OK)
    t.equal(await conformanceCommand(base(sut.url), io), EXIT.FAILURE)
  })

  await t.test('a --trigger command is run with the lab in its environment', async (t) => {
    const sut = await faultSut(t, undefined)
    const out: string[] = []
    // The command cannot reach an in-process server's API; it proves it ran by leaving what it was told in a file.
    const mark = path.join(t.testdir(), 'trigger-ran')
    const code = await conformanceCommand(base(sut.url, {
      only: 'S-004',
      trigger: `node -e "require('fs').appendFileSync(process.argv[1], process.env.SSP_LAB_DOMAIN + ' ' + process.env.SSP_LAB_URL + ' ' + process.env.SSP_TRIGGER + '\\n')" ${JSON.stringify(mark)}`
    }), { ...quietIo(out), onListening: ({ url }) => sut.addLab(url) })
    t.equal(code, EXIT.FAILURE, 'S-004 not testable: the SUT was never made to initiate')
    const lines = fs.readFileSync(mark, 'utf8').trim().split('\n')
    t.ok(lines.length >= 1, `the command ran (${lines.length} time(s))`)
    t.match(lines[0], new RegExp(`^${LAB.replace(/\./g, '\\.')} http://127\\.0\\.0\\.1:\\d+/\\S* 1$`), 'told the lab domain, its URL and the trigger number')
    t.notMatch(out.join(''), /trigger \d failed/, 'the command exited 0')

    // The same check sees a command that fails.
    const out2: string[] = []
    const sut2 = await faultSut(t, undefined)
    await conformanceCommand(base(sut2.url, { only: 'S-004', trigger: 'node -e "process.exit(9)"' }),
      { ...quietIo(out2), onListening: ({ url }) => sut2.addLab(url) })
    t.match(out2.join(''), /trigger 1 failed: --trigger exited with 9/, 'a failing command is reported')
  })

  await t.test('registerConformance adds the subcommand and its options', async (t) => {
    const program = new Command()
    registerConformance(program)
    const cmd = program.commands.find((c) => c.name() === 'conformance')
    t.ok(cmd)
    const flags = cmd!.options.map((o) => o.long)
    for (const f of ['--peer', '--domain', '--sut-domain', '--format', '--only', '--claims', '--listen-port', '--listen-host', '--trigger', '--alt-peer', '--v12-domain']) {
      t.ok(flags.includes(f), f)
    }
  })
})

// ---------------------------------------------------------------------------

t.test('HttpStream keeps each pipelined message byte-exact, however it is split', async (t) => {
  const a = 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc'
  const b = 'POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n'
  const input = Buffer.from(a + b, 'latin1')
  for (const size of [1, 7, input.length]) {
    const got: HttpMessage[] = []
    const s = new HttpStream('request', { message: (m) => got.push(m), error: (r) => t.fail(r) })
    for (let i = 0; i < input.length; i += size) s.push(input.subarray(i, i + size))
    s.stop()
    t.equal(got.length, 2, `split every ${size}`)
    t.equal(got[0]?.raw.toString('latin1'), a)
    t.equal(got[1]?.raw.toString('latin1'), b)
    t.equal(got[1]?.body.toString(), 'def')
    t.equal(got[1]?.target, '/b')
    t.same(got[1]?.headers.filter(([k]) => k === 'X-Two').map(([, v]) => v), ['1', '2'])
  }
})

t.test('HttpStream sees what the engine would refuse, and says so', async (t) => {
  const ok = (tid: string): string => `POST /s HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.wv.ssp+xml\r\nx-wv-transactionid: ${tid}\r\nContent-Length: 0\r\n\r\n`
  const wrong = 'POST /s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nx-wv-transactionid: T3\r\nContent-Length: 2\r\n\r\nhi'
  const got: HttpMessage[] = []
  const errors: string[] = []
  const s = new HttpStream('request', { message: (m) => got.push(m), error: (r) => errors.push(r) })
  s.push(Buffer.from(ok('T1') + ok('T2') + wrong + ok('T4') + 'POST /s HT', 'latin1'))
  t.same(got.map((m) => m.refusal?.code), [undefined, undefined, 'SSP_ERR_CONTENT_TYPE', undefined], 'the wrong Content-Type mid-batch is seen, the batch goes on')
  t.equal(got[2]?.raw.toString('latin1'), wrong)
  t.ok(s.busy, 'a message begun')
  s.end()
  t.equal(errors.length, 1, 'closed in the middle of a message')
  s.push(Buffer.from(ok('T5')))
  t.equal(got.length, 4, 'nothing after end()')

  const r: HttpMessage[] = []
  const rs = new HttpStream('response', { message: (m) => { r.push(m); rs.stop() }, error: (e) => errors.push(e) })
  rs.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'))
  t.equal(r.length, 1, 'stopped from inside its sink')
  const bad = new HttpStream('response', { message: () => t.fail('no message'), error: (e) => errors.push(e) })
  bad.push(Buffer.from('SSH-2.0-OpenSSH\r\n'))
  t.match(errors[1], /^SSP_ERR_HTTP_RESPONSE: /, 'not HTTP: the error names the code')
  t.throws(() => parseMessage('request', Buffer.from('POST / HTTP/1.1\r\n')), { code: 'SSP_ERR_HTTP_PARSE' })
})

t.test('itemId accepts the usual spellings', async (t) => {
  t.equal(itemId('S-7'), 'S-007')
  t.equal(itemId('IMPS-SSP-Transport-S-012'), 'S-012')
  t.equal(itemId('s-011'), 'S-011')
  t.equal(itemId('S-013'), undefined)
  t.equal(itemId('x'), undefined)
})

t.test('fault server names are the documented ones', async (t) => {
  t.same(Object.keys(BREAKS).sort(), Object.keys(FAULTS).sort())
  t.throws(() => new FaultServer({ domain: 'x.example', fault: 'nope' as Fault }))
  t.ok(APP_BODY.length > 0)
})
