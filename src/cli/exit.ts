/** Exit codes of the `ssp-transport` command (documented in the README). */
import { createError, isSspError, type SspError } from '../errors.js'

export const EXIT = {
  OK: 0,
  /** Something failed at run time (a transaction unanswered, a server error). */
  FAILURE: 1,
  /** Bad arguments. */
  USAGE: 2,
  /** The peer could not be reached. */
  UNREACHABLE: 3,
  /** Conformance: a mandatory item failed. */
  NONCONFORMANT: 4,
  /** Stopped by SIGINT (128 + 2) after printing the partial summary. */
  SIGINT: 130,
  /** Stopped by SIGTERM (128 + 15) after printing the partial summary. */
  SIGTERM: 143
} as const

/**
 * An AbortSignal aborted (reason 'SIGINT' or 'SIGTERM') on the first of those signals;
 * a second one exits at once. `dispose` removes the handlers.
 */
export function signalAbort (): { signal: AbortSignal, dispose: () => void } {
  const ac = new AbortController()
  const on = (sig: 'SIGINT' | 'SIGTERM') => (): void => {
    if (ac.signal.aborted) process.exit(sig === 'SIGINT' ? EXIT.SIGINT : EXIT.SIGTERM)
    ac.abort(sig)
  }
  const onInt = on('SIGINT')
  const onTerm = on('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', onInt); process.off('SIGTERM', onTerm) } }
}

/** The exit code for a run stopped by a signal (undefined when none). */
export function signalExit (stopped: string | undefined): number | undefined {
  return stopped === 'SIGINT' ? EXIT.SIGINT : stopped === 'SIGTERM' ? EXIT.SIGTERM : undefined
}

/** Any error as an SspError: system errors by their code, the rest as SSP_ERR_INTERNAL. */
export function asSspError (err: unknown): SspError {
  if (isSspError(err)) return err
  const sys = (err as { code?: unknown } | undefined)?.code
  const msg = err instanceof Error ? err.message : String(err)
  const code = sys === 'ENOENT' || sys === 'EISDIR' || sys === 'ENOTDIR' ? 'SSP_ERR_FILE'
    : sys === 'EADDRINUSE' || sys === 'EADDRNOTAVAIL' ? 'SSP_ERR_LISTEN'
      : sys === 'ECONNREFUSED' || sys === 'EHOSTUNREACH' || sys === 'ENOTFOUND' ? 'SSP_ERR_CONNECT'
        : 'SSP_ERR_INTERNAL'
  return createError(code, { message: msg, cause: err })
}

/** One clear line on stderr; the stack only with --verbose. Returns the exit code. */
export function fail (err: unknown, verbose: boolean): number {
  const e = asSspError(err)
  const code = e.code
  // One line: a multi-line message (commander's suggestions) is joined.
  process.stderr.write(`ssp-transport: ${code}: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`)
  const stack = err instanceof Error ? err.stack : undefined
  if (verbose && stack !== undefined) process.stderr.write(stack + '\n')
  if (code === 'SSP_ERR_INVALID_ARGUMENT' || code === 'SSP_ERR_FILE') return EXIT.USAGE
  if (code === 'SSP_ERR_CONNECT' || code === 'SSP_ERR_TLS') return EXIT.UNREACHABLE
  return EXIT.FAILURE
}
