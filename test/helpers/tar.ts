import tar from 'tar-stream';
import { gzipSync } from 'node:zlib';

export type TarSpec = Partial<tar.Header> & { name: string; data?: string | Buffer };

/** Builds a tar in memory from entry specs: files, folders, links and devices alike. */
export async function makeTar(entries: TarSpec[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const { data, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (data !== undefined) pack.entry({ mode: 0o644, ...header }, data, cb);
      else pack.entry({ mode: header.type === 'directory' ? 0o755 : 0o644, ...header }, cb);
    });
  }
  pack.finalize();
  await done;
  const raw = Buffer.concat(chunks);
  return opts.gzip ? gzipSync(raw) : raw;
}

/** Reads a tar into a map of path → content (regular files only). */
export async function readTarFiles(data: Buffer | AsyncIterable<Buffer>): Promise<Map<string, Buffer>> {
  const extract = tar.extract();
  const files = new Map<string, Buffer>();
  const feeding = (async () => {
    if (Buffer.isBuffer(data)) extract.end(data);
    else {
      for await (const chunk of data) extract.write(chunk);
      extract.end(Buffer.alloc(0));
    }
  })();
  for await (const entry of extract) {
    const parts: Buffer[] = [];
    for await (const c of entry) parts.push(c as Buffer);
    if (entry.header.type === 'file') files.set(entry.header.name, Buffer.concat(parts));
  }
  await feeding;
  return files;
}
