/**
 * The real Baraza server (../shared/baraza) as a test peer: build, start,
 * stop, trigger, and a look at its log and database. Everything goes through
 * the recipe's own scripts; every wait is bounded.
 *
 * Baraza's ports are fixed (HTTP 28181, PostgreSQL 55432), so at most one
 * test file may use it at a time: the Baraza suite runs with one job.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BARAZA_DIR = process.env.BARAZA_SHARED_DIR ?? resolve(REPO, '..', 'shared', 'baraza')
export const BARAZA_WORK = process.env.BARAZA_WORK ?? '/tmp/baraza-work'
export const BARAZA_DOMAIN = 'x.example'
export const BARAZA_URL = `http://127.0.0.1:${process.env.BARAZA_HTTP_PORT ?? '28181'}/`

interface Run { code: number, stdout: string, stderr: string }

function run (script: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', [resolve2(script), ...args], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
        resolve({ code, stdout, stderr })
      })
  })
}

function resolve2 (script: string): string {
  return resolve(BARAZA_DIR, script)
}

function tail (s: string, n = 30): string {
  return s.split('\n').slice(-n).join('\n')
}

/** build.sh (idempotent; Debian packages and ~15 s of compiling the first time). */
export async function buildBaraza (): Promise<void> {
  const r = await run('build.sh', [], {}, 20 * 60_000)
  if (r.code !== 0) throw new Error(`baraza build.sh failed (${r.code}):\n${tail(r.stdout + r.stderr)}`)
}

/** The peer directory Baraza reads at every SRV lookup: loopback addresses only. */
export function setSrvMap (map: Record<string, string>): void {
  const lines = Object.entries(map).map(([domain, hostPort]) => {
    if (!/^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(hostPort)) throw new Error(`srv.map: ${hostPort} is not a loopback host:port`)
    return `${domain}=${hostPort}`
  })
  writeFileSync(`${BARAZA_WORK}/run/srv.map`, lines.join('\n') + '\n')
}

export interface StartOptions {
  srvMap: Record<string, string>
  /** Empty its session and queue tables first (a stale half-open set-up row blocks new ones). Default true. */
  reset?: boolean
  /** Skip its https-first attempt on every SendSecretToken. Default true. */
  httpOnly?: boolean
}

/** Stop any running barazad, write the SRV map, start it (start.sh waits, bounded, for its HTTP port). */
export async function startBaraza (o: StartOptions): Promise<void> {
  await stopBaraza()
  setSrvMap(o.srvMap)
  const env: Record<string, string> = {}
  if (o.reset !== false) env.BARAZA_RESET = '1'
  if (o.httpOnly !== false) env.BARAZA_HTTP_ONLY = '1'
  const r = await run('start.sh', [], env, 60_000)
  if (r.code !== 0) throw new Error(`baraza start.sh failed (${r.code}):\n${tail(r.stdout + r.stderr)}`)
}

export async function stopBaraza (): Promise<void> {
  await run('stop.sh', [], {}, 60_000)
}

/** Log a CSP user (wv:bob@x.example) into Baraza and send an IM to `to`; Baraza then sends it over SSP. */
export async function triggerIm (to: string): Promise<void> {
  const r = await run('trigger_im.sh', [to], {}, 45_000)
  if (r.code !== 0) throw new Error(`trigger_im.sh ${to} failed (${r.code}): ${tail(r.stdout + r.stderr, 5)}`)
}

export function barazaPid (): number | undefined {
  const f = `${BARAZA_WORK}/run/barazad.pid`
  if (!existsSync(f)) return undefined
  const pid = Number(readFileSync(f, 'utf8').trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

export function barazaAlive (): boolean {
  const pid = barazaPid()
  if (pid === undefined) return false
  try { process.kill(pid, 0); return true } catch { return false }
}

/** Lines of barazad.log written by the running process (the log is appended across runs). */
export function barazaLog (): string[] {
  const pid = barazaPid()
  const f = `${BARAZA_WORK}/run/barazad.log`
  if (pid === undefined || !existsSync(f)) return []
  const mark = `[${pid}]`
  return readFileSync(f, 'utf8').split('\n').filter((l) => l.includes(mark))
}

/** The SSP bodies Baraza logged as received ("Received SSP Request: …", first line of each). */
export function barazaReceived (): string[] {
  const key = 'Received SSP Request: '
  return barazaLog().filter((l) => l.includes(key)).map((l) => l.slice(l.indexOf(key) + key.length))
}

/** One SQL statement against Baraza's private PostgreSQL (rows as `a|b|c` lines). */
export function psql (sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', 'P=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); "$P/psql" -h 127.0.0.1 -p 55432 -U postgres -d imps -At -c "$1"', 'psql', sql],
      { timeout: 15_000 }, (err, stdout, stderr) => err === null ? resolve(stdout.trim()) : reject(new Error(`psql: ${stderr}`)))
  })
}
