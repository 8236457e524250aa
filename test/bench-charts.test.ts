// bench/charts.mjs: the SVG charts of the benchmark results (vega-lite -> vega View, renderer 'none').
// Fixtures in test/fixtures/bench-charts/: full/ (e2e.json with cdf + scaling.json, with null cells)
// and e2e-only/ (no scaling.json, cdf only at depths 1 and 64, no oursPoll in the table).
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
// @ts-expect-error bench/charts.mjs is plain JavaScript with no type declarations
import { writeCharts as writeChartsUntyped } from '../bench/charts.mjs'

interface Chart { file: string, title: string, alt: string }
const writeCharts = writeChartsUntyped as (resultsDir: string, outDir?: string) => Promise<Chart[]>

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bench-charts')
const FULL = join(FIXTURES, 'full')
const E2E_ONLY = join(FIXTURES, 'e2e-only')

const ALL = ['latency-cdf.svg', 'tps-vs-depth.svg', 'cpu-vs-depth.svg', 'tps-vs-peers.svg', 'cpu-vs-peers.svg', 'rss-vs-peers.svg', 'tps-vs-body.svg']

/** The data points of a line+point chart, as vega's aria labels: "x: 1; y: 7726; series: ours". */
function points (svg: string): string[] {
  return [...svg.matchAll(/<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="point"/g)].map((m) => m[1] ?? '')
}

/** The line marks (one <path> per series) of a chart. */
function lines (svg: string): string[] {
  const out: string[] = []
  for (const m of svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>(.*?)<\/g>/g)) {
    for (const p of (m[1] ?? '').matchAll(/<path [^>]*>/g)) out.push(p[0])
  }
  return out
}

/** Text of the axis tick labels and legend labels. */
function texts (svg: string, role: string): string[] {
  const m = svg.match(new RegExp(`<g class="mark-text role-${role}"[^>]*>(.*?)</g>`, 'g')) ?? []
  return m.flatMap((g) => [...g.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((x) => x[1] ?? ''))
}

const read = (dir: string, file: string): string => readFileSync(join(dir, file), 'utf8')

t.test('full fixture: every chart is written, listed, and is an SVG', async (t) => {
  const out = t.testdir()
  const charts = await writeCharts(FULL, out)
  t.same(charts.map((c) => c.file), ALL)
  t.same(readdirSync(out).sort(), [...ALL].sort(), 'the files written are the files listed')
  for (const c of charts) {
    t.ok(read(out, c.file).startsWith('<svg'), `${c.file} starts with <svg`)
    t.ok(c.title.length > 0 && c.alt.endsWith('.'), `${c.file} has a title and an alt sentence`)
    t.ok(read(out, c.file).includes(c.title), `${c.file} shows its title`)
  }
})

t.test('latency-cdf: depth 16, one line per engine, the median-tps round, series labels', async (t) => {
  const out = t.testdir()
  await writeCharts(FULL, out)
  const svg = read(out, 'latency-cdf.svg')
  t.same(texts(svg, 'legend-label'), ['ours', 'ours, busy polling', 'node:http + undici'])
  t.equal(lines(svg).length, 3, 'one line per engine')
  t.match(svg, 'pipeline depth 16')
  t.match(svg, 'median tx/s of 3 rounds')
  // median-tps rounds: ours 52000 tx/s (p50 200 us), ours-poll 94000 (p50 50), baseline 24000 (p50 400);
  // the depth-1 runs (p50 1000 / 3000) and the depth-64 run (p50 10000) are not drawn
  const xTicks = texts(svg, 'axis-label')
  for (const us of ['50', '100', '200', '400']) t.ok(xTicks.includes(us), `x tick ${us}`)
  t.notOk(xTicks.includes('5,000'), 'the depth-1 rounds (up to 24000 us) are not on the axis')
  // x extent: ours-poll p0 of its median round (25; the other rounds 20, 30) to baseline p100 (3200; others 4000, 4800)
  t.match(svg, "for a log scale with values from 25 to 3,200\"", 'the x extent is that of the median rounds')
  t.ok(xTicks.includes('100') && xTicks.includes('0'), 'y runs 0..100')
})

t.test('tps-vs-depth prefers scaling.json and omits the null cell', async (t) => {
  const out = t.testdir()
  await writeCharts(FULL, out)
  const svg = read(out, 'tps-vs-depth.svg')
  const pts = points(svg)
  t.equal(pts.length, 9, '5 ours + 4 baseline (baseline null at depth 256)')
  t.ok(pts.includes('x: 256; y: 85000; series: ours'))
  t.notOk(pts.some((p) => p.startsWith('x: 256;') && p.endsWith('node:http + undici')), 'no baseline point at 256')
  t.same(texts(svg, 'legend-label'), ['ours', 'node:http + undici'], 'no busy-polling series: scaling.json has none')
  t.match(svg, 'scaling.json depth curve')
  const ticks = texts(svg, 'axis-label')
  for (const d of ['1', '4', '16', '64', '256']) t.ok(ticks.includes(d), `x tick ${d}`)
  const cpu = points(read(out, 'cpu-vs-depth.svg'))
  t.equal(cpu.length, 9)
  t.ok(cpu.includes('x: 1; y: 190; series: node:http + undici'))
})

t.test('peers and body charts: points, null cells, labels', async (t) => {
  const out = t.testdir()
  await writeCharts(FULL, out)
  const tps = points(read(out, 'tps-vs-peers.svg'))
  t.equal(tps.length, 7, '4 ours + 3 baseline (baseline null at 1000 peers)')
  t.ok(tps.includes('x: 1000; y: 45000; series: ours'))
  t.notOk(tps.some((p) => p.startsWith('x: 1000;') && p.endsWith('node:http + undici')))
  const rssSvg = read(out, 'rss-vs-peers.svg')
  t.equal(points(rssSvg).length, 7)
  t.ok(points(rssSvg).includes('x: 100; y: 160; series: node:http + undici'))
  t.match(rssSvg, 'MiB')
  const body = read(out, 'tps-vs-body.svg')
  t.equal(points(body).length, 8)
  const ticks = texts(body, 'axis-label')
  for (const l of ['256 B', '4 KiB', '64 KiB', '1 MiB']) t.ok(ticks.includes(l), `x tick ${l}`)
  t.same(texts(body, 'legend-label'), ['ours', 'node:http + undici'])
})

t.test('the peers-idle curve is drawn beside the peers one (tx/s and CPU per transaction), not in the RSS chart', async (t) => {
  const dir = t.testdir({
    'scaling.json': JSON.stringify({
      bench: 'scaling',
      curves: {
        peers: [{ x: 1, ours: { tps: 50000, rssMiB: 60, bCpuUsPerTx: 10, p99us: 500 }, baseline: { tps: 20000, rssMiB: 80, bCpuUsPerTx: 40, p99us: 900 } }],
        'peers-idle': [
          { x: 1, ours: { tps: 51000, rssMiB: 61, bCpuUsPerTx: 11, p99us: 400 }, baseline: null },
          { x: 1000, ours: { tps: 43000, rssMiB: 137, bCpuUsPerTx: 12, p99us: 600 }, baseline: { tps: 25000, rssMiB: 116, bCpuUsPerTx: 37, p99us: 800 } }
        ]
      }
    })
  })
  const written = (await writeCharts(dir)).map((c) => c.file)
  t.same(written, ['tps-vs-peers.svg', 'cpu-vs-peers.svg', 'rss-vs-peers.svg'])
  const tps = points(read(dir, 'tps-vs-peers.svg'))
  t.equal(tps.length, 5, '2 from peers + 3 from peers-idle')
  t.ok(tps.includes('x: 1000; y: 43000; series: ours, one pair busy'))
  t.ok(tps.includes('x: 1000; y: 25000; series: node:http + undici, one pair busy'))
  const cpu = points(read(dir, 'cpu-vs-peers.svg'))
  t.ok(cpu.includes('x: 1000; y: 12; series: ours, one pair busy'))
  t.ok(cpu.includes('x: 1; y: 40; series: node:http + undici'))
  t.equal(points(read(dir, 'rss-vs-peers.svg')).length, 2, 'RSS: the peers curve only')
})

t.test('colours are the same per engine in every chart', async (t) => {
  const out = t.testdir()
  await writeCharts(FULL, out)
  const colourOf = (svg: string, series: string): Set<string> => new Set(
    [...svg.matchAll(/aria-label="[^"]*series: ([^"]*)"[^>]*fill="(#[0-9a-f]{6})"/g)].filter((m) => m[1] === series).map((m) => m[2] ?? ''))
  const ours = new Set<string>()
  const baseline = new Set<string>()
  for (const f of ALL.filter((f) => f !== 'latency-cdf.svg')) {
    const svg = read(out, f)
    for (const c of colourOf(svg, 'ours')) ours.add(c)
    for (const c of colourOf(svg, 'node:http + undici')) baseline.add(c)
  }
  t.equal(ours.size, 1, 'one colour for ours')
  t.equal(baseline.size, 1, 'one colour for the baseline')
  t.not([...ours][0], [...baseline][0])
})

t.test('no scaling.json: only the e2e charts, tps-vs-depth from the table', async (t) => {
  const out = t.testdir()
  const charts = await writeCharts(E2E_ONLY, out)
  t.same(charts.map((c) => c.file), ['latency-cdf.svg', 'tps-vs-depth.svg'], 'no cpu-vs-depth: the table has no bCpuUsPerTx')
  t.same(readdirSync(out).sort(), ['latency-cdf.svg', 'tps-vs-depth.svg'])
  const cdf = read(out, 'latency-cdf.svg')
  t.match(cdf, 'pipeline depth 64', 'no depth 16 with a cdf: the largest depth')
  t.same(texts(cdf, 'legend-label'), ['ours', 'node:http + undici'], 'the ours-poll run has no cdf')
  t.equal(lines(cdf).length, 2)
  // two rounds: the lower-middle (lower tx/s) one, ours p0 3200 us (the other round 3200.5)
  t.match(cdf, "for a log scale with values from 3,200 to 153,600\"")
  const depth = read(out, 'tps-vs-depth.svg')
  t.match(depth, 'e2e.json')
  t.same(points(depth).sort(), [
    'x: 1; y: 3166; series: node:http + undici',
    'x: 1; y: 7726; series: ours',
    'x: 64; y: 28000; series: node:http + undici',
    'x: 64; y: 78000; series: ours'
  ])
})

t.test('e2e table with an oursPoll column draws the busy-polling series', async (t) => {
  // full/ has scaling.json; copy only its e2e.json to use the table
  const dir = t.testdir({ 'e2e.json': read(FULL, 'e2e.json') })
  const out = join(dir, 'out')
  const charts = await writeCharts(dir, out)
  t.same(charts.map((c) => c.file), ['latency-cdf.svg', 'tps-vs-depth.svg', 'cpu-vs-depth.svg'])
  const svg = read(out, 'tps-vs-depth.svg')
  t.same(texts(svg, 'legend-label'), ['ours', 'ours, busy polling', 'node:http + undici'])
  t.equal(points(svg).length, 8, 'oursPoll is undefined at depth 64')
})

t.test('missing or unusable inputs: no charts, no error', async (t) => {
  const empty = t.testdir({ 'e2e.json': '{"runs": [], "table": []}', 'scaling.json': 'not json' })
  t.same(await writeCharts(empty, join(empty, 'out')), [])
  const none = t.testdir()
  t.same(await writeCharts(none), [])
  t.same(readdirSync(none), [])
  const partial = t.testdir({ 'scaling.json': JSON.stringify({ bench: 'scaling', curves: { body: [{ x: 256, ours: { tps: 5 }, baseline: null }] } }) })
  t.same((await writeCharts(partial)).map((c) => c.file), ['tps-vs-body.svg'], 'only the curve present, rss missing is skipped')
})

t.test('deterministic: the same input gives the same bytes', async (t) => {
  const a = t.testdir()
  const b = join(a, 'again')
  await writeCharts(FULL, a)
  await writeCharts(FULL, b)
  for (const f of ALL) t.equal(read(b, f), read(a, f), f)
})
