import { Operator } from 'opendal';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';

const SPIDER_ID = z.uuid();
const SHA256 = /^[0-9a-f]{64}$/;

export interface StoredBlob {
  key: string;
  sha256: string;
  size: number;
}

/**
 * File contents in OpenDAL storage, addressed by spider and sha256: a key never comes from a
 * request path, a blob is immutable once written, and a file's new version is a new blob that
 * the database switches to in one transaction. On the fs backend, writes go through a temporary
 * directory and a rename, so a reader sees the old content or the new, never half.
 */
export class BlobStore {
  private readonly op: Operator;

  constructor(
    readonly scheme: string,
    options: Record<string, string>,
  ) {
    this.op = new Operator(scheme, options);
  }

  /** Parses CRAWLHUB_STORAGE ("fs", "fs?root=/srv/x", "s3?bucket=b&region=r"). */
  static fromConfig(spec: string, dataDir: string): BlobStore {
    const [scheme, query = ''] = spec.split('?', 2);
    const options = Object.fromEntries(new URLSearchParams(query));
    if (scheme === 'fs') {
      options.root = path.resolve(options.root ?? path.join(dataDir, 'files'));
      options.atomic_write_dir ??= path.join(options.root, '.tmp');
    }
    return new BlobStore(scheme, options);
  }

  keyFor(spiderId: string, sha256: string): string {
    // Both parts are validated: nothing user-controlled reaches the key.
    SPIDER_ID.parse(spiderId);
    if (!SHA256.test(sha256)) throw new Error('invalid sha256');
    return `spiders/${spiderId}/blobs/${sha256.slice(0, 2)}/${sha256}`;
  }

  async put(spiderId: string, data: Buffer, sha256 = sha256Of(data)): Promise<StoredBlob> {
    const key = this.keyFor(spiderId, sha256);
    // Rewriting a blob that exists is harmless (same bytes, atomic rename) and cheaper than asking first.
    await this.op.write(key, data);
    return { key, sha256, size: data.length };
  }

  async get(key: string): Promise<Buffer> {
    return this.op.read(key);
  }

  async delete(key: string): Promise<void> {
    await this.op.delete(key);
  }

  async deleteSpider(spiderId: string): Promise<void> {
    SPIDER_ID.parse(spiderId);
    await this.op.removeAll(`spiders/${spiderId}/`);
  }

  /** For /healthz: a round trip through the backend. */
  async check(): Promise<void> {
    const key = `health/${process.pid}`;
    await this.op.write(key, Buffer.from('ok'));
    await this.op.read(key);
    await this.op.delete(key);
  }
}

export function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
