import * as vscode from 'vscode';
import type { SaveTracker } from '../save/tracker';
import type { CrawlHubState } from '../state/store';
import type { WindowSessions } from '../workspace/windowSessions';
import { StatusBarItems } from './items';
import { saveButtonView } from './view';

const TICK_MS = 30_000;
/** How long a failed heartbeat shows on the button (unless one goes through sooner). */
const HEARTBEAT_PROBLEM_MS = 60_000;

/**
 * "$(cloud-upload) Save to Server" while this window has a session open: a running save, the changes
 * waiting when known, the last save; the tooltip gives both deadlines. A click saves.
 */
export class SaveButton implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private liveUpdatesOutage: string | undefined;
  private readonly heartbeatProblems = new Map<string, { message: string; timer: NodeJS.Timeout }>();

  constructor(
    private readonly state: CrawlHubState,
    private readonly tracker: SaveTracker,
    private readonly window: WindowSessions,
    private readonly now: () => number = Date.now,
  ) {
    const spec = StatusBarItems.save;
    this.item = vscode.window.createStatusBarItem(
      spec.id,
      spec.alignment === 'left' ? vscode.StatusBarAlignment.Left : vscode.StatusBarAlignment.Right,
      spec.priority,
    );
    this.item.name = spec.name;
    this.disposables.push(
      this.item,
      { dispose: () => clearInterval(this.timer) },
      { dispose: () => this.heartbeatProblems.forEach((p) => clearTimeout(p.timer)) },
      state.onDidChange(() => this.update()),
      tracker.onDidChange(() => this.update()),
      window.onDidChange(() => this.update()),
    );
    this.update();
  }

  /** Why live updates are not arriving (undefined: they are); see EventsSocket.onOutage. */
  showLiveUpdatesOutage(reason: string | undefined): void {
    this.liveUpdatesOutage = reason;
    this.update();
  }

  /** A heartbeat of the session failed (`message`), or went through again (undefined); shown for a minute. */
  showHeartbeatProblem(sessionId: string, message: string | undefined): void {
    clearTimeout(this.heartbeatProblems.get(sessionId)?.timer);
    this.heartbeatProblems.delete(sessionId);
    if (message !== undefined) {
      const timer = setTimeout(() => this.showHeartbeatProblem(sessionId, undefined), HEARTBEAT_PROBLEM_MS);
      this.heartbeatProblems.set(sessionId, { message, timer });
    }
    this.update();
  }

  update(): void {
    const sessionId = this.window.current();
    if (!sessionId) {
      this.item.hide();
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const session = this.state.session(sessionId);
    const conn = this.state.connection;
    const view = saveButtonView(
      session,
      this.tracker.get(sessionId),
      this.now(),
      this.liveUpdatesOutage,
      this.heartbeatProblems.get(sessionId)?.message,
      conn.kind === 'unreachable' && conn.rejected,
      conn.kind === 'signedOut' && this.state.known,
    );
    this.item.text = view.text;
    const tooltip = new vscode.MarkdownString(view.tooltip.join('  \n'));
    this.item.tooltip = tooltip;
    this.item.backgroundColor = view.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.item.accessibilityInformation = { label: view.accessibilityLabel };
    this.item.command =
      view.action === 'signIn'
        ? { title: conn.kind === 'signedOut' ? 'Sign In' : 'Sign In Again', command: StatusBarItems.save.commandWhenTokenRefused }
        : {
            title: 'Save to Server',
            command: StatusBarItems.save.command,
            arguments: [vscode.Uri.from({ scheme: 'crawlhub', authority: sessionId, path: '/' })],
          };
    this.item.show();
    // Countdowns and "saved 5 min ago" move with the clock: redraw while shown, no server calls.
    this.timer ??= setInterval(() => this.update(), TICK_MS);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
