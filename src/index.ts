/**
 * ssp-transport: the OMA IMPS SSP transport binding (HTTP/1.1 connection
 * pairs, pipelined POSTs, dummy 200s) on raw sockets and llhttp.
 */
export { createError, isSspError, SspError, ERRORS, type ErrorCode } from './errors.js'
export { ContentType, type ContentTypeClass, CONTENT_TYPE_13, CONTENT_TYPE_12, isIdString } from './wire/header-bytes.js'
export { SspRequest, Deviation, DEVIATION_NAMES } from './wire/request.js'
export { RequestFramer, FramerState, type FramerSink, type FramerOptions } from './wire/request-framer.js'
export { ServerConnection } from './wire/server-connection.js'
export { WireServer, createWireServer, type WireServerStats } from './wire/server.js'
export {
  SERVER_DEFAULTS, type WireServerOptions, type RequestHandler, type Posture, type TlsServerOptions
} from './wire/server-options.js'
export { type WireStatsSnapshot } from './wire/stats.js'
export { llhttpBuild } from './wire/llhttp.js'
export { WireClient, type WireClientOptions, type WireCallback, type WireClientStats, type WireRequestError, type WireRequestInfo } from './wire/client.js'

// SSP layer
export { SspNode, createNode, Answer, type RequestOptions, type NodeStats } from './ssp/node.js'
export {
  NODE_DEFAULTS, TransactionKind, type SspNodeOptions, type ListenSpec, type IncomingTransaction, type IncomingHandler,
  type EnvelopeIds, type RawBody, type SspNodeEvents, type SessionEvent, type SessionEndEvent, type SetupErrorEvent
} from './ssp/options.js'
export { Role, Session } from './ssp/session.js'
export { srvResolver, staticResolver, chainResolvers, type PeerEntry, type Resolver, type StaticPeers } from './ssp/directory.js'
export {
  buildSetup, parseSetup, buildSession, peekEnvelopeIds, passwordDigest, digestMatches, newSecret,
  SetupKind, Mode, SspVersion, SSP_NAMESPACE, type SetupMessage, type ParsedSetupMessage
} from './ssp/messages.js'
export { TransactionIds, newSessionId } from './ssp/ids.js'
export { sendMessageRequest, sendMessageRequests, sendMessageResponse, messageIdOf, type SendMessageOptions } from './ssp/payload.js'
export { EnvelopeWriter, primitiveView, primitiveName, type Primitive } from './ssp/envelope.js'
