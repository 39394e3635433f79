/**
 * Collects items and hands them over in one batch a short moment after the first one arrives,
 * dropping repeats (the same key) within a batch. Used to fire onDidChangeFile once per burst.
 */
export class ChangeBatcher<T> {
  private pending = new Map<string, T>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delayMs: number,
    private readonly key: (item: T) => string,
    private readonly flush: (items: T[]) => void,
  ) {}

  add(...items: T[]): void {
    for (const item of items) {
      const k = this.key(item);
      this.pending.delete(k); // the latest of a repeated key wins and keeps its place at the end
      this.pending.set(k, item);
    }
    if (!this.timer && this.pending.size > 0) this.timer = setTimeout(() => this.drain(), this.delayMs);
  }

  /** Delivers what is pending now. */
  drain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const items = [...this.pending.values()];
    this.pending = new Map();
    this.flush(items);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
