import * as vscode from 'vscode';
import { StateTreeProvider } from './stateTree';
import type { SessionNode } from './nodes';
import { sessionDescription, sessionTooltip, spiderState } from './presentation';

/**
 * The Sessions view: my live sessions with the time left until the idle stop and the hard stop, and
 * my kept ones (a failed save stopped the container; the server keeps it): those count toward the
 * server's limit on sessions too, so they are here to be saved or closed.
 */
export class SessionsTreeProvider extends StateTreeProvider<SessionNode> {
  protected roots(): SessionNode[] {
    return this.state.liveOrKeptSessions().map((session) => ({ kind: 'session', session }));
  }

  getTreeItem(node: SessionNode): vscode.TreeItem {
    const now = this.now();
    const state = spiderState(node.session);
    const item = new vscode.TreeItem(node.session.spider_name, vscode.TreeItemCollapsibleState.None);
    item.id = `session:${node.session.session_id}`;
    item.iconPath = this.icon(state);
    item.description = sessionDescription(node.session, now);
    item.contextValue = `session:${state}`;
    item.tooltip = new vscode.MarkdownString(sessionTooltip(node.session, now).join('  \n'));
    return item;
  }
}
