/**
 * Test certificates made at test time with the `openssl` CLI: a CA, a server
 * certificate for 127.0.0.1 / localhost and a client certificate, both signed
 * by that CA. Made once per process, in a temporary directory removed at exit.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCerts {
  dir: string
  ca: Buffer
  serverCert: Buffer
  serverKey: Buffer
  clientCert: Buffer
  clientKey: Buffer
  /** Paths of the same, for the CLI. */
  paths: { ca: string, serverCert: string, serverKey: string, clientCert: string, clientKey: string }
}

let cached: TestCerts | undefined

function openssl (dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 })
}

export function makeCerts (): TestCerts {
  if (cached !== undefined) return cached
  const dir = mkdtempSync(join(tmpdir(), 'ssp-transport-certs-'))
  process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
  const days = '2'
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', days, '-subj', '/CN=ssp-transport test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  const leaf = (name: string, cn: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), ext)
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`])
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', days, '-extfile', `${name}.ext`])
  }
  leaf('server', 'localhost', 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  leaf('client', 'a.example', 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.example\nextendedKeyUsage=clientAuth\n')
  const p = (f: string): string => join(dir, f)
  cached = {
    dir,
    ca: readFileSync(p('ca.crt')),
    serverCert: readFileSync(p('server.crt')),
    serverKey: readFileSync(p('server.key')),
    clientCert: readFileSync(p('client.crt')),
    clientKey: readFileSync(p('client.key')),
    paths: { ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key') }
  }
  return cached
}
