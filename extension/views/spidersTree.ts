import * as vscode from 'vscode';
import type { CrawlHubState } from '../state/store';
import type { SpiderNode } from './nodes';
import { STATE_ICON, STATE_LABEL, escapeMarkdown, sessionTooltip, spiderState } from './presentation';

/** The Spiders view: every spider with its session state (icon and description); menus follow `spider:<state>`. */
export class SpidersTreeProvider implements vscode.TreeDataProvider<SpiderNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<SpiderNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: { dispose(): void };

  constructor(
    private readonly state: CrawlHubState,
    private readonly now: () => number = Date.now,
  ) {
    this.subscription = state.onDidChange(() => this.changed.fire(undefined));
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  getChildren(element?: SpiderNode): SpiderNode[] {
    if (element || this.state.connection.kind !== 'online') return [];
    return this.state.spiders().map((spider) => ({ kind: 'spider', spider, session: this.state.sessionForSpider(spider.id) }));
  }

  getTreeItem(node: SpiderNode): vscode.TreeItem {
    const state = spiderState(node.session);
    const item = new vscode.TreeItem(node.spider.name, vscode.TreeItemCollapsibleState.None);
    item.id = `spider:${node.spider.id}`;
    const icon = STATE_ICON[state];
    item.iconPath = new vscode.ThemeIcon(icon.icon, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
    item.description = STATE_LABEL[state];
    item.contextValue = `spider:${state}`;
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`$(bug) **${escapeMarkdown(node.spider.name)}**`);
    if (node.spider.description) tooltip.appendMarkdown(`\n\n${escapeMarkdown(node.spider.description)}`);
    if (node.session && state !== 'none') tooltip.appendMarkdown(`\n\n${sessionTooltip(node.session, this.now()).join('  \n')}`);
    else tooltip.appendMarkdown('\n\nNo session. Open one with "Open in Editor" or "Open in Browser".');
    item.tooltip = tooltip;
    item.accessibilityInformation = { label: `${node.spider.name}, ${STATE_LABEL[state]}` };
    return item;
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
