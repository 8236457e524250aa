/**
 * Example SSP payloads (ssp-notes section 2 shape) for the demo, `send` and
 * the benchmarks. The transport never looks inside them.
 */
const NS = 'http://www.openmobilealliance.org/DTD/WV-SSP1.3'

/**
 * A SendMessageRequest of about `size` bytes in a Session envelope. The
 * session and transaction ids inside the body are the sender's business;
 * dispatch uses the x-wv-* headers.
 */
export function sendMessageRequest (size: number, sessionId = 'S1', transactionId = 'T1'): Buffer {
  const head = `<WV-SSP-Message xmlns="${NS}"><Session sessionID="${sessionId}"><Transaction mode="Request" transactionID="${transactionId}">` +
    '<SendMessageRequest deliveryReport="No"><MessageInfo messageID="m1" contentType="text/plain" contentSize="'
  const tail = '</ContentData></SendMessageRequest></Transaction></Session></WV-SSP-Message>'
  const fixed = head.length + tail.length + 20
  const n = Math.max(1, size - fixed)
  const text = 'x'.repeat(n)
  return Buffer.from(`${head}${n}"/><ContentData>${text}${tail}`)
}

/** The matching SendMessageResponse with Status 200. */
export function sendMessageResponse (sessionId = 'S1', transactionId = 'T1'): Buffer {
  return Buffer.from(`<WV-SSP-Message xmlns="${NS}"><Session sessionID="${sessionId}"><Transaction mode="Response" transactionID="${transactionId}">` +
    '<SendMessageResponse><Status code="200"/></SendMessageResponse></Transaction></Session></WV-SSP-Message>')
}
