import * as vscode from 'vscode';
import type { ServerEvent } from '../api/types';
import type { SessionFileSystemProvider } from '../fs/provider';
import type { StopWarnings } from '../heartbeat/warnings';
import type { PendingCounter } from '../save/pendingCounter';
import { logSkipped } from '../save/skippedFiles';
import { describeResult } from '../save/summary';
import type { SaveTracker } from '../save/tracker';
import type { CrawlHubState } from '../state/store';
import type { WindowSessions } from '../workspace/windowSessions';
import type { Log } from './log';
import type { SessionWatches } from './sessionWatches';

export interface ServerEventDeps {
  state: Pick<CrawlHubState, 'connection' | 'loadedAt' | 'refresh' | 'upsertSession' | 'session'>;
  fs: Pick<SessionFileSystemProvider, 'applyServerChanges' | 'refreshSessions'>;
  tracker: Pick<SaveTracker, 'session' | 'saved' | 'serverFailed'>;
  counter: Pick<PendingCounter, 'schedule'>;
  warnings: Pick<StopWarnings, 'show' | 'outOfMemory'>;
  windowSessions: Pick<WindowSessions, 'folders' | 'has'>;
  log: Log;
  /** The sessions the events socket watches (asks `files` events of). */
  watched: () => Iterable<string>;
  watches: Pick<SessionWatches, 'sync' | 'refused' | 'ready'>;
  /** The open documents (vscode.workspace.textDocuments). */
  documents: () => readonly { readonly uri: vscode.Uri }[];
}

/** What the events socket brings, handed to the parts of the extension it concerns. */
export class ServerEventRouter {
  private greetings = 0;

  constructor(private readonly d: ServerEventDeps) {}

  handle(event: ServerEvent): void {
    const d = this.d;
    switch (event.type) {
      case 'hello': {
        // A reconnect: whatever happened during the gap (a stop, a save, a warning) was never sent,
        // however recent the last load is (it may have come just before the drop).
        const reconnect = ++this.greetings > 1;
        // The first connect: load everything once, unless that just happened.
        if (reconnect || d.state.connection.kind !== 'online' || Date.now() - d.state.loadedAt > 5000) void d.state.refresh();
        // Watches the server refused before the gap are asked again.
        d.watches.sync();
        // File changes made during the gap were never reported either.
        if (reconnect) this.catchUpOnFiles();
        break;
      }
      case 'session':
        d.state.upsertSession(event.session);
        d.tracker.session(event.session);
        if (event.session.status === 'ready') d.watches.ready(event.session.session_id);
        break;
      case 'sync':
        if (event.result && !event.result.dry_run) {
          d.tracker.saved(event.session_id, event.result);
          // Saves someone asked for are reported where they were asked; the sweeper's are news.
          if (event.trigger !== 'manual' && event.trigger !== 'close' && d.windowSessions.has(event.session_id)) {
            vscode.window.setStatusBarMessage(
              `$(cloud-upload) CrawlHub saved the session (${event.trigger}): ${describeResult(event.result)}`,
              8000,
            );
            // "2 skipped" in passing: the log says which, and why.
            logSkipped(d.log, d.state.session(event.session_id)?.spider_name ?? event.spider_id, event.result.skipped);
          }
        } else if (event.error) {
          d.tracker.serverFailed(event.session_id, event.error.message);
        }
        break;
      case 'warning':
        void d.warnings.show(event);
        break;
      case 'oom':
        d.warnings.outOfMemory(event);
        break;
      case 'files':
        // Too many to list: the session's folder and open documents are read again.
        if (event.overflow) d.fs.refreshSessions([event.session_id], d.documents());
        else d.fs.applyServerChanges(event);
        if (d.windowSessions.folders().includes(event.session_id)) d.counter.schedule(event.session_id);
        break;
      case 'error':
        d.log.warn(`events: ${event.session_id ?? ''} ${event.error.code}: ${event.error.message}`);
        // Only a refused watch names a session.
        if (event.session_id) d.watches.refused(event.session_id);
        break;
    }
  }

  private catchUpOnFiles(): void {
    const watched = [...this.d.watched()];
    this.d.fs.refreshSessions(watched, this.d.documents());
    for (const id of this.d.windowSessions.folders()) this.d.counter.schedule(id);
  }
}
