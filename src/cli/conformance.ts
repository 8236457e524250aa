/**
 * `ssp-transport conformance`: play the other server against a system under
 * test and report every SCR item (the README's "Conformance lab" section says how to read it).
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { createError } from '../errors.js'
import { judge } from '../conformance/checks.js'
import { ConformanceLab } from '../conformance/lab.js'
import { itemId, OPTIONAL_ITEMS, type ItemId, type RunVerdict } from '../conformance/model.js'
import { buildReport, FORMATS, formatReport, type Format } from '../conformance/report.js'
import { EXIT, fail } from './exit.js'
import { parsePort } from './node-options.js'

/** The exit status of each run verdict (the README's "Conformance lab" exit table). */
export const VERDICT_EXIT: Record<RunVerdict, number> = {
  conformant: EXIT.OK,
  nonconformant: EXIT.NONCONFORMANT,
  inconclusive: EXIT.FAILURE,
  unreachable: EXIT.UNREACHABLE
}

export interface ConformanceOptions {
  peer: string
  domain: string
  sutDomain?: string
  altPeer?: string
  v12Domain?: string
  format?: string
  only?: string
  claims?: string
  listenHost?: string
  listenPort?: string
  trigger?: string
  tlsCert?: string
  tlsKey?: string
  ca?: string
  insecure?: boolean
  timeout?: string
  quiet?: string
  verbose?: boolean
}

/** Hooks for running the command in-process (tests, embedding). */
export interface ConformanceIo {
  stdout?: (s: string) => void
  stderr?: (s: string) => void
  /** Called once the lab listens, before anything is sent (e.g. to point the SUT's directory at it). */
  onListening?: (urls: { url: string, redirectUrl: string }) => unknown
  /** In-process trigger; wins over --trigger. */
  trigger?: (n: number) => unknown
}

function items (s: string | undefined, what: string): ItemId[] {
  if (s === undefined) return []
  const out: ItemId[] = []
  for (const part of s.split(/[\s,]+/).filter((p) => p !== '')) {
    const id = itemId(part)
    if (id === undefined) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${what}: ${part} is not an SCR item (S-001 .. S-012)` })
    out.push(id)
  }
  return out
}

function ms (s: string | undefined, name: string, dflt: number): number {
  if (s === undefined) return dflt
  const n = Number(s)
  if (!Number.isInteger(n) || n <= 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${name} must be a positive number of milliseconds, got ${s}` })
  return n
}

/** A shell command run once per trigger, told the lab's domain and URL in its environment. */
function commandTrigger (cmd: string, env: () => Record<string, string>, timeout: number): (n: number) => Promise<void> {
  return (n) => new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, { shell: true, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env(), SSP_TRIGGER: String(n) } })
    const timer = setTimeout(() => child.kill(), timeout)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`--trigger exited with ${code ?? signal ?? '?'}`))
    })
  })
}

/** The command's action. Returns the exit status (report.ts). */
export async function conformanceCommand (o: ConformanceOptions, io: ConformanceIo = {}): Promise<number> {
  const stdout = io.stdout ?? ((s: string) => { process.stdout.write(s) })
  const stderr = io.stderr ?? ((s: string) => { process.stderr.write(s) })
  let lab: ConformanceLab | undefined
  try {
    const format = (o.format ?? 'text') as Format
    if (!FORMATS.includes(format)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--format must be one of ${FORMATS.join(', ')}` })
    const claims = items(o.claims, '--claims')
    const bad = claims.filter((c) => !OPTIONAL_ITEMS.includes(c))
    if (bad.length > 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `--claims: only optional items can be claimed (${OPTIONAL_ITEMS.join(', ')}), not ${bad.join(', ')}` })
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: '--tls-cert and --tls-key go together' })
    const timeout = ms(o.timeout, '--timeout', 5000)
    let urls = { url: '', redirectUrl: '' }
    const trigger = io.trigger ?? (o.trigger === undefined
      ? undefined
      : commandTrigger(o.trigger, () => ({ SSP_LAB_DOMAIN: o.domain, SSP_LAB_URL: urls.url }), timeout))
    lab = new ConformanceLab({
      peer: o.peer,
      domain: o.domain,
      ...(o.altPeer === undefined ? {} : { altPeer: o.altPeer }),
      ...(o.sutDomain === undefined ? {} : { sutDomain: o.sutDomain }),
      ...(o.v12Domain === undefined ? {} : { v12Domain: o.v12Domain }),
      listenHost: o.listenHost ?? '127.0.0.1',
      listenPort: parsePort(o.listenPort ?? '0'),
      ...(o.tlsCert === undefined || o.tlsKey === undefined ? {} : { tls: { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } }),
      ...(o.ca === undefined ? {} : { ca: readFileSync(o.ca) }),
      insecure: o.insecure === true,
      claims,
      only: items(o.only, '--only'),
      ...(trigger === undefined ? {} : { trigger }),
      timeout,
      quiet: ms(o.quiet, '--quiet', 500),
      log: (line) => { if (o.verbose === true) stderr(`conformance: ${line}\n`) }
    })
    urls = await lab.listen()
    stderr(`conformance: lab ${o.domain}${o.v12Domain === undefined ? '' : ` (and ${o.v12Domain}, 1.2)`} listening on ${urls.url} ` +
      `(redirect target ${urls.redirectUrl}); the SUT's directory must map it there\n`)
    if (trigger === undefined) {
      stderr('conformance: no --trigger: the SUT will not be asked to initiate; S-004 and parts of S-008/S-011 will not be testable\n')
    }
    await io.onListening?.(urls)
    const run = await lab.execute()
    const report = buildReport(run, judge(run, lab.items))
    stdout(formatReport(report, format))
    return VERDICT_EXIT[report.summary.verdict]
  } catch (err) {
    return fail(err, o.verbose === true)
  } finally {
    await lab?.close()
  }
}

/** Add the `conformance` subcommand to the program. */
export function registerConformance (program: Command): Command {
  return program.command('conformance')
    .description('play the other server against a system under test and report every SCR item (S-001..S-012)')
    .requiredOption('--peer <url>', 'URL of the system under test')
    .requiredOption('--domain <domain>', 'IMPS domain the lab plays; the SUT must map it to the lab\'s URL')
    .option('--sut-domain <domain>', 'the SUT\'s domain (otherwise learned from its set-up messages)')
    .addOption(new Option('--format <format>', 'report format').choices([...FORMATS]).default('text'))
    .option('--only <items>', 'test only these items, e.g. S-007,S-011')
    .option('--claims <items>', 'optional items the SUT claims (S-002,S-003,S-008,S-009): not exhibiting one is then a failure')
    .option('--listen-host <host>', 'address of the lab\'s listeners', '127.0.0.1')
    .option('--listen-port <port>', 'port of the lab\'s main listener (0 picks a free one); the redirect target always takes a free port', '0')
    .option('--alt-peer <url>', 'the SUT\'s URL in the other scheme (to test both HTTP and HTTPS)')
    .option('--v12-domain <domain>', 'a second lab domain played as a 1.2 peer (the SUT must map it to the lab\'s URL as a 1.2 peer)')
    .option('--trigger <command>', 'shell command that makes the SUT send one request to a user at --domain (run once per trigger; SSP_LAB_DOMAIN, SSP_LAB_URL, SSP_TRIGGER in its environment)')
    .option('--tls-cert <file>', 'the lab\'s listeners speak HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'private key for --tls-cert (PEM)')
    .option('--ca <file>', 'CA bundle to verify an https:// SUT')
    .option('--insecure', 'do not verify the SUT\'s certificate')
    .option('--timeout <ms>', 'longest wait for an expected message', '5000')
    .option('--quiet <ms>', 'how long to watch for a message that must not come', '500')
    .action(async (opts: ConformanceOptions, cmd: Command) => {
      const verbose = (cmd.parent?.opts<{ verbose?: boolean }>().verbose ?? false) || opts.verbose === true
      process.exitCode = await conformanceCommand({ ...opts, verbose })
    })
}

