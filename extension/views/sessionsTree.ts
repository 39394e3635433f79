import * as vscode from 'vscode';
import type { CrawlHubState } from '../state/store';
import type { SessionNode } from './nodes';
import { STATE_ICON, sessionDescription, sessionTooltip, spiderState } from './presentation';

/** The Sessions view: my live sessions with the time left until the idle stop and the hard stop. */
export class SessionsTreeProvider implements vscode.TreeDataProvider<SessionNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<SessionNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: { dispose(): void };

  constructor(
    private readonly state: CrawlHubState,
    private readonly now: () => number = Date.now,
  ) {
    this.subscription = state.onDidChange(() => this.changed.fire(undefined));
  }

  /** Redraws (the countdowns move). */
  refresh(): void {
    this.changed.fire(undefined);
  }

  getChildren(element?: SessionNode): SessionNode[] {
    if (element || this.state.connection.kind !== 'online') return [];
    return this.state.liveSessions().map((session) => ({ kind: 'session', session }));
  }

  getTreeItem(node: SessionNode): vscode.TreeItem {
    const now = this.now();
    const state = spiderState(node.session);
    const item = new vscode.TreeItem(node.session.spider_name, vscode.TreeItemCollapsibleState.None);
    item.id = `session:${node.session.session_id}`;
    const icon = STATE_ICON[state];
    item.iconPath = new vscode.ThemeIcon(icon.icon, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
    item.description = sessionDescription(node.session, now);
    item.contextValue = `session:${state}`;
    item.tooltip = new vscode.MarkdownString(sessionTooltip(node.session, now).join('  \n'));
    return item;
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
