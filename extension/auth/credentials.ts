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
  private readonly disposables: vscode.Disposable[] = [this.changed];
  private cached: { key: string; client: CrawlHubClient } | undefined;

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
    const token = await this.secrets.get(secretKey(base.origin));
    if (!token) return undefined;
    const key = `${base.href}\n${token}`;
    if (this.cached?.key !== key) this.cached = { key, client: new CrawlHubClient({ serverUrl: base.href, token, log: this.log }) };
    return this.cached.client;
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
    this.cached = undefined;
    this.changed.fire();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
