import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import type { Me } from '../api/types';
import { isSessionUri } from '../fs/uris';

/**
 * The server (and the account on it) a `crawlhub://<session_id>/…` folder was opened from. The URI
 * itself names only the session, so that existing folders, editors and workspace files keep working;
 * this record, kept in globalState (it must outlive the window: "Open in a New Window" and a reload
 * start the extension again elsewhere), says where the session lives.
 */
export interface FolderServer {
  /** The server URL the extension was set to, e.g. https://crawlhub.example.com (what "Switch to" sets again). */
  server: string;
  origin: string;
  userId?: string;
  userName?: string;
  /** When it was recorded (ms since the epoch): the oldest go first once there are too many. */
  at: number;
}

/** The client that file calls of this folder would go to: a folder of another server or account is not its to answer. */
export type FolderClient = Pick<CrawlHubClient, 'origin' | 'base' | 'me'>;

/** A folder whose session is not on the server and account the extension is signed in to now. */
export interface ForeignFolder {
  sessionId: string;
  record: FolderServer;
  /** Another server, or another account on the same server. */
  kind: 'server' | 'account';
  /** Where the extension is signed in now. */
  current: { server: string; userName?: string };
}

export const FOLDER_SERVERS_KEY = 'crawlhub.folderServers';
const MAX_RECORDS = 500;

/** The server URL as settings and messages show it: no trailing slash. */
const serverOf = (client: Pick<CrawlHubClient, 'base'>) => client.base.href.replace(/\/+$/, '');

/** "the session on https://a.example" / "alice's session on https://a.example" */
function whose(record: FolderServer, kind: ForeignFolder['kind']): string {
  return kind === 'account' && record.userName ? `${record.userName}'s session on ${record.server}` : `a session on ${record.server}`;
}

/** The error every file call of a foreign folder answers with: which server the folder belongs to, and where the extension is now. */
export function foreignMessage(f: ForeignFolder): string {
  const now =
    f.kind === 'account'
      ? `you are signed in to it${f.current.userName ? ` as ${f.current.userName}` : ' with another account'}`
      : `CrawlHub is now connected to ${f.current.server}`;
  return `This folder is ${whose(f.record, f.kind)}, but ${now}.`;
}

/**
 * Which server each crawlhub folder belongs to, and whether that is the one signed in to now. A
 * folder without a record (opened before records were kept) counts as the current server's until the
 * server lists its session (adopt); a foreign folder's session id is never sent to the current server.
 */
export class FolderServers implements vscode.Disposable {
  /** The signed-in user per client (a new token is a new client): asked once, shared by every file call. */
  private readonly users = new WeakMap<FolderClient, { promise: Promise<Me>; me?: Me }>();
  private readonly identified = new vscode.EventEmitter<void>();
  /** A client's user became known: sessions that waited for it may be watched now. */
  readonly onDidIdentify = this.identified.event;
  private readonly foreign = new vscode.EventEmitter<ForeignFolder>();
  /** A file call met a foreign folder (each time: the notice decides what to say once). */
  readonly onForeign = this.foreign.event;

  constructor(
    private readonly store: vscode.Memento,
    /** The client the events socket uses now (undefined: signed out). */
    private readonly current: () => FolderClient | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  private records(): Record<string, FolderServer> {
    const value = this.store.get<Record<string, FolderServer>>(FOLDER_SERVERS_KEY);
    return value && typeof value === 'object' ? value : {};
  }

  get(sessionId: string): FolderServer | undefined {
    const r = this.records()[sessionId];
    return r && typeof r.origin === 'string' && typeof r.server === 'string' ? r : undefined;
  }

  /** Records that the session is `client`'s (its server, and the user signed in there). Awaited before the folder opens. */
  async remember(sessionId: string, client: FolderClient): Promise<void> {
    const me = await this.userOf(client).catch(() => undefined);
    await this.put(sessionId, { server: serverOf(client), origin: client.origin, userId: me?.id, userName: me?.name, at: this.now() });
  }

  /**
   * Folders without a record (opened before records were kept) whose sessions the server at
   * `client`'s origin just listed as `me`'s: recorded as theirs.
   */
  async adopt(sessionIds: Iterable<string>, client: Pick<FolderClient, 'origin' | 'base'>, me: Me): Promise<void> {
    const records = this.records();
    const missing = [...sessionIds].filter((id) => !records[id]);
    if (missing.length === 0) return;
    const record = { server: serverOf(client), origin: client.origin, userId: me.id, userName: me.name, at: this.now() };
    for (const id of missing) records[id] = record;
    await this.save(records);
  }

  private async put(sessionId: string, record: FolderServer): Promise<void> {
    const records = this.records();
    records[sessionId] = record;
    await this.save(records);
  }

  private async save(records: Record<string, FolderServer>): Promise<void> {
    const ids = Object.keys(records);
    if (ids.length > MAX_RECORDS) {
      ids.sort((a, b) => (records[a].at ?? 0) - (records[b].at ?? 0));
      for (const id of ids.slice(0, ids.length - MAX_RECORDS)) delete records[id];
    }
    await this.store.update(FOLDER_SERVERS_KEY, records);
  }

  /** The user `client`'s token belongs to (cached per client; a failure is asked again next time). */
  userOf(client: FolderClient): Promise<Me> {
    let entry = this.users.get(client);
    if (!entry) {
      const promise = client.me();
      const made: { promise: Promise<Me>; me?: Me } = { promise };
      entry = made;
      this.users.set(client, made);
      promise.then(
        (me) => {
          made.me = me;
          this.identified.fire();
        },
        () => {
          if (this.users.get(client) === made) this.users.delete(client);
        },
      );
    }
    return entry.promise;
  }

  /**
   * Whether the session's files must not be asked of `client`: undefined when they may, else what
   * to say (and onForeign fires). A failure to learn the user is thrown, as any failed call.
   */
  async check(sessionId: string, client: FolderClient): Promise<ForeignFolder | undefined> {
    const record = this.get(sessionId);
    if (!record) return undefined;
    let found: ForeignFolder | undefined;
    if (record.origin !== client.origin) {
      found = { sessionId, record, kind: 'server', current: { server: serverOf(client) } };
    } else if (record.userId) {
      const me = await this.userOf(client);
      if (me.id !== record.userId) found = { sessionId, record, kind: 'account', current: { server: serverOf(client), userName: me.name } };
    }
    if (found) this.foreign.fire(found);
    return found;
  }

  /**
   * Without a round trip: whether the session must not be named to the current client (the events
   * socket's `watch`). A user not known yet counts as another one until it is: it is asked for, and
   * onDidIdentify says when it is known.
   */
  elsewhere(sessionId: string): boolean {
    const record = this.get(sessionId);
    if (!record) return false;
    const client = this.current();
    if (!client || record.origin !== client.origin) return true;
    if (!record.userId) return false;
    const known = this.users.get(client);
    if (!known) this.userOf(client).catch(() => undefined);
    return !known?.me || known.me.id !== record.userId;
  }

  dispose(): void {
    this.identified.dispose();
    this.foreign.dispose();
  }
}

export const SWITCH_TO = (server: string) => `Switch to ${server}`;
export const SIGN_IN_TO = (server: string) => `Sign In to ${server}`;
export const REMOVE_FOLDER = 'Remove Folder';

export interface ForeignNoticeDeps {
  warn(message: string, ...actions: string[]): Thenable<string | undefined>;
  /** Whether a token for the origin is stored (then "Switch to" needs no sign-in). */
  hasToken(origin: string): Promise<boolean>;
  /** Points the extension at the server (the crawlhub.serverUrl setting). */
  switchTo(server: string): Promise<void>;
  /** The Sign In command, its server box filled in with `server`. */
  signIn(server: string): void;
  /** Removes the session's workspace folder (closes the window's folder when it is the only one). */
  removeFolder(sessionId: string): void;
  /** Whether the session is a workspace folder of this window (else there is no folder to remove). */
  isFolder(sessionId: string): boolean;
}

/**
 * The one notification about a foreign folder, however many file calls meet it: it names the
 * server the folder belongs to and offers to switch there (or sign in to the account) or to remove
 * the folder. Said again only after the extension was pointed somewhere else (reset).
 */
export class ForeignFolderNotice {
  private readonly told = new Set<string>();

  constructor(private readonly d: ForeignNoticeDeps) {}

  /** Sessions told about since the last reset. */
  get sessions(): readonly string[] {
    return [...this.told];
  }

  /** The extension now talks to another server or account: every foreign folder is worth a word again. Returns those told before. */
  reset(): string[] {
    const was = [...this.told];
    this.told.clear();
    return was;
  }

  async show(f: ForeignFolder): Promise<void> {
    if (this.told.has(f.sessionId)) return;
    this.told.add(f.sessionId);
    const actions: string[] = [];
    if (f.kind === 'server' && (await this.d.hasToken(f.record.origin).catch(() => false))) actions.push(SWITCH_TO(f.record.server));
    else actions.push(SIGN_IN_TO(f.record.server));
    if (this.d.isFolder(f.sessionId)) actions.push(REMOVE_FOLDER);
    const what = this.d.isFolder(f.sessionId) ? 'A folder of this window' : 'A file open here';
    const choice = await this.d.warn(
      `${what} (session ${f.sessionId.slice(0, 8)}) is ${whose(f.record, f.kind)}; its files cannot be reached because ${
        f.kind === 'account'
          ? `you are signed in to that server${f.current.userName ? ` as ${f.current.userName}` : ' with another account'}`
          : `CrawlHub is connected to ${f.current.server}`
      }.`,
      ...actions,
    );
    if (choice === SWITCH_TO(f.record.server)) await this.d.switchTo(f.record.server);
    else if (choice === SIGN_IN_TO(f.record.server)) this.d.signIn(f.record.server);
    else if (choice === REMOVE_FOLDER) this.d.removeFolder(f.sessionId);
  }
}

/** Removes the session's folder from the window; the window's only folder is closed instead (VS Code cannot leave a folder window without one). */
export function removeSessionFolder(sessionId: string): void {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const index = folders.findIndex((f) => isSessionUri(f.uri) && f.uri.authority === sessionId);
  if (index < 0) return;
  if (folders.length === 1) void vscode.commands.executeCommand('workbench.action.closeFolder');
  else vscode.workspace.updateWorkspaceFolders(index, 1);
}
