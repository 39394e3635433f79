import type * as vscode from 'vscode';
import { CrawlHubExtension } from './core/container';

/** Only wiring: the container builds everything and context.subscriptions owns it. */
export function activate(context: vscode.ExtensionContext): void {
  context.subscriptions.push(new CrawlHubExtension(context));
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
