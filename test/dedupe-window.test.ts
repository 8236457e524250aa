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
