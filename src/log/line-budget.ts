/**
 * A per-connection budget for routine log lines (one per command at info level):
 * a token bucket of `burst` lines refilled at `perSecond`. Lines over the budget
 * are not written but counted, and the count is handed out for one summary line at
 * most once per `reportEveryMs` (and at the end), so a client pipelining thousands
 * of commands a second costs a few lines a second, not one line per command.
 *
 * Must not know: what the lines say or where they go.
 */
export class LineBudget {
  private tokens: number;
  private last: number;
  private suppressed = 0;
  private suppressedSince = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly reportEveryMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** True when a line may be written now; otherwise it is counted as suppressed. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (this.suppressed === 0) this.suppressedSince = t;
    this.suppressed++;
    return false;
  }

  /**
   * How many lines were suppressed, when a summary is due (at least `reportEveryMs`
   * after the first of them, or `final`); 0 otherwise. Reported lines are forgotten.
   */
  due(final = false): number {
    if (this.suppressed === 0 || (!final && this.now() - this.suppressedSince < this.reportEveryMs)) return 0;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}
