import type { CrawlHubClient } from '../api/client';
import { isKept, isLive, type Session } from '../api/types';
import type { Log } from '../core/log';
import { changeCount } from './summary';
import type { SaveTracker } from './tracker';

/**
 * Counts the changes waiting to be saved with a dry run, a few seconds after files stop changing
 * (not on a timer): the status bar can then say "Save to Server (3)".
 */
export class PendingCounter {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<string>();

  constructor(
    private readonly client: () => Promise<CrawlHubClient | undefined>,
    private readonly tracker: SaveTracker,
    /** The session as the state knows it. */
    private readonly sessionOf: (sessionId: string) => Pick<Session, 'spider_id' | 'status' | 'save_pending'> | undefined,
    private readonly enabled: () => boolean,
    private readonly log: Log,
    private readonly quietMs = 4000,
  ) {}

  /** Files of the session changed: count again once things are quiet. */
  schedule(sessionId: string): void {
    this.tracker.touched(sessionId);
    if (!this.enabled()) return;
    clearTimeout(this.timers.get(sessionId));
    this.timers.set(
      sessionId,
      setTimeout(() => {
        this.timers.delete(sessionId);
        void this.count(sessionId);
      }, this.quietMs),
    );
  }

  async count(sessionId: string): Promise<void> {
    // A stopped session has nothing to count (the server would answer 409).
    const session = this.sessionOf(sessionId);
    if (!session || !(isLive(session) || isKept(session))) return;
    if (this.running.has(sessionId) || this.tracker.get(sessionId).saving) {
      // Count once the running count or save is over.
      this.schedule(sessionId);
      return;
    }
    const client = await this.client();
    if (!client) return;
    this.running.add(sessionId);
    const version = this.tracker.version(sessionId);
    try {
      const plan = await client.sync(sessionId, { dryRun: true });
      // A save or a file change since the start makes this count stale.
      const stale = this.tracker.version(sessionId) !== version;
      this.log.debug(`counted ${sessionId}: ${changeCount(plan)} change(s)${stale ? ' (stale, dropped)' : ''}`);
      if (!stale) this.tracker.planned(sessionId, plan);
    } catch (err) {
      this.log.debug(`counting changes of ${sessionId} failed: ${(err as Error).message}`);
    } finally {
      this.running.delete(sessionId);
    }
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
