import * as vscode from 'vscode';
import { CrawlHubClient, parseServerUrl } from '../api/client';
import type { Log } from '../core/log';
import { affects, serverUrlSetting, setServerUrlSetting } from '../core/settings';

/** Tokens are kept per server origin, so a token is never offered to a server it was not made for. */
const secretKey = (origin: string) => `crawlhub.token:${origin}`;

/**
 * The server URL (a setting) and its token (SecretStorage, never settings). Builds the API client
 * for them and says when either changes.
 */
export class Credentials implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly unauthorized = new vscode.EventEmitter<void>();
  /** A call of the current client was answered 401: the server no longer takes the stored token. */
  readonly onUnauthorized = this.unauthorized.event;
  private readonly disposables: vscode.Disposable[] = [this.changed, this.unauthorized];
  private cached: { key: string; client: CrawlHubClient } | undefined;
  /**
   * The stored token per origin (undefined: none), read once: every file operation asks for the
   * client, and SecretStorage is an IPC round trip (a keychain on the desktop). Any change of a
   * token (this window's sign-in or sign-out, or another window's) forgets them.
   */
  private readonly tokens = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly log: Log,
  ) {
    this.disposables.push(
      secrets.onDidChange((e) => {
        if (e.key.startsWith('crawlhub.token:')) this.invalidate();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affects(e, 'serverUrl')) this.invalidate();
      }),
    );
  }

  /** The configured server's origin, if the setting holds a valid URL. */
  serverOrigin(): string | undefined {
    try {
      return parseServerUrl(serverUrlSetting()).origin;
    } catch {
      return undefined;
    }
  }

  /** The client for the configured server, or undefined when signed out. */
  async client(): Promise<CrawlHubClient | undefined> {
    const url = serverUrlSetting();
    if (!url) return undefined;
    let base: URL;
    try {
      base = parseServerUrl(url);
    } catch {
      return undefined;
    }
    const token = await this.token(base.origin);
    if (!token) return undefined;
    const key = `${base.href}\n${token}`;
    if (this.cached?.key !== key) {
      const client: CrawlHubClient = new CrawlHubClient({
        serverUrl: base.href,
        token,
        log: this.log,
        // A client replaced meanwhile (signed in again) speaks for a token that no longer matters.
        onUnauthorized: () => {
          if (this.cached?.client === client) this.unauthorized.fire();
        },
      });
      this.cached = { key, client };
    }
    return this.cached.client;
  }

  /** Whether a token for the origin is stored: switching to that server needs no sign-in. */
  async hasToken(origin: string): Promise<boolean> {
    return !!(await this.token(origin));
  }

  private token(origin: string): Promise<string | undefined> {
    let token = this.tokens.get(origin);
    if (!token) {
      const read = Promise.resolve(this.secrets.get(secretKey(origin)));
      token = read;
      this.tokens.set(origin, read);
      // A failed read is not remembered: the next call asks again.
      read.catch(() => {
        if (this.tokens.get(origin) === read) this.tokens.delete(origin);
      });
    }
    return token;
  }

  /** Stores a token that was already checked against the server. */
  async signIn(client: CrawlHubClient, token: string): Promise<void> {
    await this.secrets.store(secretKey(client.origin), token);
    await setServerUrlSetting(client.base.href.replace(/\/$/, ''));
    this.invalidate();
  }

  async signOut(): Promise<void> {
    const origin = this.serverOrigin();
    if (origin) await this.secrets.delete(secretKey(origin));
    this.invalidate();
  }

  private invalidate(): void {
    this.tokens.clear();
    this.cached = undefined;
    this.changed.fire();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
