import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { ApiError } from '../api/errors';
import { sessionUri } from '../fs/uris';

/** Read-only documents with a spider's stored files: the left side of save previews and conflict diffs. */
export const SERVER_SCHEME = 'crawlhub-server';

let version = 0;

/** A stored file of a spider; each call makes a new URI so a preview never shows a cached old version. */
export function serverFileUri(spiderId: string, path: string): vscode.Uri {
  return vscode.Uri.from({ scheme: SERVER_SCHEME, authority: spiderId, path: `/${path}`, query: `v=${++version}` });
}

/** An empty document standing for a file that is missing on one side. */
export function missingFileUri(path: string): vscode.Uri {
  return vscode.Uri.from({ scheme: SERVER_SCHEME, authority: 'missing', path: `/${path}`, query: `v=${++version}` });
}

export class ServerDocumentProvider implements vscode.TextDocumentContentProvider {
  constructor(private readonly client: () => Promise<CrawlHubClient | undefined>) {}

  async provideTextDocumentContent(uri: vscode.Uri, token: vscode.CancellationToken): Promise<string> {
    if (uri.authority === 'missing') return '';
    const client = await this.client();
    if (!client) throw new Error('Sign in to CrawlHub to see stored files.');
    const controller = new AbortController();
    const sub = token.onCancellationRequested(() => controller.abort());
    try {
      const bytes = await client.spiderFile(uri.authority, uri.path.replace(/^\//, ''), { signal: controller.signal });
      return new TextDecoder().decode(bytes);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return '';
      throw err;
    } finally {
      sub.dispose();
    }
  }
}

export type DiffSide = 'both' | 'serverMissing' | 'workspaceMissing';

/** Opens "stored on the server ↔ in the session" for one path. */
export async function openSaveDiff(
  spiderId: string,
  sessionId: string,
  path: string,
  side: DiffSide,
  options: vscode.TextDocumentShowOptions = {},
): Promise<void> {
  const left = side === 'serverMissing' ? missingFileUri(path) : serverFileUri(spiderId, path);
  const right = side === 'workspaceMissing' ? missingFileUri(path) : sessionUri(sessionId, path);
  const title = `${path} (server ↔ session)`;
  await vscode.commands.executeCommand('vscode.diff', left, right, title, options);
}
