// Reads split at arbitrary places, for framer tests that must give the same events however TCP cuts the bytes.
import fc from 'fast-check'

/** `buf` cut at the (unsorted, distinct, in-range) positions `cuts`: the pieces, in order. */
export function cutAt (buf: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...cuts].sort((a, b) => a - b)
  const pieces: Buffer[] = []
  let prev = 0
  for (const c of sorted) { pieces.push(buf.subarray(prev, c)); prev = c }
  pieces.push(buf.subarray(prev))
  return pieces
}

/** fast-check: `ok(pieces)` holds for `runs` random multi-way splits of `buf` into up to `maxCuts` + 1 pieces. */
export function assertRandomSplits (buf: Buffer, maxCuts: number, runs: number, ok: (pieces: Buffer[]) => boolean): void {
  fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: buf.length - 1 }), { maxLength: maxCuts }), cuts => ok(cutAt(buf, cuts))), { numRuns: runs })
}
