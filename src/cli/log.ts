/** Connection- and session-level log lines on stderr; never one per request. */
export type LogLevel = 'silent' | 'error' | 'info' | 'debug'

const RANK = { silent: 0, error: 1, info: 2, debug: 3 } as const

export interface Logger {
  error (msg: string): void
  info (msg: string): void
  debug (msg: string): void
}

export function createLogger (level: LogLevel): Logger {
  const r = RANK[level]
  const line = (tag: string, msg: string): void => { process.stderr.write(`${new Date().toISOString()} ${tag} ${msg}\n`) }
  return {
    error: (m) => { if (r >= RANK.error) line('error', m) },
    info: (m) => { if (r >= RANK.info) line('info', m) },
    debug: (m) => { if (r >= RANK.debug) line('debug', m) }
  }
}
