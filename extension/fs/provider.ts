import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import type { FileStat, FilesEvent } from '../api/types';
import { ChangeBatcher } from './changeBatcher';
import { LinkTargets } from './linkTargets';
import { toFileSystemError } from './errors';
import { PendingWrites } from './pendingWrites';
import { isSessionUri, sessionUri, workspacePath } from './uris';

/** The /workspace-relative path of a session URI; nothing exists outside /workspace. */
function pathOf(uri: vscode.Uri): string {
  const path = workspacePath(uri.path);
  if (path === null) throw vscode.FileSystemError.FileNotFound(uri);
  return path;
}

const FILE_TYPE: Record<string, vscode.FileType> = {
  file: vscode.FileType.File,
  directory: vscode.FileType.Directory,
};
/**
 * An entry's FileType. A link is SymbolicLink with the type of what it leads to, as VS Code's own
 * disk provider has it: File or Directory, nothing more (Unknown) when it is dangling or leads to a
 * pipe or a device. A server from before `target` does not say: most links in a workspace lead to files.
 */
function fileType(type: string, target?: string | null): vscode.FileType {
  if (type !== 'symlink') return Object.hasOwn(FILE_TYPE, type) ? FILE_TYPE[type] : vscode.FileType.Unknown;
  const to =
    target === undefined
      ? vscode.FileType.File
      : target !== null && Object.hasOwn(FILE_TYPE, target)
        ? FILE_TYPE[target]
        : vscode.FileType.Unknown;
  return vscode.FileType.SymbolicLink | to;
}

const CHANGE_TYPE: Record<FilesEvent['changes'][number]['kind'], vscode.FileChangeType> = {
  created: vscode.FileChangeType.Created,
  changed: vscode.FileChangeType.Changed,
  deleted: vscode.FileChangeType.Deleted,
};

export interface SessionFileSystemOptions {
  client: () => Promise<CrawlHubClient | undefined>;
  /** Asks the events socket for `files` events of a session (and stops asking). */
  watchSession(sessionId: string): void;
  unwatchSession(sessionId: string): void;
  /**
   * Why the session's files are not `client`'s to serve (its folder belongs to another server or
   * account), said as the error of every call; undefined when they are. Asked before each call, so
   * that a foreign session id never reaches the server signed in to now.
   */
  foreignFolder?(sessionId: string, client: CrawlHubClient): Promise<string | undefined>;
  /** The server a session's folder was opened from, when known: named when the user is signed out. */
  folderServer?(sessionId: string): string | undefined;
  batchDelayMs?: number;
}

/**
 * A session's /workspace as `crawlhub://<session_id>/…`, over the service's fs endpoints. Changes
 * made here are announced at once; changes made in the container (terminal, crawls, the browser IDE)
 * arrive as `files` events from /api/events. Both are batched into onDidChangeFile.
 */
export class SessionFileSystemProvider implements vscode.FileSystemProvider, vscode.Disposable {
  private readonly changes = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.changes.event;
  /** A session's files were changed from this window (an edit was written, a file created…). */
  private readonly writes = new vscode.EventEmitter<string>();
  readonly onDidWrite = this.writes.event;
  private readonly batcher: ChangeBatcher<vscode.FileChangeEvent>;
  private readonly watchers = new Map<string, number>();
  private readonly pendingWrites = new PendingWrites();
  /** Links VS Code stat-ed, by where they lead: the server's change events name only that. */
  private readonly links = new LinkTargets();

  constructor(private readonly opts: SessionFileSystemOptions) {
    this.batcher = new ChangeBatcher(
      opts.batchDelayMs ?? 25,
      (e) => `${e.type}:${e.uri.toString()}`,
      (events) => this.changes.fire(events),
    );
  }

  // ---- watching ----------------------------------------------------------------------------------

  watch(uri: vscode.Uri): vscode.Disposable {
    const id = uri.authority;
    const count = this.watchers.get(id) ?? 0;
    this.watchers.set(id, count + 1);
    if (count === 0) this.opts.watchSession(id);
    let disposed = false;
    return new vscode.Disposable(() => {
      if (disposed) return;
      disposed = true;
      const left = (this.watchers.get(id) ?? 1) - 1;
      if (left > 0) {
        this.watchers.set(id, left);
        return;
      }
      this.watchers.delete(id);
      this.opts.unwatchSession(id);
    });
  }

  /** Sessions something in this window watches. */
  get watchedSessions(): string[] {
    return [...this.watchers.keys()];
  }

  /** Resolves once none of the session's writes from this window is still on its way to the container. */
  writesSettled(sessionId: string): Promise<void> {
    return this.pendingWrites.settled(sessionId);
  }

  /** A `files` event from the server. */
  applyServerChanges(event: FilesEvent): void {
    const id = event.session_id;
    const changes: vscode.FileChangeEvent[] = [];
    for (const c of event.changes) {
      changes.push({ type: CHANGE_TYPE[c.kind], uri: sessionUri(id, c.path) });
      if (c.kind === 'deleted') this.links.forget(id, c.path);
      // The same file seen through a link: the link itself changed, whatever became of what it leads to.
      for (const l of this.links.linked(id, c.path))
        changes.push({ type: l.exact ? vscode.FileChangeType.Changed : CHANGE_TYPE[c.kind], uri: sessionUri(id, l.path) });
    }
    this.batcher.add(...changes);
  }

  /**
   * Live updates were down for a while (the events socket reconnected): whatever changed in these
   * sessions meanwhile was never reported. Tells VS Code that their folders and their open
   * documents changed, so the explorer lists them again and editors reload what is on disk.
   */
  refreshSessions(sessionIds: Iterable<string>, documents: readonly { readonly uri: vscode.Uri }[]): void {
    const ids = new Set(sessionIds);
    const changed: vscode.FileChangeEvent[] = [...ids].map((id) => ({ type: vscode.FileChangeType.Changed, uri: sessionUri(id) }));
    for (const doc of documents) {
      if (isSessionUri(doc.uri) && ids.has(doc.uri.authority)) changed.push({ type: vscode.FileChangeType.Changed, uri: doc.uri });
    }
    if (changed.length > 0) this.batcher.add(...changed);
  }

  // ---- the FileSystemProvider contract -----------------------------------------------------------

  async stat(uri: vscode.Uri): Promise<vscode.FileStat> {
    const s: FileStat = await this.call(uri, (c) => c.stat(uri.authority, pathOf(uri)));
    // A link's size and times are those of what it leads to (as on disk); its changes are reported under that path.
    this.links.note(uri.authority, pathOf(uri), s.type === 'symlink' ? s.real_path : undefined);
    return { type: fileType(s.type, s.target), size: s.size, mtime: s.mtime, ctime: s.ctime };
  }

  async readDirectory(uri: vscode.Uri): Promise<[string, vscode.FileType][]> {
    const entries = await this.call(uri, (c) => c.readDirectory(uri.authority, pathOf(uri)));
    return entries.map((e) => [e.name, fileType(e.type, e.target)]);
  }

  readFile(uri: vscode.Uri): Promise<Uint8Array> {
    return this.call(uri, (c) => c.readFile(uri.authority, pathOf(uri)));
  }

  async writeFile(uri: vscode.Uri, content: Uint8Array, options: { readonly create: boolean; readonly overwrite: boolean }): Promise<void> {
    const path = pathOf(uri);
    await this.change(uri, (c) => c.writeFile(uri.authority, path, content, { create: options.create, overwrite: options.overwrite }));
    // A save replaces (overwrite); "New File" creates. A Save As onto a new name is announced as a change
    // here and as a creation by the server's watcher a moment later: no extra round trip to tell them apart.
    this.announce(uri, options.overwrite ? vscode.FileChangeType.Changed : vscode.FileChangeType.Created);
  }

  async createDirectory(uri: vscode.Uri): Promise<void> {
    await this.change(uri, (c) => c.createDirectory(uri.authority, pathOf(uri)));
    this.announce(uri, vscode.FileChangeType.Created);
  }

  async delete(uri: vscode.Uri, options: { readonly recursive: boolean }): Promise<void> {
    await this.change(uri, (c) => c.delete(uri.authority, pathOf(uri), { recursive: options.recursive }));
    this.announce(uri, vscode.FileChangeType.Deleted);
  }

  async rename(oldUri: vscode.Uri, newUri: vscode.Uri, options: { readonly overwrite: boolean }): Promise<void> {
    if (oldUri.authority !== newUri.authority) throw vscode.FileSystemError.NoPermissions('Files cannot be moved between sessions.');
    await this.change(oldUri, (c) => c.rename(oldUri.authority, pathOf(oldUri), pathOf(newUri), options), newUri);
    this.announce(oldUri, vscode.FileChangeType.Deleted);
    this.announce(newUri, vscode.FileChangeType.Created);
  }

  // ---- plumbing ------------------------------------------------------------------------------------

  private announce(uri: vscode.Uri, type: vscode.FileChangeType): void {
    this.batcher.add({ type, uri });
    this.writes.fire(uri.authority);
  }

  /** A call that changes the session's files: in flight until it settles (writesSettled waits for it). */
  private change<T>(uri: vscode.Uri, op: (client: CrawlHubClient) => Promise<T>, target?: vscode.Uri): Promise<T> {
    return this.pendingWrites.track(uri.authority, this.call(uri, op, target));
  }

  /** `op` on the server, its failure said as a FileSystemError about `uri` (or a rename's `target`: see toFileSystemError). */
  private async call<T>(uri: vscode.Uri, op: (client: CrawlHubClient) => Promise<T>, target?: vscode.Uri): Promise<T> {
    const client = await this.opts.client();
    if (!client) {
      const server = this.opts.folderServer?.(uri.authority);
      throw vscode.FileSystemError.NoPermissions(`Sign in to CrawlHub${server ? ` at ${server}` : ''} to reach the files of this session.`);
    }
    try {
      const foreign = await this.opts.foreignFolder?.(uri.authority, client);
      if (foreign) throw vscode.FileSystemError.Unavailable(foreign);
      return await op(client);
    } catch (err) {
      throw toFileSystemError(err, uri, target);
    }
  }

  dispose(): void {
    this.batcher.dispose();
    this.changes.dispose();
    this.writes.dispose();
  }
}
