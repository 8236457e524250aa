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

/** The assertions used here, structurally (tap's Test has them). */
interface Asserts {
  same: (found: unknown, wanted: unknown, message: string) => unknown
  equal: (found: unknown, wanted: unknown, message: string) => unknown
}

/**
 * `run(pieces)` gives `expected` for `buf` cut in two at every byte boundary (the first two
 * disagreements shown in full) and for `buf` one byte per read.
 */
export function assertEverySplit<T> (t: Asserts, buf: Buffer, run: (pieces: Buffer[]) => T, expected: T): void {
  const want = JSON.stringify(expected)
  let bad = 0
  for (let i = 1; i < buf.length; i++) {
    const r = run([buf.subarray(0, i), buf.subarray(i)])
    if (JSON.stringify(r) !== want) {
      bad++
      if (bad < 3) t.same(r, expected, `split at ${i}`)
    }
  }
  t.equal(bad, 0, `all ${buf.length - 1} two-piece splits agree`)
  t.same(run(Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1))), expected, 'one byte per read')
}
