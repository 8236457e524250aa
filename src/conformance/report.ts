/**
 * The conformance report: one entry per SCR item with its verdict, the checks
 * that decided it and their evidence, formatted as text, TAP 14, JUnit XML or
 * JSON. The run's verdict follows the items' (the CLI maps it to an exit
 * status; the lab does not know exit codes):
 *
 *   conformant      every selected mandatory item (and every claimed optional one) passes
 *   nonconformant   one of them fails
 *   inconclusive    none fails but a mandatory item could not be tested
 *   unreachable     the SUT could not be reached
 */
import type { ItemResult, LabRun, Report, RunVerdict } from './model.js'

export const FORMATS = ['text', 'tap', 'junit', 'json'] as const
export type Format = typeof FORMATS[number]

/** Does this item decide the exit status? Mandatory items, and optional items the SUT claims. */
const counts = (i: ItemResult): boolean => i.status === 'M' || i.claimed

export function runVerdict (run: LabRun, items: readonly ItemResult[]): RunVerdict {
  if (!run.reachable) return 'unreachable'
  if (items.some((i) => counts(i) && i.verdict === 'fail')) return 'nonconformant'
  if (items.some((i) => counts(i) && i.verdict === 'not testable')) return 'inconclusive'
  return 'conformant'
}

const VERDICT_TEXT: Record<RunVerdict, string> = {
  conformant: 'conformant',
  nonconformant: 'NOT conformant',
  inconclusive: 'inconclusive (a mandatory item could not be tested)',
  unreachable: 'SUT unreachable'
}

export function buildReport (run: LabRun, items: readonly ItemResult[]): Report {
  return {
    tool: 'ssp-transport conformance',
    sut: { url: run.sutUrl, altUrl: run.altUrl, domain: run.sutDomain },
    lab: { domain: run.identity, v12Domain: run.v12Identity, urls: run.labUrls },
    items,
    notes: run.notes,
    summary: {
      pass: items.filter((i) => i.verdict === 'pass').length,
      fail: items.filter((i) => i.verdict === 'fail').length,
      notSupported: items.filter((i) => i.verdict === 'not supported').length,
      notTestable: items.filter((i) => i.verdict === 'not testable').length,
      verdict: runVerdict(run, items)
    }
  }
}

export function formatReport (r: Report, format: Format): string {
  switch (format) {
    case 'tap': return tap(r)
    case 'junit': return junit(r)
    case 'json': return JSON.stringify(r, null, 2) + '\n'
    default: return text(r)
  }
}

// ---------------------------------------------------------------------------

function text (r: Report): string {
  const out: string[] = []
  out.push('SSP transport conformance (OMA IMPS SSP Transport 1.3, Appendix B)')
  out.push(`  SUT  ${r.sut.url}${r.sut.altUrl === undefined ? '' : ` and ${r.sut.altUrl}`}${r.sut.domain === undefined ? '' : ` (${r.sut.domain})`}`)
  out.push(`  lab  ${r.lab.domain}${r.lab.v12Domain === undefined ? '' : ` and ${r.lab.v12Domain} (1.2)`} at ${r.lab.urls.join(' and ') || '(not listening)'}`)
  out.push('')
  for (const i of r.items) {
    const tag = i.status === 'O' ? (i.claimed ? 'O*' : 'O ') : 'M '
    out.push(`${i.id}  ${tag} ${i.verdict.padEnd(14)} ${i.title} (section ${i.section})`)
    if (i.checks.length === 0) out.push(`        ${i.reason}`)
    for (const c of i.checks) {
      out.push(`        ${c.outcome.padEnd(8)} ${c.check} [${c.item}, ${c.section}]: ${c.detail}`)
      for (const e of c.evidence) {
        out.push(`                 #${e.exchange} ${e.where}`)
        out.push(`                   > ${e.request}`)
        out.push(`                   < ${e.reply}`)
      }
    }
  }
  if (r.notes.length > 0) {
    out.push('')
    out.push('Notes:')
    for (const n of r.notes) out.push(`  - ${n}`)
  }
  const s = r.summary
  out.push('')
  out.push(`Result: ${s.pass} pass, ${s.fail} fail, ${s.notSupported} not supported, ${s.notTestable} not testable: ${VERDICT_TEXT[s.verdict]}`)
  out.push('(M mandatory, O optional, O* optional and claimed by the SUT)')
  return out.join('\n') + '\n'
}

// ---------------------------------------------------------------------------

/** A YAML double-quoted scalar (JSON string syntax is valid YAML). */
const q = (s: string): string => JSON.stringify(s)
/** TAP descriptions and directives: `#` and `\` escaped, one line. */
const tapText = (s: string): string => s.replace(/[\r\n]+/g, ' ').replace(/\\/g, '\\\\').replace(/#/g, '\\#')

function tap (r: Report): string {
  const out: string[] = ['TAP version 14', `1..${r.items.length}`]
  r.items.forEach((i, k) => {
    const desc = `${i.id} ${tapText(i.title)} (${i.status === 'M' ? 'mandatory' : 'optional'}, section ${i.section})`
    let line: string
    if (i.verdict === 'pass') line = `ok ${k + 1} - ${desc}`
    else if (i.verdict === 'fail') line = `not ok ${k + 1} - ${desc}${counts(i) ? '' : ' # TODO optional item the SUT does not claim'}`
    else line = `ok ${k + 1} - ${desc} # SKIP ${i.verdict}: ${tapText(i.reason).slice(0, 200)}`
    out.push(line)
    out.push('  ---')
    out.push(`  item: ${q(`IMPS-SSP-Transport-${i.id}`)}`)
    out.push(`  status: ${q(i.status)}`)
    out.push(`  claimed: ${i.claimed ? 'true' : 'false'}`)
    out.push(`  verdict: ${q(i.verdict)}`)
    out.push(`  section: ${q(i.section)}`)
    out.push(`  reason: ${q(i.reason)}`)
    if (i.checks.length > 0) {
      out.push('  checks:')
      for (const c of i.checks) {
        out.push(`    - check: ${q(c.check)}`)
        out.push(`      item: ${q(c.item)}`)
        out.push(`      section: ${q(c.section)}`)
        out.push(`      outcome: ${q(c.outcome)}`)
        out.push(`      detail: ${q(c.detail)}`)
        if (c.evidence.length > 0) {
          out.push('      evidence:')
          for (const e of c.evidence) {
            out.push(`        - exchange: ${e.exchange}`)
            out.push(`          where: ${q(e.where)}`)
            out.push(`          request: ${q(e.request)}`)
            out.push(`          reply: ${q(e.reply)}`)
          }
        }
      }
    }
    out.push('  ...')
  })
  for (const n of r.notes) out.push(`# note: ${n.replace(/[\r\n]+/g, ' ')}`)
  out.push(`# ${r.summary.pass} pass, ${r.summary.fail} fail, ${r.summary.notSupported} not supported, ${r.summary.notTestable} not testable: ${VERDICT_TEXT[r.summary.verdict]}`)
  return out.join('\n') + '\n'
}

// ---------------------------------------------------------------------------

// XML 1.0 cannot carry these at all; they are dropped.
// eslint-disable-next-line no-control-regex
const XML_ILLEGAL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g

function x (s: string): string {
  return s.replace(XML_ILLEGAL, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

function junit (r: Report): string {
  const failures = r.items.filter((i) => i.verdict === 'fail' && counts(i)).length
  const skipped = r.items.filter((i) => i.verdict === 'not supported' || i.verdict === 'not testable' || (i.verdict === 'fail' && !counts(i))).length
  const n = r.items.length
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>']
  out.push(`<testsuites name="ssp-transport conformance" tests="${n}" failures="${failures}" errors="0" skipped="${skipped}">`)
  out.push(`  <testsuite name="IMPS-SSP-Transport" tests="${n}" failures="${failures}" errors="0" skipped="${skipped}">`)
  out.push('    <properties>')
  out.push(`      <property name="sut" value="${x(r.sut.url)}"/>`)
  if (r.sut.domain !== undefined) out.push(`      <property name="sut-domain" value="${x(r.sut.domain)}"/>`)
  out.push(`      <property name="lab-domain" value="${x(r.lab.domain)}"/>`)
  out.push(`      <property name="verdict" value="${r.summary.verdict}"/>`)
  out.push('    </properties>')
  for (const i of r.items) {
    out.push(`    <testcase classname="IMPS-SSP-Transport.${i.status === 'M' ? 'mandatory' : 'optional'}" name="${x(`${i.id} ${i.title} (section ${i.section})`)}">`)
    if (i.verdict === 'fail' && counts(i)) {
      out.push(`      <failure type="nonconformant" message="${x(i.reason.slice(0, 500))}">${x(details(i))}</failure>`)
    } else if (i.verdict !== 'pass') {
      out.push(`      <skipped message="${x(`${i.verdict}: ${i.reason}`.slice(0, 500))}"/>`)
    }
    out.push(`      <system-out>${x(details(i))}</system-out>`)
    out.push('    </testcase>')
  }
  out.push(`    <system-out>${x(r.notes.join('\n'))}</system-out>`)
  out.push('  </testsuite>')
  out.push('</testsuites>')
  return out.join('\n') + '\n'
}

function details (i: ItemResult): string {
  const lines = [`${i.verdict}: ${i.reason}`]
  for (const c of i.checks) {
    lines.push(`${c.outcome} ${c.check} [${c.item}, section ${c.section}]: ${c.detail}`)
    for (const e of c.evidence) lines.push(`  #${e.exchange} ${e.where}`, `    > ${e.request}`, `    < ${e.reply}`)
  }
  return lines.join('\n')
}
