/** Exit codes of the `ssp-transport` command (documented in the README). */
import { isSspError } from '../errors.js'

export const EXIT = {
  OK: 0,
  /** Something failed at run time (a transaction unanswered, a server error). */
  FAILURE: 1,
  /** Bad arguments. */
  USAGE: 2,
  /** The peer could not be reached. */
  UNREACHABLE: 3,
  /** Conformance: a mandatory item failed. */
  NONCONFORMANT: 4
} as const

/** One clear line on stderr; the stack only with --verbose. Returns the exit code. */
export function fail (err: unknown, verbose: boolean): number {
  const code = isSspError(err) ? err.code : undefined
  const msg = err instanceof Error ? err.message : String(err)
  process.stderr.write(`ssp-transport: ${code === undefined ? '' : code + ': '}${msg}\n`)
  if (verbose && err instanceof Error && err.stack !== undefined) process.stderr.write(err.stack + '\n')
  if (code === 'SSP_ERR_INVALID_ARGUMENT') return EXIT.USAGE
  if (code === 'SSP_ERR_CONNECT' || code === 'SSP_ERR_TLS') return EXIT.UNREACHABLE
  return EXIT.FAILURE
}
