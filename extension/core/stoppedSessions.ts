import { isLive, type Session } from '../api/types';

/**
 * Which of the window's sessions have stopped and are still to be announced ("the session of … is
 * stopped; its files are no longer reachable here"): each stop once. A session seen live again (it
 * was resumed) is announced again at its next stop; a stop that Close Session in this window asked
 * for is not news to the user.
 */
export class StoppedSessions {
  /** Stops already announced (or not to be): cleared when the session is live again. */
  private readonly noticed = new Set<string>();
  /** Close Session from this window is on its way. */
  private readonly closedHere = new Set<string>();

  /** The sessions among `ids` that stopped and were not announced yet; they count as announced now. */
  toAnnounce(ids: readonly string[], session: (id: string) => Session | undefined): Session[] {
    const stopped: Session[] = [];
    for (const id of ids) {
      const s = session(id);
      if (!s) continue;
      if (isLive(s)) {
        this.noticed.delete(id);
        continue;
      }
      if (this.noticed.has(id)) continue;
      this.noticed.add(id);
      if (this.closedHere.delete(id)) continue;
      stopped.push(s);
    }
    return stopped;
  }

  /** Close Session from this window is about to stop it: the user knows already. */
  closing(id: string): void {
    this.closedHere.add(id);
  }

  /** That close did not happen (a failed save, conflicts): a later stop is news again. */
  closeFailed(id: string): void {
    this.closedHere.delete(id);
  }
}
