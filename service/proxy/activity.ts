/**
 * Turns traffic into at most one `touch` per session per window. Called per request and per
 * WebSocket chunk, so the common case is one Map lookup and a comparison.
 */
export class ActivityThrottle {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly touch: (sessionId: string) => void,
    private readonly windowMs: number,
    private readonly now: () => number,
    private readonly onError: (err: unknown, sessionId: string) => void,
  ) {}

  seen(sessionId: string): void {
    const now = this.now();
    const last = this.last.get(sessionId);
    if (last !== undefined && now - last < this.windowMs) return;
    if (this.last.size >= 10_000) this.forgetOld(now);
    this.last.set(sessionId, now);
    try {
      this.touch(sessionId);
    } catch (err) {
      this.onError(err, sessionId);
    }
  }

  private forgetOld(now: number): void {
    for (const [id, at] of this.last) if (now - at >= this.windowMs) this.last.delete(id);
    if (this.last.size >= 10_000) this.last.clear();
  }

  clear(): void {
    this.last.clear();
  }
}
