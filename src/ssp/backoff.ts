/**
 * The one jittered exponential backoff of the SSP layer: set-up restarts,
 * set-up step retries and resends after a connection died all use it.
 * Jitter draws from 50-100 % of the step so that peers (and a node's own
 * retries) do not fall into step.
 */
export function backoffDelay (attempt: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** attempt) * (0.5 + Math.random() / 2)
}
