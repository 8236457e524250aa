/**
 * Test certificates made at test time with the openssl CLI, in a temp dir:
 * a test CA, a server certificate for localhost / 127.0.0.1 and a client
 * certificate, both signed by the CA. Returns undefined when openssl is not
 * available (TLS tests then skip with a message).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCerts {
  ca: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

let cached: TestCerts | null | undefined

export function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export function makeCerts (): TestCerts | undefined {
  if (cached !== undefined) return cached ?? undefined
  if (!hasOpenssl()) {
    cached = null
    return undefined
  }
  const dir = mkdtempSync(join(tmpdir(), 'ssp-client-certs-'))
  try {
    const f = (name: string): string => join(dir, name)
    const run = (args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe', cwd: dir }) }
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    run(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=ssp-transport test CA'])
    writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n')
    for (const who of ['server', 'client']) {
      run(['req', ...ec, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', who === 'server' ? '/CN=localhost' : '/CN=ssp-client'])
      run(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
        '-out', f(`${who}.crt`), '-days', '2', '-extfile', f(`${who}.ext`)])
    }
    cached = {
      ca: readFileSync(f('ca.crt'), 'latin1'),
      serverCert: readFileSync(f('server.crt'), 'latin1'),
      serverKey: readFileSync(f('server.key'), 'latin1'),
      clientCert: readFileSync(f('client.crt'), 'latin1'),
      clientKey: readFileSync(f('client.key'), 'latin1')
    }
    return cached
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
