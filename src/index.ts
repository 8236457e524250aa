/**
 * ssp-transport: the OMA IMPS SSP transport binding (HTTP/1.1 connection
 * pairs, pipelined POSTs, dummy 200s) on raw sockets and llhttp.
 *
 * The public API: the node, the wire server and client, errors and their
 * codes, the envelope and payload helpers, resolvers, and their types.
 * Parser plumbing (the framers, llhttp, set-up message builders, id
 * generators) is internal: it is not exported here and may change.
 */

// Errors: every failure is an SspError with a stable code (README "Error codes").
export { isSspError, SspError, ERRORS, type ErrorCode } from './errors.js'

// SSP layer: the node
export { SspNode, createNode, Answer, type RequestOptions, type NodeStats } from './ssp/node.js'
export {
  NODE_DEFAULTS, TransactionKind, type SspNodeOptions, type ListenSpec, type IncomingTransaction, type IncomingHandler,
  type EnvelopeIds, type RawBody, type SspNodeEvents, type SessionEvent, type SessionEndEvent, type SetupErrorEvent
} from './ssp/options.js'
export { Role, type Session } from './ssp/session.js'
export { srvResolver, staticResolver, chainResolvers, type PeerEntry, type Resolver, type StaticPeers } from './ssp/directory.js'
export { EnvelopeWriter, primitiveView, primitiveName, type Primitive } from './ssp/envelope.js'
export { peekEnvelopeIds, SspVersion } from './ssp/messages.js'
export { sendMessageRequest, sendMessageRequests, sendMessageResponse, messageIdOf, type SendMessageOptions } from './ssp/payload.js'

// Wire layer: the HTTP/1.1 server and client
export { WireServer, createWireServer, type WireServerStats } from './wire/server.js'
export {
  SERVER_DEFAULTS, type WireServerOptions, type RequestHandler, type Posture, type TlsServerOptions
} from './wire/server-options.js'
export type { ServerConnection } from './wire/server-connection.js'
export type { SspRequest } from './wire/request.js'
export { Deviation, DEVIATION_NAMES } from './wire/request.js'
export { type WireStatsSnapshot } from './wire/stats.js'
export { WireClient, type WireClientOptions, type WireCallback, type WireClientStats, type WireRequestError, type WireRequestInfo, type WireBody } from './wire/client.js'
export { ContentType, type ContentTypeClass, CONTENT_TYPE_13, CONTENT_TYPE_12, isIdString } from './wire/header-bytes.js'
