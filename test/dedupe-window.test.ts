import t from 'tap'
import { DedupeWindow } from '../src/ssp/session.js'

t.test('DedupeWindow remembers at least the last `size` ids and at most 2 x size, holds nothing when idle', async (t) => {
  const d = new DedupeWindow(3)
  const seq = ['a', 'b', 'a', 'c', 'd', 'a', 'b', 'e', 'f', 'g', 'a', 'h', 'e', 'h']
  // a b new; a dup; c new (cur {a b c} full: becomes prev); d new; a, b dups (in prev);
  // e new; f new (cur {d e f} -> prev); g new; a new again (two generations back:
  // forgotten); h new (cur {g a h} -> prev); e new again (older than the last 3); h dup
  t.same(seq.map((x) => d.check(x)), [false, false, true, false, false, true, true, false, false, false, false, false, false, true])
  t.ok(d.held <= 6, 'never more than 2 x size ids')
  // Every one of the last `size` ids is always remembered, whatever the phase.
  const w = new DedupeWindow(5)
  for (let i = 0; i < 100; i++) {
    t.equal(w.check(`n${i}`), false, `n${i} is new`)
    for (let k = Math.max(0, i - 4); k <= i; k++) {
      if (!w.check(`n${k}`)) t.fail(`n${k} forgotten after n${i}`)
    }
    t.ok(w.held <= 10)
  }
  const off = new DedupeWindow(0)
  t.same(['x', 'x'].map((x) => off.check(x)), [false, false], 'size 0 disables the window')
  t.equal(new DedupeWindow(4096).held, 0, 'nothing held before traffic')
})
