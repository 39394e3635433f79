import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { storedForm, tryNormalizePath } from '../spiders/paths';
import { TarGuard, limitError, type TarLimits } from './tar-guard';
import { AppError } from '../http/errors';

type TarEntry = AsyncIterable<unknown> & { header: tar.Header; resume(): unknown };

export type TarItem =
  | { kind: 'file'; path: string; data: Buffer; sha256: string; mode: number }
  | { kind: 'dir'; path: string }
  /** `path`: the stored file the entry would be, when its name can be one (a save leaves that file alone). */
  | { kind: 'skipped'; name: string; reason: string; path?: string };

export interface ReadTarOptions {
  limits: TarLimits;
  /** Drop this leading folder from every name (docker's archive of /workspace names entries "workspace/…"). */
  stripPrefix?: string;
  /** Abort after this long: a slow or endless stream must not hold a save forever. */
  timeoutMs?: number;
  /** Accept gzip-compressed input (detected by its magic bytes). */
  gunzip?: boolean;
  /**
   * Entries to pass over unread (a save's ignore list: `node_modules`, `.git`…). They count for
   * none of the limits but the archive's raw size (`limits.maxRawBytes`), ignored entries included.
   */
  ignore?: (path: string) => boolean;
  /**
   * A workspace's archive: a name not in Unicode NFC form (as macOS writes some) is skipped, not
   * read as its NFC form — on disk that is another file, which may be there too. (An uploaded
   * archive's names are normalised instead.)
   */
  exactNames?: boolean;
}

/** Why a workspace file whose name is not in NFC form is skipped. */
export const NOT_NFC = 'the name is not in Unicode NFC form (as macOS writes some names); rename it';

/** Why a hard link is skipped: a reader of a workspace archive reads such an entry again as a file. */
export const HARD_LINK = 'hard links are not stored';

const REFUSED: Record<string, string> = {
  symlink: 'symbolic links are not stored',
  link: HARD_LINK,
  'character-device': 'devices are not stored',
  'block-device': 'devices are not stored',
  fifo: 'named pipes are not stored',
};

/**
 * Reads an untrusted tar stream entry by entry. Caps (entries, file size, total bytes, header
 * size, time) abort the whole read with a 422; entries that cannot be stored (links, devices,
 * bad names) are reported as skipped and the caller decides whether that is fatal.
 */
export async function* readTar(source: Readable, opts: ReadTarOptions): AsyncGenerator<TarItem> {
  const { limits } = opts;
  // The guard sees raw blocks, not names: with an ignore list it only bounds the stream as a whole,
  // and the limits below hold for what is kept.
  const guard = opts.ignore
    ? new TarGuard(
        { ...limits, maxEntries: Infinity, maxFileBytes: Infinity, maxTotalBytes: Infinity },
        limits.maxRawBytes ?? limits.maxTotalBytes * 2,
      )
    : new TarGuard(limits);
  const extract = tar.extract();
  const input = opts.gunzip ? await sniffGzip(source) : source;
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        const err = new AppError(504, 'archive_timeout', `Reading the archive took longer than ${Math.round(opts.timeoutMs! / 1000)} s.`);
        input.destroy(err);
        guard.destroy(err);
        extract.destroy(err);
      }, opts.timeoutMs)
    : undefined;
  const piping = pipeline(input, guard, extract).catch((err: unknown) => {
    extract.destroy(err as Error);
  });
  // Counted again on the parsed headers: the guard reads the size fields alone, a parser also pax
  // records, and it must not matter which of the two an archive deceives.
  let entries = 0;
  let bytes = 0;
  try {
    for await (const entry of extract) {
      const item = await readEntry(entry, opts);
      if (!item) continue;
      if (++entries > limits.maxEntries) throw limitError(`The archive has more than ${limits.maxEntries} entries.`);
      if (item.kind === 'file' && (bytes += item.data.length) > limits.maxTotalBytes)
        throw limitError(`The archive's files hold more than ${limits.maxTotalBytes} bytes.`);
      yield item;
    }
    await piping;
    if (!guard.sawEnd) throw new AppError(400, 'invalid_archive', 'The archive is cut short: it has no end-of-archive marker.');
  } catch (err) {
    if (timedOut)
      throw new AppError(504, 'archive_timeout', `Reading the archive took longer than ${Math.round(opts.timeoutMs! / 1000)} s.`);
    if (err instanceof AppError) throw err;
    throw new AppError(400, 'invalid_archive', `The archive could not be read: ${(err as Error).message}`);
  } finally {
    if (timer) clearTimeout(timer);
    input.destroy();
  }
}

async function readEntry(entry: TarEntry, opts: ReadTarOptions): Promise<TarItem | null> {
  const { header } = entry;
  let name = header.name;
  if (opts.stripPrefix) {
    const prefix = opts.stripPrefix.replace(/\/?$/, '/');
    if (name === opts.stripPrefix || name === prefix) {
      entry.resume();
      return null; // the root folder itself
    }
    if (!name.startsWith(prefix)) return skip(entry, name, 'outside the workspace');
    name = name.slice(prefix.length);
  }
  if (opts.ignore?.(name)) {
    entry.resume();
    return null;
  }
  const type = header.type ?? 'file';
  if (REFUSED[type]) return skip(entry, name, REFUSED[type]);
  if (type !== 'file' && type !== 'contiguous-file' && type !== 'directory')
    return skip(entry, name, `entries of type ${type} are not stored`);
  if (type === 'directory' && !name.startsWith('/') && name.split('/').every((s) => s === '' || s === '.')) {
    entry.resume();
    return null; // `./`, the root folder of an archive made with `tar -C dir .`
  }
  if (opts.exactNames && name !== name.normalize('NFC')) return skip(entry, name, NOT_NFC);
  const checked = tryNormalizePath(name);
  if ('problem' in checked) return skip(entry, name, checked.problem);
  if (type === 'directory') {
    entry.resume();
    return { kind: 'dir', path: checked.path };
  }
  const size = header.size ?? 0;
  if (size > opts.limits.maxFileBytes)
    throw limitError(`${checked.path} is ${size} bytes; at most ${opts.limits.maxFileBytes} are allowed.`);
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of entry as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > opts.limits.maxFileBytes) throw limitError(`${checked.path} is larger than ${opts.limits.maxFileBytes} bytes.`);
    hash.update(chunk);
    chunks.push(chunk);
  }
  return { kind: 'file', path: checked.path, data: Buffer.concat(chunks, length), sha256: hash.digest('hex'), mode: header.mode ?? 0o644 };
}

function skip(entry: TarEntry, name: string, reason: string): TarItem {
  entry.resume();
  // The stored file it stands for, which a save then leaves alone: a name refused today may have been stored before.
  return { kind: 'skipped', name: name.slice(0, 300), reason, path: storedForm(name) };
}

/** Passes the stream through a gunzip when it starts with the gzip magic bytes. */
async function sniffGzip(source: Readable): Promise<Readable> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await chunks.next();
  const replay = Readable.from(
    (async function* () {
      if (first.done) return;
      yield first.value;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
    })(),
  );
  if (first.done || first.value.length < 2 || first.value[0] !== 0x1f || first.value[1] !== 0x8b) return replay;
  const gunzip = createGunzip();
  replay.on('error', (err) => gunzip.destroy(err));
  return replay.pipe(gunzip);
}
