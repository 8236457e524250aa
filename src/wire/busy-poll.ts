/**
 * Busy polling (opt-in, `busyPollMicros`): after the engine's own socket I/O,
 * keep the event loop turning for a short window instead of letting it sleep
 * in epoll, so the next batch of a pipelined exchange is picked up without a
 * wake-up.
 *
 * Why: a pipelined exchange is a chain of round trips, and when the receiving
 * process sleeps each hop pays the scheduler's (and on virtual machines the
 * hypervisor's) wake-up. Measured on the 2-vCPU VM of bench/results: a 1-byte
 * ping-pong between two Node processes on different cores takes 105-138 µs
 * sleeping and 21.5 µs with a 50 µs polling window on both sides, and the CPU
 * spent per round trip fell too (44.7 -> 19.0 µs), because the sleep/wake path
 * costs more than the polling it replaces (bench/wake-floor.mjs, native-notes
 * section 7). The same idea as Linux's SO_BUSY_POLL, done in user space.
 *
 * How: one process-wide spinner. Each I/O event pushes a deadline `window`
 * µs ahead; while it has not passed, a `setImmediate` re-arms itself, which
 * makes libuv poll with a zero timeout on every loop turn (timers, I/O and the
 * application run as usual in between). The first turn after the deadline
 * stops. So the cost is bounded: at most one core while traffic flows, and
 * nothing once the engine has had no I/O for `window` µs. The spinner is shared
 * by everything in the process: when servers or clients with different windows
 * see I/O, the latest deadline wins (a window never shortens another's).
 *
 * Off (0) by default: on an idle-heavy or CPU-bound machine the window is CPU
 * other work could use.
 */
import { performance } from 'node:perf_hooks'
import { createError } from '../errors.js'

/** Upper bound of the option (1 s): beyond that it is no longer a "short window". */
export const MAX_BUSY_POLL_MICROS = 1_000_000

let deadline = 0
let armed = false
/** Loop turns spent polling since the process started (diagnostics). */
let turns = 0

const turn = (): void => {
  turns++
  if (performance.now() < deadline) {
    setImmediate(turn)
  } else {
    armed = false
  }
}

/** Called after engine I/O: keep polling for `micros` µs from now (no-op for 0). */
export function pollAfterIo (micros: number): void {
  if (micros === 0) return
  const d = performance.now() + micros / 1000
  if (d > deadline) deadline = d
  if (!armed) {
    armed = true
    setImmediate(turn)
  }
}

/** Loop turns spent busy polling in this process so far. */
export function busyPollTurns (): number {
  return turns
}

/** Is `v` a valid `busyPollMicros`: an integer from 0 to MAX_BUSY_POLL_MICROS? */
export function isBusyPollMicros (v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_BUSY_POLL_MICROS
}

/** The option as given (0 when absent), or SSP_ERR_INVALID_ARGUMENT. One check for every place that takes it. */
export function busyPollOption (v: unknown): number {
  if (v === undefined) return 0
  if (!isBusyPollMicros(v)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `busyPollMicros must be an integer from 0 to ${MAX_BUSY_POLL_MICROS}, got ${String(v)}` })
  }
  return v
}
