/**
 * Loader for the framer specification in test/cases/framer-*.md (notation in
 * framer-basic.md): one case per heading followed by an `http` block.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface CaseMeta {
  maxHeaderBytes?: number
  maxHeaderCount?: number
  maxBodyBytes?: number
  /** The server's Host check (RFC 9112 3.2); off by default, so the other cases need no Host line. */
  requireHost?: boolean
}

export interface FramerCase {
  file: string
  /** The heading text. */
  name: string
  /** Line of the heading (1-based), for failure messages. */
  line: number
  meta: CaseMeta
  input: Buffer
  strict: string[]
  /** Expected interop trace; undefined means "same as strict". */
  interop: string[] | undefined
}

const HEX = /^[0-9a-fA-F]{2}$/

/** Decode one line of an `http` block: escapes, and a trailing `\` meaning "no line terminator". */
function decodeLine (line: string, where: string): { bytes: number[], joinNext: boolean } {
  const bytes: number[] = []
  let i = 0
  while (i < line.length) {
    const c = line[i]!
    if (c !== '\\') {
      const code = c.charCodeAt(0)
      if (code > 0xff) throw new Error(`${where}: non-latin1 character in http block`)
      bytes.push(code)
      i++
      continue
    }
    if (i === line.length - 1) return { bytes, joinNext: true }
    const e = line[i + 1]!
    if (e === 'r') bytes.push(0x0d)
    else if (e === 'n') bytes.push(0x0a)
    else if (e === 't') bytes.push(0x09)
    else if (e === '\\') bytes.push(0x5c)
    else if (e === 'x') {
      const h = line.slice(i + 2, i + 4)
      if (!HEX.test(h)) throw new Error(`${where}: bad \\x escape`)
      bytes.push(parseInt(h, 16))
      i += 2
    } else {
      throw new Error(`${where}: unknown escape \\${e}`)
    }
    i += 2
  }
  return { bytes, joinNext: false }
}

export function decodeHttpBlock (lines: string[], where: string): Buffer {
  const out: number[] = []
  for (let k = 0; k < lines.length; k++) {
    const { bytes, joinNext } = decodeLine(lines[k]!, `${where} line ${k + 1}`)
    for (const b of bytes) out.push(b)
    if (!joinNext && k < lines.length - 1) out.push(0x0d, 0x0a)
  }
  return Buffer.from(out)
}

interface Block { info: string, lines: string[] }

/** Parse one markdown file into cases. */
export function parseCaseFile (file: string, text: string): FramerCase[] {
  const lines = text.split('\n')
  const cases: FramerCase[] = []
  let heading: { name: string, line: number } | undefined
  let meta: CaseMeta = {}
  let blocks: Block[] = []

  const close = (): void => {
    if (heading === undefined) return
    const http = blocks.filter((b) => b.info === 'http')
    const strict = blocks.filter((b) => b.info === 'trace')
    const interop = blocks.filter((b) => b.info === 'trace interop')
    const where = `${file}:${heading.line} "${heading.name}"`
    if (http.length === 0) {
      if (strict.length > 0 || interop.length > 0) throw new Error(`${where}: trace without http block`)
      return
    }
    if (http.length !== 1 || strict.length !== 1 || interop.length > 1) {
      throw new Error(`${where}: a case needs one http block, one trace block and at most one trace interop block`)
    }
    const trace = (b: Block): string[] => b.lines.map((l) => l.trim()).filter((l) => l.length > 0)
    cases.push({
      file,
      name: heading.name,
      line: heading.line,
      meta,
      input: decodeHttpBlock(http[0]!.lines, where),
      strict: trace(strict[0]!),
      interop: interop.length === 0 ? undefined : trace(interop[0]!)
    })
  }

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const h = /^(#{1,6})\s+(.*)$/.exec(line)
    if (h !== null) {
      close()
      heading = { name: h[2]!.trim(), line: i + 1 }
      meta = {}
      blocks = []
      continue
    }
    const m = /^<!--\s*meta=(.*)\s*-->\s*$/.exec(line)
    if (m !== null) {
      meta = JSON.parse(m[1]!) as CaseMeta
      continue
    }
    const f = /^```(.*)$/.exec(line)
    if (f !== null) {
      const info = f[1]!.trim()
      const body: string[] = []
      let j = i + 1
      for (; j < lines.length && !lines[j]!.startsWith('```'); j++) body.push(lines[j]!)
      if (j === lines.length) throw new Error(`${file}:${i + 1}: unterminated code block`)
      blocks.push({ info, lines: body })
      i = j
    }
  }
  close()
  return cases
}

export const CASES_DIR = new URL('../cases/', import.meta.url).pathname

export function loadFramerCases (dir = CASES_DIR): FramerCase[] {
  const files = readdirSync(dir).filter((f) => /^framer-.*\.md$/.test(f)).sort()
  const all: FramerCase[] = []
  for (const f of files) all.push(...parseCaseFile(f, readFileSync(join(dir, f), 'utf8')))
  return all
}
