// Counts assertions across the TAP files tap saved for the last run and
// prints the plain closing line CI reads: "N passed, N failed[, N skipped]".
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Parser } from 'tap-parser'

const repo = new URL('..', import.meta.url).pathname
const root = new URL('../.tap/test-results/', import.meta.url).pathname
const files = []
const walk = (d) => {
  let names = []
  try { names = readdirSync(d) } catch { return }
  for (const n of names) {
    const p = join(d, n)
    if (statSync(p).isDirectory()) walk(p)
    // Only results of test files that still exist: tap keeps the last result of
    // every file it ever ran, including deleted ones.
    else if (n.endsWith('.tap') && existsSync(join(repo, p.slice(root.length, -'.tap'.length)))) files.push(p)
  }
}
walk(root)
let pass = 0
let fail = 0
let skip = 0
for (const f of files) {
  // flat: subtests are flattened into their leaf assertions; a subtest's own
  // summary line is not counted again
  const results = Parser.parse(readFileSync(f, 'utf8'), { flat: true })
  for (const line of results) {
    if (!Array.isArray(line) || line[0] !== 'assert') continue
    const a = line[1]
    if (a.skip || a.todo) skip++
    else if (a.ok) pass++
    else fail++
  }
}
if (files.length === 0) console.log('no test results found')
console.log(`${pass} passed, ${fail} failed, ${skip} skipped`)
process.exitCode = fail > 0 || files.length === 0 ? 1 : 0
