/** Exponential backoff with jitter for reconnecting: 1 s, 2 s, 4 s … up to a cap, reset after a good connection. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly opts: { initialMs: number; maxMs: number; factor?: number; jitter?: number } = { initialMs: 1000, maxMs: 30_000 },
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt. Jitter takes up to `jitter` (default half) off, so clients spread out. */
  next(): number {
    const { initialMs, maxMs, factor = 2, jitter = 0.5 } = this.opts;
    const raw = Math.min(maxMs, initialMs * factor ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 32);
    return Math.round(raw * (1 - jitter * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
