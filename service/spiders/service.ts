import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { Em } from '../db/orm';
import { User } from '../auth/entities';
import { AppError, badRequest, conflict, notFound, tooLarge } from '../http/errors';
import { checkPreconditions, type Preconditions } from '../http/preconditions';
import { KeyedLock } from '../keyed-lock';
import { BlobStore, type StoredBlob } from '../storage/blobs';
import { readTar } from '../sync/tar-reader';
import { Spider, SpiderFile } from './entities';
import { existingPathForm, normalizePath, parentFolders, tryNormalizePath } from './paths';

export interface SpiderLimits {
  maxFileBytes: number;
  maxSpiderBytes: number;
  maxSpiderFiles: number;
}

export interface FileInfo {
  path: string;
  size: number;
  sha256: string;
  updatedAt: Date;
}

/** A set of changes to a spider's files, applied all together or not at all. */
export interface FileChanges {
  put: Map<string, StoredBlob>;
  delete: Set<string>;
  /** Make the spider hold exactly `put`: every other file is deleted. */
  replaceAll?: boolean;
}

export interface SpiderHooks {
  /** The users whose session of the spider still holds a container (live or kept): such a spider cannot be deleted. */
  liveSessionUsers(em: Em, spiderId: string): Promise<string[]>;
}

export const SPIDER_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9 _.-]{0,98}[A-Za-z0-9_.-])?$/;

export const fileInfo = (f: SpiderFile): FileInfo => ({ path: f.path, size: f.size, sha256: f.sha256, updatedAt: f.updatedAt });

const blobRef = (f: SpiderFile) => ({ key: f.storageKey, size: f.size, offset: f.storageOffset });

/** A file row as `fileIndex` gives it. */
export interface FileRow {
  id: string;
  size: number;
  sha256: string;
  storageKey: string;
  storageOffset: number;
}

/** Where each content the spider already stores is: a new file with the same bytes points there instead of storing them again. */
export function storedContent(index: Map<string, FileRow>): Map<string, StoredBlob> {
  const byContent = new Map<string, StoredBlob>();
  for (const row of index.values())
    byContent.set(row.sha256, { key: row.storageKey, sha256: row.sha256, size: row.size, offset: row.storageOffset });
  return byContent;
}

/**
 * Spiders and their files. Every change to a spider's files runs under that spider's lock: the
 * new blobs are written first, then one transaction switches the rows, then blobs that no row
 * uses any more are removed. A failure at any point leaves the previous version whole.
 */
export class SpiderService {
  readonly lock = new KeyedLock();

  /**
   * Storage keys that exports in progress read, with how many read each: their collection waits
   * until the last export ends, so an export is the spider as it was when it was listed.
   */
  private readonly pinned = new Map<string, number>();
  /** Pinned keys a change left unused or mostly dead meanwhile, by spider: collected once unpinned. */
  private readonly deferred = new Map<string, string>();

  constructor(
    readonly blobs: BlobStore,
    readonly limits: SpiderLimits,
    private readonly hooks: SpiderHooks = { liveSessionUsers: () => Promise.resolve([]) },
  ) {}

  async list(em: Em, actor: User): Promise<Spider[]> {
    const rows = await em.find(Spider, actor.isAdmin ? {} : { ownerId: actor.id });
    return rows.sort((a, b) => byCodePoint(a.name, b.name) || byCodePoint(a.id, b.id));
  }

  /** A spider the actor may see; someone else's is "not found", so that ids leak nothing. */
  async get(em: Em, actor: User, id: string): Promise<Spider> {
    const spider = /^[0-9a-f-]{36}$/.test(id) ? await em.findOne(Spider, { id }) : null;
    if (!spider || (!actor.isAdmin && spider.ownerId !== actor.id)) throw notFound('Spider');
    return spider;
  }

  async create(em: Em, actor: User, input: { name: string; description?: string }): Promise<Spider> {
    await this.assertNameFree(em, actor.id, input.name);
    const spider = em.create(Spider, { ownerId: actor.id, name: input.name, description: input.description ?? '' });
    await flushUnique(em, input.name);
    return spider;
  }

  async update(em: Em, actor: User, id: string, input: { name?: string; description?: string }): Promise<Spider> {
    const spider = await this.get(em, actor, id);
    const changes: { name?: string; description?: string; updatedAt?: Date } = {};
    if (input.name !== undefined && input.name !== spider.name) {
      await this.assertNameFree(em, spider.ownerId, input.name);
      changes.name = input.name;
    }
    if (input.description !== undefined && input.description !== spider.description) changes.description = input.description;
    // One statement that counts what it changed: a spider deleted since it was looked up (a DELETE that
    // came first) is a 404, not a 200 for a change that landed nowhere.
    let changed: number;
    try {
      changed =
        Object.keys(changes).length === 0
          ? await em.fork().count(Spider, { id: spider.id })
          : await em.nativeUpdate(Spider, { id: spider.id }, { ...changes, updatedAt: new Date() });
    } catch (err) {
      throw uniqueConflict(err, changes.name ?? spider.name);
    }
    if (changed === 0) throw notFound('Spider');
    const now = await em.fork().findOne(Spider, { id: spider.id });
    if (!now) throw notFound('Spider');
    return now;
  }

  async remove(em: Em, actor: User, id: string): Promise<void> {
    const spider = await this.get(em, actor, id);
    await this.lock.run(spider.id, async () => {
      const holders = await this.hooks.liveSessionUsers(em, spider.id);
      const others = holders.filter((id) => id !== actor.id);
      if (others.length > 0) {
        // Someone else's (an admin's in its owner's spider, say) is neither closed nor lost by this
        // request: only its user can close it. Named, so that whoever deletes knows whom to ask.
        const names = (await em.find(User, { id: { $in: others } })).map((u) => JSON.stringify(u.name)).sort();
        throw conflict(
          `Another user (${names.join(', ')}) has a code session of this spider open or kept; the spider can be deleted once that session is closed${others.length < holders.length ? ', and yours too' : ''}.`,
          'session_active',
        );
      }
      if (holders.length > 0) throw conflict('The spider has an open code session; close it first.', 'session_active');
      await em.transactional(async (tx) => {
        await tx.nativeDelete(SpiderFile, { spiderId: spider.id });
        // Deleted by a request that held the lock first: this one deleted nothing.
        if ((await tx.nativeDelete(Spider, { id: spider.id })) === 0) throw notFound('Spider');
      });
      await this.blobs.deleteSpider(spider.id);
    });
  }

  async listFiles(em: Em, actor: User, id: string): Promise<FileInfo[]> {
    const spider = await this.get(em, actor, id);
    return (await this.files(em, spider.id)).map(fileInfo);
  }

  async files(em: Em, spiderId: string): Promise<SpiderFile[]> {
    return (await em.find(SpiderFile, { spiderId })).sort((a, b) => byCodePoint(a.path, b.path));
  }

  async readFile(em: Em, actor: User, id: string, rawPath: string): Promise<{ file: FileInfo; data: Buffer }> {
    const spider = await this.get(em, actor, id);
    const file = await this.findFile(em, spider.id, rawPath);
    const read = await this.readCurrent(em, file);
    if (!read) throw notFound(`File "${file.path}"`);
    return { file: fileInfo(read.file), data: read.data };
  }

  /**
   * The stored file a path of a request names. A name today's naming rules refuse still finds a file
   * stored under it before they were added (so that it can be read, and deleted or renamed away); a
   * path that breaks a structural rule (`..`, absolute, control characters…) finds nothing and is a
   * 400 `invalid_path`, as is a refused name that no file has.
   */
  private async findFile(em: Em, spiderId: string, rawPath: string): Promise<SpiderFile> {
    const checked = tryNormalizePath(rawPath);
    const path = 'path' in checked ? checked.path : existingPathForm(rawPath);
    const file = path === null ? null : await em.findOne(SpiderFile, { spiderId, path });
    if (file) return file;
    if ('problem' in checked) normalizePath(rawPath);
    throw notFound(`File "${path}"`);
  }

  /**
   * Reads a file listed a moment ago without the spider's lock. A change that replaced or deleted
   * it meanwhile may have collected its bytes: then the file's current version is read, or null
   * comes back when it is gone. Any other failure is thrown as it is.
   */
  private async readCurrent(
    em: Em,
    file: SpiderFile,
    read: (file: SpiderFile) => Promise<Buffer> = (f) => this.blobs.read(blobRef(f)),
  ): Promise<{ file: SpiderFile; data: Buffer } | null> {
    try {
      return { file, data: await read(file) };
    } catch (err) {
      const now = await em.fork().findOne(SpiderFile, { id: file.id });
      if (!now) return null;
      if (now.storageKey === file.storageKey && now.storageOffset === file.storageOffset) throw err;
      return { file: now, data: await this.blobs.read(blobRef(now)) };
    }
  }

  /** `conditions`: If-Match / If-None-Match against the file's ETag (its sha256), checked under the lock. */
  async writeFile(em: Em, actor: User, id: string, rawPath: string, data: Buffer, conditions: Preconditions = {}): Promise<FileInfo> {
    const spider = await this.get(em, actor, id);
    const path = normalizePath(rawPath);
    if (data.length > this.limits.maxFileBytes) throw tooLarge(`A file may hold at most ${this.limits.maxFileBytes} bytes.`);
    return this.lock.run(spider.id, async () => {
      await this.assertExists(em, spider.id);
      if (conditions.ifMatch !== undefined || conditions.ifNoneMatch !== undefined) {
        const current = await em.fork().findOne(SpiderFile, { spiderId: spider.id, path });
        checkPreconditions(conditions, current?.sha256 ?? null, `The file "${path}"`);
      }
      const blob = await this.blobs.put(spider.id, data);
      try {
        await this.commitChanges(em, spider.id, { put: new Map([[path, blob]]), delete: new Set() });
      } catch (err) {
        // Refused (a limit, a path conflict, the spider deleted meanwhile): the bytes were stored for nothing.
        await this.collectGarbage(em, spider.id, [blob.key]).catch(() => undefined);
        throw err;
      }
      // The same bytes the file already has in a pack: the row stays as it was, and the blob just written goes.
      await this.collectGarbage(em, spider.id, [blob.key]);
      const row = await em.fork().findOneOrFail(SpiderFile, { spiderId: spider.id, path });
      return fileInfo(row);
    });
  }

  async deleteFile(em: Em, actor: User, id: string, rawPath: string, conditions: Preconditions = {}): Promise<void> {
    const spider = await this.get(em, actor, id);
    await this.lock.run(spider.id, async () => {
      await this.assertExists(em, spider.id);
      const file = await this.findFile(em.fork(), spider.id, rawPath);
      checkPreconditions(conditions, file.sha256, `The file "${file.path}"`);
      await this.commitChanges(em, spider.id, { put: new Map(), delete: new Set([file.path]) });
    });
  }

  /** Imports a tar or .tar.gz: every entry is checked before anything is stored, and any bad entry refuses the whole archive. */
  async importArchive(
    em: Em,
    actor: User,
    id: string,
    body: Readable,
    opts: { replace: boolean },
  ): Promise<{ files: number; bytes: number }> {
    const spider = await this.get(em, actor, id);
    return this.lock.run(spider.id, async () => {
      await this.assertExists(em, spider.id);
      const batch = this.blobs.batch(spider.id, {}, storedContent(await this.fileIndex(em, spider.id)));
      const shas = new Map<string, string>();
      // By path: a path named twice is imported once, with its last content, and counts once.
      const sizes = new Map<string, number>();
      try {
        for await (const item of readTar(body, {
          gunzip: true,
          timeoutMs: 300_000,
          limits: {
            maxEntries: this.limits.maxSpiderFiles * 2 + 1000,
            maxFileBytes: this.limits.maxFileBytes,
            maxTotalBytes: this.limits.maxSpiderBytes,
            maxHeaderBytes: 64 * 1024,
          },
        })) {
          if (item.kind === 'skipped')
            throw badRequest(
              `The archive entry ${JSON.stringify(item.name)} was refused: ${item.reason}. Nothing was imported.`,
              'invalid_archive',
            );
          if (item.kind !== 'file') continue;
          batch.add(item.sha256, item.data);
          shas.set(item.path, item.sha256);
          sizes.set(item.path, item.data.length);
        }
        if (shas.size === 0 && !opts.replace) throw badRequest('The archive holds no files.', 'invalid_archive');
        const stored = await batch.done();
        const put = new Map([...shas].map(([path, sha256]) => [path, stored.get(sha256)!]));
        await this.commitChanges(em, spider.id, { put, delete: new Set(), replaceAll: opts.replace });
        // A path named twice keeps its last content; the first was stored for nothing.
        await this.collectGarbage(em, spider.id, batch.keys());
      } catch (err) {
        await batch.abandon();
        await this.collectGarbage(em, spider.id, batch.keys());
        if (err instanceof AppError && err.status === 422) throw new AppError(413, 'too_large', `${err.message} Nothing was imported.`);
        throw err;
      }
      return { files: shas.size, bytes: [...sizes.values()].reduce((n, size) => n + size, 0) };
    });
  }

  /** The spider's files as an uncompressed tar, streamed. `uid`/`gid` set the owner recorded in each entry. */
  async exportArchive(em: Em, spiderId: string, opts: { prefix?: string; uid?: number; gid?: number } = {}): Promise<Readable> {
    const files = await this.files(em, spiderId);
    const keys = files.map((f) => f.storageKey);
    this.pin(keys);
    const pack = tar.pack();
    const owner = { uid: opts.uid ?? 0, gid: opts.gid ?? 0 };
    const prefix = opts.prefix ? opts.prefix.replace(/\/?$/, '/') : '';
    const read = this.packAwareReader(files);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.unpin(em, spiderId, keys);
    };
    void (async () => {
      const dirs = new Set<string>();
      for (const file of files) {
        for (const dir of parentFolders(file.path)) {
          if (dirs.has(dir)) continue;
          dirs.add(dir);
          await entry(pack, { name: prefix + dir, type: 'directory', mode: 0o755, mtime: file.updatedAt, ...owner });
        }
        // Without the spider's lock (a download may be slow): the bytes the file had when listed, which the
        // pin keeps; only a change that collected them between the listing and the pin sends its current version.
        const current = await this.readCurrent(em, file, read);
        if (!current) continue;
        await entry(
          pack,
          { name: prefix + file.path, type: 'file', mode: 0o644, size: current.data.length, mtime: current.file.updatedAt, ...owner },
          current.data,
        );
      }
      pack.finalize();
    })()
      .catch((err: Error) => pack.destroy(err))
      .finally(release);
    const out = Readable.from(pack);
    // A reader that goes away (a download cut, a copy into a container that failed) ends the export and its hold.
    out.once('close', () => {
      pack.destroy();
      release();
    });
    return out;
  }

  private pin(keys: string[]): void {
    for (const key of keys) this.pinned.set(key, (this.pinned.get(key) ?? 0) + 1);
  }

  /** Ends an export's hold; what changes left to collect meanwhile is collected now, under the lock. */
  private unpin(em: Em, spiderId: string, keys: string[]): void {
    const due: string[] = [];
    for (const key of keys) {
      const left = (this.pinned.get(key) ?? 1) - 1;
      if (left > 0) {
        this.pinned.set(key, left);
        continue;
      }
      this.pinned.delete(key);
      if (this.deferred.get(key) === spiderId) {
        this.deferred.delete(key);
        due.push(key);
      }
    }
    if (due.length > 0) void this.lock.run(spiderId, () => this.collectGarbage(em.fork(), spiderId, due)).catch(() => undefined);
  }

  /**
   * Reads files for an export: a pack that several of them share is read once, whole (packs are
   * at most about 17 MiB; the last few stay in memory), instead of once per file.
   */
  private packAwareReader(files: SpiderFile[]): (file: SpiderFile) => Promise<Buffer> {
    const uses = new Map<string, number>();
    for (const f of files) if (BlobStore.isPack(f.storageKey)) uses.set(f.storageKey, (uses.get(f.storageKey) ?? 0) + 1);
    const packs = new Map<string, Promise<Buffer>>();
    return async (file) => {
      if ((uses.get(file.storageKey) ?? 0) < 2) return this.blobs.read(blobRef(file));
      let pack = packs.get(file.storageKey);
      if (!pack) {
        if (packs.size >= 4) packs.delete(packs.keys().next().value!);
        pack = this.blobs.get(file.storageKey);
        packs.set(file.storageKey, pack);
      }
      const data = await pack;
      const end = file.storageOffset + file.size;
      if (end > data.length) throw new Error(`storage: ${file.storageKey} ends before the recorded range of ${file.path}`);
      return data.subarray(file.storageOffset, end);
    };
  }

  /**
   * That the spider still exists. Call under `lock`, before any byte of a change is stored: a change
   * that waited for the lock behind the spider's deletion stores nothing (its blobs would be left in a
   * storage folder that nothing deletes any more) and fails with a 404. `commitChanges` checks it again
   * in its transaction.
   */
  async assertExists(em: Em, spiderId: string, message?: string): Promise<void> {
    if ((await em.fork().count(Spider, { id: spiderId })) > 0) return;
    throw message ? new AppError(404, 'not_found', message) : notFound('Spider');
  }

  /**
   * Applies changes in one transaction, checking the spider's limits and that no path is both a
   * file and a folder. Blobs in `changes.put` must already be stored. Call under `lock`.
   * `within` runs inside the same transaction (a save records its base manifest there).
   */
  async commitChanges(em: Em, spiderId: string, changes: FileChanges, within?: (tx: Em) => Promise<void>): Promise<void> {
    const replacedKeys: string[] = [];
    await em.transactional(async (tx) => {
      // Plain rows, not entities: a save may touch thousands of them, and only the changed ones are written.
      const byPath = await this.fileIndex(tx, spiderId);
      const result = new Map<string, number>([...byPath].map(([path, r]) => [path, r.size]));
      for (const path of changes.delete) result.delete(path);
      if (changes.replaceAll) for (const path of [...result.keys()]) if (!changes.put.has(path)) result.delete(path);
      for (const [path, blob] of changes.put) result.set(path, blob.size);
      this.checkLimits(result);
      const now = new Date();
      const removed: string[] = [];
      for (const [path, row] of byPath) {
        if (result.has(path)) continue;
        replacedKeys.push(row.storageKey);
        removed.push(row.id);
      }
      for (let i = 0; i < removed.length; i += 500) await tx.nativeDelete(SpiderFile, { id: { $in: removed.slice(i, i + 500) } });
      const inserts: {
        id: string;
        spiderId: string;
        path: string;
        size: number;
        sha256: string;
        storageKey: string;
        storageOffset: number;
        updatedAt: Date;
      }[] = [];
      for (const [path, blob] of changes.put) {
        const row = byPath.get(path);
        if (row && row.sha256 === blob.sha256) continue;
        if (row) {
          replacedKeys.push(row.storageKey);
          await tx.nativeUpdate(
            SpiderFile,
            { id: row.id },
            { size: blob.size, sha256: blob.sha256, storageKey: blob.key, storageOffset: blob.offset, updatedAt: now },
          );
        } else {
          inserts.push({
            id: randomUUID(),
            spiderId,
            path,
            size: blob.size,
            sha256: blob.sha256,
            storageKey: blob.key,
            storageOffset: blob.offset,
            updatedAt: now,
          });
        }
      }
      for (let i = 0; i < inserts.length; i += 200) await tx.insertMany(SpiderFile, inserts.slice(i, i + 200));
      // A change that waited for the lock behind the spider's deletion lands nowhere.
      if ((await tx.nativeUpdate(Spider, { id: spiderId }, { updatedAt: now })) === 0) throw notFound('Spider');
      if (within) await within(tx);
    });
    await this.collectGarbage(em, spiderId, replacedKeys);
  }

  /** The spider's file rows as plain values, by path: cheap enough for every save. */
  async fileIndex(em: Em, spiderId: string): Promise<Map<string, FileRow>> {
    type Row = { id: string; path: string; size: number | string; sha256: string; storage_key: string; storage_offset: number | string };
    const rows = (await em
      .getConnection()
      .execute(
        'select id, path, size, sha256, storage_key, storage_offset from spider_files where spider_id = ?',
        [spiderId],
        'all',
        em.getTransactionContext(),
      )) as Row[];
    return new Map(
      rows.map((r) => [
        r.path,
        { id: r.id, size: Number(r.size), sha256: r.sha256, storageKey: r.storage_key, storageOffset: Number(r.storage_offset) },
      ]),
    );
  }

  /**
   * Removes the blobs among `keys` that no file row refers to any more, and compacts the packs among
   * them that are still in use but mostly dead. Call under `lock`.
   */
  async collectGarbage(em: Em, spiderId: string, keys: string[]): Promise<void> {
    const unique = [...new Set(keys)];
    if (unique.length === 0) return;
    const used = new Set<string>();
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await em.find(SpiderFile, { spiderId, storageKey: { $in: unique.slice(i, i + 500) } }, { fields: ['storageKey'] });
      for (const r of rows) used.add(r.storageKey);
    }
    for (const key of unique) {
      // An export is reading it: collected (or compacted) when the export ends.
      if (this.pinned.has(key)) this.deferred.set(key, spiderId);
      else if (!used.has(key)) await this.blobs.delete(key).catch(() => undefined);
    }
    for (const key of unique) {
      if (this.pinned.has(key)) continue;
      // Storage stays correct without it, only larger: a failure is tried again when the pack next loses a file.
      if (used.has(key) && BlobStore.isPack(key)) await this.compactPack(em, spiderId, key).catch(() => undefined);
    }
  }

  /**
   * A pack is written whole and never changed, so the files replaced in it keep their bytes on disk
   * for as long as one file still uses it: a user could replace all but one file of each save and
   * hold many times the spider's size limit. Once less than half of a pack is in use, its live
   * files are copied into a new pack (or blobs) and the old one goes. Readers that still hold the
   * old place read again at the new one (see `readCurrent`). Call under `lock`.
   */
  private async compactPack(em: Em, spiderId: string, key: string): Promise<void> {
    const rows = await em.fork().find(SpiderFile, { spiderId, storageKey: key });
    if (rows.length === 0) return;
    // The same content at two paths is one range of the pack. (By offset and size: an empty file
    // starts where the next one does.)
    const ranges = new Map<string, SpiderFile>();
    for (const r of rows) ranges.set(`${r.storageOffset}:${r.size}`, r);
    let live = 0;
    for (const r of ranges.values()) live += r.size;
    const packSize = await this.blobs.size(key);
    if (live * 2 >= packSize) return;
    const data = await this.blobs.get(key);
    const batch = this.blobs.batch(spiderId);
    for (const r of ranges.values()) {
      const end = r.storageOffset + r.size;
      if (end > data.length) throw new Error(`storage: ${key} ends before the recorded range of ${r.path}`);
      batch.add(r.sha256, data.subarray(r.storageOffset, end));
    }
    let moved: Map<string, StoredBlob>;
    try {
      moved = await batch.done();
      await em.fork().transactional(async (tx) => {
        for (const r of rows) {
          const to = moved.get(r.sha256)!;
          await tx.nativeUpdate(SpiderFile, { id: r.id, storageKey: key }, { storageKey: to.key, storageOffset: to.offset });
        }
      });
    } catch (err) {
      await batch.abandon();
      await this.collectGarbage(em, spiderId, batch.keys()).catch(() => undefined);
      throw err;
    }
    if ((await em.fork().count(SpiderFile, { spiderId, storageKey: key })) === 0) await this.blobs.delete(key);
  }

  private checkLimits(result: Map<string, number>): void {
    if (result.size > this.limits.maxSpiderFiles)
      throw tooLarge(`A spider may hold at most ${this.limits.maxSpiderFiles} files; this change would make ${result.size}.`);
    let total = 0;
    for (const size of result.values()) total += size;
    if (total > this.limits.maxSpiderBytes)
      throw tooLarge(`A spider may hold at most ${this.limits.maxSpiderBytes} bytes; this change would make ${total}.`);
    for (const path of result.keys()) {
      const clash = parentFolders(path).find((dir) => result.has(dir));
      if (clash) throw conflict(`"${clash}" would be both a file and a folder (of "${path}").`, 'path_conflict');
    }
  }

  private async assertNameFree(em: Em, ownerId: string, name: string): Promise<void> {
    if (!SPIDER_NAME.test(name))
      throw badRequest('A spider name is 1-100 letters, digits, spaces, "_", "." or "-", starting with a letter or digit.', 'invalid_name');
    if (await em.findOne(Spider, { ownerId, name })) throw conflict(`You already have a spider named "${name}".`, 'duplicate_name');
  }
}

/**
 * Listings are sorted here, in code-point order (SQLite's, and UTF-8 byte order), not by the database:
 * PostgreSQL sorts by its collation, which is linguistic on many servers ("a.py" before "B.py",
 * "_" and "-" ignored at first), and the same API must answer the same on either.
 */
function byCodePoint(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/** A unique-name violation as the 409 it stands for; any other error as it is. */
function uniqueConflict(err: unknown, name: string): unknown {
  if ((err as { name?: string }).name === 'UniqueConstraintViolationException')
    return conflict(`You already have a spider named "${name}".`, 'duplicate_name');
  return err;
}

async function flushUnique(em: Em, name: string): Promise<void> {
  try {
    await em.flush();
  } catch (err) {
    throw uniqueConflict(err, name);
  }
}

function entry(pack: tar.Pack, header: tar.Header extends infer H ? Partial<H> & { name: string } : never, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (data) pack.entry(header, data, done);
    else pack.entry(header, done);
  });
}
