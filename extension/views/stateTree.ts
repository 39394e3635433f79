import * as vscode from 'vscode';
import type { CrawlHubState } from '../state/store';
import { STATE_ICON, type SpiderState } from './presentation';

/**
 * What both views share: they redraw whenever the state changes (it follows /api/events), show
 * nothing while the server cannot be reached, and dispose what they subscribed to.
 */
export abstract class StateTreeProvider<T> implements vscode.TreeDataProvider<T>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<T | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: { dispose(): void };

  constructor(
    protected readonly state: CrawlHubState,
    protected readonly now: () => number = Date.now,
  ) {
    this.subscription = state.onDidChange(() => this.changed.fire(undefined));
  }

  /** Redraws (the countdowns move). */
  refresh(): void {
    this.changed.fire(undefined);
  }

  getChildren(element?: T): T[] {
    if (element || this.state.connection.kind !== 'online') return [];
    return this.roots();
  }

  protected abstract roots(): T[];
  abstract getTreeItem(node: T): vscode.TreeItem;

  protected icon(state: SpiderState): vscode.ThemeIcon {
    const icon = STATE_ICON[state];
    return new vscode.ThemeIcon(icon.icon, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
