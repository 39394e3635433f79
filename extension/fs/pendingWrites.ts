/**
 * The writes of each session still on their way into its container (a save, "New File", a rename…).
 * Save to Server and Close Session wait for them: the server copies the container's files, so a
 * write that has not landed yet would be left out of the save.
 */
export class PendingWrites {
  private readonly pending = new Map<string, Set<Promise<unknown>>>();

  /** Counts `write` as in flight for the session until it settles; hands it back unchanged. */
  track<T>(sessionId: string, write: Promise<T>): Promise<T> {
    let writes = this.pending.get(sessionId);
    if (!writes) this.pending.set(sessionId, (writes = new Set()));
    writes.add(write);
    const done = () => {
      writes.delete(write);
      if (writes.size === 0 && this.pending.get(sessionId) === writes) this.pending.delete(sessionId);
    };
    write.then(done, done);
    return write;
  }

  /**
   * Resolves once none of the session's writes is in flight, including any begun meanwhile. A failed
   * write counts as settled: whoever wrote (the editor's save) reports it.
   */
  async settled(sessionId: string): Promise<void> {
    for (let writes = this.pending.get(sessionId); writes?.size; writes = this.pending.get(sessionId)) {
      await Promise.allSettled([...writes]);
    }
  }
}
