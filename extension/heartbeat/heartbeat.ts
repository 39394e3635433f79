import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { errorMessage } from '../api/errors';
import { isLive, type Session } from '../api/types';
import { Emitter } from '../core/emitter';
import { affects, heartbeatIntervalMs } from '../core/settings';
import { isSessionUri } from '../fs/uris';
import type { CrawlHubState } from '../state/store';
import { ActivityTracker } from './activity';

/**
 * A document change the user made: typing, an undo, a formatter they ran — not VS Code reloading a
 * file that changed in the container (a crawl writing its output, a `git pull` in the terminal),
 * which leaves the document clean and has no reason. That would keep an unattended session alive.
 */
export function byUser(e: Pick<vscode.TextDocumentChangeEvent, 'reason'> & { document: Pick<vscode.TextDocument, 'isDirty'> }): boolean {
  return e.document.isDirty || e.reason !== undefined;
}

/** The share of the server's idle timeout that the heartbeat interval may reach at most. */
const IDLE_TIMEOUT_SHARE = 1 / 3;
const MIN_INTERVAL_MS = 60_000;

/**
 * The heartbeat interval: the setting, but never more than a third of the server's idle timeout,
 * which a session's answer tells (idle_deadline − last_active_at). A setting of 60 minutes against
 * a 30-minute timeout would otherwise let a session stop while its user types.
 */
export function effectiveIntervalMs(settingMs: number, sessions: readonly Pick<Session, 'last_active_at' | 'idle_deadline'>[]): number {
  let interval = settingMs;
  for (const s of sessions) {
    const idleTimeout = Date.parse(s.idle_deadline) - Date.parse(s.last_active_at);
    if (idleTimeout > 0) interval = Math.min(interval, Math.max(idleTimeout * IDLE_TIMEOUT_SHARE, MIN_INTERVAL_MS));
  }
  return interval;
}

/**
 * Keeps sessions the user works in alive: every `crawlhub.heartbeatIntervalMinutes` (at most a third
 * of the idle timeout), one heartbeat per session that saw activity in a session file or terminal
 * while this window was focused, and one at once when the server warns of an idle stop of such a
 * session. Nothing is sent for a window left alone.
 */
export class HeartbeatController implements vscode.Disposable {
  private readonly activity = new ActivityTracker();
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly problems = new Emitter<{ sessionId: string; message: string | undefined }>();
  /** A heartbeat failed (`message`), or one went through again (undefined): the status bar shows it. */
  readonly onDidChangeProblem = this.problems.event;

  constructor(
    private readonly client: () => Promise<CrawlHubClient | undefined>,
    private readonly state: CrawlHubState,
    private readonly log: vscode.LogOutputChannel,
  ) {
    const noteUri = (uri: vscode.Uri) => {
      if (isSessionUri(uri)) this.note(uri.authority);
    };
    this.disposables.push(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length > 0 && byUser(e)) noteUri(e.document.uri);
      }),
      // A selection moved by the content changing under it (a reload) has no kind: only the user's count.
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (e.kind !== undefined) noteUri(e.textEditor.document.uri);
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affects(e, 'heartbeatIntervalMinutes')) this.restart();
      }),
      // Sessions carry the server's idle timeout: a shorter one shortens the interval.
      state.onDidChange(() => this.restart()),
    );
    this.restart();
  }

  /** The user did something in a session (a file edit, a terminal keystroke). */
  note(sessionId: string): void {
    this.activity.note(sessionId, vscode.window.state.focused);
  }

  /** (Re)starts the timer when the interval changed. */
  private restart(): void {
    const interval = effectiveIntervalMs(heartbeatIntervalMs(), this.state.liveSessions());
    if (interval === this.intervalMs) return;
    this.intervalMs = interval;
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.tick(), interval);
  }

  private async tick(): Promise<void> {
    const ids = this.activity.take();
    for (const id of ids) await this.send(id).catch(() => undefined);
  }

  /**
   * An idle stop is near: a heartbeat at once when the user worked in the session since the last
   * one (the next tick could come too late). Undefined when there was no activity or it failed.
   */
  async keepAliveIfActive(sessionId: string): Promise<Session | undefined> {
    if (!this.activity.takeOne(sessionId)) return undefined;
    return this.send(sessionId).catch(() => undefined);
  }

  /**
   * One heartbeat now (also "Keep working" on a stop warning). None for a session that is no longer
   * live: the server moves the spider's current session, which is then another one (opened from
   * another window or the browser) that this activity is no sign of use of.
   */
  async send(sessionId: string): Promise<Session | undefined> {
    const session = this.state.session(sessionId);
    if (!session || !isLive(session)) return undefined;
    const client = await this.client();
    if (!client) return undefined;
    try {
      const fresh = await client.heartbeat(session.session_id);
      this.state.upsertSession(fresh);
      this.log.debug(`heartbeat ${fresh.spider_name}: idle stop moved to ${fresh.idle_deadline}`);
      this.problems.fire({ sessionId, message: undefined });
      return fresh;
    } catch (err) {
      this.log.warn(`heartbeat for ${sessionId} failed: ${errorMessage(err)}`);
      this.problems.fire({ sessionId, message: errorMessage(err) });
      throw err;
    }
  }

  dispose(): void {
    clearInterval(this.timer);
    this.problems.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
