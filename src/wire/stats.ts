/**
 * Counters, per connection and per server. Plain numeric fields so the hot
 * path is an increment; the two maps are only touched on error and interop
 * paths. `snapshot()` gives a copy safe to hand out.
 */
import { DEVIATION_NAMES } from './request.js'

export interface WireStatsSnapshot {
  requests: number
  acknowledged: number
  bytesIn: number
  bytesOut: number
  /** Socket reads (data events): with `requests`, how many requests a read brings. */
  reads: number
  /** Writes handed to the socket (the 200s of one turn are one): with `requests`, how well the 200s coalesce. */
  writes: number
  /** Refused requests and connection-level failures, by stable error code. */
  errors: Record<string, number>
  /** Deviations accepted in the interop posture, by kind. */
  interop: Record<string, number>
  /** Handler threw or its promise rejected (the request had been accepted). */
  handlerErrors: number
  /** Requests parsed but never acknowledged because the connection closed first. */
  unacknowledgedDropped: number
  /** Connections closed in the middle of a request. */
  incompleteRequests: number
  /** Times reading was paused for backpressure (application queue full or peer not reading). */
  backpressurePauses: number
}

export class WireStats {
  requests = 0
  acknowledged = 0
  bytesIn = 0
  bytesOut = 0
  reads = 0
  writes = 0
  handlerErrors = 0
  unacknowledgedDropped = 0
  incompleteRequests = 0
  backpressurePauses = 0
  errors: Record<string, number> = {}
  interop: Record<string, number> = {}

  countError (code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1
  }

  countDeviations (bits: number): void {
    for (const [bit, name] of Object.entries(DEVIATION_NAMES)) {
      if ((bits & Number(bit)) !== 0) this.interop[name] = (this.interop[name] ?? 0) + 1
    }
  }

  snapshot (): WireStatsSnapshot {
    return {
      requests: this.requests,
      acknowledged: this.acknowledged,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      reads: this.reads,
      writes: this.writes,
      errors: { ...this.errors },
      interop: { ...this.interop },
      handlerErrors: this.handlerErrors,
      unacknowledgedDropped: this.unacknowledgedDropped,
      incompleteRequests: this.incompleteRequests,
      backpressurePauses: this.backpressurePauses
    }
  }
}
