import { Transform, type TransformCallback } from 'node:stream';
import { AppError } from '../http/errors';

export interface TarLimits {
  /** Entries of any kind (files, folders, links…), not counting pax/long-name headers. */
  maxEntries: number;
  /** Bytes of one regular file. */
  maxFileBytes: number;
  /** Bytes of all regular files together. */
  maxTotalBytes: number;
  /** Bytes of one pax or GNU long-name header. */
  maxHeaderBytes: number;
  /**
   * With an ignore list, the stream's raw size, ignored entries included (default: twice
   * maxTotalBytes). A workspace's ignored folders (`node_modules`, `.venv`) may hold far more
   * than a spider may, up to the workspace's own size.
   */
  maxRawBytes?: number;
}

const BLOCK = 512;
/** pax (local, global) and GNU long-name headers: they describe the entry after them. */
const META_TYPES = new Set(['x', 'g', 'L', 'K', 'N']);
const PAX_TYPES = new Set(['x', 'g']);
const FILE_TYPES = new Set(['0', '\0', '7']);
const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');

export const limitError = (message: string) => new AppError(422, 'archive_limit', message);

function parseSize(block: Buffer): number {
  const field = block.subarray(124, 136);
  if (field[0] & 0x80) {
    // GNU base-256: 0x80 then the big-endian number (anything beyond 2^53 is over every cap anyway).
    // A negative one (0xff) or any other first byte is no size the parser would take alike.
    if (field[0] !== 0x80) return NaN;
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/g, '')
    .trim();
  const n = text === '' ? 0 : parseInt(text, 8);
  return Number.isFinite(n) ? n : NaN;
}

/**
 * A tar-stream folder: typeflag 5, or an old-style file entry whose name ends in `/` (a ustar
 * prefix with an empty name counts, as the parser joins them with one).
 */
function isFolder(header: Buffer, type: string): boolean {
  if (type === '5') return true;
  if (type !== '0' && type !== '\0') return false;
  const end = header.indexOf(0);
  const nameEnd = end === -1 || end > 100 ? 100 : end;
  const ustarPrefix = header.subarray(257, 263).equals(USTAR_MAGIC) && header[345] !== 0;
  if (nameEnd === 0) return ustarPrefix;
  return header[nameEnd - 1] === 0x2f;
}

/**
 * pax records (`<length> <key>=<value>\n`…), read as tar-stream reads them; null for a length no
 * writer makes (below one, or past the data), which tar-stream would read its own odd way.
 */
function decodePax(data: Buffer): Record<string, string> | null {
  const records: Record<string, string> = {};
  let rest = data;
  while (rest.length) {
    const space = rest.indexOf(0x20);
    const length = parseInt(rest.toString('utf8', 0, space === -1 ? rest.length : space), 10);
    if (!length) break;
    if (length < 0 || length > rest.length) return null;
    const record = rest.toString('utf8', (space === -1 ? rest.length : space) + 1, length - 1);
    const eq = record.indexOf('=');
    if (eq === -1) break;
    records[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(length);
  }
  return records;
}

/**
 * Watches a tar stream block by block before any parser buffers it, and aborts as soon as a header
 * announces more than the limits allow: a huge pax header, a too-large file, too many entries or
 * too many bytes. The data passes through unchanged. It reads each entry's size the way the parser
 * after it does (a pax `size=` record wins, a folder has no data), so that no header can put the two
 * out of step and hide entries from it.
 */
export class TarGuard extends Transform {
  private pending = Buffer.alloc(0);
  private skip = 0;
  private entries = 0;
  private fileBytes = 0;
  private rawBytes = 0;
  /** A pax header being read: its bytes so far and how many are still to come. */
  private paxData: { global: boolean; parts: Buffer[]; missing: number; padding: number } | null = null;
  private pax: Record<string, string> | null = null;
  private paxGlobal: Record<string, string> | null = null;
  /**
   * Whether an end-of-archive block came. Without one the stream was cut short (an empty body, a
   * copy or a container that stopped mid-way), though the parser takes it whole when the cut falls
   * between two entries: what is missing would otherwise read as deleted.
   */
  sawEnd = false;

  /** `maxRawBytes` bounds the stream itself; by default the files' bytes with room for headers and padding. */
  constructor(
    private readonly limits: TarLimits,
    private readonly maxRawBytes?: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.rawBytes += chunk.length;
    // Headers, padding and the end blocks cost a little over the file bytes themselves.
    if (this.rawBytes > (this.maxRawBytes ?? this.limits.maxTotalBytes + (this.entries + 16) * 2 * BLOCK + 64 * 1024 * 1024)) {
      return done(limitError('The archive is larger than allowed.'));
    }
    try {
      this.inspect(chunk);
    } catch (err) {
      return done(err as Error);
    }
    done(null, chunk);
  }

  private inspect(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.paxData) {
        const pax = this.paxData;
        const n = Math.min(pax.missing, chunk.length - offset);
        pax.parts.push(chunk.subarray(offset, offset + n));
        pax.missing -= n;
        offset += n;
        if (pax.missing === 0) this.endPax();
        continue;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - offset);
        this.skip -= n;
        offset += n;
        continue;
      }
      const need = BLOCK - this.pending.length;
      const take = chunk.subarray(offset, offset + need);
      offset += take.length;
      this.pending = this.pending.length ? Buffer.concat([this.pending, take]) : Buffer.from(take);
      if (this.pending.length < BLOCK) return;
      const header = this.pending;
      this.pending = Buffer.alloc(0);
      // End-of-archive blocks: the parser passes over zero blocks and reads on, and so does the guard.
      if (header.every((b) => b === 0)) {
        this.sawEnd = true;
        continue;
      }
      this.onHeader(header);
    }
  }

  private endPax(): void {
    const pax = this.paxData!;
    this.paxData = null;
    const records = decodePax(Buffer.concat(pax.parts));
    if (records === null) throw new AppError(400, 'invalid_archive', 'The archive has a malformed extended header.');
    if (pax.global) this.paxGlobal = records;
    else this.pax = this.paxGlobal === null ? records : { ...this.paxGlobal, ...records };
    this.skip = pax.padding;
  }

  private onHeader(header: Buffer): void {
    const type = String.fromCharCode(header[156]);
    let size = parseSize(header);
    const malformed = () => new AppError(400, 'invalid_archive', 'The archive has a malformed header.');
    if (!Number.isFinite(size) || size < 0) throw malformed();
    if (META_TYPES.has(type)) {
      // An empty long-name or pax header leaves tar-stream reading the next entry off its blocks.
      if (size === 0) throw malformed();
      if (size > this.limits.maxHeaderBytes)
        throw limitError(`The archive has a ${size}-byte extended header; at most ${this.limits.maxHeaderBytes} are allowed.`);
      if (PAX_TYPES.has(type)) {
        this.paxData = { global: type === 'g', parts: [], missing: size, padding: Math.ceil(size / BLOCK) * BLOCK - size };
        return;
      }
    } else {
      // The parser takes a pax size over the header's (from a global header only with a local one).
      if (this.pax !== null) {
        if (this.pax.size) size = parseInt(this.pax.size, 10);
        this.pax = null;
        if (!(size >= 0)) throw malformed();
      }
      // …and reads no data after a folder, whatever its size says.
      if (isFolder(header, type)) size = 0;
      if (++this.entries > this.limits.maxEntries) throw limitError(`The archive has more than ${this.limits.maxEntries} entries.`);
      if (FILE_TYPES.has(type)) {
        if (size > this.limits.maxFileBytes)
          throw limitError(`The archive has a file of ${size} bytes; at most ${this.limits.maxFileBytes} are allowed.`);
        this.fileBytes += size;
        if (this.fileBytes > this.limits.maxTotalBytes)
          throw limitError(`The archive's files hold more than ${this.limits.maxTotalBytes} bytes.`);
      }
    }
    this.skip = Math.ceil(size / BLOCK) * BLOCK;
  }
}
