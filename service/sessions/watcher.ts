import type { EventHub } from '../events/hub';
import { AppError } from '../http/errors';
import type { Logger } from '../logger';
import type { Workspace } from './workspace';

interface Watch {
  ownerId: string;
  workspace: Workspace;
  watchers: number;
  previous: Map<string, string> | null;
  timer: NodeJS.Timeout;
  busy: boolean;
}

/** More changes than this in one poll are sent as one `overflow` event: the editor lists the folder again. */
export const MAX_CHANGES_PER_POLL = 2000;

/**
 * Tells watching editors what changed in a container's /workspace (a crawl writing output, edits
 * in the browser IDE): while anyone watches a session, its file list is compared every interval.
 */
export class WorkspaceWatcher {
  private readonly watches = new Map<string, Watch>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly events: EventHub,
    private readonly logger: Logger,
    private readonly ignore: string[],
    private readonly intervalMs = 2000,
  ) {
    // A session that stopped (or is kept, its container stopped) has nothing to poll: its watch ends
    // instead of asking a removed container every interval for as long as an editor stays open.
    this.unsubscribe = events.subscribe({ id: '\0watcher', isAdmin: true }, (event) => {
      if (event.type === 'session' && event.session.status !== 'ready' && event.session.status !== 'syncing')
        this.stop(event.session.session_id);
    });
  }

  /**
   * Starts (or joins) watching; the returned function leaves. Its `live()` says whether the watch it
   * joined still runs (one ended by a stop is not the one a resumed session is watched by).
   */
  watch(sessionId: string, ownerId: string, workspace: Workspace): (() => void) & { live(): boolean } {
    let w = this.watches.get(sessionId);
    if (!w) {
      const created: Watch = {
        ownerId,
        workspace,
        watchers: 0,
        previous: null,
        busy: false,
        timer: setInterval(() => void this.poll(sessionId, created), this.intervalMs),
      };
      created.timer.unref();
      this.watches.set(sessionId, created);
      w = created;
      void this.poll(sessionId, created);
    }
    w.watchers++;
    const joined = w;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      // Only the watch this joined: a newer one of the same session (after a resume) is not this one's to end.
      if (this.watches.get(sessionId) === joined && --joined.watchers <= 0) this.stop(sessionId);
    };
    return Object.assign(leave, { live: () => !left && this.watches.get(sessionId) === joined });
  }

  /** Whether the session is polled (a stopped session's watch has ended). */
  isWatching(sessionId: string): boolean {
    return this.watches.has(sessionId);
  }

  stop(sessionId: string): void {
    const w = this.watches.get(sessionId);
    if (!w) return;
    clearInterval(w.timer);
    this.watches.delete(sessionId);
  }

  stopAll(): void {
    this.unsubscribe();
    for (const id of [...this.watches.keys()]) this.stop(id);
  }

  private async poll(sessionId: string, w: Watch): Promise<void> {
    if (w.busy) return;
    w.busy = true;
    try {
      const manifest = await w.workspace.manifest(this.ignore, 100_000);
      // Named as the editor lists them: as they are on disk (a name in NFD form too).
      const now = new Map(manifest.entries.map((e) => [e.onDisk ?? e.path, `${e.type}:${e.statKey}`]));
      if (w.previous) {
        const changes: { path: string; kind: 'created' | 'changed' | 'deleted' }[] = [];
        for (const [path, key] of now) {
          const before = w.previous.get(path);
          if (before === undefined) changes.push({ path, kind: 'created' });
          else if (before !== key && !key.startsWith('directory:')) changes.push({ path, kind: 'changed' });
        }
        for (const path of w.previous.keys()) if (!now.has(path)) changes.push({ path, kind: 'deleted' });
        // A crawl that writes (or a `git checkout` that touches) tens of thousands of files would send
        // every watching socket megabytes per poll, past what a socket may hold unsent: one "look
        // again" instead.
        if (changes.length > MAX_CHANGES_PER_POLL)
          this.events.publish(w.ownerId, { type: 'files', session_id: sessionId, changes: [], overflow: true });
        else
          for (let i = 0; i < changes.length; i += 500)
            this.events.publish(w.ownerId, { type: 'files', session_id: sessionId, changes: changes.slice(i, i + 500) });
      }
      w.previous = now;
    } catch (err) {
      // Its container is gone (removed by hand, or stopped while a socket asked to watch it): nothing
      // will answer again, so the watch ends rather than asking the engine every interval; a socket
      // that asks again, or a resume, starts it anew.
      if (err instanceof AppError && err.code === 'container_gone') {
        if (this.watches.get(sessionId) === w) this.stop(sessionId);
        return;
      }
      this.logger.debug({ err, session: sessionId }, 'workspace watch poll failed');
    } finally {
      w.busy = false;
    }
  }
}
