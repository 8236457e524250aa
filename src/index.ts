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
