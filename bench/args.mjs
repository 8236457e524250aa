// Command-line options of the benchmark scripts, parsed one way: node:util
// parseArgs, strict (an unknown or misspelt option is refused with exit 2, not
// silently ignored, so a typo cannot turn a measurement into the default one).
//
//   const { has, opt, argv } = benchArgs(import.meta.url, {
//     quick: { type: 'boolean' },
//     depths: { type: 'string' }
//   })
//   has('quick')           // boolean option given
//   opt('depths', '1,16')  // string option, or the default
//   num('secs', 1.5)       // numeric option (refused if not a number), or the default
//
// A script that is also imported as a module (wake-floor.mjs, framing.mjs) parses
// only when it is the process's main script: imported, its options are all unset.
import { parseArgs } from 'node:util'
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * @param {string} moduleUrl  the calling script's import.meta.url
 * @param {Record<string, { type: 'string' | 'boolean' }>} options
 * @param {{ positionals?: boolean }} [how]  positionals: accept bare arguments (bench/run.mjs's scenario names)
 * @returns {{ argv: string[], values: Record<string, string | boolean | undefined>, positionals: string[],
 *             has: (name: string) => boolean, opt: (name: string, dflt?: string) => string | undefined,
 *             num: (name: string, dflt?: number) => number | undefined }}
 */
export function benchArgs (moduleUrl, options, { positionals: allowPositionals = false } = {}) {
  const argv = isMain(moduleUrl) ? process.argv.slice(2) : []
  let values
  let positionals
  try {
    ({ values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals }))
  } catch (err) {
    const names = Object.keys(options).map((n) => `--${n}`).join(' ')
    console.error(`${fileURLToPath(moduleUrl).split('/').pop()}: ${err.message}\n  options: ${names}`)
    process.exit(2)
  }
  return {
    argv,
    values,
    positionals,
    has: (name) => values[name] === true,
    opt: (name, dflt) => {
      const v = values[name]
      return typeof v === 'string' ? v : dflt
    },
    num: (name, dflt) => {
      const v = values[name]
      if (typeof v !== 'string') return dflt
      const n = Number(v)
      if (!Number.isFinite(n)) {
        console.error(`--${name} ${v}: not a number`)
        process.exit(2)
      }
      return n
    }
  }
}

function isMain (moduleUrl) {
  const main = process.argv[1]
  if (main === undefined) return false
  try {
    return realpathSync(main) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    return false
  }
}
