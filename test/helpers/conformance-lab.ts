/**
 * Systems under test for the conformance lab, and one call that runs the lab
 * against one of them. Every server and lab is closed in t.teardown.
 */
import { SspNode } from '../../src/ssp/node.js'
import type { SspNodeOptions } from '../../src/ssp/options.js'
import { buildSession, Mode } from '../../src/ssp/messages.js'
import { FaultServer, type Fault } from '../instruments/fault-server.js'
import { ConformanceLab, type LabOptions } from '../../src/conformance/lab.js'
import { judge } from '../../src/conformance/checks.js'
import { buildReport } from '../../src/conformance/report.js'
import type { ItemId, ItemResult, LabRun, Report, Verdict } from '../../src/conformance/model.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export const LAB = 'lab.example'
export const LAB12 = 'old.example'
export const SUT = 'sut.example'

/** Waits in the tests: long enough for loopback on a slow machine; only absent events cost them. */
export const TIMEOUT = 2000
export const QUIET = 150

/** What an application would send: the transport carries it without looking. */
/** The primitive an SUT sends when triggered (each SUT writes the envelope around it). */
export const APP_BODY = '<SendMessageRequest deliveryReport="No"/>'

/** A system under test, as the lab needs it. */
export interface Sut {
  url: string
  /** Point the SUT's directory at the lab (1.3 identity and, optionally, the 1.2 one). */
  addLab: (url: string) => void
  /** Make the SUT send one request to the lab (fire and forget). */
  trigger: (n: number) => void
  /** Extra URLs (e.g. an HTTPS listener). */
  urls: string[]
}

export async function sspNodeSut (t: Teardown, opts: Partial<SspNodeOptions> = {}): Promise<Sut> {
  const node = new SspNode({ domain: SUT, resolver: false, handler: (tx) => tx.primitive, setupTimeout: TIMEOUT * 3, transactionTimeout: TIMEOUT * 3, ...opts })
  node.on('setupError', () => undefined)
  const urls = await node.start()
  t.teardown(() => node.close())
  return {
    url: urls[0]!,
    urls,
    addLab: (url) => {
      node.addPeer(LAB, url)
      node.addPeer(LAB12, { url, version: '1.2' })
    },
    trigger: () => { node.request(LAB, APP_BODY).catch(() => undefined) }
  }
}

export async function faultSut (t: Teardown, fault: Fault | undefined): Promise<Sut> {
  const s = new FaultServer({ domain: SUT, timeout: TIMEOUT, ...(fault === undefined ? {} : { fault }) })
  const url = await s.start()
  t.teardown(() => s.close())
  return {
    url,
    urls: [url],
    addLab: (u) => {
      s.addPeer(LAB, u)
      s.addPeer(LAB12, u, '1.2')
    },
    trigger: () => { s.request(LAB, APP_BODY).catch(() => undefined) }
  }
}

export interface LabResult {
  run: LabRun
  items: ItemResult[]
  report: Report
  verdict: (id: ItemId) => Verdict | undefined
  /** Items whose verdict is `fail`, sorted. */
  failed: ItemId[]
}

/** Run the lab against `sut` (with a trigger and the 1.2 identity unless told otherwise). */
export async function runLab (t: Teardown, sut: Sut, o: Partial<LabOptions> & { noTrigger?: boolean } = {}): Promise<LabResult> {
  const { noTrigger, ...rest } = o
  const lab = new ConformanceLab({
    peer: sut.url,
    domain: LAB,
    v12Domain: LAB12,
    timeout: TIMEOUT,
    quiet: QUIET,
    ...(noTrigger === true ? {} : { trigger: sut.trigger }),
    ...rest
  })
  t.teardown(() => lab.close())
  const { url } = await lab.listen()
  sut.addLab(url)
  const run = await lab.execute()
  const items = judge(run, lab.items)
  const report = buildReport(run, items)
  return {
    run,
    items,
    report,
    verdict: (id) => items.find((i) => i.id === id)?.verdict,
    failed: items.filter((i) => i.verdict === 'fail').map((i) => i.id).sort()
  }
}

/** `S-007: fail (dummy-reply: …)` lines, for assertion messages that say why. */
export function summary (items: readonly ItemResult[]): string {
  return items.map((i) => `${i.id}: ${i.verdict} (${i.reason.slice(0, 300)})`).join('\n')
}
