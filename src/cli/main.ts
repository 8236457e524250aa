#!/usr/bin/env node
/**
 * The `ssp-transport` command. Argument parsing is commander's; each command
 * lives in its own file and returns an exit code (see EXIT below).
 */
import { Command, Option } from 'commander'
import { createRequire } from 'node:module'
import { createError } from '../errors.js'
import { EXIT, fail } from './exit.js'
import { PEER_LOST_AFTER_MS } from './load.js'
import { registerConformance } from './conformance.js'
import { DEMO_COUNT, demoCommand } from './demo.js'
import { collectPeer } from './node-options.js'
import { sendCommand } from './send.js'
import { serveCommand } from './serve.js'

const require = createRequire(import.meta.url)
const pkg = require('../../package.json') as { version: string }

const program = new Command()
program
  .name('ssp-transport')
  .description('OMA IMPS SSP transport binding: HTTP/1.1 connection pairs, pipelined POSTs, dummy 200s')
  .version(pkg.version)
  .option('--verbose', 'print stack traces with errors')
  // A usage error is one line, SSP_ERR_INVALID_ARGUMENT, exit 2 (not the whole help).
  .configureOutput({
    outputError: (str) => {
      fail(createError('SSP_ERR_INVALID_ARGUMENT', { message: `${str.replace(/^error: /, '').trim()} (see --help)` }), false)
    }
  })
  .exitOverride((err) => {
    // commander's own exits (help, version, usage errors) keep their meaning.
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE)
  })

const posture = (): Option => new Option('--posture <posture>', 'strict: refuse every deviation; interop: accept real-peer deviations and count them').choices(['strict', 'interop']).default('strict')
const logLevel = (): Option => new Option('--log-level <level>', 'connection and session events are logged at info').choices(['silent', 'error', 'info', 'debug']).default('info')
const busyPoll = (): Option => new Option('--busy-poll <us>', 'after socket I/O keep the event loop polling this many microseconds instead of sleeping (lower latency, more CPU; 0 = off)').default('0')
const tlsOptions = (c: Command): Command => c
  .option('--tls-cert <file>', 'certificate (PEM): serve HTTPS with it; also presented as client certificate')
  .option('--tls-key <file>', 'private key for --tls-cert (PEM)')
  .option('--tls-ca <file>', 'CA bundle (PEM): trusted for peers\' server and client certificates')
  .option('--require-client-cert', 'mutual TLS: refuse inbound connections without a trusted client certificate')

tlsOptions(program.command('serve')
  .description('run an SSP endpoint; with --domain, a full node that sets up sessions and answers transactions')
  .option('-p, --port <port>', 'TCP port (0 picks a free one)', '0')
  .option('-H, --host <host>', 'address to listen on', '127.0.0.1')
  .option('--domain <domain>', 'run a full SSP node for this IMPS domain')
  .option('--peer <domain=url>', 'peer directory entry (repeatable); append ,1.2 for a version 1.2 peer, ,depth=N for its pipeline depth (Baraza: ,depth=1)', collectPeer, [])
  .option('--echo', 'answer every incoming request by echoing its body in the response half')
  .option('--control <host:port>', 'with --domain: a local HTTP control interface (POST /send?to=DOMAIN, GET /stats, /health, /metrics); loopback only, port 0 picks a free one')
  .option('--control-public', 'let --control listen on a host that is not loopback (it has no authentication)')
  .addOption(busyPoll())
  .addOption(posture())
  .addOption(logLevel()))
  .action(async (opts) => {
    process.exitCode = await serveCommand(opts)
  })

tlsOptions(program.command('send')
  .description('set up a session with a peer and run N transactions at pipeline depth K')
  .requiredOption('--domain <domain>', 'our IMPS domain')
  .requiredOption('--to <domain>', 'the peer to send to (must have a --peer entry or a DNS SRV record)')
  .option('--peer <domain=url>', 'peer directory entry (repeatable); append ,1.2 for a version 1.2 peer, ,depth=N for its pipeline depth (Baraza: ,depth=1)', collectPeer, [])
  .option('--count <n>', 'transactions', '1000')
  .option('--depth <k>', 'pipeline depth (transactions outstanding)', '16')
  .option('--size <bytes>', 'request body size', '380')
  .option('--recipient <user>', 'user part of the SendMessageRequest recipient, wv:<user>@<--to>', 'bob')
  .option('--json', 'print one JSON object instead of the text summary')
  .option('-p, --port <port>', 'our listening port, where the peer POSTs its answers (0 picks a free one)', '0')
  .option('-H, --host <host>', 'address to listen on', '127.0.0.1')
  .option('--peer-lost-after <ms>', 'end the run (exit 1, SSP_ERR_PEER_LOST) when no transaction has been answered for this long; 0 = never', String(PEER_LOST_AFTER_MS))
  .addOption(busyPoll())
  .addOption(posture())
  .addOption(logLevel()))
  .action(async (opts) => {
    process.exitCode = await sendCommand(opts)
  })

program.command('demo')
  .description('two nodes on loopback, sessions both ways over one connection pair, pipelined transactions both ways, summary')
  .option('--count <n>', 'transactions each way', String(DEMO_COUNT))
  .option('--depth <k>', 'pipeline depth each way', '16')
  .option('--size <bytes>', 'request body size', '380')
  .option('--json', 'print one JSON object instead of the text summary')
  .addOption(busyPoll())
  .addOption(new Option('--log-level <level>', 'session events are logged at info').choices(['silent', 'error', 'info', 'debug']).default('error'))
  .action(async (opts) => {
    process.exitCode = await demoCommand(opts)
  })

registerConformance(program)

try {
  await program.parseAsync(process.argv)
} catch (err) {
  process.exitCode = fail(err, program.opts<{ verbose?: boolean }>().verbose === true)
}
