import * as vscode from 'vscode';

/** Session files are `crawlhub://<session_id>/<path inside /workspace>`. */
export const SCHEME = 'crawlhub';

/** The /workspace-relative path of a URI path: "/" is "" (the folder itself), "/a/b" is "a/b". */
export function workspacePath(uriPath: string): string {
  return uriPath.replace(/^\/+/, '').replace(/\/+$/, '');
}

export function sessionUri(sessionId: string, path = ''): vscode.Uri {
  return vscode.Uri.from({ scheme: SCHEME, authority: sessionId, path: `/${path}` });
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
