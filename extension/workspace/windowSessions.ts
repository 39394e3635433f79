import * as vscode from 'vscode';
import { ContextKeys } from '../core/contextKeys';
import { setContext } from '../core/setContext';
import { isSessionUri, openSessionIds } from '../fs/uris';

/**
 * The sessions this window has open as crawlhub: workspace folders, and the one the user is working
 * in now (the active editor's, else the first folder's).
 */
export class WindowSessions implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [this.changed];
  private ids: string[] = [];
  private active: string | undefined;

  constructor() {
    this.disposables.push(
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.update()),
      vscode.window.onDidChangeActiveTextEditor(() => this.update()),
    );
    this.update();
  }

  private update(): void {
    const ids = openSessionIds(vscode.workspace.workspaceFolders);
    const uri = vscode.window.activeTextEditor?.document.uri;
    const active = uri && isSessionUri(uri) ? uri.authority : undefined;
    if (ids.join() === this.ids.join() && active === this.active) return;
    this.ids = ids;
    this.active = active;
    setContext(ContextKeys.sessionOpen, ids.length > 0);
    this.changed.fire();
  }

  /** Session ids of the crawlhub folders of this window. */
  folders(): readonly string[] {
    return this.ids;
  }

  has(sessionId: string): boolean {
    return this.ids.includes(sessionId) || this.active === sessionId;
  }

  /** The session a Save or Terminal without an explicit target is for. */
  current(): string | undefined {
    return this.active ?? this.ids[0];
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
