import * as vscode from 'vscode';

/**
 * Session files are `crawlhub://<session_id>/workspace/<path>`: the path they have in the container,
 * so the folder is called "workspace" in the explorer and the title bar, as in the browser IDE.
 */
export const SCHEME = 'crawlhub';
export const ROOT = '/workspace';

/** The /workspace-relative path of a URI path: "/workspace" is "" (the folder itself), "/workspace/a/b" is "a/b"; null outside it. */
export function workspacePath(uriPath: string): string | null {
  const path = uriPath.replace(/\/+$/, '');
  if (path === ROOT) return '';
  if (!path.startsWith(`${ROOT}/`)) return null;
  return path.slice(ROOT.length + 1).replace(/^\/+/, '');
}

export function sessionUri(sessionId: string, path = ''): vscode.Uri {
  return vscode.Uri.from({ scheme: SCHEME, authority: sessionId, path: path ? `${ROOT}/${path}` : ROOT });
}

export function isSessionUri(uri: vscode.Uri): boolean {
  return uri.scheme === SCHEME && uri.authority !== '';
}

/** The sessions this window has open as workspace folders, in folder order. */
export function openSessionIds(folders: readonly vscode.WorkspaceFolder[] | undefined): string[] {
  const ids: string[] = [];
  for (const f of folders ?? []) if (isSessionUri(f.uri) && !ids.includes(f.uri.authority)) ids.push(f.uri.authority);
  return ids;
}
