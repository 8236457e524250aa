/**
 * The session set-up (ssp-notes section 2, corrected by baraza/README.md) as
 * messages only: what each step sends, and how the next step is recognised
 * and checked. No sockets, no timers: the node (setup.ts), the conformance
 * lab, the fault server and the test real peer drive the same two state
 * machines over their own transports, and differ only in their policy.
 *
 *   initiator (SetupInitiator)                responder (SetupResponder)
 *   1 SendSecretToken(Request, our secret)  ─▶
 *                                           ◀─ 3 SendSecretToken(Response, its secret)
 *   4 LoginRequest(Request, md5(its secret)) ─▶
 *                                           ◀─ 5 LoginRequest(Response, md5(our secret))
 *   6 LoginResponse(Request, our session id) ─▶
 *                                           ◀─ 7 LoginResponse(Response, its session id)
 *
 * The initiator uses one transaction id for steps 1, 4 and 6 (Baraza finds
 * the set-up by it); the responder answers steps 5 and 7 with the id of the
 * step they answer, and step 3 with step 1's (unless told to commit the
 * real peers' deviation of an id of its own).
 *
 * A policy says what to accept (the posture: a step 3 with a transaction id
 * of its own, session ids outside the 5.6 grammar) and, for the test
 * instruments, which deviations to commit (a wrong digest, a step 3 id of
 * its own, secrets kept as C strings). Every check that fails throws an
 * SspError; the caller decides what a failure looks like on its wire (the
 * node fails the set-up, Baraza-like peers close the connection).
 */
import { createError } from '../errors.js'
import { isIdString } from '../wire/header-bytes.js'
import {
  digestMatches, Mode, newPrintableSecret, passwordDigest, SetupKind,
  type LoginRequestMessage, type LoginResponseMessage, type ParsedSetupMessage, type SendSecretTokenMessage
} from './messages.js'

/** Deviations from the binding a set-up may accept (the posture). All off: strict. */
export interface SetupAcceptance {
  /** A step 3 whose transactionID is not step 1's (real peers; ssp-notes 3). Off: SSP_ERR_SETUP_PROTOCOL, S-005. */
  foreignStep3Tid?: boolean
  /** A peer session id outside 1*(ALPHA / DIGIT / "_"). Off: SSP_ERR_SETUP_PROTOCOL, S-012. */
  anySessionId?: boolean
}

/** Deviations a set-up commits (test instruments playing deployed peers). All off: as the binding says. */
export interface SetupDeviations {
  /** Its password digests (steps 4 and 5) prove nothing: the digest of another secret. */
  wrongDigest?: boolean
  /** Step 3 carries this transaction id of its own instead of step 1's (Baraza does). */
  step3Tid?: () => string
  /**
   * A secret received is kept as a C string, cut at its first NUL byte (Baraza
   * stores a base64-decoded token so; plain XML text cannot hold a NUL), so a
   * binary secret with a NUL gives a digest the sender does not expect.
   */
  nulCutSecrets?: boolean
}

export interface SetupPolicy {
  /** The IMPS domain we play (`serviceID="wv:@<domain>"`). */
  readonly domain: string
  /** The session timeToLive we offer, seconds. */
  readonly timeToLive: number
  readonly accept?: SetupAcceptance
  readonly deviate?: SetupDeviations
  /** Told each deviation accepted under `accept` (by name: `setupTransactionId`). */
  readonly onAccepted?: (kind: string) => void
}

/** Ids a set-up uses: the caller's choice (its id generators). */
export interface SetupIds {
  /** Initiator: the transaction id of steps 1, 4 and 6. */
  readonly transactionId?: string
  /** Our session id, offered in step 6 (initiator) or 7 (responder). */
  readonly sessionId: string
  /** Our secret. Default a fresh printable one (newPrintableSecret). */
  readonly secret?: Buffer
}

/** The session a set-up brought up, as our side sees it. */
export interface SetupResult {
  readonly sessionId: string
  readonly peerSessionId: string
  /** The lower of both offers, seconds. */
  readonly timeToLive: number
}

/** The step a set-up waits for next (0: finished). */
export type AwaitedStep = 3 | 4 | 5 | 6 | 7 | 0

type Parsed<K extends SetupKind> = ParsedSetupMessage & { kind: K }

const WRONG_SECRET = Buffer.from('not the secret')

function kept (policy: SetupPolicy, secret: Buffer): Buffer {
  if (policy.deviate?.nulCutSecrets !== true) return secret
  const nul = secret.indexOf(0)
  return nul < 0 ? secret : secret.subarray(0, nul)
}

function digestOf (policy: SetupPolicy, secret: Buffer): Buffer {
  return passwordDigest(policy.deviate?.wrongDigest === true ? WRONG_SECRET : secret)
}

function checkSessionId (policy: SetupPolicy, peer: string, id: string): void {
  if (policy.accept?.anySessionId === true || isIdString(id)) return
  throw createError('SSP_ERR_SETUP_PROTOCOL', {
    message: `${peer} named the session ${JSON.stringify(id)}, outside 1*(ALPHA / DIGIT / "_") (S-012)`, scr: 'S-012'
  })
}

function ttlOf (policy: SetupPolicy, offered: number | undefined): number {
  return Math.min(policy.timeToLive, offered ?? policy.timeToLive)
}

function expectKind<K extends SetupKind> (peer: string, msg: ParsedSetupMessage, kind: K, mode: Mode, step: number): asserts msg is Parsed<K> {
  if (msg.kind !== kind || msg.mode !== mode) {
    throw createError('SSP_ERR_SETUP_PROTOCOL', { message: `unexpected ${msg.kind} (${msg.mode}) from ${peer} where step ${step} was due` })
  }
}

/** Our side of a set-up we start: steps 1, 4, 6 sent, steps 3, 5, 7 checked. */
export class SetupInitiator {
  readonly peer: string
  readonly transactionId: string
  readonly sessionId: string
  readonly secret: Buffer
  peerSecret: Buffer | undefined = undefined
  awaited: AwaitedStep = 3
  private readonly policy: SetupPolicy

  /** `peer` names the other side in error messages (its domain). */
  constructor (policy: SetupPolicy, peer: string, ids: SetupIds & { transactionId: string }) {
    this.policy = policy
    this.peer = peer
    this.transactionId = ids.transactionId
    this.sessionId = ids.sessionId
    this.secret = ids.secret ?? newPrintableSecret()
  }

  step1 (): SendSecretTokenMessage {
    return { kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.REQUEST, transactionId: this.transactionId, domain: this.policy.domain, secret: this.secret }
  }

  /**
   * Is `msg` the answer this set-up waits for? Steps 3 and 5 name the peer's
   * domain (the caller matches that); step 7 names nothing but the
   * transaction id of our step 6.
   */
  awaits (msg: ParsedSetupMessage): boolean {
    if (msg.mode !== Mode.RESPONSE) return false
    if (this.awaited === 3) return msg.kind === SetupKind.SEND_SECRET_TOKEN
    if (this.awaited === 5) return msg.kind === SetupKind.LOGIN_REQUEST
    if (this.awaited === 7) return msg.kind === SetupKind.LOGIN_RESPONSE && msg.transactionId === this.transactionId
    return false
  }

  /** Step 3 arrived: the peer's secret. Returns step 4. */
  onStep3 (msg: ParsedSetupMessage): LoginRequestMessage {
    expectKind(this.peer, msg, SetupKind.SEND_SECRET_TOKEN, Mode.RESPONSE, 3)
    if (msg.transactionId !== this.transactionId) {
      // Real peers answer step 1 with a transaction id of their own (ssp-notes 3);
      // the caller matched the set-up by the peer's domain instead.
      if (this.policy.accept?.foreignStep3Tid !== true) {
        throw createError('SSP_ERR_SETUP_PROTOCOL', {
          message: `step 3 from ${this.peer} carries transactionID ${msg.transactionId}, not ${this.transactionId} (S-005)`, scr: 'S-005'
        })
      }
      this.policy.onAccepted?.('setupTransactionId')
    }
    this.peerSecret = kept(this.policy, msg.secret)
    this.awaited = 5
    // Steps 1, 4 and 6 carry one transaction id: the responder finds the set-up by it (Baraza does).
    return {
      kind: SetupKind.LOGIN_REQUEST, mode: Mode.REQUEST, transactionId: this.transactionId, domain: this.policy.domain,
      digest: digestOf(this.policy, this.peerSecret), timeToLive: this.policy.timeToLive
    }
  }

  /** Step 5 arrived: the peer's proof that it holds our secret. Returns step 6. */
  onStep5 (msg: ParsedSetupMessage): LoginResponseMessage {
    expectKind(this.peer, msg, SetupKind.LOGIN_REQUEST, Mode.RESPONSE, 5)
    if (!digestMatches(this.secret, msg.digest)) throw createError('SSP_ERR_SETUP_DIGEST', { message: `${this.peer} (step 5)` })
    this.awaited = 7
    return {
      kind: SetupKind.LOGIN_RESPONSE, mode: Mode.REQUEST, transactionId: this.transactionId, sessionId: this.sessionId,
      timeToLive: this.policy.timeToLive, statusCode: 200
    }
  }

  /** Step 7 arrived: the session is up. */
  onStep7 (msg: ParsedSetupMessage): SetupResult {
    expectKind(this.peer, msg, SetupKind.LOGIN_RESPONSE, Mode.RESPONSE, 7)
    checkSessionId(this.policy, this.peer, msg.sessionId)
    if (msg.statusCode !== 200) {
      throw createError('SSP_ERR_SETUP_PROTOCOL', { message: `${this.peer} refused the login (status ${msg.statusCode})` })
    }
    this.awaited = 0
    return { sessionId: this.sessionId, peerSessionId: msg.sessionId, timeToLive: ttlOf(this.policy, msg.timeToLive) }
  }
}

/** Our side of a set-up the peer starts: step 1 taken, steps 3, 5, 7 sent, steps 4, 6 checked. */
export class SetupResponder {
  readonly peer: string
  /** Transaction id of the peer's step 1: its steps 4 and 6 carry it too. */
  readonly transactionId: string
  readonly sessionId: string
  readonly secret: Buffer
  /** The peer's secret (as kept: see SetupDeviations.nulCutSecrets). */
  readonly peerSecret: Buffer
  awaited: AwaitedStep = 4
  private readonly policy: SetupPolicy

  /** `step1` is the peer's SendSecretToken (Request); `peer` defaults to the domain it names. */
  constructor (policy: SetupPolicy, step1: ParsedSetupMessage, ids: SetupIds, peer?: string) {
    expectKind(peer ?? 'the peer', step1, SetupKind.SEND_SECRET_TOKEN, Mode.REQUEST, 1)
    this.policy = policy
    this.peer = peer ?? step1.domain
    this.transactionId = step1.transactionId
    this.sessionId = ids.sessionId
    this.secret = ids.secret ?? newPrintableSecret()
    this.peerSecret = kept(policy, step1.secret)
  }

  /** Step 3: our secret, on our own connection. */
  step3 (): SendSecretTokenMessage {
    const tid = this.policy.deviate?.step3Tid?.() ?? this.transactionId
    return { kind: SetupKind.SEND_SECRET_TOKEN, mode: Mode.RESPONSE, transactionId: tid, domain: this.policy.domain, secret: this.secret }
  }

  /**
   * Is `msg` the next request of this set-up? Step 4 names the peer's domain
   * (the caller matches that); step 6 names nothing but step 1's transaction id.
   */
  awaits (msg: ParsedSetupMessage): boolean {
    if (msg.mode !== Mode.REQUEST) return false
    if (this.awaited === 4) return msg.kind === SetupKind.LOGIN_REQUEST
    if (this.awaited === 6) return msg.kind === SetupKind.LOGIN_RESPONSE && msg.transactionId === this.transactionId
    return false
  }

  /** Step 4 arrived: the peer's proof that it holds our secret. Returns step 5. */
  onStep4 (msg: ParsedSetupMessage): LoginRequestMessage {
    expectKind(this.peer, msg, SetupKind.LOGIN_REQUEST, Mode.REQUEST, 4)
    if (!digestMatches(this.secret, msg.digest)) throw createError('SSP_ERR_SETUP_DIGEST', { message: `${this.peer} (step 4)` })
    this.awaited = 6
    return {
      kind: SetupKind.LOGIN_REQUEST, mode: Mode.RESPONSE, transactionId: msg.transactionId, domain: this.policy.domain,
      digest: digestOf(this.policy, this.peerSecret), timeToLive: this.policy.timeToLive
    }
  }

  /** Step 6 arrived: returns step 7 and the session as it will be once step 7 is sent. */
  onStep6 (msg: ParsedSetupMessage): { step7: LoginResponseMessage, result: SetupResult } {
    expectKind(this.peer, msg, SetupKind.LOGIN_RESPONSE, Mode.REQUEST, 6)
    checkSessionId(this.policy, this.peer, msg.sessionId)
    const ttl = ttlOf(this.policy, msg.timeToLive)
    this.awaited = 0
    return {
      step7: { kind: SetupKind.LOGIN_RESPONSE, mode: Mode.RESPONSE, transactionId: msg.transactionId, sessionId: this.sessionId, timeToLive: ttl, statusCode: 200 },
      result: { sessionId: this.sessionId, peerSessionId: msg.sessionId, timeToLive: ttl }
    }
  }
}
