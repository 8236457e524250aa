#!/usr/bin/env node
/**
 * The `ssp-transport` command. Argument parsing is commander's; each command
 * lives in its own file and returns an exit code (see EXIT below).
 */
import { Command, Option } from 'commander'
import { createRequire } from 'node:module'
import { EXIT, fail } from './exit.js'
import { serveCommand } from './serve.js'

const require = createRequire(import.meta.url)
const pkg = require('../../package.json') as { version: string }

const program = new Command()
program
  .name('ssp-transport')
  .description('OMA IMPS SSP transport binding: HTTP/1.1 connection pairs, pipelined POSTs, dummy 200s')
  .version(pkg.version)
  .option('--verbose', 'print stack traces with errors')
  .showHelpAfterError()
  .exitOverride((err) => {
    // commander's own exits (help, version, usage errors) keep their meaning.
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE)
  })

program.command('serve')
  .description('run an endpoint that acknowledges every valid SSP POST')
  .option('-p, --port <port>', 'TCP port (0 picks a free one)', '0')
  .option('-H, --host <host>', 'address to listen on', '127.0.0.1')
  .addOption(new Option('--posture <posture>', 'strict: refuse every deviation; interop: accept real-peer deviations and count them').choices(['strict', 'interop']).default('strict'))
  .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
  .option('--tls-key <file>', 'private key for --tls-cert (PEM)')
  .option('--tls-ca <file>', 'CA bundle for client certificates (PEM)')
  .option('--require-client-cert', 'mutual TLS: refuse clients without a trusted certificate')
  .addOption(new Option('--log-level <level>', 'connection events are logged at info').choices(['silent', 'error', 'info', 'debug']).default('info'))
  .action(async (opts) => {
    process.exitCode = await serveCommand(opts)
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  process.exitCode = fail(err, program.opts<{ verbose?: boolean }>().verbose === true)
}
