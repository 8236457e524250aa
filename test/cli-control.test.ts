/**
 * `serve --domain D --control HOST:PORT`: the local control interface of a
 * running node (src/cli/control.ts), driven as a user or a lab would: with
 * HTTP requests to the built CLI's process. Also the CLI lab testing the CLI
 * node through it (`conformance --trigger 'curl … /send?wait=0'`).
 *
 * Runs the built CLI (dist/): `npm test` builds before tap.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { SspNode } from '../src/ssp/node.js'
import { sendMessageResponse } from '../src/ssp/payload.js'
import { WAIT_GUARD_MS } from './helpers/byte-client.js'
import { freePort, MAIN, runCli as run, type Running } from './helpers/cli-child.js'

function killOnTeardown (tt: { teardown: (fn: () => unknown) => void }, r: Running): void {
  tt.teardown(() => {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL')
  })
}

/** Wait (bounded) until `re` matches the child's stdout. */
async function line (r: Running, re: RegExp): Promise<RegExpExecArray> {
  const start = Date.now()
  for (;;) {
    const m = re.exec(r.stdout())
    if (m !== null) return m
    if (r.child.exitCode !== null) throw new Error(`exited ${r.child.exitCode}: ${r.stderr()}`)
    if (Date.now() - start > WAIT_GUARD_MS) throw new Error(`no ${String(re)} on stdout; stdout=${r.stdout()} stderr=${r.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function http (method: string, url: string): Promise<{ status: number, type: string, text: string }> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(WAIT_GUARD_MS) })
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
}

/** The value of one sample line of a Prometheus text exposition (`name{labels} value`), or undefined. */
function sample (text: string, series: string): number | undefined {
  for (const l of text.split('\n')) {
    if (l.startsWith(series + ' ')) return Number(l.slice(series.length + 1))
  }
  return undefined
}

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} is missing: run \`npm run build\` (npm test does) before this test`)
} else {
  t.test('control interface: /health, /send, /stats, /metrics, errors', async (t) => {
    // The peer: an in-process node answering every request with Status 200.
    const peer = new SspNode({ domain: 'b.example', resolver: false, handler: () => sendMessageResponse() })
    const [peerUrl] = await peer.start()
    t.teardown(() => peer.close())
    const node = run(['serve', '--domain', 'a.example', '--peer', `b.example=${peerUrl!}`, '--control', '127.0.0.1:0', '--log-level', 'silent'])
    killOnTeardown(t, node)
    const nodeUrl = (await line(node, /^listening on (\S+)\n/m))[1]!
    const control = (await line(node, /^control on (http:\/\/127\.0\.0\.1:\d+)\n/m))[1]!
    peer.addPeer('a.example', nodeUrl + '/')

    const health = await http('GET', `${control}/health`)
    t.equal(health.status, 200)
    t.match(JSON.parse(health.text), { ok: true, domain: 'a.example', sessions: 0 })

    const before = await http('GET', `${control}/metrics`)
    t.equal(before.status, 200)
    t.match(before.type, /^text\/plain/, 'Prometheus text format')
    t.equal(sample(before.text, 'ssp_transactions_answered_total') ?? 0, 0, 'nothing answered yet')
    t.match(before.text, /# TYPE ssp_round_trip_seconds histogram/)

    const sent = await http('POST', `${control}/send?to=b.example`)
    t.equal(sent.status, 200, sent.text)
    const outcome = JSON.parse(sent.text) as { ok: boolean, status: number, primitive: string, rttMicros: number, transactionId: string }
    t.match(outcome, { ok: true, status: 200, primitive: 'SendMessageResponse' })
    t.ok(outcome.rttMicros > 0, 'a round trip is reported')

    const three = await http('POST', `${control}/send?to=b.example&count=3`)
    t.equal(three.status, 200)
    t.match(JSON.parse(three.text), { ok: true, count: 3, answered: 3 })

    const stats = JSON.parse((await http('GET', `${control}/stats`)).text) as { sent: number, answered: number, sessions: number, reads: number, writes: number }
    t.equal(stats.sent, 4)
    t.equal(stats.answered, 4)
    t.ok(stats.sessions >= 1, 'a session is up')
    // 4 transactions after a 7-step set-up: each side at least read and wrote once per step and per transaction half.
    t.ok(stats.reads >= 4 && stats.writes >= 4, `socket reads ${stats.reads} and writes ${stats.writes} counted`)

    const after = (await http('GET', `${control}/metrics`)).text
    t.equal(sample(after, 'ssp_transactions_sent_total'), 4)
    t.equal(sample(after, 'ssp_transactions_answered_total'), 4)
    t.equal(sample(after, 'ssp_round_trip_seconds_count'), 4, 'each /send request observed once')
    t.equal(sample(after, 'ssp_control_sends_total{outcome="answered"}'), 4)
    t.ok((sample(after, 'ssp_socket_writes_total') ?? 0) >= stats.writes, 'socket writes mirrored (at least as many as at /stats)')
    t.ok((sample(after, 'ssp_socket_reads_total') ?? 0) >= stats.reads, 'socket reads mirrored')
    t.ok((sample(after, 'ssp_sessions') ?? 0) >= 1)

    // A peer it cannot reach: the failure is the node's code, 502, and counted by code.
    const unknown = await http('POST', `${control}/send?to=nowhere.example`)
    t.equal(unknown.status, 502)
    t.match(JSON.parse(unknown.text), { ok: false, code: 'SSP_ERR_UNKNOWN_PEER' })
    t.equal(sample((await http('GET', `${control}/metrics`)).text, 'ssp_control_sends_total{outcome="SSP_ERR_UNKNOWN_PEER"}'), 1, 'counted by its code')

    // wait=0: 202 at once, the request goes on.
    const queued = await http('POST', `${control}/send?to=b.example&wait=0`)
    t.equal(queued.status, 202)
    t.match(JSON.parse(queued.text), { ok: true, queued: 1 })

    t.equal((await http('GET', `${control}/nope`)).status, 404)
    t.equal((await http('GET', `${control}/send?to=b.example`)).status, 405, 'send takes POST only')
    t.equal((await http('POST', `${control}/send`)).status, 400, 'to is required')
    t.equal((await http('POST', `${control}/send?to=b.example&count=1e3`)).status, 400, 'count is digits')
    t.equal((await http('POST', `${control}/send?to=b.example&color=red`)).status, 400, 'unknown parameter')

    node.child.kill('SIGTERM')
    t.equal((await node.exit).code, 0, 'SIGTERM closes node and control interface')
    t.equal(node.stderr(), '', 'nothing on stderr at log level silent')
  })

  t.test('control interface: loopback only unless --control-public; needs --domain', async (t) => {
    const pub = run(['serve', '--domain', 'a.example', '--control', '0.0.0.0:0', '--log-level', 'silent'])
    killOnTeardown(t, pub)
    t.equal((await pub.exit).code, 2)
    t.match(pub.stderr(), /^ssp-transport: SSP_ERR_INVALID_ARGUMENT: .*--control 0\.0\.0\.0:0: .*not a loopback address/)
    t.equal(pub.stderr().trimEnd().split('\n').length, 1, 'one line')
    const bad = run(['serve', '--domain', 'a.example', '--control', 'nonsense', '--log-level', 'silent'])
    killOnTeardown(t, bad)
    t.equal((await bad.exit).code, 2)
    t.match(bad.stderr(), /SSP_ERR_INVALID_ARGUMENT: .*--control wants HOST:PORT/)
    const bare = run(['serve', '--control', '127.0.0.1:0', '--log-level', 'silent'])
    killOnTeardown(t, bare)
    t.equal((await bare.exit).code, 2)
    t.match(bare.stderr(), /need --domain/)
  })

  t.test('the CLI lab tests the CLI node through --control: every mandatory item passes', async (t) => {
    const labPort = await freePort()
    const labUrl = `http://127.0.0.1:${labPort}/`
    const node = run(['serve', '--domain', 'sut.example', '--peer', `lab.example=${labUrl}`, '--peer', `old.example=${labUrl},1.2`,
      '--control', '127.0.0.1:0', '--log-level', 'silent'])
    killOnTeardown(t, node)
    const nodeUrl = (await line(node, /^listening on (\S+)\n/m))[1]!
    const control = (await line(node, /^control on (http:\/\/127\.0\.0\.1:\d+)\n/m))[1]!
    const lab = run(['conformance', '--peer', nodeUrl + '/', '--domain', 'lab.example', '--v12-domain', 'old.example',
      '--listen-port', String(labPort), '--format', 'json',
      '--trigger', `curl -sf -X POST '${control}/send?to=lab.example&wait=0'`])
    killOnTeardown(t, lab)
    const { code } = await lab.exit
    // Seen once in CI: an empty stdout. Say what the lab did instead of only "Unexpected end of JSON input".
    let report: {
      summary: { verdict: string }
      items: Array<{ id: string, mandatory?: boolean, required?: string, verdict: string }>
    }
    try {
      report = JSON.parse(lab.stdout()) as typeof report
    } catch (err) {
      t.fail(`the lab's stdout is not its JSON report (${String(err)}); exit ${String(code)}; stdout ${JSON.stringify(lab.stdout().slice(0, 2000))}; stderr ${JSON.stringify(lab.stderr().slice(-4000))}`)
      node.child.kill('SIGTERM')
      return
    }
    t.equal(report.summary.verdict, 'conformant', lab.stderr())
    t.equal(code, 0, 'exit 0: conformant')
    const failed = report.items.filter((i) => i.verdict === 'fail')
    t.same(failed, [], 'no item failed')
    const triggered = JSON.parse((await http('GET', `${control}/stats`)).text) as { sent: number }
    t.ok(triggered.sent >= 1, 'the lab made the node send through the control interface')
    node.child.kill('SIGTERM')
    t.equal((await node.exit).code, 0)
  })
}
