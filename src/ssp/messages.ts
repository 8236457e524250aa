/**
 * SSP message bodies the transport itself has to understand.
 *
 * The transport carries service primitives without looking at them (ssp-notes
 * 2), but it owns three things that live in the XML:
 *
 *  - the set-up exchange (`SetupTransaction` holding `SendSecretToken`,
 *    `LoginRequest` or `LoginResponse`), built and parsed here in full;
 *  - the `Session`/`Transaction` envelope around already-serialised
 *    primitives, built here;
 *  - the ids in that envelope, read here without a DOM for the interop
 *    fallback when a peer leaves out the `x-wv-*` headers (ssp-notes 3).
 *
 * Parsing goes through fast-xml-parser with entity processing switched off and
 * any DTD refused, so a body can cost no more than its own length; the five
 * predefined entities and character references are decoded here instead.
 * Every failure is an `SspError`: `SSP_ERR_XML` when the body is not
 * well-formed, `SSP_ERR_SETUP_PROTOCOL` when it is XML but not a set-up
 * message we understand, `SSP_ERR_INVALID_ARGUMENT` when a builder is handed
 * something that cannot be written as XML.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { createError, isSspError } from '../errors.js'

// ---------------------------------------------------------------------------
// Constants and types
// ---------------------------------------------------------------------------

/** Protocol versions this module reads and writes. */
export const SspVersion = {
  V1_3: '1.3',
  V1_2: '1.2'
} as const
export type SspVersion = typeof SspVersion[keyof typeof SspVersion]

/** Namespace of the `WV-SSP-Message` root, per version. */
export const SSP_NAMESPACE = {
  '1.3': 'http://www.openmobilealliance.org/DTD/WV-SSP1.3',
  '1.2': 'http://www.openmobilealliance.org/DTD/WV-SSP1.2'
} as const satisfies Record<SspVersion, string>

export const ROOT_ELEMENT = 'WV-SSP-Message'

/** The `mode` attribute of `SetupTransaction` and `Transaction`. */
export const Mode = {
  REQUEST: 'Request',
  RESPONSE: 'Response'
} as const
export type Mode = typeof Mode[keyof typeof Mode]

/** The three set-up primitives (ssp-notes 2, steps 1-7). */
export const SetupKind = {
  SEND_SECRET_TOKEN: 'SendSecretToken',
  LOGIN_REQUEST: 'LoginRequest',
  LOGIN_RESPONSE: 'LoginResponse'
} as const
export type SetupKind = typeof SetupKind[keyof typeof SetupKind]

/** Fields every set-up message has: the `SetupTransaction` attributes. */
interface SetupBase {
  readonly mode: Mode
  /** `transactionID` as sent; real peers break the 5.6 grammar, so it is not checked here. */
  readonly transactionId: string
}

/** Steps 1 and 3: a server hands its secret to the peer. */
export interface SendSecretTokenMessage extends SetupBase {
  readonly kind: typeof SetupKind.SEND_SECRET_TOKEN
  /** Sender's domain, from `serviceID="wv:@<domain>"`. */
  readonly domain: string
  /** The secret as bytes (base64-decoded when the token was sent encoded). */
  readonly secret: Buffer
  /**
   * The `version` attribute of `SendSecretToken`. Parsing fills it from the
   * wire when present; building writes the message version when it is unset.
   */
  readonly protocolVersion?: string
}

/** Steps 4 and 5: proof that the sender holds the secret the receiver sent. */
export interface LoginRequestMessage extends SetupBase {
  readonly kind: typeof SetupKind.LOGIN_REQUEST
  /** Sender's domain, from `serviceID="wv:@<domain>"`. */
  readonly domain: string
  /** Binary MD5 of the receiver's secret (see `passwordDigest`), base64 on the wire. */
  readonly digest: Buffer
  /** `timeToLive` in seconds, when sent. */
  readonly timeToLive?: number
}

/** Steps 6 and 7: the sender names its side of the session. */
export interface LoginResponseMessage extends SetupBase {
  readonly kind: typeof SetupKind.LOGIN_RESPONSE
  /** `sessionID` as sent, e.g. `5@a.example` (not checked against the 5.6 grammar). */
  readonly sessionId: string
  /** `timeToLive` in seconds, when sent. */
  readonly timeToLive?: number
  /** `Status code`, 200 on success. */
  readonly statusCode: number
  /** `Status description`, when sent. */
  readonly statusDescription?: string
}

/** A set-up message as given to `buildSetup`. */
export type SetupMessage = SendSecretTokenMessage | LoginRequestMessage | LoginResponseMessage

/** A set-up message as returned by `parseSetup`: also says which namespace it came in. */
export type ParsedSetupMessage = SetupMessage & { readonly version: SspVersion }

export interface BuildOptions {
  /** Namespace to write; default 1.3. A 1.2 peer must be answered in 1.2. */
  version?: SspVersion
}

export interface BuildSetupOptions extends BuildOptions {
  /**
   * How to write `SecretToken`. Default `base64`: secrets are random bytes, and
   * raw bytes cannot in general be XML text. `plain` is for peers that only
   * read plain-text tokens; the secret must then be printable UTF-8.
   */
  secretEncoding?: 'base64' | 'plain'
}

/** One `Transaction` of a `Session` envelope, its primitive already serialised. */
export interface SessionTransaction {
  readonly mode: Mode
  readonly transactionId: string
  /** Serialised primitive (e.g. `<SendMessageRequest …>…</SendMessageRequest>`), inserted verbatim. */
  readonly inner: string
}

/** What `peekEnvelopeIds` found. */
export const EnvelopeKind = {
  SETUP: 'setup',
  SESSION: 'session',
  UNKNOWN: 'unknown'
} as const
export type EnvelopeKind = typeof EnvelopeKind[keyof typeof EnvelopeKind]

export interface PeekedTransaction {
  /** Normalised `mode` (case-insensitive on input); undefined when missing or unrecognised. */
  readonly mode: Mode | undefined
  /** `transactionID`; undefined when missing. */
  readonly transactionId: string | undefined
  /**
   * Byte range of the element's content (the primitive, whitespace included):
   * from just past its start tag to the `<` of its end tag. For a
   * self-closing element both are the end of the start tag; for one cut off
   * by the end of the body, `contentEnd` is the body's length.
   */
  contentStart: number
  contentEnd: number
}

export interface EnvelopeIds {
  readonly kind: EnvelopeKind
  /** `sessionID` of the `Session` element (kind `session` only, when present). */
  readonly sessionId?: string
  /**
   * Kind `session`: every `Transaction` child of the `Session`, in order.
   * Kind `setup`: the one `SetupTransaction`. Kind `unknown`: empty.
   */
  readonly transactions: PeekedTransaction[]
}

// ---------------------------------------------------------------------------
// Secrets and digests
// ---------------------------------------------------------------------------

/** Length of secrets made by `newSecret`. */
export const SECRET_BYTES = 16

/** A fresh random secret for `SendSecretToken`. */
export function newSecret (): Buffer {
  return randomBytes(SECRET_BYTES)
}

/**
 * A fresh random secret as printable text: 32 lowercase hex digits (128
 * bits), which every peer reads back byte for byte from a plain
 * `SecretToken` (no NUL, no whitespace, no `encoding` attribute).
 */
export function newPrintableSecret (): Buffer {
  return Buffer.from(randomBytes(SECRET_BYTES).toString('hex'), 'latin1')
}

/**
 * The set-up password digest: binary MD5 of the secret bytes the *peer* sent
 * (ssp-notes 2, step 4). MD5 because that is what the deployed peer checks; it
 * proves possession of a per-set-up random value, not a stored password.
 */
export function passwordDigest (secret: Uint8Array): Buffer {
  return createHash('md5').update(secret).digest()
}

/**
 * Does `digest` prove possession of `secret`? Constant-time in the digest
 * contents; a digest of the wrong length is simply false (`timingSafeEqual`
 * throws on unequal lengths, and the length of an MD5 is no secret).
 */
export function digestMatches (secret: Uint8Array, digest: Uint8Array): boolean {
  const expected = passwordDigest(secret)
  if (digest.length !== expected.length) return false
  return timingSafeEqual(expected, digest)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

// XML 1.0 `Char` excludes these; no escaping can carry them, so a builder
// refuses them instead of writing a document the peer must reject.
// Lone surrogates are excluded too: they cannot be encoded as UTF-8.
const ILLEGAL_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function checkXmlChars (value: string, what: string): void {
  if (ILLEGAL_XML_CHAR.test(value)) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${what} contains a character XML 1.0 cannot carry` })
  }
}

function checkNonEmpty (value: string, what: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${what} must be a non-empty string` })
  }
}

function escapeText (value: string, what: string): string {
  checkXmlChars(value, what)
  return value.replace(/[&<>]/g, (c) => c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;')
}

// Tab, LF and CR are written as references: a parser normalises literal ones
// in attribute values to spaces, which would change an id.
const ATTR_ESCAPES: Record<string, string> = {
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;'
}

const ATTR_UNSAFE = /[&<>"'\t\n\r]/

/**
 * A value as an XML attribute value, escaped only when a regex test says it
 * needs it (ids this package makes never do: the envelope's hot path pays one
 * test). No check for characters XML cannot carry: `escapeAttr` adds it.
 */
export function attrValue (value: string): string {
  return ATTR_UNSAFE.test(value) ? value.replace(/[&<>"'\t\n\r]/g, (c) => ATTR_ESCAPES[c] ?? c) : value
}

function escapeAttr (value: string, what: string): string {
  checkXmlChars(value, what)
  return attrValue(value)
}

function resolveVersion (opts: BuildOptions | undefined): SspVersion {
  const v = opts?.version ?? SspVersion.V1_3
  if (v !== SspVersion.V1_3 && v !== SspVersion.V1_2) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unsupported SSP version ${String(v)}` })
  }
  return v
}

function checkMode (mode: Mode): void {
  if (mode !== Mode.REQUEST && mode !== Mode.RESPONSE) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `mode must be Request or Response, not ${String(mode)}` })
  }
}

function checkSeconds (value: number | undefined, what: string): void {
  if (value === undefined) return
  if (!Number.isSafeInteger(value) || value < 0) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `${what} must be a non-negative integer` })
  }
}

/** `<?xml …?><WV-SSP-Message xmlns="…">` for a version (the envelope writer's heads start with it too). */
export function rootOpen (version: SspVersion): string {
  return `${XML_DECLARATION}<${ROOT_ELEMENT} xmlns="${SSP_NAMESPACE[version]}">`
}

/**
 * A plain-text secret must come back byte for byte from the parser: valid
 * UTF-8, XML characters only, and no surrounding whitespace (values are
 * trimmed on parse, as real peers indent their XML).
 */
function plainSecret (secret: Buffer): string {
  const text = secret.toString('utf8')
  if (secret.length === 0 || !Buffer.from(text, 'utf8').equals(secret) || text.trim() !== text) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', {
      message: 'secret cannot be sent as plain text (empty, not UTF-8, or surrounded by whitespace); use base64'
    })
  }
  return escapeText(text, 'secret')
}

/** Serialise one set-up message (ssp-notes 2) as a complete `WV-SSP-Message` body. */
export function buildSetup (msg: SetupMessage, opts?: BuildSetupOptions): Buffer {
  const version = resolveVersion(opts)
  checkMode(msg.mode)
  checkNonEmpty(msg.transactionId, 'transactionId')
  let primitive: string
  switch (msg.kind) {
    case SetupKind.SEND_SECRET_TOKEN: {
      checkNonEmpty(msg.domain, 'domain')
      const encoding = opts?.secretEncoding ?? 'base64'
      let token: string
      if (encoding === 'plain') {
        token = `<SecretToken>${plainSecret(msg.secret)}</SecretToken>`
      } else {
        if (msg.secret.length === 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'secret is empty' })
        token = `<SecretToken encoding="base64">${msg.secret.toString('base64')}</SecretToken>`
      }
      const pv = msg.protocolVersion ?? version
      primitive = `<SendSecretToken serviceID="${escapeAttr(`wv:@${msg.domain}`, 'domain')}" protocol="WV-SSP" ` +
        `version="${escapeAttr(pv, 'protocolVersion')}">${token}</SendSecretToken>`
      break
    }
    case SetupKind.LOGIN_REQUEST: {
      checkNonEmpty(msg.domain, 'domain')
      checkSeconds(msg.timeToLive, 'timeToLive')
      if (msg.digest.length === 0) throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'digest is empty' })
      const ttl = msg.timeToLive === undefined ? '' : ` timeToLive="${msg.timeToLive}"`
      primitive = `<LoginRequest serviceID="${escapeAttr(`wv:@${msg.domain}`, 'domain')}"${ttl}>` +
        `<PasswordDigest encoding="base64">${msg.digest.toString('base64')}</PasswordDigest></LoginRequest>`
      break
    }
    case SetupKind.LOGIN_RESPONSE: {
      checkNonEmpty(msg.sessionId, 'sessionId')
      checkSeconds(msg.timeToLive, 'timeToLive')
      checkSeconds(msg.statusCode, 'statusCode')
      const ttl = msg.timeToLive === undefined ? '' : ` timeToLive="${msg.timeToLive}"`
      const desc = msg.statusDescription === undefined
        ? ''
        : ` description="${escapeAttr(msg.statusDescription, 'statusDescription')}"`
      primitive = `<LoginResponse sessionID="${escapeAttr(msg.sessionId, 'sessionId')}"${ttl}>` +
        `<Status code="${msg.statusCode}"${desc}/></LoginResponse>`
      break
    }
    default: {
      // Unreachable for typed callers; a JS caller gets an SspError, not a TypeError.
      const kind: unknown = (msg as { kind?: unknown }).kind
      throw createError('SSP_ERR_INVALID_ARGUMENT', { message: `unknown set-up primitive ${String(kind)}` })
    }
  }
  const xml = `${rootOpen(version)}<SetupTransaction mode="${msg.mode}" ` +
    `transactionID="${escapeAttr(msg.transactionId, 'transactionId')}">${primitive}</SetupTransaction></${ROOT_ELEMENT}>`
  return Buffer.from(xml, 'utf8')
}

/**
 * Wrap already-serialised primitives in a `Session` envelope. Several
 * transactions make a batch, as some peers send (ssp-notes 3). `inner` is
 * trusted: it is inserted verbatim, so the caller must have produced XML.
 */
export function buildSession (sessionId: string, transactions: readonly SessionTransaction[], opts?: BuildOptions): Buffer {
  const version = resolveVersion(opts)
  checkNonEmpty(sessionId, 'sessionId')
  if (!Array.isArray(transactions) || transactions.length === 0) {
    throw createError('SSP_ERR_INVALID_ARGUMENT', { message: 'a Session needs at least one Transaction' })
  }
  const parts: string[] = [rootOpen(version), `<Session sessionID="${escapeAttr(sessionId, 'sessionId')}">`]
  for (const tr of transactions) {
    checkMode(tr.mode)
    checkNonEmpty(tr.transactionId, 'transactionId')
    parts.push(`<Transaction mode="${tr.mode}" transactionID="${escapeAttr(tr.transactionId, 'transactionId')}">`,
      tr.inner, '</Transaction>')
  }
  parts.push(`</Session></${ROOT_ELEMENT}>`)
  return Buffer.from(parts.join(''), 'utf8')
}

// ---------------------------------------------------------------------------
// Parsing set-up messages
// ---------------------------------------------------------------------------

/** An element as this module sees it: local name, attributes, element children, text. */
interface XElement {
  readonly name: string
  readonly prefix: string
  readonly local: string
  readonly attrs: ReadonlyMap<string, string>
  readonly children: readonly XElement[]
  /** Concatenated text and CDATA content, entity-decoded. */
  readonly text: string
}

const TEXT_KEY = '#text'
const CDATA_KEY = '#cdata'
const ATTRS_KEY = ':@'

// Entity processing is off: fast-xml-parser would otherwise expand DTD
// entities (the billion-laughs family). Predefined entities and character
// references are decoded by `decodeEntities` below, with the same result for
// text and attributes.
const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  textNodeName: TEXT_KEY,
  cdataPropName: CDATA_KEY,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: false
})

const utf8 = new TextDecoder('utf-8', { fatal: true })

const PREDEFINED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function xmlError (message: string, cause?: unknown): never {
  throw createError('SSP_ERR_XML', { message, cause })
}

function protocolError (message: string): never {
  throw createError('SSP_ERR_SETUP_PROTOCOL', { message })
}

/** Is `cp` an XML 1.0 `Char`? */
function isXmlChar (cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)
}

// `&#x10FFFF;` is the longest reference that can be valid: 10 characters.
const MAX_REF_LENGTH = 10

/**
 * Decode the predefined entities and character references in `s`. Strict mode
 * throws SSP_ERR_XML for anything else (an undeclared entity is a
 * well-formedness error); lenient mode leaves it as written. The search for
 * `;` is bounded, so the work is linear in `s` whatever it holds.
 */
function decodeEntities (s: string, strict: boolean): string {
  let amp = s.indexOf('&')
  if (amp < 0) return s
  let out = ''
  let from = 0
  while (amp >= 0) {
    out += s.slice(from, amp)
    let semi = -1
    const limit = Math.min(s.length, amp + MAX_REF_LENGTH)
    for (let i = amp + 1; i < limit; i++) {
      if (s.charCodeAt(i) === 0x3b) { semi = i; break }
    }
    const ref = semi < 0 ? '' : s.slice(amp + 1, semi)
    let decoded: string | undefined
    if (ref.startsWith('#')) {
      const hex = ref.startsWith('#x')
      const digits = ref.slice(hex ? 2 : 1)
      if (digits.length > 0 && (hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) {
        const cp = Number.parseInt(digits, hex ? 16 : 10)
        if (isXmlChar(cp)) decoded = String.fromCodePoint(cp)
      }
    } else if (Object.hasOwn(PREDEFINED_ENTITIES, ref)) {
      decoded = PREDEFINED_ENTITIES[ref]
    }
    if (decoded === undefined) {
      if (strict) xmlError(semi < 0 ? 'unterminated entity reference' : `unknown or invalid entity reference &${ref};`)
      out += '&'
      from = amp + 1
    } else {
      out += decoded
      from = semi + 1
    }
    amp = s.indexOf('&', from)
  }
  return out + s.slice(from)
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// parseTagValue and parseAttributeValue are off, so every value is a string.
function scalarText (v: unknown): string {
  return typeof v === 'string' ? v : ''
}

/**
 * Turn fast-xml-parser's `preserveOrder` output (typed `any` by the library,
 * treated as `unknown` here) into `XElement`s, decoding entities on the way.
 * Returns the element nodes of `items`; text goes into `textOut`.
 */
function convertNodes (items: unknown, textOut: string[]): XElement[] {
  const elements: XElement[] = []
  if (!Array.isArray(items)) return elements
  for (const item of items) {
    if (!isRecord(item)) continue
    let name: string | undefined
    for (const key of Object.keys(item)) {
      if (key === ATTRS_KEY) continue
      if (key === TEXT_KEY) {
        textOut.push(decodeEntities(scalarText(item[key]), true))
      } else if (key === CDATA_KEY) {
        // CDATA content is literal: no entity decoding.
        const inner = item[key]
        if (Array.isArray(inner)) {
          for (const t of inner) if (isRecord(t)) textOut.push(scalarText(t[TEXT_KEY]))
        }
      } else {
        name = key
      }
    }
    if (name === undefined) continue
    const attrs = new Map<string, string>()
    const rawAttrs = item[ATTRS_KEY]
    if (isRecord(rawAttrs)) {
      for (const [k, v] of Object.entries(rawAttrs)) attrs.set(k, decodeEntities(scalarText(v), true))
    }
    const childText: string[] = []
    const children = convertNodes(item[name], childText)
    const colon = name.indexOf(':')
    elements.push({
      name,
      prefix: colon < 0 ? '' : name.slice(0, colon),
      local: colon < 0 ? name : name.slice(colon + 1),
      attrs,
      children,
      text: childText.join('')
    })
  }
  return elements
}

/** Text of a body: UTF-8 (the only encoding SSP peers use), byte-order mark dropped. */
function bodyText (body: Uint8Array | string): string {
  if (typeof body === 'string') return body.charCodeAt(0) === 0xfeff ? body.slice(1) : body
  try {
    return utf8.decode(body)
  } catch (err) {
    return xmlError('body is not valid UTF-8', err)
  }
}

/** Well-formedness checks and parse to the document element. */
function parseDocument (text: string): XElement {
  // A DTD is never needed in SSP and is where entity-expansion attacks live.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) xmlError('DOCTYPE and ENTITY declarations are not accepted')
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) xmlError('control character not allowed in XML')
  const valid = XMLValidator.validate(text)
  if (valid !== true) {
    const { msg, line, col } = valid.err
    xmlError(`${msg} (line ${line}${col === undefined ? '' : `, column ${col}`})`)
  }
  // The validator accepts several top-level elements; XML does not.
  const roots = convertNodes(parser.parse(text), [])
  const root = roots[0]
  if (root === undefined) xmlError('no document element')
  if (roots.length > 1) xmlError('more than one document element')
  return root
}

function versionOf (root: XElement): SspVersion {
  if (root.local !== ROOT_ELEMENT) protocolError(`root element is ${root.name}, not ${ROOT_ELEMENT}`)
  const ns = root.attrs.get(root.prefix === '' ? 'xmlns' : `xmlns:${root.prefix}`)
  if (ns === SSP_NAMESPACE['1.3']) return SspVersion.V1_3
  if (ns === SSP_NAMESPACE['1.2']) return SspVersion.V1_2
  return protocolError(ns === undefined ? `${ROOT_ELEMENT} has no namespace` : `unknown namespace ${ns}`)
}

/** The one child called `local` (any prefix); a protocol error when absent or repeated. */
function onlyChild (el: XElement, local: string): XElement {
  let found: XElement | undefined
  for (const c of el.children) {
    if (c.local !== local) continue
    if (found !== undefined) protocolError(`${el.local} has more than one ${local}`)
    found = c
  }
  if (found === undefined) protocolError(`${el.local} has no ${local}`)
  return found
}

function requiredAttr (el: XElement, name: string): string {
  const v = el.attrs.get(name)
  if (v === undefined || v.length === 0) protocolError(`${el.local} has no ${name} attribute`)
  return v
}

function parseMode (el: XElement): Mode {
  const m = normaliseMode(requiredAttr(el, 'mode'))
  if (m === undefined) protocolError(`${el.local} mode is ${String(el.attrs.get('mode'))}, not Request or Response`)
  return m
}

/** `Request`/`Response` in any letter case; anything else is undefined. */
function normaliseMode (v: string): Mode | undefined {
  const l = v.toLowerCase()
  if (l === 'request') return Mode.REQUEST
  if (l === 'response') return Mode.RESPONSE
  return undefined
}

/** `wv:@<domain>` (any user part before `@` is tolerated and dropped). */
function domainOf (el: XElement): string {
  const sid = requiredAttr(el, 'serviceID')
  const at = sid.indexOf('@')
  const domain = at < 0 ? '' : sid.slice(at + 1)
  if (!sid.toLowerCase().startsWith('wv:') || domain.length === 0 || domain.includes('@')) {
    protocolError(`${el.local} serviceID ${sid} is not wv:@<domain>`)
  }
  return domain
}

function seconds (el: XElement, name: string): number | undefined {
  const v = el.attrs.get(name)
  if (v === undefined) return undefined
  return integerAttr(el, name, v)
}

function integerAttr (el: XElement, name: string, raw: string): number {
  // Surrounding blanks are tolerated: attribute values are not trimmed by the parser.
  const v = raw.trim()
  const n = /^[0-9]{1,15}$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n)) protocolError(`${el.local} ${name}="${v}" is not a non-negative integer`)
  return n
}

// base64 as Node writes it; whitespace is removed first because peers may wrap lines.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function base64Content (el: XElement): Buffer {
  const s = el.text.replace(/\s+/g, '')
  if (s.length === 0) protocolError(`${el.local} is empty`)
  if (s.length % 4 !== 0 || !BASE64.test(s)) protocolError(`${el.local} is not valid base64`)
  return Buffer.from(s, 'base64')
}

/** The optional `encoding` attribute: only base64 is known. */
function isBase64Encoded (el: XElement): boolean {
  const enc = el.attrs.get('encoding')
  if (enc === undefined) return false
  if (enc.toLowerCase() !== 'base64') protocolError(`${el.local} has unknown encoding ${enc}`)
  return true
}

/**
 * Parse a set-up message (ssp-notes 2). Accepts what real peers send: either
 * namespace version, any attribute order and quoting, namespace prefixes on
 * elements, a prologue, indentation, and a plain-text `SecretToken`.
 *
 * @throws SspError SSP_ERR_XML when the body is not well-formed XML (or has a
 *   DTD); SSP_ERR_SETUP_PROTOCOL when it is not a set-up message. Nothing else.
 */
export function parseSetup (body: Uint8Array | string): ParsedSetupMessage {
  try {
    return parseSetupUnchecked(body)
  } catch (err) {
    // fast-xml-parser throws plain Errors (e.g. for `__proto__` tag names);
    // callers are promised SspErrors only.
    if (isSspError(err)) throw err
    return xmlError(err instanceof Error ? err.message : 'XML parser failed', err)
  }
}

function parseSetupUnchecked (body: Uint8Array | string): ParsedSetupMessage {
  const root = parseDocument(bodyText(body))
  const version = versionOf(root)
  const setup = root.children.find((c) => c.local === 'SetupTransaction')
  if (setup === undefined) {
    const first = root.children[0]
    protocolError(first === undefined ? `${ROOT_ELEMENT} is empty` : `not a set-up message (found ${first.local})`)
  }
  if (root.children.length !== 1) protocolError(`${ROOT_ELEMENT} must hold exactly one SetupTransaction`)
  const mode = parseMode(setup)
  const transactionId = requiredAttr(setup, 'transactionID')
  if (setup.children.length !== 1) {
    protocolError(`SetupTransaction holds ${setup.children.length} primitives, expected exactly one`)
  }
  const prim = setup.children[0]!
  switch (prim.local) {
    case SetupKind.SEND_SECRET_TOKEN: {
      const domain = domainOf(prim)
      const tokenEl = onlyChild(prim, 'SecretToken')
      let secret: Buffer
      if (isBase64Encoded(tokenEl)) {
        secret = base64Content(tokenEl)
      } else {
        if (tokenEl.text.length === 0) protocolError('SecretToken is empty')
        secret = Buffer.from(tokenEl.text, 'utf8')
      }
      const protocolVersion = prim.attrs.get('version')
      return {
        kind: SetupKind.SEND_SECRET_TOKEN,
        mode,
        transactionId,
        version,
        domain,
        secret,
        ...(protocolVersion === undefined ? {} : { protocolVersion })
      }
    }
    case SetupKind.LOGIN_REQUEST: {
      const domain = domainOf(prim)
      const digestEl = onlyChild(prim, 'PasswordDigest')
      // The digest is binary, so it is base64 whether or not the peer says so.
      isBase64Encoded(digestEl)
      const digest = base64Content(digestEl)
      const timeToLive = seconds(prim, 'timeToLive')
      return {
        kind: SetupKind.LOGIN_REQUEST,
        mode,
        transactionId,
        version,
        domain,
        digest,
        ...(timeToLive === undefined ? {} : { timeToLive })
      }
    }
    case SetupKind.LOGIN_RESPONSE: {
      const sessionId = requiredAttr(prim, 'sessionID')
      const timeToLive = seconds(prim, 'timeToLive')
      const status = onlyChild(prim, 'Status')
      const statusCode = integerAttr(status, 'code', requiredAttr(status, 'code'))
      const statusDescription = status.attrs.get('description')
      return {
        kind: SetupKind.LOGIN_RESPONSE,
        mode,
        transactionId,
        version,
        sessionId,
        statusCode,
        ...(timeToLive === undefined ? {} : { timeToLive }),
        ...(statusDescription === undefined ? {} : { statusDescription })
      }
    }
    default:
      return protocolError(`unknown set-up primitive ${prim.name}`)
  }
}

// ---------------------------------------------------------------------------
// Peeking at envelope ids without a DOM
// ---------------------------------------------------------------------------

const LT = 0x3c
const GT = 0x3e
const SLASH = 0x2f
const BANG = 0x21
const QMARK = 0x3f
const EQ = 0x3d
const DQUOTE = 0x22
const SQUOTE = 0x27
const COLON = 0x3a

const isXmlSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d

const COMMENT_OPEN = Buffer.from('!--', 'latin1')
const COMMENT_CLOSE = Buffer.from('-->', 'latin1')
const CDATA_OPEN = Buffer.from('![CDATA[', 'latin1')
const CDATA_CLOSE = Buffer.from(']]>', 'latin1')
const PI_CLOSE = Buffer.from('?>', 'latin1')
const TAG_CLOSE = Buffer.from('>', 'latin1')

const NAME_SESSION = Buffer.from('Session', 'latin1')
const NAME_TRANSACTION = Buffer.from('Transaction', 'latin1')
const NAME_SETUP = Buffer.from('SetupTransaction', 'latin1')

/** Attributes `peekEnvelopeIds` reads; others are skipped without decoding. */
const WANTED_ATTRS = ['mode', 'transactionID', 'sessionID'] as const
type WantedAttr = typeof WANTED_ATTRS[number]

function startsWithAt (buf: Buffer, at: number, what: Buffer): boolean {
  if (at + what.length > buf.length) return false
  for (let i = 0; i < what.length; i++) if (buf[at + i] !== what[i]) return false
  return true
}

function equalsAt (buf: Buffer, start: number, end: number, what: Buffer): boolean {
  return end - start === what.length && startsWithAt(buf, start, what)
}

/** Position just past the next `what` at or after `from`, or the end of `buf`. */
function skipPast (buf: Buffer, from: number, what: Buffer): number {
  const i = buf.indexOf(what, from)
  return i < 0 ? buf.length : i + what.length
}

interface StartTag {
  /** Local name (after any prefix), as [start, end) in the buffer. */
  readonly localStart: number
  readonly localEnd: number
  readonly selfClosing: boolean
  /** Position just past the closing `>`. */
  readonly next: number
  readonly attrs: Partial<Record<WantedAttr, string>>
}

/**
 * Read the start tag whose name begins at `at` (just past `<`). Attribute
 * values are skipped with `indexOf` on their quote, so a `>` inside a value
 * does not end the tag. Returns undefined when the tag is cut off by the end
 * of the buffer or is not a tag at all; `next` then says where to resume.
 * Every byte is looked at once: the scan only ever moves forward.
 */
function readStartTag (buf: Buffer, at: number, wantAttrs: (localStart: number, localEnd: number) => boolean):
StartTag | { readonly next: number } {
  const n = buf.length
  let p = at
  let localStart = at
  while (p < n) {
    const c = buf[p]!
    if (isXmlSpace(c) || c === GT || c === SLASH) break
    if (c === LT) return { next: p } // `<` cannot be in a name: garbage, resume at the new `<`
    if (c === COLON) localStart = p + 1
    p++
  }
  const localEnd = p
  if (localEnd === at) return { next: at } // `< ` or `<>`: not a tag
  const want = wantAttrs(localStart, localEnd)
  const attrs: Partial<Record<WantedAttr, string>> = {}
  while (p < n) {
    while (p < n && isXmlSpace(buf[p])) p++
    const c = buf[p]
    if (c === undefined) break
    if (c === GT) return { localStart, localEnd, selfClosing: false, next: p + 1, attrs }
    if (c === SLASH) {
      if (buf[p + 1] === GT) return { localStart, localEnd, selfClosing: true, next: p + 2, attrs }
      p++
      continue
    }
    if (c === LT) return { next: p }
    // attribute name
    const nameStart = p
    while (p < n) {
      const d = buf[p]!
      if (isXmlSpace(d) || d === EQ || d === GT || d === SLASH || d === LT) break
      p++
    }
    const nameEnd = p
    while (p < n && isXmlSpace(buf[p])) p++
    if (buf[p] !== EQ) continue // attribute without value: tolerate, move on
    p++
    while (p < n && isXmlSpace(buf[p])) p++
    const q = buf[p]
    if (q !== DQUOTE && q !== SQUOTE) continue // unquoted value: the name loop will step over it
    const valueStart = p + 1
    const valueEnd = buf.indexOf(q, valueStart)
    if (valueEnd < 0) return { next: n } // value runs off the end
    if (want) {
      const name = buf.toString('latin1', nameStart, nameEnd)
      for (const w of WANTED_ATTRS) {
        // First occurrence wins, like the first of duplicate id headers.
        if (name === w && attrs[w] === undefined) {
          attrs[w] = decodeEntities(buf.toString('utf8', valueStart, valueEnd), false)
        }
      }
    }
    p = valueEnd + 1
  }
  return { next: n }
}

function peeked (attrs: Partial<Record<WantedAttr, string>>, contentStart: number, contentEnd: number): PeekedTransaction {
  return {
    mode: attrs.mode === undefined ? undefined : normaliseMode(attrs.mode),
    transactionId: attrs.transactionID,
    contentStart,
    contentEnd
  }
}

/**
 * Read the envelope ids of an SSP body without building a document: the
 * interop fallback for POSTs that lack `x-wv-*` headers (ssp-notes 3).
 *
 * Finds the first `Session` or `SetupTransaction` start tag (any namespace
 * prefix). For a `Session`, returns its `sessionID` and every `Transaction`
 * that is a direct child of it, stopping at `</Session>`; for a
 * `SetupTransaction`, returns it and stops. Comments, CDATA sections and
 * processing instructions are skipped, so ids in them are not picked up.
 * Attributes may come in any order, with either quote and whitespace around
 * `=`. Anything else, including garbage and an empty body, is kind `unknown`.
 *
 * Cost: one forward pass over at most the whole body (no backtracking, no
 * copy of the body); never throws.
 */
export function peekEnvelopeIds (body: Uint8Array): EnvelopeIds {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const n = buf.length
  let pos = 0
  let depth = 0
  let sessionDepth = -1
  let sessionId: string | undefined
  const transactions: PeekedTransaction[] = []
  // The Transaction (or SetupTransaction) whose end tag is still to come.
  let open: PeekedTransaction | undefined
  let openDepth = -1
  const sessionResult = (): EnvelopeIds =>
    sessionId === undefined
      ? { kind: EnvelopeKind.SESSION, transactions }
      : { kind: EnvelopeKind.SESSION, sessionId, transactions }
  const wantAttrs = (s: number, e: number): boolean =>
    sessionDepth < 0
      ? equalsAt(buf, s, e, NAME_SESSION) || equalsAt(buf, s, e, NAME_SETUP)
      : equalsAt(buf, s, e, NAME_TRANSACTION)

  while (pos < n) {
    const lt = buf.indexOf(LT, pos)
    if (lt < 0) break
    const c = buf[lt + 1]
    if (c === undefined) break
    if (c === QMARK) { pos = skipPast(buf, lt + 2, PI_CLOSE); continue }
    if (c === BANG) {
      if (startsWithAt(buf, lt + 1, COMMENT_OPEN)) pos = skipPast(buf, lt + 1 + COMMENT_OPEN.length, COMMENT_CLOSE)
      else if (startsWithAt(buf, lt + 1, CDATA_OPEN)) pos = skipPast(buf, lt + 1 + CDATA_OPEN.length, CDATA_CLOSE)
      else pos = skipPast(buf, lt + 2, TAG_CLOSE) // DOCTYPE or junk: to the next `>`
      continue
    }
    if (c === SLASH) {
      depth--
      if (open !== undefined && depth === openDepth) {
        open.contentEnd = lt
        open = undefined
        if (sessionDepth < 0) return { kind: EnvelopeKind.SETUP, transactions }
      }
      if (sessionDepth >= 0 && depth <= sessionDepth) return sessionResult()
      pos = skipPast(buf, lt + 2, TAG_CLOSE)
      continue
    }
    const tag = readStartTag(buf, lt + 1, wantAttrs)
    if (!('localStart' in tag)) { pos = Math.max(tag.next, lt + 1); continue }
    pos = tag.next
    const { localStart: s, localEnd: e } = tag
    if (sessionDepth < 0) {
      if (equalsAt(buf, s, e, NAME_SETUP)) {
        const t = peeked(tag.attrs, tag.next, tag.selfClosing ? tag.next : n)
        transactions.push(t)
        if (tag.selfClosing) return { kind: EnvelopeKind.SETUP, transactions }
        open = t
        openDepth = depth
      }
      if (equalsAt(buf, s, e, NAME_SESSION)) {
        sessionDepth = depth
        sessionId = tag.attrs.sessionID
        if (tag.selfClosing) return sessionResult()
      }
    } else if (depth === sessionDepth + 1 && equalsAt(buf, s, e, NAME_TRANSACTION)) {
      const t = peeked(tag.attrs, tag.next, tag.selfClosing ? tag.next : n)
      transactions.push(t)
      if (!tag.selfClosing) { open = t; openDepth = depth }
    }
    if (!tag.selfClosing) depth++
  }
  // Ran out of body: a truncated Session still yields the ids seen so far.
  if (sessionDepth >= 0) return sessionResult()
  return transactions.length > 0 ? { kind: EnvelopeKind.SETUP, transactions } : { kind: EnvelopeKind.UNKNOWN, transactions: [] }
}
