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
    const store = BlobStore.fromConfig('fs', fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-blobs-')));
    const id = randomUUID();
    const sha = createHash('sha256').update('x').digest('hex');
    assert.equal(store.keyFor(id, sha), `spiders/${id}/blobs/${sha.slice(0, 2)}/${sha}`);
    assert.throws(() => store.keyFor('../../etc', sha));
    assert.throws(() => store.keyFor(id, '../passwd'));
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
    // A child process writes 64 MiB blobs in a loop; we kill -9 it while a write is under way.
    const script = `
      const { BlobStore } = require(${JSON.stringify(path.join(root, 'service/storage/blobs.ts'))});
      const store = BlobStore.fromConfig('fs', ${JSON.stringify(dataDir)});
      (async () => {
        for (let i = 0; ; i++) {
          const data = Buffer.alloc(64 * 1024 * 1024, i % 251);
          process.stdout.write('writing\\n');
          await store.put(${JSON.stringify(spider)}, data);
        }
      })();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      let seen = 0;
      child.stdout.on('data', (d: Buffer) => {
        seen += d.toString().split('writing').length - 1;
        if (seen >= 3) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const blobDir = path.join(dataDir, 'files', 'spiders', spider, 'blobs');
    const blobs = fs.existsSync(blobDir)
      ? fs.readdirSync(blobDir).flatMap((d) => fs.readdirSync(path.join(blobDir, d)).map((f) => path.join(blobDir, d, f)))
      : [];
    assert.ok(blobs.length >= 1, 'some writes completed');
    for (const file of blobs) {
      const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
      assert.equal(sha, path.basename(file), `${file} holds exactly the content its name promises`);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
