// Coverage gate: tap records coverage for every file the tests load; this
// fails the run when lines covered fall under the stated threshold.
import { readFileSync } from 'node:fs'

const THRESHOLD = Number(process.env.SSP_COVERAGE_LINES ?? 90)
const file = new URL('../.tap/report/coverage-summary.json', import.meta.url)
let summary
try {
  summary = JSON.parse(readFileSync(file, 'utf8'))
} catch (err) {
  console.error(`coverage gate: no coverage summary (${err.message})`)
  process.exit(1)
}
const pct = summary.total.lines.pct
if (pct < THRESHOLD) {
  console.error(`coverage gate: lines ${pct}% < ${THRESHOLD}%`)
  process.exit(1)
}
console.log(`coverage gate: lines ${pct}% >= ${THRESHOLD}%`)
