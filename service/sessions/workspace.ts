import picomatch from 'picomatch';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AppError, conflict, tooLarge } from '../http/errors';
import { isNotFound, type DockerRuntime } from '../runtime/docker';
import { storedForm, tryNormalizePath } from '../spiders/paths';
import { HARD_LINK, readTar, type TarItem } from '../sync/tar-reader';
import type { TarLimits } from '../sync/tar-guard';
import { FREEZE_SCRIPT, THAW_SCRIPT, type WorkspaceAgents } from './agent';
import { ENTRY_FORMAT, FIND_FORMAT, STAT_SCRIPT, UNREADABLE_FORMAT } from './find-format';

/** The contract every session image keeps (images/code-server/Dockerfile, images/local/build.sh). */
export const WORKSPACE = '/workspace';
export const CONTAINER_USER = '1000:1000';
export const CONTAINER_UID = 1000;
export const CODE_SERVER_PORT = 8080;

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';
/** What a link leads to, following it: null when nothing the container's user can reach (dangling, a loop, a folder they may not enter). */
export type LinkTarget = 'file' | 'directory' | 'other' | null;

export interface ManifestEntry {
  path: string;
  type: EntryType;
  size: number;
  /** What changes whenever the content may have: size, mtime, ctime and inode, as git's index uses them. */
  statKey: string;
  mtimeMs: number;
  ctimeMs: number;
  /** The name as the container has it, when that is not `path` (not in Unicode NFC form, as macOS writes some names). */
  onDisk?: string;
  /** A link's target type (only from stat and list, which ask for it: a save's listing never follows a link). */
  target?: LinkTarget;
  /**
   * Only from stat, for a link that leads to something inside /workspace: where (every link on the
   * way followed). Its size and times are then that thing's.
   */
  realPath?: string;
}

export interface Manifest {
  entries: ManifestEntry[];
  /** Names that cannot be stored (bad paths), with the reason. */
  /** `stored`: the stored file such a name would stand for (a save leaves it alone). */
  problems: { path: string; reason: string; stored: string }[];
  /** Folders the container's user cannot read or enter (listed among the entries as folders): what they hold is unknown. */
  unreadable: string[];
}

const TYPE: Record<string, EntryType> = { f: 'file', d: 'directory', l: 'symlink' };
/** find's %Y of a link: N leads nowhere, L is a loop, ? could not be followed (a folder the user may not enter). */
const TARGET: Record<string, LinkTarget> = { f: 'file', d: 'directory', N: null, L: null, '?': null };

/** Matches a path against the ignore list: every segment is tried against every name or glob. */
export function ignoreMatcher(patterns: string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  const isMatch = picomatch(patterns, { dot: true });
  return (path) => path.split('/').some((segment) => isMatch(segment));
}

/**
 * `find` arguments that list the workspace, skip (prune) ignored folders without walking them, and
 * mark folders the container's user cannot read or enter (a `chmod 000` there) instead of listing
 * them as empty.
 */
export function manifestCommand(dir: string, ignore: string[], opts: { maxDepth?: number; minDepth?: number } = {}): string[] {
  const depth = [
    ...(opts.minDepth !== undefined ? ['-mindepth', String(opts.minDepth)] : []),
    ...(opts.maxDepth !== undefined ? ['-maxdepth', String(opts.maxDepth)] : []),
  ];
  // Never the starting point itself: a glob that matches its name ("w*" and /workspace) would list
  // nothing, and every stored file would read as deleted. (-path takes a glob: the folder's own
  // wildcard characters are escaped.)
  const names = ignore.flatMap((p, i) => (i ? ['-o', '-name', p] : ['-name', p]));
  const start = dir.replace(/[*?[\]\\]/g, '\\$&');
  const prune = ignore.length ? ['(', '!', '-path', start, '(', ...names, ')', ')', '-prune', '-o'] : [];
  const closed = ['-type', 'd', '(', '!', '-readable', '-o', '!', '-executable', ')', '-prune', '-printf', UNREADABLE_FORMAT, '-o'];
  return ['find', dir, ...depth, ...prune, ...closed, '-printf', FIND_FORMAT];
}

/**
 * Parses `find -printf` output from an untrusted container: every field is checked, bad names are
 * reported. `targets`: printed with ENTRY_FORMAT (or STAT_FORMAT), whose %Y says what links lead to.
 */
export function parseManifest(out: Buffer, maxEntries: number, opts: { targets?: boolean } = {}): Manifest {
  const fields = opts.targets ? 7 : 6;
  const entries: ManifestEntry[] = [];
  const problems: Manifest['problems'] = [];
  const unreadable: string[] = [];
  const records = out.toString('utf8').split('\0');
  if (records.at(-1) === '') records.pop();
  if (records.length > maxEntries) throw new AppError(422, 'archive_limit', `The workspace has more than ${maxEntries} entries.`);
  for (const record of records) {
    const parts = record.split('\t');
    if (parts.length < fields) throw new AppError(502, 'bad_container_output', 'The container returned a malformed file list.');
    const [y, s, m, c, i] = parts;
    const target = opts.targets ? parts[5] : 'x';
    const name = parts.slice(fields - 1).join('\t');
    if (
      !/^[a-zA-Z]$/.test(y) ||
      !/^[a-zA-Z?]$/.test(target) ||
      !/^\d{1,15}$/.test(s) ||
      !/^\d{1,12}(\.\d{1,10})?$/.test(m) ||
      !/^\d{1,12}(\.\d{1,10})?$/.test(c) ||
      !/^\d{1,20}$/.test(i)
    ) {
      throw new AppError(502, 'bad_container_output', 'The container returned a malformed file list.');
    }
    if (name === '') {
      // The starting point itself; unreadable, everything in it would read as deleted.
      if (y === 'U')
        throw new AppError(
          409,
          'workspace_unreadable',
          "The container's user cannot read the workspace folder (its permissions were changed). Nothing was saved.",
        );
      continue;
    }
    const checked = tryNormalizePath(name);
    if ('problem' in checked) {
      problems.push({ path: name.slice(0, 300), reason: checked.problem, stored: storedForm(name) });
      continue;
    }
    if (y === 'U') unreadable.push(checked.path);
    entries.push({
      path: checked.path,
      type: y === 'U' ? 'directory' : (TYPE[y] ?? 'other'),
      size: Number(s),
      statKey: `${s}:${m}:${c}:${i}`,
      mtimeMs: Math.round(Number(m) * 1000),
      ctimeMs: Math.round(Number(c) * 1000),
      ...(checked.path !== name ? { onDisk: name } : {}),
      ...(opts.targets && y === 'l' ? { target: Object.hasOwn(TARGET, target) ? TARGET[target] : 'other' } : {}),
    });
  }
  return { entries, problems, unreadable };
}

/**
 * What STAT_SCRIPT printed: one entry, or null when the path is not there. Its name is a placeholder,
 * or for a link that leads somewhere, the absolute path it leads to: kept when inside /workspace.
 */
export function parseStat(out: Buffer): ManifestEntry | null {
  if (out.length === 0) return null;
  // The name is what follows the sixth tab (it may hold tabs of its own); only the record's end is a NUL.
  let at = -1;
  for (let i = 0; i < 6; i++) {
    at = out.indexOf(0x09, at + 1);
    if (at === -1) break;
  }
  const nul = out.indexOf(0);
  if (at === -1 || nul !== out.length - 1) throw new AppError(502, 'bad_container_output', 'The container returned a malformed file list.');
  const [entry] = parseManifest(Buffer.concat([out.subarray(0, at + 1), Buffer.from('x\0')]), 1, { targets: true }).entries;
  if (!entry) return null;
  const name = out.subarray(at + 1, nul).toString('utf8');
  if (entry.type !== 'symlink') return entry;
  if (name === WORKSPACE) return { ...entry, realPath: '' };
  const inside = name.startsWith(`${WORKSPACE}/`) ? tryNormalizePath(name.slice(WORKSPACE.length + 1)) : null;
  return inside && 'path' in inside ? { ...entry, realPath: inside.path } : entry;
}

/** Up to this many changed files are fetched one by one from the engine, more with one tar in the container. */
const FEW_FILES = 16;
/** Up to this many top-level folders are read with one engine archive each. */
const MAX_ARCHIVE_REQUESTS = 32;

/** A path inside /workspace that is not there. */
const notFound = (what: string) => new AppError(404, 'file_not_found', `${what} does not exist in the workspace.`);

/** A named pipe, a device or a socket (or a link to one, or to a folder) where the editor expects a file. */
const notAFile = (path: string, verb: 'read' | 'written') =>
  new AppError(
    400,
    'not_a_file',
    `"${path}" is not a regular file (a named pipe, a device, a socket, or a link to one or to a folder): it cannot be ${verb} here.`,
  );

const abs = (path: string) => (path === '' ? WORKSPACE : `${WORKSPACE}/${path}`);

/** How long a helper process may take to answer one request. */
const AGENT_TIMEOUT_MS = 60_000;
/** How long the agent may take to freeze or thaw the container's processes before an exec does it. */
const SIGNAL_TIMEOUT_MS = 5_000;

/**
 * The time left until a save's deadline (epoch ms): every read of one save shares it, so that a
 * container answering slowly (or not at all) holds the save, and the locks it takes, no longer than
 * CRAWLHUB_SYNC_TIMEOUT in all.
 */
function left(deadline: number): number {
  const ms = deadline - Date.now();
  if (ms <= 0)
    throw new AppError(504, 'archive_timeout', 'Reading the workspace took longer than the save may take (CRAWLHUB_SYNC_TIMEOUT).');
  return ms;
}

/**
 * The files of one session's container. Reads and writes run inside the container as its own user
 * (argv, never a shell), so they can do exactly what the user could do in a terminal there.
 */
export class Workspace {
  constructor(
    private readonly docker: DockerRuntime,
    readonly containerId: string,
    /** Long-lived helper processes, and the ignore list their listings use; without them every operation is its own exec. */
    private readonly agents?: { pool: WorkspaceAgents; ignore: string[]; maxFileBytes: number },
  ) {}

  private agentRequest(line: string, listing: boolean, timeoutMs = AGENT_TIMEOUT_MS): Promise<Buffer> {
    const a = this.agents!;
    return a.pool.request(this.containerId, CONTAINER_USER, manifestCommand(WORKSPACE, a.ignore), line, {
      listing,
      maxOutput: Math.ceil(a.maxFileBytes * 1.4) + 64 * 1024 * 1024,
      timeoutMs: Math.min(timeoutMs, AGENT_TIMEOUT_MS),
    });
  }

  /**
   * A regular file's bytes through the agent, or null when it is not one (gone, a link, a folder),
   * the container's user cannot read it, or the agent failed: the engine's archive is asked then.
   */
  private async agentFile(path: string, maxBytes: number, deadline: number): Promise<Buffer | null> {
    if (!this.agents) return null;
    let out: Buffer;
    try {
      out = await this.agentRequest(`F${path}`, false, left(deadline));
    } catch {
      return null;
    }
    if (out.length < 2 || out[0] !== 0x66 /* f */ || out[1] !== 0x09) return null;
    const text = out.subarray(2).toString('latin1');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    const data = Buffer.from(text, 'base64');
    if (data.length > maxBytes) throw tooLarge(`"${path}" is larger than ${maxBytes} bytes.`);
    return data;
  }

  /**
   * Freezes every process of the container's user (SIGSTOP, which none can catch or ignore) but the
   * agent's own shell: code-server, terminals and what runs in them change nothing in /workspace
   * while a stopping save reads it, and until the container goes. The reads go on: what the agent
   * forks, and every exec, starts after the freeze. Through the agent; else a one-off exec, which
   * freezes the agent too (it is dropped: the reads start a new one). Throws when neither could.
   */
  async freeze(): Promise<void> {
    if (await this.agentSignal('P')) {
      // Another agent of this container is frozen now: its requests would wait out their time limit.
      this.agents!.pool.closeFor(this.containerId, manifestCommand(WORKSPACE, this.agents!.ignore));
      return;
    }
    this.agents?.pool.closeFor(this.containerId);
    await this.signalAll('P', ['sh', '-c', FREEZE_SCRIPT]);
  }

  /**
   * Lets what `freeze` stopped run on; a process its user had stopped before (a suspended job) stays
   * so. `ifFrozen`: only when a freeze's mark is there (a container adopted after a restart), else
   * every process of the container's user is resumed.
   */
  async thaw(opts: { ifFrozen?: boolean } = {}): Promise<void> {
    const mode = opts.ifFrozen ? 'R' : 'C';
    if (await this.agentSignal(mode)) return;
    await this.signalAll(mode, ['sh', '-c', `m=$1; ${THAW_SCRIPT}`, 'crawlhub-thaw', mode]);
  }

  /** Whether the agent said its `kill` worked; false when it is gone, slow (frozen by its user, say) or says anything else. */
  private async agentSignal(line: 'P' | 'C' | 'R'): Promise<boolean> {
    if (!this.agents) return false;
    const out = await this.agentRequest(line, false, SIGNAL_TIMEOUT_MS).catch(() => null);
    return out?.toString('latin1') === '0';
  }

  private async signalAll(line: 'P' | 'C' | 'R', cmd: string[]): Promise<void> {
    const res = await this.docker.exec(this.containerId, cmd, { user: CONTAINER_USER, maxOutput: 4096, timeoutMs: 3 * SIGNAL_TIMEOUT_MS });
    if (res.exitCode !== 0 || res.stdout.toString('latin1') !== '0') {
      const message = res.stderr.toString('utf8').trim().split('\n')[0]?.slice(0, 300) ?? '';
      throw new AppError(502, 'container_error', `${line === 'P' ? 'Pausing' : 'Resuming'} the session's processes failed: ${message}`);
    }
  }

  /** Copies a tar of the spider's files into /workspace (before or just after code-server starts). */
  push(tar: Readable): Promise<void> {
    return this.docker.putArchive(this.containerId, WORKSPACE, tar);
  }

  async manifest(
    ignore: string[],
    maxEntries: number,
    dir = '',
    opts: { maxDepth?: number; minDepth?: number; deadline?: number } = {},
  ): Promise<Manifest> {
    const args = manifestCommand(abs(dir), ignore, opts);
    const maxOutput = Math.max(maxEntries, 1) * 1400;
    const timeoutMs = opts.deadline === undefined ? undefined : left(opts.deadline);
    if (this.agents && dir === '' && !opts.maxDepth && ignore.join('\0') === this.agents.ignore.join('\0')) {
      try {
        return parseManifest(await this.agentRequest('L', true, timeoutMs), maxEntries);
      } catch (err) {
        if (err instanceof AppError && err.status !== 502) throw err; // a cap: the same with a one-off exec
      }
    }
    const res = await this.docker.exec(this.containerId, args, {
      user: CONTAINER_USER,
      maxOutput,
      timeoutMs: opts.deadline === undefined ? undefined : left(opts.deadline),
    });
    if (res.exitCode !== 0 && res.stdout.length === 0) {
      const message = res.stderr.toString('utf8').slice(0, 300);
      if (/No such file/i.test(message)) throw notFound(`"${dir}"`);
      throw new AppError(502, 'container_error', `Listing the workspace failed: ${message}`);
    }
    const manifest = parseManifest(res.stdout, maxEntries);
    if (dir) {
      for (const e of manifest.entries) e.path = `${dir}/${e.path}`;
      manifest.unreadable = manifest.unreadable.map((p) => `${dir}/${p}`);
    }
    return manifest;
  }

  /**
   * The listed files, each read once: the engine's archive, or a tar made in the container
   * (untrusted: every entry is checked by readTar). `ignore` names what an archive of a whole folder
   * passes over unread. A file a strategy did not return (unreadable to the container's user, say)
   * is read once more on its own, so that only a file that is really gone reads as deleted.
   */
  async *readFiles(paths: string[], limits: TarLimits, deadline: number, ignore?: (path: string) => boolean): AsyncGenerator<TarItem> {
    if (paths.length === 0) return;
    let rest = paths;
    if (paths.length > FEW_FILES) {
      const missing = new Set(paths);
      for await (const item of this.readMany(paths, limits, deadline, ignore)) {
        const path = item.kind === 'skipped' ? item.name : item.path;
        if (!missing.delete(path)) continue; // not asked for, or already read
        yield item;
      }
      rest = [...missing];
    }
    // One at a time through the agent; what it cannot read (the user's own chmod 000, say), from the engine.
    const viaEngine: string[] = [];
    for (const path of rest) {
      const data = await this.agentFile(path, limits.maxFileBytes, deadline);
      if (data) yield { kind: 'file', path, data, sha256: createHash('sha256').update(data).digest('hex'), mode: 0o644 };
      else viaEngine.push(path);
    }
    yield* this.readFromEngine(viaEngine, limits, deadline, { running: true, ignore });
  }

  private async *readMany(
    paths: string[],
    limits: TarLimits,
    deadline: number,
    ignore?: (path: string) => boolean,
  ): AsyncGenerator<TarItem> {
    const tops = new Set(paths.map((p) => p.split('/')[0]));
    if (tops.size <= MAX_ARCHIVE_REQUESTS) {
      // Many files in a few top-level folders: the engine's archive of each is the fastest read
      // (tar in the container runs within its one CPU). Only the files asked for are taken; a
      // second hard link to a file, which the engine archives as a link, is read on its own later.
      const wanted = new Set(paths);
      for (const top of tops) {
        const timeoutMs = left(deadline);
        let tar: Readable;
        try {
          tar = await this.docker.getArchive(this.containerId, abs(top));
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        for await (const item of readTar(tar, { limits, timeoutMs, ignore, exactNames: true })) {
          if (item.kind === 'file' && wanted.has(item.path)) yield item;
          else if (item.kind === 'skipped' && wanted.has(item.name) && item.reason !== HARD_LINK) yield item;
        }
      }
      return;
    }
    const list = Buffer.from(paths.map((p) => `./${p}\0`).join(''));
    const { stream, done } = await this.docker.execStream(
      this.containerId,
      ['tar', '-c', '-f', '-', '--no-recursion', '--hard-dereference', '--null', '--verbatim-files-from', '-T', '-', '-C', WORKSPACE],
      { user: CONTAINER_USER, stdin: true },
    );
    stream.stdin.end(list);
    try {
      yield* readTar(stream.stdout, { limits, timeoutMs: left(deadline), exactNames: true });
    } finally {
      stream.stdin.destroy();
    }
    // tar's own exit status says no more than the files it left out, which are read again.
    await done;
  }

  /**
   * Files read by the engine, which reads as root and follows links in the folders above a path it
   * is given (the last name is archived as it is). In a running container the user could swap a
   * folder for a link to `/etc` between the listing and this read, so files in folders are picked
   * out of the archive of their top-level folder (one read per folder), whose entries are archived
   * as they are; a top-level file, or any file of a stopped container (which cannot change), is
   * asked for by its own path.
   */
  private async *readFromEngine(
    paths: string[],
    limits: TarLimits,
    deadline: number,
    opts: { running: boolean; ignore?: (path: string) => boolean },
  ): AsyncGenerator<TarItem> {
    const byTop = new Map<string, Set<string>>();
    for (const path of paths) {
      if (opts.running && path.includes('/')) {
        const top = path.split('/')[0];
        byTop.set(top, (byTop.get(top) ?? new Set()).add(path));
      } else {
        yield* this.readPath(path, limits, deadline);
      }
    }
    // A folder's archive holds its folders and the entries not asked for too: they count as entries.
    const folderLimits = { ...limits, maxEntries: limits.maxEntries * 4 };
    for (const [top, wanted] of byTop) {
      const tar = await this.archive(top, deadline);
      if (!tar) continue; // gone since the listing: its files read as deleted
      for await (const item of readTar(tar.stream, {
        limits: folderLimits,
        timeoutMs: tar.timeoutMs,
        ignore: opts.ignore,
        exactNames: true,
      })) {
        if (item.kind === 'file' && wanted.has(item.path)) yield item;
        else if (item.kind === 'skipped' && wanted.has(item.name)) yield item;
      }
    }
  }

  /** The engine's archive of one path, with the time left for reading it; null when the path is gone. */
  private async archive(path: string, deadline: number): Promise<{ stream: Readable; timeoutMs: number } | null> {
    const timeoutMs = left(deadline);
    try {
      return { stream: await this.docker.getArchive(this.containerId, abs(path)), timeoutMs };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** One file by its own path, as the engine archives it (which also reports a link or a folder in its place). */
  private async *readPath(path: string, limits: TarLimits, deadline: number): AsyncGenerator<TarItem> {
    const tar = await this.archive(path, deadline);
    if (!tar) return; // deleted since the listing: it reads as deleted
    const name = path.split('/').at(-1)!;
    for await (const item of readTar(tar.stream, { limits, timeoutMs: tar.timeoutMs, exactNames: true })) {
      // The engine names the entry after the file; a folder or a link in its place is reported.
      if (item.kind === 'file' && item.path === name) yield { ...item, path };
      else if (item.kind === 'skipped') yield { ...item, name: path, path };
      else if (item.kind === 'file' || item.kind === 'dir') yield { kind: 'skipped', name: path, reason: 'it changed while it was read' };
    }
  }

  /**
   * The whole /workspace as the engine archives it: works on a stopped container too. A second hard
   * link to a file, which the engine archives as a link, is read on its own afterwards, as a file.
   */
  async *readAll(limits: TarLimits, deadline: number, ignore?: (path: string) => boolean): AsyncGenerator<TarItem> {
    const timeoutMs = left(deadline);
    const tar = await this.docker.getArchive(this.containerId, WORKSPACE);
    const linked: string[] = [];
    for await (const item of readTar(tar, { limits, timeoutMs, stripPrefix: 'workspace', ignore, exactNames: true })) {
      const link = item.kind === 'skipped' && item.reason === HARD_LINK ? tryNormalizePath(item.name) : null;
      if (link && 'path' in link) linked.push(link.path);
      else yield item;
    }
    // (Only a stopped container is archived whole: each path is read as it was listed.)
    yield* this.readFromEngine(linked, limits, deadline, { running: false });
  }

  // ---- file operations for the desktop editor -------------------------------------------------

  /** One entry; a link that leads somewhere has the size and times of what it leads to (STAT_SCRIPT). */
  async stat(path: string): Promise<ManifestEntry> {
    let out = this.agents ? await this.agentRequest(`S${path}`, true).catch(() => null) : null;
    if (out === null) {
      const res = await this.docker.exec(this.containerId, ['sh', '-c', `p=$1; ${STAT_SCRIPT}`, 'crawlhub-stat', abs(path)], {
        user: CONTAINER_USER,
        maxOutput: 16_384,
      });
      // (Nothing printed: the path is not there. A link find cannot follow is printed as the link.)
      out = res.stdout;
    }
    const entry = parseStat(out);
    if (!entry) throw notFound(`"${path || '/'}"`);
    return { ...entry, path };
  }

  async list(path: string): Promise<ManifestEntry[]> {
    const root = await this.stat(path);
    // A link to a folder lists as that folder (find -H follows the path given, not what is in it), as on disk.
    if (root.type !== 'directory' && root.target !== 'directory') throw new AppError(400, 'not_a_directory', `"${path}" is not a folder.`);
    const under = (entries: ManifestEntry[]) => entries.map((e) => ({ ...e, path: path ? `${path}/${e.path}` : e.path }));
    if (this.agents) {
      const out = await this.agentRequest(`D${path}`, true).catch(() => null);
      if (out !== null) return under(parseManifest(out, 100_000, { targets: true }).entries);
    }
    const res = await this.docker.exec(
      this.containerId,
      ['find', '-H', abs(path), '-mindepth', '1', '-maxdepth', '1', '-printf', ENTRY_FORMAT],
      { user: CONTAINER_USER, maxOutput: 100_000 * 1400 },
    );
    // (find fails for a link it cannot follow, and lists the rest.)
    if (res.exitCode !== 0 && res.stdout.length === 0) throw this.failure('Listing', path, res.stderr);
    return under(parseManifest(res.stdout, 100_000, { targets: true }).entries);
  }

  async read(path: string, maxBytes: number): Promise<Buffer> {
    if (path !== '') {
      const viaAgent = await this.agentFile(path, maxBytes, Date.now() + AGENT_TIMEOUT_MS);
      if (viaAgent) return viaAgent;
    }
    const entry = await this.stat(path);
    if (entry.type === 'directory' || entry.target === 'directory') throw new AppError(400, 'is_a_directory', `"${path}" is a folder.`);
    if (entry.type === 'other') throw notAFile(path, 'read');
    if (entry.size > maxBytes) throw tooLarge(`"${path}" is larger than ${maxBytes} bytes.`);
    // What a link leads to is looked at in the container (a pipe would hold the read until the
    // engine's time limit, a device would never end), and no more than the cap is read.
    const res = await this.docker.exec(
      this.containerId,
      [
        'sh',
        '-c',
        'if [ -e "$1" ] && [ ! -f "$1" ]; then exit 3; fi; exec head -c "$2" -- "$1"',
        'crawlhub-read',
        abs(path),
        String(maxBytes + 1),
      ],
      { user: CONTAINER_USER, maxOutput: maxBytes + 1 },
    );
    if (res.exitCode === 3) throw notAFile(path, 'read');
    if (res.exitCode !== 0) throw this.failure('Reading', path, res.stderr);
    if (res.stdout.length > maxBytes) throw tooLarge(`"${path}" is larger than ${maxBytes} bytes.`);
    return res.stdout;
  }

  async write(path: string, data: Buffer, opts: { create: boolean; overwrite: boolean }): Promise<void> {
    const existing = await this.stat(path).catch((err: unknown) => {
      if (err instanceof AppError && err.status === 404) return null;
      throw err;
    });
    if (existing?.type === 'directory' || existing?.target === 'directory')
      throw new AppError(400, 'is_a_directory', `"${path}" is a folder.`);
    if (!existing && !opts.create) throw new AppError(404, 'file_not_found', `"${path}" does not exist.`);
    if (existing && !opts.overwrite) throw conflict(`"${path}" already exists.`, 'file_exists');
    if (existing?.type === 'other') throw notAFile(path, 'written');
    // A pipe (or a link to one or to a device) would take the bytes elsewhere or hold the write.
    const res = await this.docker.exec(
      this.containerId,
      ['sh', '-c', 'if [ -e "$1" ] && [ ! -f "$1" ]; then exit 3; fi; exec dd of="$1" bs=1M status=none', 'crawlhub-write', abs(path)],
      { user: CONTAINER_USER, stdin: data },
    );
    if (res.exitCode === 3) throw notAFile(path, 'written');
    if (res.exitCode !== 0) throw this.failure('Writing', path, res.stderr);
  }

  async mkdir(path: string): Promise<void> {
    const res = await this.docker.exec(this.containerId, ['mkdir', '-p', '--', abs(path)], { user: CONTAINER_USER });
    if (res.exitCode !== 0) throw this.failure('Creating', path, res.stderr);
  }

  async remove(path: string, recursive: boolean): Promise<void> {
    const entry = await this.stat(path);
    if (entry.type === 'directory' && !recursive) {
      const res = await this.docker.exec(this.containerId, ['rmdir', '--', abs(path)], { user: CONTAINER_USER });
      if (res.exitCode === 0) return;
      // Only "not empty" is not_empty; a folder gone meanwhile or one the user may not change says so.
      if (/not empty/i.test(res.stderr.toString('utf8'))) throw conflict(`"${path}" is a folder that is not empty.`, 'not_empty');
      throw this.failure('Deleting', path, res.stderr);
    }
    const res = await this.docker.exec(this.containerId, ['rm', '-rf', '--', abs(path)], { user: CONTAINER_USER });
    if (res.exitCode !== 0) throw this.failure('Deleting', path, res.stderr);
  }

  async rename(from: string, to: string, overwrite: boolean): Promise<void> {
    await this.stat(from);
    // Only a target that is not there is absent: a stat that failed otherwise (a timeout) must not let
    // `mv -f` replace it without the overwrite the caller did not ask for.
    const target = await this.stat(to).catch((err: unknown) => {
      if (err instanceof AppError && err.status === 404) return null;
      throw err;
    });
    if (target && !overwrite) throw conflict(`"${to}" already exists.`, 'file_exists');
    const res = await this.docker.exec(this.containerId, ['mv', '-f', '-T', '--', abs(from), abs(to)], { user: CONTAINER_USER });
    if (res.exitCode !== 0) throw this.failure('Renaming', from, res.stderr);
  }

  private failure(verb: string, path: string, stderr: Buffer): AppError {
    const message = stderr.toString('utf8').trim().split('\n')[0]?.slice(0, 300) ?? '';
    if (/No such file|not a directory/i.test(message)) return notFound(`"${path}"`);
    if (/File exists/i.test(message)) return conflict(`"${path}" already exists and is not a folder.`, 'file_exists');
    if (/Permission denied/i.test(message))
      return new AppError(403, 'no_permission', `${verb} "${path}" is not permitted in the container.`);
    if (/No space left|Disk quota/i.test(message))
      return new AppError(507, 'workspace_full', `${verb} "${path}" failed: the workspace is full.`);
    return new AppError(502, 'container_error', `${verb} "${path}" failed: ${message}`);
  }
}
