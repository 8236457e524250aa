/** A live bar on a terminal (cli-progress); a few plain lines otherwise. */
import cliProgress from 'cli-progress'

export class Progress {
  private readonly total: number
  private readonly bar: cliProgress.SingleBar | undefined
  private readonly label: string
  private readonly plain: boolean
  private nextMark = 0.25

  constructor (total: number, mode: 'auto' | 'none', label: string) {
    this.total = total
    this.label = label
    this.plain = mode === 'auto' && process.stderr.isTTY !== true
    if (mode === 'auto' && process.stderr.isTTY === true) {
      this.bar = new cliProgress.SingleBar({
        format: `${label} [{bar}] {percentage}% | {value}/{total} | {rate}/s`,
        stream: process.stderr,
        hideCursor: true
      }, cliProgress.Presets.shades_classic)
      this.bar.start(total, 0, { rate: 0 })
    }
    this.start = performance.now()
  }

  private readonly start: number

  update (done: number): void {
    const rate = Math.round(done / Math.max(1e-3, (performance.now() - this.start) / 1000))
    if (this.bar !== undefined) {
      this.bar.update(done, { rate })
    } else if (this.plain && this.total > 0) {
      while (done / this.total >= this.nextMark && this.nextMark <= 1) {
        process.stderr.write(`${this.label}: ${Math.round(this.nextMark * 100)}% (${done}/${this.total}, ${rate}/s)\n`)
        this.nextMark += 0.25
      }
    }
  }

  stop (): void {
    this.bar?.stop()
  }
}
