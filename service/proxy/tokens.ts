/**
 * Whether the API token a browser IDE was opened with still stands. The answer is kept for
 * `ttlMs` per token, so a page load's hundred requests ask the database at most once and the
 * common path stays synchronous; a revoked token is remembered as revoked (revocation is final)
 * while there is room, and asked about again (and refused again) once forgotten. When the question
 * fails (the database is away), the last answer stands.
 */
export class TokenLiveness {
  private readonly known = new Map<string, { live: boolean; checkedAt: number }>();
  private readonly asking = new Map<string, Promise<boolean>>();

  constructor(
    private readonly ask: (tokenId: string) => Promise<boolean>,
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly maxKnown = 10_000,
  ) {}

  /** The answer: synchronous while a recent one is known, else the pending question. */
  state(tokenId: string): boolean | Promise<boolean> {
    const k = this.known.get(tokenId);
    if (k !== undefined && (!k.live || this.now() - k.checkedAt < this.ttlMs)) return k.live;
    return this.refresh(tokenId);
  }

  /** Asks again (one question per token in flight). */
  refresh(tokenId: string): Promise<boolean> {
    let pending = this.asking.get(tokenId);
    if (pending === undefined) {
      pending = this.ask(tokenId)
        .then(
          (live) => {
            if (this.known.size >= this.maxKnown && !this.known.has(tokenId)) this.makeRoom();
            const before = this.known.get(tokenId);
            // Revoked stays revoked, whatever a late answer to an earlier question says.
            this.known.set(tokenId, { live: live && before?.live !== false, checkedAt: this.now() });
            return this.known.get(tokenId)!.live;
          },
          (err: unknown) => {
            const before = this.known.get(tokenId);
            if (before === undefined) throw err;
            return before.live;
          },
        )
        .finally(() => this.asking.delete(tokenId));
      this.asking.set(tokenId, pending);
    }
    return pending;
  }

  /**
   * Makes room: live answers are asked again when next needed; revoked ones are kept unless they
   * alone fill the memory (a user who makes, uses and revokes token after token), then the older
   * half goes: the database still says they are revoked.
   */
  private makeRoom(): void {
    for (const [id, k] of this.known) if (k.live) this.known.delete(id);
    if (this.known.size < this.maxKnown) return;
    let drop = this.known.size - Math.floor(this.maxKnown / 2);
    for (const id of this.known.keys()) {
      if (drop-- <= 0) break;
      this.known.delete(id);
    }
  }

  /** How many answers are remembered. */
  get size(): number {
    return this.known.size;
  }

  clear(): void {
    this.known.clear();
  }
}
