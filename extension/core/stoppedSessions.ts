import { isKept, isLive, type Session } from '../api/types';
import { listPaths } from '../save/summary';

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

/**
 * The announcement of a window's session that stopped, and the action it offers. `unsaved`: the
 * paths of this window's editors of the session with changes never written into it — the stop's
 * save did not have them, and a new session (which replaces the window) would not either.
 */
export function stoppedNotice(session: Session, unsaved: readonly string[] = []): { message: string; action: string } {
  const why = session.status_reason ? ` (${session.status_reason})` : '';
  const kept = isKept(session);
  const editors = unsaved.length === 1 ? 'An editor has' : `${unsaved.length} editors have`;
  const keep = unsaved.length === 0 ? '' : ` ${editors} unsaved changes that are not in the session (${listPaths([...unsaved])}): `;
  // A kept session is not gone: opening it again resumes the same container, files and all.
  if (kept)
    return {
      message: `CrawlHub: the session of ${session.spider_name} stopped and is kept${why}; its files are not reachable here until it is resumed.${keep && `${keep}save them once it is.`}`,
      action: 'Resume the Session',
    };
  return {
    message: `CrawlHub: the session of ${session.spider_name} is ${session.status}${why}; its files are no longer reachable here.${keep && `${keep}copy them elsewhere (File > Save As) before you open a new session.`}`,
    action: 'Open a New Session',
  };
}

/**
 * What the window does once the spider's session is ready again: a kept session resumed is the same
 * session (its folder works again as it is: reopening would reload the window, and ask about every
 * unsaved editor), a new one replaces the stopped one's folder (the whole window when it is the only one).
 */
export function reopenPlan(
  folders: readonly { readonly uri: { readonly authority: string } }[],
  stoppedId: string,
  freshId: string,
): { kind: 'nothing' } | { kind: 'openFolder' } | { kind: 'replaceFolder'; index: number } {
  if (freshId === stoppedId) return { kind: 'nothing' };
  const index = folders.findIndex((f) => f.uri.authority === stoppedId);
  if (folders.length <= 1 || index < 0) return { kind: 'openFolder' };
  return { kind: 'replaceFolder', index };
}
