import * as vscode from 'vscode';
import { StateTreeProvider } from './stateTree';
import type { SpiderNode } from './nodes';
import { STATE_LABEL, escapeMarkdown, sessionTooltip, spiderState } from './presentation';

/** The Spiders view: every spider with its session state (icon and description); menus follow `spider:<state>`. */
export class SpidersTreeProvider extends StateTreeProvider<SpiderNode> {
  protected roots(): SpiderNode[] {
    return this.state.spiders().map((spider) => ({ kind: 'spider', spider, session: this.state.sessionForSpider(spider.id) }));
  }

  getTreeItem(node: SpiderNode): vscode.TreeItem {
    const state = spiderState(node.session);
    const item = new vscode.TreeItem(node.spider.name, vscode.TreeItemCollapsibleState.None);
    item.id = `spider:${node.spider.id}`;
    item.iconPath = this.icon(state);
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
}
