import * as vscode from 'vscode';
import { CrawlHubClient, parseServerUrl } from '../api/client';
import { ApiError, errorMessage } from '../api/errors';
import type { Credentials } from '../auth/credentials';
import { abortOn, type Notifier } from '../core/notify';
import { serverUrlSetting } from '../core/settings';
import type { CrawlHubState } from '../state/store';

export interface AuthDeps {
  credentials: Credentials;
  state: CrawlHubState;
  notify: Notifier;
  log: vscode.LogOutputChannel;
}

const validateUrl = (value: string): string | undefined => {
  try {
    parseServerUrl(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
};

/**
 * Asks for the server URL and a token, checks them with GET /api/me, keeps the token in SecretStorage.
 * `server` fills the URL box (a folder of another server offers "Sign In to <server>").
 */
export async function signIn(deps: AuthDeps, server?: string): Promise<boolean> {
  const url = await vscode.window.showInputBox({
    title: 'CrawlHub: Sign In (1/2)',
    prompt: 'The address of the CrawlHub server',
    placeHolder: 'https://crawlhub.example.com',
    value: server ?? (serverUrlSetting() || undefined),
    ignoreFocusOut: true,
    validateInput: validateUrl,
  });
  if (!url) return false;
  const origin = parseServerUrl(url).origin;
  const token = await vscode.window.showInputBox({
    title: 'CrawlHub: Sign In (2/2)',
    prompt: `An API token for ${origin} (an administrator makes one with "crawlhub token add <user>")`,
    password: true,
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? undefined : 'Paste the token'),
  });
  if (!token) return false;
  const client = new CrawlHubClient({ serverUrl: url, token: token.trim(), log: deps.log });
  try {
    const me = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Checking the token with ${origin}…`, cancellable: true },
      async (_progress, cancel) => {
        const abort = abortOn(cancel);
        try {
          return await client.me({ signal: abort.signal });
        } finally {
          abort.dispose();
        }
      },
    );
    await deps.credentials.signIn(client, token.trim());
    void deps.notify.info(`Signed in to ${origin} as ${me.name}.`);
    await deps.state.refresh();
    return true;
  } catch (err) {
    const refused = err instanceof ApiError && err.status === 401;
    // The token typed just now was refused, not a stored one revoked: no "Sign In Again" here, only "Try Again".
    const again = await deps.notify.error(
      refused ? `Signing in (${origin} refused the token)` : 'Signing in',
      refused ? new Error(errorMessage(err)) : err,
      'Try Again',
    );
    if (again === 'Try Again') return signIn(deps, server);
    return false;
  }
}

export async function signOut(deps: AuthDeps): Promise<void> {
  const origin = deps.credentials.serverOrigin();
  await deps.credentials.signOut();
  await deps.state.refresh();
  void deps.notify.info(`Signed out${origin ? ` of ${origin}` : ''}. The token was removed from this machine's secret storage.`);
}
