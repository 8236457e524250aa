/**
 * The one way options are checked: each class (WireServer, WireClient,
 * SspNode) declares a spec (key → check) and a defaults table, and its
 * constructor calls `resolveOptions` once. Unknown keys are refused by name
 * (a typo must not run with the default), every value is checked for type
 * and range, nested option objects are checked with their dotted name.
 * Not on the hot path: constructors only.
 */
import { createError } from './errors.js'

/** Throws SSP_ERR_INVALID_ARGUMENT when `v` (never undefined) is not acceptable for option `name`. */
export type Check = (v: unknown, name: string) => void

export type OptionSpec = Readonly<Record<string, Check>>

function invalid (message: string): never {
  throw createError('SSP_ERR_INVALID_ARGUMENT', { message })
}

/** An integer from `min` to `max`. */
export function integer (min: number, max: number = Number.MAX_SAFE_INTEGER): Check {
  return (v, name) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      invalid(max === Number.MAX_SAFE_INTEGER
        ? `${name} must be an integer >= ${min}, got ${String(v)}`
        : `${name} must be an integer from ${min} to ${max}, got ${String(v)}`)
    }
  }
}

export function oneOf (...values: readonly unknown[]): Check {
  return (v, name) => {
    if (!values.includes(v)) invalid(`${name} must be ${values.map((x) => `'${String(x)}'`).join(' or ')}, got ${String(v)}`)
  }
}

export const boolean: Check = (v, name) => {
  if (typeof v !== 'boolean') invalid(`${name} must be true or false, got ${String(v)}`)
}

export const string: Check = (v, name) => {
  if (typeof v !== 'string') invalid(`${name} must be a string, got ${String(v)}`)
}

export const func: Check = (v, name) => {
  if (typeof v !== 'function') invalid(`${name} must be a function`)
}

export const object: Check = (v, name) => {
  if (typeof v !== 'object' || v === null) invalid(`${name} must be an object`)
}

/** Anything (the value is checked where it is used, e.g. TLS material by node:tls). */
export const any: Check = () => {}

/** A nested option object, checked key by key against its own spec (`server.foo`). */
export function nested (spec: OptionSpec): Check {
  return (v, name) => { checkOptions(v, spec, `${name}.`) }
}

/** Refuses unknown keys and bad values; `undefined` values count as absent. */
export function checkOptions (o: unknown, spec: OptionSpec, prefix = ''): void {
  if (o === undefined) return
  if (typeof o !== 'object' || o === null) invalid(`${prefix === '' ? 'options' : prefix.slice(0, -1)} must be an object`)
  for (const key of Object.keys(o)) {
    const check = spec[key]
    if (check === undefined) invalid(`unknown option '${prefix}${key}'`)
    const v = (o as Record<string, unknown>)[key]
    if (v !== undefined) check(v, prefix + key)
  }
}

/** Defaults merged with given options: a defaulted key has the option's type, never undefined. */
export type Resolved<D, O> = Readonly<{ [K in keyof D]: K extends keyof O ? Exclude<O[K], undefined> | D[K] : D[K] } & Omit<O, keyof D>>

/** Checks `o` against `spec`, then merges it over `defaults` (undefined values do not override). Frozen. */
export function resolveOptions<D extends object, O extends object> (o: O | undefined, spec: OptionSpec, defaults: D): Resolved<D, O> {
  checkOptions(o, spec)
  const r: Record<string, unknown> = { ...(defaults as Record<string, unknown>) }
  if (o !== undefined) {
    for (const [k, v] of Object.entries(o)) if (v !== undefined) r[k] = v
  }
  return Object.freeze(r) as Resolved<D, O>
}
