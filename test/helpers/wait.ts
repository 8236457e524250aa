/** Bounded waiting for tests: guards against hangs, never timing assertions. */

/** Default upper bound of a wait. */
export const GUARD_MS = 45_000

export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolve when `cond()` holds (checked every 5 ms); reject, naming `what`, after the guard. */
export async function until (cond: () => boolean, what: string, guardMs = GUARD_MS): Promise<void> {
  const start = Date.now()
  for (;;) {
    if (cond()) return
    if (Date.now() - start > guardMs) throw new Error(`timed out waiting for ${what} (${guardMs} ms guard)`)
    await delay(5)
  }
}
