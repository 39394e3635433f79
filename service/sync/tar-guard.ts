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
}

const BLOCK = 512;
const META_TYPES = new Set(['x', 'g', 'L', 'K']);
const FILE_TYPES = new Set(['0', '\0', '7']);

export const limitError = (message: string) => new AppError(422, 'archive_limit', message);

function parseSize(block: Buffer): number {
  const field = block.subarray(124, 136);
  if (field[0] & 0x80) {
    // GNU base-256: big-endian with the top bit set; anything beyond 2^53 is over every cap anyway.
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
 * Watches a tar stream block by block before any parser buffers it, and aborts as soon as a header
 * announces more than the limits allow: a huge pax header, a too-large file, too many entries or
 * too many bytes. The data passes through unchanged.
 */
export class TarGuard extends Transform {
  private pending = Buffer.alloc(0);
  private skip = 0;
  private entries = 0;
  private fileBytes = 0;
  private rawBytes = 0;
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

  private onHeader(header: Buffer): void {
    const type = String.fromCharCode(header[156]);
    const size = parseSize(header);
    if (!Number.isFinite(size) || size < 0) throw new AppError(400, 'invalid_archive', 'The archive has a malformed header.');
    if (META_TYPES.has(type)) {
      if (size > this.limits.maxHeaderBytes)
        throw limitError(`The archive has a ${size}-byte extended header; at most ${this.limits.maxHeaderBytes} are allowed.`);
    } else {
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
