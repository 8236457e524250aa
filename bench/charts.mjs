// SVG charts of the benchmark results, made with vega-lite (compiled to vega, rendered headless by
// vega's View with renderer 'none'; no canvas, so text widths are estimated and the output is the
// same bytes for the same input).
//
//   node bench/charts.mjs [resultsDir [outDir]]     (default: bench/results, outDir = resultsDir)
//
// Inputs (each optional; a missing file or field only skips the charts that need it):
//   e2e.json      runs[] (engine, depth, tps, cdf?[{p, us}]) and table[] (depth, ours, oursPoll, baseline, ref)
//   scaling.json  curves.{peers, body, depth}[] of { x, ours: Cell|null, baseline: Cell|null },
//                 Cell = { tps, rssMiB, bCpuUsPerTx, p99us }; a null cell is a point not measured
// Charts: latency-cdf, tps-vs-depth, cpu-vs-depth, tps-vs-peers, cpu-vs-peers, rss-vs-peers, tps-vs-body
// (peers charts also draw the peers-idle curve when scaling.json has it).
import { readFile, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import * as vega from 'vega'
import * as vegaLite from 'vega-lite'

const WIDTH = 560
const HEIGHT = 320

/** Series label and colour per engine, the same in every chart. */
const ENGINES = {
  ours: { label: 'ours', color: '#1f77b4' },
  'ours-poll': { label: 'ours, busy polling', color: '#2ca02c' },
  baseline: { label: 'node:http + undici', color: '#d62728' },
  ref: { label: 'ref (other build)', color: '#7f7f7f' },
  // scaling.json's peers-idle curve: the same engines, traffic on one pair, the other sessions idle
  'ours-idle': { label: 'ours, one pair busy', color: '#9ecae1' },
  'baseline-idle': { label: 'node:http + undici, one pair busy', color: '#ff9896' }
}
const ENGINE_ORDER = ['ours', 'ours-poll', 'baseline', 'ref', 'ours-idle', 'baseline-idle']
/** e2e.json table key per engine. */
const TABLE_KEY = { ours: 'ours', 'ours-poll': 'oursPoll', baseline: 'baseline', ref: 'ref' }

const isNum = (x) => typeof x === 'number' && Number.isFinite(x)
const isPos = (x) => isNum(x) && x > 0

async function readJson (file) {
  let text
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (err && err.code === 'ENOENT') return undefined
    throw err
  }
  try {
    return JSON.parse(text)
  } catch {
    return undefined // an unreadable result file is treated as missing
  }
}

/** Byte counts as axis labels: 256 B, 4 KiB, 64 KiB, 1 MiB. */
const BYTES_LABEL = "datum.value >= 1048576 ? format(datum.value / 1048576, '~g') + ' MiB'" +
  " : datum.value >= 1024 ? format(datum.value / 1024, '~g') + ' KiB' : format(datum.value, '~g') + ' B'"

/**
 * A vega-lite spec for series of points.
 * values: [{ x, y, series }] with series an ENGINES key; x/y: { title, log?, values?, labelExpr?, zero? }.
 */
function lineSpec ({ title, subtitle, values, x, y, points = true }) {
  const present = ENGINE_ORDER.filter((e) => values.some((v) => v.series === e))
  const axis = (a) => {
    const out = { title: a.title, grid: true }
    if (a.values) out.values = a.values
    if (a.labelExpr) out.labelExpr = a.labelExpr
    if (a.format) out.format = a.format
    return out
  }
  const scale = (a) => {
    const out = a.log ? { type: 'log' } : { zero: a.zero ?? true }
    if (a.domain) out.domain = a.domain
    if (a.log) out.nice = false
    return out
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    padding: 8,
    title: subtitle ? { text: title, subtitle, anchor: 'start' } : { text: title, anchor: 'start' },
    data: {
      values: values.map((v) => ({ x: v.x, y: v.y, series: ENGINES[v.series].label }))
    },
    mark: points ? { type: 'line', point: { filled: true, size: 40 }, strokeWidth: 2 } : { type: 'line', strokeWidth: 2, interpolate: 'linear' },
    encoding: {
      x: { field: 'x', type: 'quantitative', scale: scale(x), axis: axis(x) },
      y: { field: 'y', type: 'quantitative', scale: scale(y), axis: axis(y) },
      color: {
        field: 'series',
        type: 'nominal',
        scale: { domain: present.map((e) => ENGINES[e].label), range: present.map((e) => ENGINES[e].color) },
        legend: { title: null, orient: 'right', labelLimit: 320 }
      },
      order: { field: 'x', type: 'quantitative' }
    },
    config: { font: 'sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } }
  }
}

async function render (spec) {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]
}

const listRange = (xs) => xs.length === 0 ? '' : `${Math.min(...xs)} to ${Math.max(...xs)}`
const seriesNames = (values) => {
  const names = ENGINE_ORDER.filter((e) => values.some((v) => v.series === e)).map((e) => ENGINES[e].label)
  return names.length <= 1 ? names.join('') : names.slice(0, -1).join(', ') + ' and ' + names[names.length - 1]
}

// ---- charts from e2e.json ------------------------------------------------------------------------

/** Latency CDF at depth 16 (else the largest depth with a cdf); per engine the round with the median tps. */
function latencyCdf (e2e) {
  const runs = Array.isArray(e2e?.runs) ? e2e.runs : []
  const withCdf = runs.filter((r) => r && ENGINES[r.engine] && isNum(r.depth) && isNum(r.tps) &&
    Array.isArray(r.cdf) && r.cdf.some((c) => c && isNum(c.p) && isPos(c.us)))
  if (withCdf.length === 0) return undefined
  const depths = [...new Set(withCdf.map((r) => r.depth))]
  const depth = depths.includes(16) ? 16 : Math.max(...depths)
  const values = []
  const rounds = []
  for (const engine of ENGINE_ORDER) {
    const rs = withCdf.filter((r) => r.engine === engine && r.depth === depth)
      .sort((a, b) => a.tps - b.tps || (a.round ?? 0) - (b.round ?? 0))
    if (rs.length === 0) continue
    const run = rs[Math.floor((rs.length - 1) / 2)] // the median round by tps (the lower middle when even)
    rounds.push(rs.length)
    for (const c of run.cdf) if (c && isNum(c.p) && isPos(c.us)) values.push({ x: c.us, y: c.p, series: engine })
  }
  const n = rounds.length > 0 && rounds.every((k) => k === rounds[0]) ? `${rounds[0]}` : 'the'
  return {
    file: 'latency-cdf.svg',
    title: `Round-trip latency CDF at pipeline depth ${depth}`,
    subtitle: n === '1' ? 'One round per engine; x on a log scale' : `Per engine, the round with the median tx/s of ${n} rounds; x on a log scale`,
    alt: `Cumulative distribution of round-trip latency in microseconds (log scale) at pipeline depth ${depth} for ${seriesNames(values)}, one line per engine, from the round with the median transactions per second.`,
    spec: (t) => lineSpec({
      ...t,
      values,
      points: false,
      x: { title: 'Round-trip latency (µs, log scale)', log: true },
      y: { title: 'Percentile (%)', domain: [0, 100] }
    })
  }
}

/** tps (or another cell field) against depth from the e2e table; engines with no cell at a depth are skipped. */
function fromTable (e2e, field) {
  const table = Array.isArray(e2e?.table) ? e2e.table : []
  const values = []
  for (const row of table) {
    if (!row || !isPos(row.depth)) continue
    for (const engine of ENGINE_ORDER) {
      const cell = row[TABLE_KEY[engine]]
      if (cell && isPos(cell[field])) values.push({ x: row.depth, y: cell[field], series: engine })
    }
  }
  return values
}

// ---- charts from scaling.json --------------------------------------------------------------------

/** [{x, y, series}] from a scaling curve for one Cell field; null cells and missing fields are skipped. */
function fromCurve (scaling, curve, field, suffix = '') {
  const points = scaling?.curves?.[curve]
  if (!Array.isArray(points)) return []
  const values = []
  for (const pt of points) {
    if (!pt || !isPos(pt.x)) continue
    for (const engine of ['ours', 'baseline']) {
      const cell = pt[engine]
      if (cell && isPos(cell[field])) values.push({ x: pt.x, y: cell[field], series: engine + suffix })
    }
  }
  return values
}

const xsOf = (values) => [...new Set(values.map((v) => v.x))].sort((a, b) => a - b)

function depthCharts (e2e, scaling) {
  const out = []
  const fromScaling = fromCurve(scaling, 'depth', 'tps')
  const tps = fromScaling.length > 0 ? fromScaling : fromTable(e2e, 'tps')
  const source = fromScaling.length > 0 ? 'scaling.json depth curve' : 'e2e.json, median of rounds'
  if (tps.length > 0) {
    const xs = xsOf(tps)
    out.push({
      file: 'tps-vs-depth.svg',
      title: 'Transactions per second against pipeline depth',
      subtitle: `End-to-end SSP transactions A → B → A (${source}); x on a log scale`,
      alt: `Transactions per second at pipeline depths ${xs.join(', ')} (log scale) for ${seriesNames(tps)}.`,
      spec: (t) => lineSpec({
        ...t,
        values: tps,
        x: { title: 'Pipeline depth (requests in flight, log scale)', log: true, values: xs },
        y: { title: 'Transactions per second (tx/s)' }
      })
    })
  }
  const cpuScaling = fromCurve(scaling, 'depth', 'bCpuUsPerTx')
  const cpu = cpuScaling.length > 0 ? cpuScaling : fromTable(e2e, 'bCpuUsPerTx')
  if (cpu.length > 0) {
    const xs = xsOf(cpu)
    out.push({
      file: 'cpu-vs-depth.svg',
      title: 'Node B CPU time per transaction against pipeline depth',
      subtitle: `User + system CPU of the answering node (${cpuScaling.length > 0 ? 'scaling.json depth curve' : 'e2e.json, median of rounds'}); x on a log scale`,
      alt: `CPU microseconds spent by node B per transaction at pipeline depths ${xs.join(', ')} (log scale) for ${seriesNames(cpu)}.`,
      spec: (t) => lineSpec({
        ...t,
        values: cpu,
        x: { title: 'Pipeline depth (requests in flight, log scale)', log: true, values: xs },
        y: { title: 'Node B CPU per transaction (µs)' }
      })
    })
  }
  return out
}

/** One chart against the number of peer domains; `what(xs)` is the alt text's opening. */
function peersChart (file, title, subtitle, values, yTitle, what) {
  if (values.length === 0) return []
  const xs = xsOf(values)
  return [{
    file,
    title,
    subtitle,
    alt: `${what} with ${listRange(xs)} peer domains holding live sessions (log scale) for ${seriesNames(values)}.`,
    spec: (t) => lineSpec({
      ...t,
      values,
      x: { title: 'Peer domains with live sessions (log scale)', log: true, values: xs, format: '~d' },
      y: { title: yTitle }
    })
  }]
}

function peersCharts (scaling) {
  const tps = fromCurve(scaling, 'peers', 'tps')
  const idle = fromCurve(scaling, 'peers-idle', 'tps', '-idle')
  if (tps.length > 0) tps.push(...idle)
  const cpu = [...fromCurve(scaling, 'peers', 'bCpuUsPerTx'), ...fromCurve(scaling, 'peers-idle', 'bCpuUsPerTx', '-idle')]
  return [
    ...peersChart('tps-vs-peers.svg', 'Transactions per second against peer domains',
      idle.length > 0
        ? 'Node B with live sessions to this many peer domains, each pair busy (or one busy, the rest idle); x on a log scale'
        : 'Node B with live sessions to this many peer domains; x on a log scale',
      tps, 'Transactions per second (tx/s)', 'Transactions per second'),
    ...peersChart('cpu-vs-peers.svg', 'Node B CPU time per transaction against peer domains',
      'User + system CPU of the answering node per transaction; x on a log scale',
      cpu, 'Node B CPU per transaction (µs)', 'CPU microseconds spent by node B per transaction'),
    ...peersChart('rss-vs-peers.svg', 'Node B resident memory against peer domains',
      'Resident set size of node B with live sessions to this many peer domains; x on a log scale',
      fromCurve(scaling, 'peers', 'rssMiB'), 'Node B RSS (MiB)', 'Resident memory of node B in MiB')
  ]
}

function bodyChart (scaling) {
  const tps = fromCurve(scaling, 'body', 'tps')
  if (tps.length === 0) return []
  const xs = xsOf(tps)
  return [{
    file: 'tps-vs-body.svg',
    title: 'Transactions per second against message body size',
    subtitle: 'Both axes on a log scale',
    alt: `Transactions per second (log scale) for message bodies of ${xs.length} sizes from ${Math.min(...xs)} to ${Math.max(...xs)} bytes (log scale) for ${seriesNames(tps)}.`,
    spec: (t) => lineSpec({
      ...t,
      values: tps,
      x: { title: 'Message body size (bytes, log scale)', log: true, values: xs, labelExpr: BYTES_LABEL },
      y: { title: 'Transactions per second (tx/s, log scale)', log: true }
    })
  }]
}

/**
 * Read the result JSON files in resultsDir and write the SVG charts they allow to outDir.
 * @param {string} resultsDir
 * @param {string} [outDir]
 * @returns {Promise<{ file: string, title: string, alt: string }[]>} the charts written, in order
 */
export async function writeCharts (resultsDir, outDir = resultsDir) {
  const e2e = await readJson(join(resultsDir, 'e2e.json'))
  const scaling = await readJson(join(resultsDir, 'scaling.json'))
  const charts = [
    latencyCdf(e2e),
    ...depthCharts(e2e, scaling),
    ...peersCharts(scaling),
    ...bodyChart(scaling)
  ].filter((c) => c !== undefined)
  const written = []
  if (charts.length > 0) await mkdir(outDir, { recursive: true })
  for (const c of charts) {
    const svg = await render(c.spec({ title: c.title, subtitle: c.subtitle }))
    await writeFile(join(outDir, c.file), svg.endsWith('\n') ? svg : svg + '\n')
    written.push({ file: c.file, title: c.title, alt: c.alt })
  }
  return written
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const here = dirname(fileURLToPath(import.meta.url))
  const resultsDir = resolve(process.argv[2] ?? join(here, 'results'))
  const outDir = resolve(process.argv[3] ?? resultsDir)
  const written = await writeCharts(resultsDir, outDir)
  if (written.length === 0) console.log(`no charts: no usable e2e.json or scaling.json in ${resultsDir}`)
  for (const c of written) console.log(`${join(outDir, c.file)}  ${c.title}`)
}
