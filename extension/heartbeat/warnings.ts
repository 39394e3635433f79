import * as vscode from 'vscode';
import formatBytes from 'bytes';
import { isLive, type OomEvent, type WarningEvent } from '../api/types';
import type { Notifier } from '../core/notify';
import type { SaveController } from '../save/saveController';
import type { CrawlHubState } from '../state/store';
import { formatClock } from '../views/presentation';
import type { HeartbeatController } from './heartbeat';

const KEEP_WORKING = 'Keep working';
const SAVE_NOW = 'Save now';

/**
 * The server's notices about a session — "stops in N minutes", and a process killed for memory —
 * shown in the windows that care: the one with the session's files open, or one showing the
 * CrawlHub views. An idle stop can be put off with a heartbeat (sent without a word when the user
 * worked in the session since the last one); the hard stop (max age) cannot, so only saving is
 * offered then.
 */
export class StopWarnings implements vscode.Disposable {
  /** "… stays open until …" on the status bar, by session: taken down when the session ends before it times out. */
  private readonly keptOpen = new Map<string, vscode.Disposable>();
  private readonly stateChanges: { dispose(): void };

  constructor(
    private readonly state: Pick<CrawlHubState, 'session' | 'onDidChange'>,
    private readonly heartbeat: HeartbeatController,
    private readonly saves: SaveController,
    private readonly notify: Notifier,
    private readonly relevant: (sessionId: string) => boolean,
  ) {
    this.stateChanges = state.onDidChange(() => {
      for (const [id, message] of this.keptOpen) {
        const session = this.state.session(id);
        if (session && isLive(session)) continue;
        message.dispose();
        this.keptOpen.delete(id);
      }
    });
  }

  async show(event: WarningEvent): Promise<void> {
    // An admin's socket carries every user's notices: only the user's own sessions are theirs to act on.
    if (!this.state.session(event.session_id)) return;
    // The user is working in it: the heartbeat the next tick would bring goes now, and the stop moves away.
    if (event.reason === 'idle' && (await this.heartbeat.keepAliveIfActive(event.session_id))) return;
    const session = this.state.session(event.session_id);
    if (!session || !this.relevant(event.session_id)) return;
    const name = session.spider_name;
    const idle = event.reason === 'idle';
    const when = `in ${event.minutes} minute${event.minutes === 1 ? '' : 's'} (${formatClock(event.stops_at, Date.now())})`;
    const message = idle
      ? `CrawlHub: the session of ${name} stops ${when} for lack of activity. It is saved first.`
      : `CrawlHub: the session of ${name} reaches its maximum age and stops ${when}. It is saved first; open a new session to go on.`;
    const choice = await vscode.window.showWarningMessage(message, ...(idle ? [KEEP_WORKING, SAVE_NOW] : [SAVE_NOW]));
    if (choice === KEEP_WORKING) {
      try {
        const fresh = await this.heartbeat.send(event.session_id);
        if (fresh) {
          this.keptOpen.get(event.session_id)?.dispose();
          this.keptOpen.set(
            event.session_id,
            vscode.window.setStatusBarMessage(
              `$(check) CrawlHub: ${name} stays open until ${formatClock(fresh.idle_deadline, Date.now())} without activity`,
              5000,
            ),
          );
        }
      } catch (err) {
        void this.notify.error(`Keeping ${name} open`, err);
      }
    } else if (choice === SAVE_NOW) {
      await this.saves.save(session);
    }
  }

  dispose(): void {
    this.stateChanges.dispose();
    for (const message of this.keptOpen.values()) message.dispose();
    this.keptOpen.clear();
  }

  /** A process in the session was killed for memory; the session goes on. */
  outOfMemory(event: OomEvent): void {
    const session = this.state.session(event.session_id);
    if (!session || !this.relevant(event.session_id)) return;
    const name = session.spider_name;
    void vscode.window.showWarningMessage(
      `CrawlHub: out of memory in the session of ${name} (${formatBytes(event.memory_limit, { unitSeparator: ' ' })}): a process was killed; the session goes on.`,
    );
  }
}
