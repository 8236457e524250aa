/**
 * The README's embedding example, run as written: the first ```js block of
 * "Embedding a node", with `from 'ssp-transport'` pointed at this build.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const root = resolve(import.meta.dirname, '..')

t.test('the two-node example in the README runs and federates', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Embedding a node'))
  const m = /```js\n([\s\S]*?)```/.exec(section)
  t.ok(m, 'the README has the example')
  const code = m![1]!.replace("from 'ssp-transport'", `from '${pathToFileURL(join(root, 'dist', 'index.js')).href}'`)
  t.not(code, m![1], 'the import was pointed at this build')
  const file = join(mkdtempSync(join(tmpdir(), 'ssp-readme-')), 'example.mjs')
  writeFileSync(file, code)
  const { code: exit, stdout, stderr } = await new Promise<{ code: number, stdout: string, stderr: string }>((resolve) => {
    execFile(process.execPath, [file], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
  t.equal(exit, 0, `exit 0 (stderr: ${stderr.slice(0, 400)})`)
  t.match(stdout, /a\.example -> us: SendMessageRequest in transaction T\w+/, 'B\'s handler got the primitive')
  t.match(stdout, /^SendMessageResponse T\w+ \d+ µs$/m, 'A got the answer primitive')
  t.match(stdout, /<Session sessionID="S\w+"><Transaction mode="Response" transactionID="T\w+"><SendMessageResponse>/, 'the whole answer message')
  t.match(stdout, /b -> a: SendMessageResponse/)
  t.match(stdout, /a\.example -> us: PresenceNotification/, 'A\'s notification reached B')
})
