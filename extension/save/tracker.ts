import type { SaveResult, Session } from '../api/types';
import { Emitter } from '../core/emitter';
import { changeCount } from './summary';

export interface SaveStatus {
  /** A save started from this window is running. */
  saving: boolean;
  /** Changes waiting to be saved, when known (after a dry run or a save); undefined: not known. */
  pending?: number;
  /** Files the last save or dry run could not write because they changed on the server. */
  conflicts: number;
  lastSavedAt?: string;
  /** The last save's failure, until the next success. */
  lastError?: string;
}

/**
 * What the extension knows about each session's saves: fed by saves it runs, dry runs, the
 * server's `sync` and `session` events and local edits; read by the status bar.
 */
export class SaveTracker {
  private readonly changed = new Emitter<string>();
  /** Fires the session id whose status changed. */
  readonly onDidChange = this.changed.event;
  private readonly statuses = new Map<string, SaveStatus>();
  private readonly versions = new Map<string, number>();

  /** Changes with every save and every file change: a dry run that began at another version is stale. */
  version(sessionId: string): number {
    return this.versions.get(sessionId) ?? 0;
  }

  private bump(sessionId: string): void {
    this.versions.set(sessionId, this.version(sessionId) + 1);
  }

  get(sessionId: string): SaveStatus {
    return this.statuses.get(sessionId) ?? { saving: false, conflicts: 0 };
  }

  private update(sessionId: string, patch: Partial<SaveStatus>): void {
    this.statuses.set(sessionId, { ...this.get(sessionId), ...patch });
    this.changed.fire(sessionId);
  }

  begin(sessionId: string): void {
    this.bump(sessionId);
    this.update(sessionId, { saving: true });
  }

  /** A save finished (ours or, through events, any other). */
  saved(sessionId: string, result: SaveResult): void {
    this.bump(sessionId);
    this.update(sessionId, {
      saving: false,
      pending: result.conflicts.length,
      conflicts: result.conflicts.length,
      lastSavedAt: result.saved_at ?? this.get(sessionId).lastSavedAt,
      lastError: undefined,
    });
  }

  failed(sessionId: string, message: string): void {
    this.update(sessionId, { saving: false, lastError: message });
  }

  /**
   * A `sync` event with an error: a save failed, here or in another window (the server announces no
   * dry run, such as the count behind "Save to Server (N)"). A save of ours stays running: its answer ends it.
   */
  serverFailed(sessionId: string, message: string): void {
    this.update(sessionId, { lastError: message });
  }

  /** Our own save ended without a result (cancelled, or failed before an answer). */
  end(sessionId: string): void {
    if (this.get(sessionId).saving) this.update(sessionId, { saving: false });
  }

  /** A dry run's plan: how many changes wait. */
  planned(sessionId: string, result: SaveResult): void {
    this.update(sessionId, { pending: changeCount(result) + result.conflicts.length, conflicts: result.conflicts.length });
  }

  /** Files changed (here or in the container): the count is no longer known. */
  touched(sessionId: string): void {
    this.bump(sessionId);
    if (this.get(sessionId).pending === undefined) return;
    this.update(sessionId, { pending: undefined });
  }

  /** The server's view of a session: its last save time is the truth when newer than ours. */
  session(session: Session): void {
    const known = this.get(session.session_id).lastSavedAt;
    if (session.last_saved_at && (!known || session.last_saved_at > known))
      this.update(session.session_id, { lastSavedAt: session.last_saved_at });
  }

  dispose(): void {
    this.changed.dispose();
  }
}
