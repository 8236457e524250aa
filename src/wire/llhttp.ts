/**
 * llhttp, compiled to WebAssembly, as shipped inside undici 7.x
 * (`undici/lib/llhttp/llhttp_simd-wasm.js`, llhttp 9.x). native-notes.md says
 * why this build and what it costs.
 *
 * One WebAssembly instance serves every parser in the process; each parser is
 * an `llhttp_t` allocated inside it. `execute` copies the chunk once into the
 * instance's linear memory, and the callbacks receive positions in that copy,
 * which are turned back into offsets in the caller's chunk. The caller builds
 * views (`subarray`) of its own chunk from them: nothing the application sees
 * ever points into WebAssembly memory, which is reused on the next execute.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

// The WebAssembly global is not typed by @types/node; these are the few shapes used here.
interface WasmMemory { readonly buffer: ArrayBuffer }
interface WasmModule { readonly __wasmModule?: never }
interface WasmGlobal {
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (mod: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown }
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly

/** The subset of llhttp's constants this package uses (values from llhttp's `constants.ts`). */
export const LL = {
  TYPE_REQUEST: 1,
  TYPE_RESPONSE: 2,

  OK: 0,
  PAUSED: 21,
  PAUSED_UPGRADE: 22,
  PAUSED_H2_UPGRADE: 23,
  USER: 24,
  CLOSED_CONNECTION: 5,
  INVALID_EOF_STATE: 14,

  METHOD_POST: 3,
  METHOD_PRI: 34,

  /** `on_headers_complete` return value: the message has no body (answer to HEAD). */
  SKIP_BODY: 1
} as const

/** What a parser's owner implements. Offsets are into the chunk given to `execute`. */
export interface ParserCallbacks {
  onMessageBegin (): number
  onUrl (at: number, len: number): number
  onStatus (at: number, len: number): number
  onHeaderField (at: number, len: number): number
  onHeaderValue (at: number, len: number): number
  onHeadersComplete (statusCode: number, upgrade: boolean, keepAlive: boolean): number
  onBody (at: number, len: number): number
  onMessageComplete (): number
}

interface LlhttpExports {
  memory: WasmMemory
  malloc (size: number): number
  free (ptr: number): void
  llhttp_alloc (type: number): number
  llhttp_free (ptr: number): void
  llhttp_execute (ptr: number, data: number, len: number): number
  llhttp_finish (ptr: number): number
  llhttp_resume (ptr: number): void
  llhttp_reset (ptr: number): void
  llhttp_get_error_pos (ptr: number): number
  llhttp_get_error_reason (ptr: number): number
  llhttp_get_errno (ptr: number): number
  llhttp_get_method (ptr: number): number
  llhttp_get_http_major (ptr: number): number
  llhttp_get_http_minor (ptr: number): number
  llhttp_get_status_code (ptr: number): number
}

// ---- the shared instance and the "current parser" it calls back into ----
let ll: LlhttpExports | undefined
let current: ParserCallbacks | undefined
/** Where the chunk being executed starts in linear memory. */
let inPtr = 0
let inSize = 0
let memView: Uint8Array = new Uint8Array(0)
/** Which build was loaded: 'simd' or 'scalar'. */
export let llhttpBuild: 'simd' | 'scalar' | 'none' = 'none'

function loadModule (): WasmModule {
  // SSP_TRANSPORT_WASM_SIMD=0 forces the scalar build (for measurement, or for
  // CPUs whose WebAssembly SIMD is broken); otherwise SIMD, falling back if the
  // engine cannot compile it.
  if (process.env.SSP_TRANSPORT_WASM_SIMD !== '0') {
    try {
      const mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer)
      llhttpBuild = 'simd'
      return mod
    } catch {
      // fall through to the scalar build
    }
  }
  llhttpBuild = 'scalar'
  return new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer)
}

function instance (): LlhttpExports {
  if (ll !== undefined) return ll
  const env = {
    wasm_on_message_begin: (_p: number): number => current!.onMessageBegin(),
    wasm_on_url: (_p: number, at: number, len: number): number => current!.onUrl(at - inPtr, len),
    wasm_on_status: (_p: number, at: number, len: number): number => current!.onStatus(at - inPtr, len),
    wasm_on_header_field: (_p: number, at: number, len: number): number => current!.onHeaderField(at - inPtr, len),
    wasm_on_header_value: (_p: number, at: number, len: number): number => current!.onHeaderValue(at - inPtr, len),
    wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number): number =>
      current!.onHeadersComplete(status, upgrade === 1, keepAlive === 1),
    wasm_on_body: (_p: number, at: number, len: number): number => current!.onBody(at - inPtr, len),
    wasm_on_message_complete: (_p: number): number => current!.onMessageComplete()
  }
  const inst = new WebAssembly.Instance(loadModule(), { env })
  ll = inst.exports as unknown as LlhttpExports
  return ll
}

/** Copy `chunk` into linear memory, growing the input area in 4 KiB steps. */
function stage (e: LlhttpExports, chunk: Uint8Array): void {
  if (chunk.length > inSize) {
    if (inPtr !== 0) e.free(inPtr)
    inSize = Math.ceil(chunk.length / 4096) * 4096
    inPtr = e.malloc(inSize)
  }
  // malloc may have grown the memory, which detaches the old ArrayBuffer.
  if (memView.buffer !== e.memory.buffer) memView = new Uint8Array(e.memory.buffer)
  memView.set(chunk, inPtr)
}

function cString (e: LlhttpExports, ptr: number): string {
  if (ptr === 0) return ''
  const mem = new Uint8Array(e.memory.buffer)
  const end = mem.indexOf(0, ptr)
  return Buffer.from(mem.buffer, ptr, end - ptr).toString('latin1')
}

/** One llhttp_t. Not re-entrant: callbacks must not execute another parser. */
export class Parser {
  private readonly e: LlhttpExports
  private ptr: number
  private readonly cb: ParserCallbacks

  constructor (type: typeof LL.TYPE_REQUEST | typeof LL.TYPE_RESPONSE, callbacks: ParserCallbacks) {
    this.e = instance()
    this.ptr = this.e.llhttp_alloc(type)
    this.cb = callbacks
  }

  /** Parse `chunk`; returns llhttp's errno (LL.OK, LL.PAUSED, or an error). */
  execute (chunk: Uint8Array): number {
    const e = this.e
    stage(e, chunk)
    if (current !== undefined) throw new Error('llhttp parser re-entered')
    current = this.cb
    try {
      return e.llhttp_execute(this.ptr, inPtr, chunk.length)
    } finally {
      current = undefined
    }
  }

  /** After `execute` returned non-OK: offset in the chunk where parsing stopped. */
  errorOffset (): number {
    return this.e.llhttp_get_error_pos(this.ptr) - inPtr
  }

  errorReason (): string {
    return cString(this.e, this.e.llhttp_get_error_reason(this.ptr))
  }

  /** Signal end of input (connection closed by the peer); returns errno. */
  finish (): number {
    if (current !== undefined) throw new Error('llhttp parser re-entered')
    current = this.cb
    try {
      return this.e.llhttp_finish(this.ptr)
    } finally {
      current = undefined
    }
  }

  resume (): void { this.e.llhttp_resume(this.ptr) }
  method (): number { return this.e.llhttp_get_method(this.ptr) }
  httpMajor (): number { return this.e.llhttp_get_http_major(this.ptr) }
  httpMinor (): number { return this.e.llhttp_get_http_minor(this.ptr) }
  statusCode (): number { return this.e.llhttp_get_status_code(this.ptr) }

  destroy (): void {
    if (this.ptr !== 0) {
      this.e.llhttp_free(this.ptr)
      this.ptr = 0
    }
  }
}
