import * as vscode from 'vscode';
import type { ContextKey } from './contextKeys';

/** Sets one of the extension's context keys (only those of the typed table). */
export function setContext(key: ContextKey, value: boolean): void {
  void vscode.commands.executeCommand('setContext', key, value);
}
