import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BlobStore, packName } from '../../service/storage/blobs';

const root = path.resolve(__dirname, '../..');

describe('blob storage (OpenDAL fs)', () => {
  it('keys derive from the spider id and content hash only', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-blobs-'));
    try {
      const store = BlobStore.fromConfig('fs', dataDir);
      const id = randomUUID();
      const sha = createHash('sha256').update('x').digest('hex');
      assert.equal(store.keyFor(id, sha), `spiders/${id}/blobs/${sha.slice(0, 2)}/${sha}`);
      assert.throws(() => store.keyFor('../../etc', sha));
      assert.throws(() => store.keyFor(id, '../passwd'));
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a batch packs small files, gives large ones blobs of their own, and reads each back by its range', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-packs-'));
    const store = BlobStore.fromConfig('fs', dataDir);
    const spider = randomUUID();
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const small = Array.from({ length: 30 }, (_, i) => Buffer.from(`file ${i}\n`.repeat(i * 40)));
    const large = Buffer.alloc(300_000, 7);
    const batch = store.batch(spider, { packBytes: 64 * 1024, maxPackedFile: 100_000, minPackFiles: 4 });
    for (const b of small) batch.add(sha(b), b);
    batch.add(sha(small[3]), small[3]); // the same content twice is stored once
    batch.add(sha(large), large);
    const stored = await batch.done();
    assert.equal(stored.size, 31);
    const packs = new Set([...stored.values()].filter((b) => BlobStore.isPack(b.key)).map((b) => b.key));
    assert.ok(packs.size >= 2, 'more bytes than one pack holds make several packs');
    assert.equal(stored.get(sha(large))!.key, store.keyFor(spider, sha(large)));
    for (const b of [...small, large]) assert.deepEqual(await store.read(stored.get(sha(b))!), b);
    for (const key of packs) {
      // A pack is named by its content: the hashes and sizes of its files, in order.
      const inPack = [...stored.values()].filter((b) => b.key === key).sort((a, b) => a.offset - b.offset);
      const bytes = await store.get(key);
      assert.deepEqual(
        inPack.map((b) => sha(bytes.subarray(b.offset, b.offset + b.size))),
        inPack.map((b) => b.sha256),
      );
      assert.equal(path.basename(key), packName(inPack));
      assert.equal(
        bytes.length,
        inPack.reduce((n, b) => n + b.size, 0),
      );
    }
    assert.equal(new Set(batch.keys()).size, packs.size + 1);

    // A few files left at the end are not worth a pack: a one-file change stays a plain blob.
    const few = store.batch(spider, { minPackFiles: 4 });
    const one = Buffer.from('print("hello")\n');
    few.add(sha(one), one);
    assert.deepEqual((await few.done()).get(sha(one)), {
      key: store.keyFor(spider, sha(one)),
      sha256: sha(one),
      size: one.length,
      offset: 0,
    });
    assert.equal(BlobStore.isPack(`spiders/${spider}/packs/../../x`), false);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a writer killed mid-write leaves no half blob', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-crash-'));
    const spider = randomUUID();
    const size = 64 * 1024 * 1024;
    // On fs a blob is written under files/.tmp and renamed into place (BlobStore.fromConfig's atomic_write_dir).
    const tmpDir = path.join(dataDir, 'files', '.tmp');
    const blobDir = path.join(dataDir, 'files', 'spiders', spider, 'blobs');
    const blobs = () =>
      fs.existsSync(blobDir)
        ? fs.readdirSync(blobDir).flatMap((d) => fs.readdirSync(path.join(blobDir, d)).map((f) => path.join(blobDir, d, f)))
        : [];
    /** A temporary file less than half written: a write under way, with most of it still to come. */
    const halfWritten = () => {
      const names = fs.existsSync(tmpDir) ? fs.readdirSync(tmpDir) : [];
      return names.find((f) => (fs.statSync(path.join(tmpDir, f), { throwIfNoEntry: false })?.size ?? size) < size / 2);
    };
    // A child process writes 64 MiB blobs, ten at most; it is killed with SIGKILL once one blob is
    // complete and the next is half-way through its temporary file.
    const script = `
      const { BlobStore } = require(${JSON.stringify(path.join(root, 'service/storage/blobs.ts'))});
      const store = BlobStore.fromConfig('fs', ${JSON.stringify(dataDir)});
      (async () => {
        for (let i = 0; i < 10; i++) await store.put(${JSON.stringify(spider)}, Buffer.alloc(${size}, i % 251));
      })();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const underWay = await new Promise<string>((resolve, reject) => {
        const done = (err: Error | null, file?: string) => {
          clearInterval(poll);
          clearTimeout(timer);
          child.off('exit', onExit);
          if (err) reject(err);
          else resolve(file!);
        };
        const poll = setInterval(() => {
          if (blobs().length === 0) return;
          const file = halfWritten();
          if (file) done(null, file);
        }, 1);
        const timer = setTimeout(() => done(new Error(`no write was seen under way in ${tmpDir} within 60 s`)), 60_000);
        const onExit = (code: number | null) =>
          done(new Error(`the writer exited (${code}) before a write was seen under way in ${tmpDir}: ${stderr}`));
        child.once('exit', onExit);
      });
      child.kill('SIGKILL');
      await exited;
      // The kill landed mid-write: the interrupted write is still in the temporary folder, never renamed into place.
      assert.ok(fs.existsSync(path.join(tmpDir, underWay)), `the write of ${underWay} was cut short by the kill`);
      const stored = blobs();
      assert.ok(stored.length >= 1, 'some writes completed');
      for (const file of stored) {
        const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
        assert.equal(sha, path.basename(file), `${file} holds exactly the content its name promises`);
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
