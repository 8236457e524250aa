// Layering of src/ (README "Architecture"): a static scan of every relative
// `import ... from` / `export ... from` / `import '...'` in src/**/*.ts,
// checked against the layer rule (wire < ssp < conformance < cli; errors.ts and
// options-check.ts import no layer) and for import cycles (type-only imports
// included). The checker runs first on a fabricated graph to prove it can fail.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src')

/** Which layers each layer (or root file) must not import. */
const FORBIDDEN: Record<string, readonly string[]> = {
  wire: ['ssp', 'conformance', 'cli'],
  ssp: ['conformance', 'cli'],
  conformance: ['cli'],
  'errors.ts': ['wire', 'ssp', 'conformance', 'cli'],
  'options-check.ts': ['wire', 'ssp', 'conformance', 'cli']
}

type Graph = Map<string, string[]>

/** First path segment under src/: a layer directory or a root file name. */
function layerOf (file: string): string {
  return file.split('/')[0] ?? file
}

function listTs (dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...listTs(p))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

// `from '...'` covers multi-line import/export lists; the second form is a bare side-effect import.
const SPECIFIER = /\bfrom\s+'([^']+)'|^\s*import\s+'([^']+)'/gm

function scan (): Graph {
  const graph: Graph = new Map()
  for (const abs of listTs(SRC)) {
    const file = relative(SRC, abs).split('\\').join('/')
    const deps: string[] = []
    for (const m of readFileSync(abs, 'utf8').matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2] ?? ''
      if (!spec.startsWith('.')) continue
      const target = relative(SRC, resolve(dirname(abs), spec.replace(/\.js$/, '.ts'))).split('\\').join('/')
      deps.push(target)
    }
    graph.set(file, deps)
  }
  return graph
}

function layerViolations (graph: Graph): string[] {
  const out: string[] = []
  for (const [from, deps] of graph) {
    const banned = FORBIDDEN[layerOf(from)] ?? []
    for (const to of deps) {
      if (banned.includes(layerOf(to))) out.push(`${from} imports ${to}`)
    }
  }
  return out
}

/** Every cycle found by a DFS, each as the path a → b → ... → a. */
function cycles (graph: Graph): string[] {
  const out: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (n: string): void => {
    state.set(n, 'open')
    stack.push(n)
    for (const d of graph.get(n) ?? []) {
      const s = state.get(d)
      if (s === 'open') out.push([...stack.slice(stack.indexOf(d)), d].join(' → '))
      else if (s === undefined && graph.has(d)) visit(d)
    }
    stack.pop()
    state.set(n, 'done')
  }
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n)
  return out
}

t.test('the checker reports a fabricated violation and cycle', async (t) => {
  const fake: Graph = new Map([
    ['wire/a.ts', ['ssp/b.ts']],
    ['ssp/b.ts', ['ssp/c.ts']],
    ['ssp/c.ts', ['ssp/b.ts']],
    ['cli/d.ts', ['wire/a.ts']]
  ])
  t.same(layerViolations(fake), ['wire/a.ts imports ssp/b.ts'])
  t.same(cycles(fake), ['ssp/b.ts → ssp/c.ts → ssp/b.ts'])
})

t.test('src/ (the real tree)', async (t) => {
  const graph = scan()
  t.ok(graph.size > 20, 'the scan found the source files')
  t.ok([...graph.values()].some((d) => d.length > 0), 'the scan found imports')
  const missing = [...graph.values()].flat().filter((d) => !graph.has(d))
  t.same(missing, [], 'every relative import resolves to a scanned file')
  t.same(layerViolations(graph), [], 'no layer imports a layer above it')
  t.same(cycles(graph), [], 'no import cycle')
})
