import t from 'tap'
import { DedupeWindow } from '../src/ssp/session.js'

t.test('DedupeWindow remembers the last `size` ids, forgets older ones, holds nothing when idle', async (t) => {
  const d = new DedupeWindow(3)
  const seq = ['a', 'b', 'a', 'c', 'd', 'a', 'b', 'e', 'b']
  // a, b new; a dup; c new (full: a b c); d evicts a; a new again (evicts b); b new (evicts c); e evicts d; b dup
  t.same(seq.map((x) => d.check(x)), [false, false, true, false, false, false, false, false, true])
  const off = new DedupeWindow(0)
  t.same(['x', 'x'].map((x) => off.check(x)), [false, false], 'size 0 disables the window')
  const idle = new DedupeWindow(4096) as unknown as { ring: string[] }
  t.equal(idle.ring.length, 0, 'no slots allocated before traffic')
})

/** The window's meaning, written the slow obvious way: the last `size` distinct new ids. */
function referenceWindow (size: number): (id: string) => boolean {
  const order: string[] = []
  return (id) => {
    if (size === 0) return false
    if (order.includes(id)) return true
    order.push(id)
    if (order.length > size) order.shift()
    return false
  }
}

t.test('DedupeWindow agrees with the reference on random traffic (growth, wrap-around, deletion shifts)', async (t) => {
  // A small id alphabet makes duplicates, re-entries after eviction and long
  // probe chains (the table is rebuilt at 16, 32, ... entries) common.
  let seed = 12345
  const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n }
  for (const size of [1, 2, 3, 15, 16, 17, 100, 257]) {
    const d = new DedupeWindow(size)
    const ref = referenceWindow(size)
    const alphabet = size * 2 + 3
    let mismatches = 0
    let dups = 0
    for (let n = 0; n < 20_000; n++) {
      const id = `T${rand(alphabet).toString(36)}_x`
      const want = ref(id)
      if (want) dups++
      if (d.check(id) !== want) mismatches++
    }
    t.equal(mismatches, 0, `size ${size}: same verdict on every id`)
    t.ok(dups > 1000, `size ${size}: the traffic had duplicates (${dups})`)
    t.equal(d.held, size, `size ${size}: holds exactly size ids once full`)
  }
})

t.test('DedupeWindow keeps exact ids apart however they hash', async (t) => {
  // Ids that differ only late, and a prefix of another: never a false duplicate.
  const d = new DedupeWindow(4096)
  const seen = new Set<string>()
  let wrong = 0
  for (let i = 0; i < 4096; i++) {
    const id = 'Tq8ZkPp0aXc_' + i.toString(36)
    if (d.check(id) !== seen.has(id)) wrong++
    seen.add(id)
    if (d.check(id) !== true) wrong++
  }
  t.equal(wrong, 0)
  t.equal(d.held, 4096)
})
