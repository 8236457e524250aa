/**
 * What `npm pack` ships: the built code with its types and source maps (and
 * the sources they point at), the CLI, the docs and the licence; no tests,
 * benchmarks or CI files. `prepare` builds dist, so a package made from a
 * fresh clone (npm pack, npm install <path>) is not empty.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')

t.test('npm pack contents', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>, bin: Record<string, string> }
  t.match(pkg.scripts.prepare, /tsc -p tsconfig\.build\.json/, 'prepare builds dist')
  const out = await new Promise<string>((resolve, reject) => {
    // --ignore-scripts: the suite has built dist already; prepare is checked above.
    execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, timeout: 60_000 }, (err, stdout) => err === null ? resolve(stdout) : reject(err))
  })
  const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/index.js.map', 'src/index.ts', 'README.md', 'LICENSE', 'package.json', 'native-notes.md']) {
    t.ok(files.includes(f), `ships ${f}`)
  }
  t.ok(files.includes(pkg.bin['ssp-transport']!.replace(/^\.\//, '')), 'the bin target is in the package')
  t.notOk(files.some((f) => /^(test|bench|\.ci|scripts)\//.test(f)), 'no tests, benchmarks, CI or scripts')
  const map = JSON.parse(readFileSync(join(root, 'dist', 'index.js.map'), 'utf8')) as { sources: string[] }
  t.ok(map.sources.every((s) => files.includes(join('dist', s).replace(/\\/g, '/').replace(/^dist\/\.\.\//, ''))), `source maps point at shipped sources (${map.sources.join(', ')})`)
})
