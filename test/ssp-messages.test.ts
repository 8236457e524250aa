import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { XMLValidator } from 'fast-xml-parser'
import { isSspError } from '../src/errors.js'
import {
  SSP_NAMESPACE,
  buildSession,
  buildSetup,
  digestMatches,
  newSecret,
  parseSetup,
  passwordDigest,
  peekEnvelopeIds,
  type ParsedSetupMessage,
  type SetupMessage,
  type SspVersion
} from '../src/ssp/messages.js'

/** The SspError code `fn` throws; a non-SspError is reported as such so the assertion fails. */
function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (isSspError(err)) return err.code
    return `not an SspError: ${String(err)}`
  }
  return 'did not throw'
}

function errorOf (fn: () => unknown): { code: string, message: string } {
  try {
    fn()
  } catch (err) {
    if (isSspError(err)) return { code: err.code, message: err.message }
    return { code: `not an SspError: ${String(err)}`, message: '' }
  }
  return { code: 'did not throw', message: '' }
}

const NS13 = 'http://www.openmobilealliance.org/DTD/WV-SSP1.3'
const NS12 = 'http://www.openmobilealliance.org/DTD/WV-SSP1.2'

const setup = (inner: string, ns = NS13): string =>
  `<WV-SSP-Message xmlns="${ns}"><SetupTransaction mode="Request" transactionID="t1">${inner}</SetupTransaction></WV-SSP-Message>`

t.test('namespaces are the ones in ssp-notes', async (t) => {
  t.equal(SSP_NAMESPACE['1.3'], NS13)
  t.equal(SSP_NAMESPACE['1.2'], NS12)
})

t.test('set-up round trip: every kind, both modes, both versions', async (t) => {
  const secret = Buffer.from('00ff10207f80fe01aabbccddeeff0102', 'hex')
  for (const version of ['1.3', '1.2'] as const satisfies readonly SspVersion[]) {
    for (const mode of ['Request', 'Response'] as const) {
      const messages: SetupMessage[] = [
        { kind: 'SendSecretToken', mode, transactionId: `tid_${mode}`, domain: 'a.example', secret },
        { kind: 'LoginRequest', mode, transactionId: '0000000042-7', domain: 'b.example', digest: passwordDigest(secret), timeToLive: 3600 },
        { kind: 'LoginRequest', mode, transactionId: 'T9', domain: 'b.example', digest: passwordDigest(secret) },
        { kind: 'LoginResponse', mode, transactionId: 'T10', sessionId: '5@a.example', timeToLive: 600, statusCode: 200 },
        { kind: 'LoginResponse', mode, transactionId: 'T11', sessionId: 's1', statusCode: 401, statusDescription: 'Unauthorized <"&\'>' }
      ]
      for (const msg of messages) {
        const body = buildSetup(msg, { version })
        const xml = body.toString('utf8')
        t.ok(xml.includes(`xmlns="${SSP_NAMESPACE[version]}"`), `${version} ${mode} ${msg.kind}: namespace`)
        t.equal(XMLValidator.validate(xml), true, `${msg.kind}: well-formed`)
        const expected: ParsedSetupMessage = msg.kind === 'SendSecretToken'
          ? { ...msg, version, protocolVersion: version }
          : { ...msg, version }
        t.strictSame(parseSetup(body), expected, `${version} ${mode} ${msg.kind}: round trip`)
        // The same body as a string parses the same.
        t.strictSame(parseSetup(xml), expected, `${version} ${mode} ${msg.kind}: string input`)
      }
    }
  }
})

t.test('SendSecretToken is base64 by default, plain on request', async (t) => {
  const msg: SetupMessage = { kind: 'SendSecretToken', mode: 'Request', transactionId: 't1', domain: 'a.example', secret: Buffer.from('abc') }
  t.equal(buildSetup(msg).toString(),
    '<?xml version="1.0" encoding="UTF-8"?><WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3">' +
    '<SetupTransaction mode="Request" transactionID="t1"><SendSecretToken serviceID="wv:@a.example" protocol="WV-SSP" version="1.3">' +
    '<SecretToken encoding="base64">YWJj</SecretToken></SendSecretToken></SetupTransaction></WV-SSP-Message>')
  const plain = buildSetup({ ...msg, secret: Buffer.from('s&<é') }, { secretEncoding: 'plain' }).toString()
  t.ok(plain.includes('<SecretToken>s&amp;&lt;é</SecretToken>'), plain)
  const back = parseSetup(plain)
  t.equal(back.kind, 'SendSecretToken')
  if (back.kind === 'SendSecretToken') t.strictSame(back.secret, Buffer.from('s&<é'))
  // Bytes that are not UTF-8, or that the parser would trim, cannot go as plain text.
  t.equal(codeOf(() => buildSetup({ ...msg, secret: Buffer.from([0xff, 0xfe]) }, { secretEncoding: 'plain' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...msg, secret: Buffer.from(' x') }, { secretEncoding: 'plain' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...msg, secret: Buffer.from('a\u0001') }, { secretEncoding: 'plain' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...msg, secret: Buffer.alloc(0) })), 'SSP_ERR_INVALID_ARGUMENT')
})

t.test('ids with XML specials and whitespace survive a round trip', async (t) => {
  const transactionId = `a&b<c>"d'e\tf\ng\rh`
  const body = buildSetup({ kind: 'LoginResponse', mode: 'Response', transactionId, sessionId: '5@a.example', statusCode: 200 })
  const xml = body.toString()
  t.ok(xml.includes('transactionID="a&amp;b&lt;c&gt;&quot;d&apos;e&#9;f&#10;g&#13;h"'), xml)
  t.equal(parseSetup(body).transactionId, transactionId)
})

t.test('builders refuse what XML cannot carry', async (t) => {
  const base = { kind: 'LoginResponse', mode: 'Request', transactionId: 't', sessionId: 's', statusCode: 200 } as const
  t.equal(codeOf(() => buildSetup({ ...base, transactionId: 'a\u0000b' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...base, sessionId: '\ud800' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...base, transactionId: '' })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...base, timeToLive: -1 })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...base, timeToLive: 1.5 })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup(base, { version: '1.1' as SspVersion })), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup({ ...base, mode: 'request' as 'Request' })), 'SSP_ERR_INVALID_ARGUMENT')
  // A JS caller passing an unknown kind still gets an SspError.
  t.equal(codeOf(() => buildSetup({ ...base, kind: 'Nope' } as unknown as SetupMessage)), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSetup(base)), 'did not throw')
})

t.test('parses set-up messages as a real (Baraza-style) peer writes them', async (t) => {
  t.test('plain-text SecretToken, single quotes, other attribute order, prologue, 1.2', async (t) => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<WV-SSP-Message xmlns='${NS12}'>
  <SetupTransaction transactionID='0000000042-7'
      mode='Response'>
    <SendSecretToken version="1.2" protocol="WV-SSP" serviceID="wv:@b.example">
      <SecretToken>s3cr3t-Token</SecretToken>
    </SendSecretToken>
  </SetupTransaction>
</WV-SSP-Message>
`
    t.strictSame(parseSetup(Buffer.from(xml)), {
      kind: 'SendSecretToken',
      mode: 'Response',
      transactionId: '0000000042-7',
      version: '1.2',
      domain: 'b.example',
      secret: Buffer.from('s3cr3t-Token'),
      protocolVersion: '1.2'
    })
  })

  t.test('base64 SecretToken wrapped over lines, byte-order mark', async (t) => {
    const secret = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex')
    const b64 = secret.toString('base64')
    const xml = `\uFEFF<?xml version="1.0"?>\r\n<WV-SSP-Message xmlns="${NS13}"><SetupTransaction mode="Request" transactionID="t7">` +
      `<SendSecretToken serviceID="wv:@a.example" protocol="WV-SSP" version="1.3"><SecretToken encoding="Base64">\n  ` +
      `${b64.slice(0, 10)}\n  ${b64.slice(10)}\n</SecretToken></SendSecretToken></SetupTransaction></WV-SSP-Message>`
    const msg = parseSetup(Buffer.from(xml, 'utf8'))
    t.equal(msg.kind, 'SendSecretToken')
    if (msg.kind === 'SendSecretToken') t.strictSame(msg.secret, secret)
  })

  t.test('LoginRequest: digest of the peer secret', async (t) => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<WV-SSP-Message xmlns="${NS13}">
 <SetupTransaction mode="Request" transactionID="T3">
  <LoginRequest timeToLive = '3600' serviceID = "wv:@a.example">
   <PasswordDigest encoding="base64">Xr4ilOzQ4PCOq3aQ0qbuaQ==</PasswordDigest>
  </LoginRequest>
 </SetupTransaction>
</WV-SSP-Message>`
    const msg = parseSetup(xml)
    t.strictSame(msg, {
      kind: 'LoginRequest',
      mode: 'Request',
      transactionId: 'T3',
      version: '1.3',
      domain: 'a.example',
      digest: Buffer.from('5ebe2294ecd0e0f08eab7690d2a6ee69', 'hex'),
      timeToLive: 3600
    })
    if (msg.kind === 'LoginRequest') {
      t.equal(digestMatches(Buffer.from('secret'), msg.digest), true)
      t.equal(digestMatches(Buffer.from('Secret'), msg.digest), false)
    }
  })

  t.test('LoginResponse with namespace prefixes and a status description', async (t) => {
    const xml = `<ssp:WV-SSP-Message xmlns:ssp="${NS13}">
  <ssp:SetupTransaction mode="Response" transactionID="T4">
    <ssp:LoginResponse timeToLive=" 600 " sessionID="7@b.example">
      <ssp:Status description="OK &amp; fine" code="200"/>
    </ssp:LoginResponse>
  </ssp:SetupTransaction>
</ssp:WV-SSP-Message>`
    t.strictSame(parseSetup(xml), {
      kind: 'LoginResponse',
      mode: 'Response',
      transactionId: 'T4',
      version: '1.3',
      sessionId: '7@b.example',
      statusCode: 200,
      timeToLive: 600,
      statusDescription: 'OK & fine'
    })
  })

  t.test('CDATA content is taken literally', async (t) => {
    const msg = parseSetup(setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken><![CDATA[a&amp;<b]]></SecretToken></SendSecretToken>'))
    t.equal(msg.kind, 'SendSecretToken')
    if (msg.kind === 'SendSecretToken') t.equal(msg.secret.toString(), 'a&amp;<b')
  })

  t.test('character references and comments', async (t) => {
    const xml = `<!-- hello --><WV-SSP-Message xmlns="${NS13}"><!-- c --><SetupTransaction mode="request" transactionID="&#84;&#x31;">` +
      '<LoginResponse sessionID="s&lt;1"><Status code="503"/></LoginResponse></SetupTransaction></WV-SSP-Message>'
    const msg = parseSetup(xml)
    t.equal(msg.mode, 'Request')
    t.equal(msg.transactionId, 'T1')
    t.equal(msg.kind, 'LoginResponse')
    if (msg.kind === 'LoginResponse') {
      t.equal(msg.sessionId, 's<1')
      t.equal(msg.statusCode, 503)
      t.equal(msg.timeToLive, undefined)
    }
  })
})

t.test('password digest', async (t) => {
  // Known vector, computed independently: md5("secret") = 5ebe2294ecd0e0f08eab7690d2a6ee69.
  const secret = Buffer.from('secret')
  const d = passwordDigest(secret)
  t.equal(d.length, 16)
  t.equal(d.toString('base64'), 'Xr4ilOzQ4PCOq3aQ0qbuaQ==')
  t.equal(d.toString('base64'), createHash('md5').update('secret').digest('base64'))
  t.equal(passwordDigest(Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex')).toString('base64'), 'GsHvAelsrxvg0ykzGk/CqA==')

  t.equal(digestMatches(secret, d), true)
  const wrong = Buffer.from(d)
  wrong[15] = wrong[15]! ^ 1
  t.equal(digestMatches(secret, wrong), false)
  t.equal(digestMatches(secret, d.subarray(0, 15)), false, 'shorter digest is false, not a throw')
  t.equal(digestMatches(secret, Buffer.concat([d, Buffer.of(0)])), false, 'longer digest is false, not a throw')
  t.equal(digestMatches(secret, Buffer.alloc(0)), false)

  const a = newSecret()
  const b = newSecret()
  t.equal(a.length, 16)
  t.not(a.toString('hex'), b.toString('hex'))
})

/** peekEnvelopeIds without the content offsets (tested on their own below). */
function idsOnly (body: Uint8Array): { kind: string, sessionId?: string, transactions: Array<{ mode: string | undefined, transactionId: string | undefined }> } {
  const r = peekEnvelopeIds(body)
  return { ...r, transactions: r.transactions.map(({ mode, transactionId }) => ({ mode, transactionId })) }
}

t.test('buildSession', async (t) => {
  t.equal(buildSession('5@a.example', [{ mode: 'Request', transactionId: 'T42', inner: '<SendMessageRequest deliveryReport="No"/>' }]).toString(),
    `<?xml version="1.0" encoding="UTF-8"?><WV-SSP-Message xmlns="${NS13}"><Session sessionID="5@a.example">` +
    '<Transaction mode="Request" transactionID="T42"><SendMessageRequest deliveryReport="No"/></Transaction></Session></WV-SSP-Message>')
  const batch = buildSession('s&1', [
    { mode: 'Response', transactionId: 'T1', inner: '<SendMessageResponse><Status code="200"/></SendMessageResponse>' },
    { mode: 'Request', transactionId: 'T2', inner: '<Status code="200"/>' }
  ], { version: '1.2' }).toString()
  t.ok(batch.includes(`xmlns="${NS12}"`))
  t.ok(batch.includes('<Session sessionID="s&amp;1">'))
  t.equal(XMLValidator.validate(batch), true)
  t.strictSame(idsOnly(Buffer.from(batch)), {
    kind: 'session',
    sessionId: 's&1',
    transactions: [{ mode: 'Response', transactionId: 'T1' }, { mode: 'Request', transactionId: 'T2' }]
  })
  t.equal(codeOf(() => buildSession('s', [])), 'SSP_ERR_INVALID_ARGUMENT')
  t.equal(codeOf(() => buildSession('', [{ mode: 'Request', transactionId: 'T', inner: '' }])), 'SSP_ERR_INVALID_ARGUMENT')
  // A Session body is not a set-up message.
  t.equal(codeOf(() => parseSetup(batch)), 'SSP_ERR_SETUP_PROTOCOL')
})

t.test('peekEnvelopeIds', async (t) => {
  const peek = (s: string): ReturnType<typeof idsOnly> => idsOnly(Buffer.from(s, 'utf8'))

  t.strictSame(peek(`<?xml version="1.0" encoding="UTF-8"?>
<WV-SSP-Message xmlns="${NS13}">
  <Session sessionID="5@a.example">
    <Transaction mode="Request" transactionID="T42">
      <SendMessageRequest deliveryReport="No">
        <MessageInfo messageID="m1" contentType="text/plain" contentSize="5"/>
        <ContentData>hello</ContentData>
      </SendMessageRequest>
    </Transaction>
  </Session>
</WV-SSP-Message>`), { kind: 'session', sessionId: '5@a.example', transactions: [{ mode: 'Request', transactionId: 'T42' }] })

  t.test('three batched transactions, attribute order and quoting vary', async (t) => {
    t.strictSame(peek(`<WV-SSP-Message xmlns="${NS13}"><Session sessionID='0000000042-7'>` +
      '<Transaction transactionID="a1" mode="Response"><SendMessageResponse><Status code="200"/></SendMessageResponse></Transaction>' +
      "<Transaction\n\tmode = 'Request'\n\ttransactionID = 'a2'\n><Status code='200'/></Transaction>" +
      '<Transaction mode="Response" transactionID="a3"/>' +
      '</Session></WV-SSP-Message>'), {
      kind: 'session',
      sessionId: '0000000042-7',
      transactions: [
        { mode: 'Response', transactionId: 'a1' },
        { mode: 'Request', transactionId: 'a2' },
        { mode: 'Response', transactionId: 'a3' }
      ]
    })
  })

  t.test('namespace prefixes', async (t) => {
    t.strictSame(peek(`<ssp:WV-SSP-Message xmlns:ssp="${NS13}"><ssp:Session sessionID="5@a.example">` +
      '<ssp:Transaction mode="Request" transactionID="0000000042-7"><ssp:Status code="200"/></ssp:Transaction>' +
      '</ssp:Session></ssp:WV-SSP-Message>'),
    { kind: 'session', sessionId: '5@a.example', transactions: [{ mode: 'Request', transactionId: '0000000042-7' }] })
  })

  t.test('set-up transaction', async (t) => {
    t.strictSame(peek(setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken>x</SecretToken></SendSecretToken>')),
      { kind: 'setup', transactions: [{ mode: 'Request', transactionId: 't1' }] })
    const built = buildSetup({ kind: 'LoginRequest', mode: 'Response', transactionId: 'T5', domain: 'b.example', digest: Buffer.alloc(16) })
    t.strictSame(idsOnly(built), { kind: 'setup', transactions: [{ mode: 'Response', transactionId: 'T5' }] })
  })

  t.test('ignores look-alikes: nested Transaction, comments, CDATA, longer names, > in values', async (t) => {
    t.strictSame(peek('<!-- <Session sessionID="no"> --><WV-SSP-Message><SessionX sessionID="no"/>' +
      '<Session sessionID="yes"><Transaction mode="Request" transactionID="T1" note="a>b">' +
      '<X><Transaction mode="Request" transactionID="nested"/></X><![CDATA[<Transaction mode="Request" transactionID="cdata">]]>' +
      '</Transaction><!-- <Transaction mode="Request" transactionID="comment"> --><TransactionX mode="Request" transactionID="x"/>' +
      '<Transaction transactionID="T&amp;2" mode="RESPONSE"></Transaction></Session>' +
      '<Session sessionID="second"><Transaction mode="Request" transactionID="after"/></Session></WV-SSP-Message>'), {
      kind: 'session',
      sessionId: 'yes',
      transactions: [{ mode: 'Request', transactionId: 'T1' }, { mode: 'Response', transactionId: 'T&2' }]
    })
  })

  t.test('unknown entity references in ids are kept as written, not thrown', async (t) => {
    t.strictSame(peek('<Session sessionID="a&foo;b&#0;&"><Transaction mode="Request" transactionID="&#x54;&lt;"/></Session>'),
      { kind: 'session', sessionId: 'a&foo;b&#0;&', transactions: [{ mode: 'Request', transactionId: 'T<' }] })
  })

  t.test('missing and odd attributes are reported, not dropped', async (t) => {
    t.strictSame(peek('<Session><Transaction mode="Maybe"/><Transaction transactionID="T"/></Session>'), {
      kind: 'session',
      transactions: [{ mode: undefined, transactionId: undefined }, { mode: undefined, transactionId: 'T' }]
    })
    t.strictSame(peek('<Session sessionID="s"/>'), { kind: 'session', sessionId: 's', transactions: [] })
  })

  t.test('truncated body keeps what was seen', async (t) => {
    t.strictSame(peek('<Session sessionID="s"><Transaction mode="Request" transactionID="T1"><Foo>bar</Foo></Transaction><Transaction mode="Req'),
      { kind: 'session', sessionId: 's', transactions: [{ mode: 'Request', transactionId: 'T1' }] })
  })

  t.test('garbage and empty', async (t) => {
    t.strictSame(idsOnly(Buffer.alloc(0)), { kind: 'unknown', transactions: [] })
    t.strictSame(peek('hello world'), { kind: 'unknown', transactions: [] })
    t.strictSame(peek('<<<>>></></ <!-- <? <![CDATA[ "\''), { kind: 'unknown', transactions: [] })
    t.strictSame(peek(`<WV-SSP-Message xmlns="${NS13}"/>`), { kind: 'unknown', transactions: [] })
    t.strictSame(idsOnly(Buffer.from([0x3c, 0xff, 0x00, 0x3c, 0x2f])), { kind: 'unknown', transactions: [] })
  })

  t.test('plain Uint8Array input', async (t) => {
    const u8 = new Uint8Array(Buffer.from('xx<Session sessionID="s"><Transaction mode="Request" transactionID="T"/></Session>'))
    t.strictSame(idsOnly(u8.subarray(2)), { kind: 'session', sessionId: 's', transactions: [{ mode: 'Request', transactionId: 'T' }] })
  })

  t.test('pathological inputs stay linear', async (t) => {
    // [input, expected kind, expected transaction count]; each is ~2 MB and
    // would take minutes if the scanner backtracked or rescanned. No
    // wall-clock assertion (shared machines): a quadratic scanner trips the
    // suite's per-file timeout instead.
    const cases: Array<[string, string, number]> = [
      ['<Session sessionID="' + 'a'.repeat(2_000_000), 'unknown', 0], // start tag never closes
      ['<Session a=' + '='.repeat(2_000_000), 'unknown', 0],
      ['<'.repeat(2_000_000), 'unknown', 0],
      ['<a b="c" '.repeat(200_000), 'unknown', 0],
      ['<Session>' + '<Transaction '.repeat(200_000), 'session', 0],
      ['<!--' + '-'.repeat(2_000_000), 'unknown', 0],
      ['<Session>' + '<Transaction mode="Request" transactionID="T"/>'.repeat(50_000) + '</Session>', 'session', 50_000]
    ]
    for (const [input, kind, count] of cases) {
      const body = Buffer.from(input)
      const r = peekEnvelopeIds(body)
      const label = JSON.stringify(input.slice(0, 24))
      t.equal(r.kind, kind, `${label}: kind`)
      t.equal(r.transactions.length, count, `${label}: transactions`)
    }
  })
})

t.test('peekEnvelopeIds property tests', async (t) => {
  t.doesNotThrow(() => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const r = peekEnvelopeIds(Buffer.from(bytes))
      return ['setup', 'session', 'unknown'].includes(r.kind) && Array.isArray(r.transactions)
    }), { seed: 42, numRuns: 300 })
  }, 'random bytes never throw')

  // Bytes built from XML-ish tokens reach the scanner's corners far more often than random bytes.
  const token = fc.constantFrom('<', '>', '/', '/>', '"', "'", '=', ' ', '\n', '<!--', '-->', '<![CDATA[', ']]>', '<?', '?>',
    'Session', 'Transaction', 'SetupTransaction', 'ssp:', 'sessionID', 'mode', 'transactionID', 'Request', '&amp;', '&', 'é')
  t.doesNotThrow(() => {
    fc.assert(fc.property(fc.array(token, { maxLength: 80 }), (parts) => {
      const r = peekEnvelopeIds(Buffer.from(parts.join('')))
      return ['setup', 'session', 'unknown'].includes(r.kind)
    }), { seed: 42, numRuns: 300 })
  }, 'XML-ish token soup never throws')

  // Whatever buildSession writes, peek reads back.
  const id = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '9', '_', '@', '-', '.', '&', '<', '"', "'", '>'), minLength: 1, maxLength: 12 })
  const tr = fc.record({ mode: fc.constantFrom('Request' as const, 'Response' as const), transactionId: id })
  fc.assert(fc.property(id, fc.array(tr, { minLength: 1, maxLength: 5 }), (sid, trs) => {
    const body = buildSession(sid, trs.map((x) => ({ ...x, inner: '<Status code="200"/>' })))
    const r = peekEnvelopeIds(body)
    return r.kind === 'session' && r.sessionId === sid && r.transactions.length === trs.length &&
      r.transactions.every((x, i) => x.transactionId === trs[i]?.transactionId && x.mode === trs[i]?.mode)
  }), { seed: 42, numRuns: 300 })
})

t.test('parseSetup rejects bad input with the right code', async (t) => {
  const secretToken = '<SendSecretToken serviceID="wv:@a.example"><SecretToken>x</SecretToken></SendSecretToken>'
  // Sanity: the fixture itself is fine, so each failure below is due to the one change.
  t.equal(parseSetup(setup(secretToken)).kind, 'SendSecretToken')

  const xmlErrors: Array<[string, string | Buffer, RegExp]> = [
    ['mismatched tags', `<WV-SSP-Message xmlns="${NS13}"><SetupTransaction></WV-SSP-Message>`, /Expected closing tag/],
    ['not XML', 'hello', /not expected/],
    ['empty', '', /Start tag expected/],
    ['truncated', setup(secretToken).slice(0, 60), /./],
    ['two roots', `${setup(secretToken)}<x/>`, /more than one document element/],
    ['billion laughs', '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' +
      `<WV-SSP-Message xmlns="${NS13}">&lol2;</WV-SSP-Message>`, /DOCTYPE/],
    ['external entity', `<!DOCTYPE x SYSTEM "file:///etc/passwd"><WV-SSP-Message xmlns="${NS13}"/>`, /DOCTYPE/],
    ['undeclared entity', setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken>&foo;</SecretToken></SendSecretToken>'), /&foo;/],
    ['undeclared entity in attribute', setup('<SendSecretToken serviceID="wv:@&foo;"><SecretToken>x</SecretToken></SendSecretToken>'), /&foo;/],
    ['invalid char reference', setup('<SendSecretToken serviceID="wv:@a"><SecretToken>&#0;</SecretToken></SendSecretToken>'), /&#0;/],
    ['control character', setup('<SendSecretToken serviceID="wv:@a"><SecretToken>a\u0001</SecretToken></SendSecretToken>'), /control character/],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`<WV-SSP-Message xmlns="${NS13}">`), Buffer.of(0xc3, 0x28), Buffer.from('</WV-SSP-Message>')]), /UTF-8/],
    ['prototype-polluting tag name', '<__proto__ a="1"/>', /./],
    ['nesting bomb', '<a>'.repeat(10_000) + '</a>'.repeat(10_000), /./]
  ]
  for (const [name, body, re] of xmlErrors) {
    const err = errorOf(() => parseSetup(body))
    t.equal(err.code, 'SSP_ERR_XML', name)
    t.match(err.message, re, `${name}: message says why`)
  }

  const protocolErrors: Array<[string, string, RegExp]> = [
    ['wrong root', `<Foo xmlns="${NS13}"><SetupTransaction mode="Request" transactionID="t1">${secretToken}</SetupTransaction></Foo>`, /root element is Foo/],
    ['unknown namespace', setup(secretToken, 'http://www.openmobilealliance.org/DTD/WV-CSP1.3'), /unknown namespace/],
    ['no namespace', `<WV-SSP-Message><SetupTransaction mode="Request" transactionID="t1">${secretToken}</SetupTransaction></WV-SSP-Message>`, /no namespace/],
    ['unknown primitive', setup('<KeepAliveRequest/>'), /unknown set-up primitive KeepAliveRequest/],
    ['no primitive', setup(''), /0 primitives/],
    ['two primitives', setup(secretToken + secretToken), /2 primitives/],
    ['a Session, not set-up', `<WV-SSP-Message xmlns="${NS13}"><Session sessionID="s"/></WV-SSP-Message>`, /found Session/],
    ['empty root', `<WV-SSP-Message xmlns="${NS13}"/>`, /is empty/],
    ['bad mode', setup(secretToken).replace('mode="Request"', 'mode="Push"'), /mode is Push/],
    ['no transactionID', setup(secretToken).replace(' transactionID="t1"', ''), /no transactionID/],
    ['bad serviceID', setup(secretToken.replace('wv:@a.example', 'a.example')), /serviceID/],
    ['no SecretToken', setup('<SendSecretToken serviceID="wv:@a.example"/>'), /no SecretToken/],
    ['empty SecretToken', setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken> </SecretToken></SendSecretToken>'), /empty/],
    ['bad base64', setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken encoding="base64">ab$d</SecretToken></SendSecretToken>'), /base64/],
    ['unknown encoding', setup('<SendSecretToken serviceID="wv:@a.example"><SecretToken encoding="hex">abcd</SecretToken></SendSecretToken>'), /encoding hex/],
    ['no PasswordDigest', setup('<LoginRequest serviceID="wv:@a.example"/>'), /no PasswordDigest/],
    ['bad timeToLive', setup('<LoginRequest serviceID="wv:@a.example" timeToLive="-5"><PasswordDigest>AAAA</PasswordDigest></LoginRequest>'), /timeToLive/],
    ['no Status', setup('<LoginResponse sessionID="s"/>'), /no Status/],
    ['no sessionID', setup('<LoginResponse><Status code="200"/></LoginResponse>'), /no sessionID/],
    ['bad status code', setup('<LoginResponse sessionID="s"><Status code="OK"/></LoginResponse>'), /code/]
  ]
  for (const [name, body, re] of protocolErrors) {
    const err = errorOf(() => parseSetup(body))
    t.equal(err.code, 'SSP_ERR_SETUP_PROTOCOL', name)
    t.match(err.message, re, `${name}: message says why`)
  }
})

t.test('parseSetup throws only SspErrors (property)', async (t) => {
  const allowed = new Set(['SSP_ERR_XML', 'SSP_ERR_SETUP_PROTOCOL', 'did not throw'])
  const bytes = fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b))
  const token = fc.constantFrom('<', '>', '/>', '</', '"', '=', ' ', '&', '&amp;', '&#65;', '<!--', '-->', '<![CDATA[', ']]>',
    `<WV-SSP-Message xmlns="${NS13}">`, '</WV-SSP-Message>', '<SetupTransaction mode="Request" transactionID="t">', '</SetupTransaction>',
    '<SendSecretToken serviceID="wv:@a">', '</SendSecretToken>', '<SecretToken>', '</SecretToken>', 'x', '__proto__', 'constructor')
  const soup = fc.array(token, { maxLength: 40 }).map((p) => p.join(''))
  // Well-formed shells with a random primitive inside reach the structural checks.
  const primitive = fc.constantFrom('SendSecretToken', 'LoginRequest', 'LoginResponse', 'Status', 'SecretToken', 'Other')
  const attr = fc.constantFrom('', ' serviceID="wv:@a"', ' serviceID="x"', ' sessionID="s"', ' timeToLive="9"', ' timeToLive="x"',
    ' code="200"', ' encoding="base64"', ' encoding="hex"')
  type Node = { tag: string, attrs: string[], text: string, children: Node[] }
  const leaf = fc.record({ tag: primitive, attrs: fc.array(attr, { maxLength: 2 }), text: fc.constantFrom('', 'QUJD', 'x$', ' '), children: fc.constant([] as Node[]) })
  const node = fc.record({ tag: primitive, attrs: fc.array(attr, { maxLength: 3 }), text: fc.constant(''), children: fc.array(leaf, { maxLength: 2 }) })
  const render = (n: Node): string => `<${n.tag}${n.attrs.join('')}>${n.text}${n.children.map(render).join('')}</${n.tag}>`
  const shell = fc.array(node, { maxLength: 2 }).map((ns) => setup(ns.map(render).join('')))
  const codes = new Set<string>()
  fc.assert(fc.property(fc.oneof(bytes, soup, shell), (input) => {
    const code = codeOf(() => parseSetup(input))
    codes.add(code)
    return allowed.has(code)
  }), { seed: 42, numRuns: 300 })
  // Both kinds of failure were actually exercised.
  t.ok(codes.has('SSP_ERR_XML'), [...codes].join(','))
  t.ok(codes.has('SSP_ERR_SETUP_PROTOCOL'), [...codes].join(','))
})
