import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { errorMessage } from '../api/errors';
import type { Session } from '../api/types';
import { affects, heartbeatIntervalMs } from '../core/settings';
import { isSessionUri } from '../fs/uris';
import type { CrawlHubState } from '../state/store';
import { ActivityTracker } from './activity';

/**
 * Keeps sessions the user works in alive: every `crawlhub.heartbeatIntervalMinutes`, one heartbeat
 * per session that saw activity in a session file or terminal while this window was focused.
 * Nothing is sent for a window left alone.
 */
export class HeartbeatController implements vscode.Disposable {
  private readonly activity = new ActivityTracker();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];

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
        if (e.contentChanges.length > 0) noteUri(e.document.uri);
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => noteUri(e.textEditor.document.uri)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affects(e, 'heartbeatIntervalMinutes')) this.restart();
      }),
    );
    this.restart();
  }

  /** The user did something in a session (a file edit, a terminal keystroke). */
  note(sessionId: string): void {
    this.activity.note(sessionId, vscode.window.state.focused);
  }

  private restart(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.tick(), heartbeatIntervalMs());
  }

  private async tick(): Promise<void> {
    const ids = this.activity.take();
    for (const id of ids) await this.send(id).catch(() => undefined);
  }

  /** One heartbeat now (also "Keep working" on a stop warning). */
  async send(sessionId: string): Promise<Session | undefined> {
    const spiderId = this.state.session(sessionId)?.spider_id;
    const client = await this.client();
    if (!spiderId || !client) return undefined;
    try {
      const session = await client.heartbeat(spiderId);
      this.state.upsertSession(session);
      this.log.debug(`heartbeat ${session.spider_name}: idle stop moved to ${session.idle_deadline}`);
      return session;
    } catch (err) {
      this.log.warn(`heartbeat for ${sessionId} failed: ${errorMessage(err)}`);
      throw err;
    }
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
