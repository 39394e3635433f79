import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { readTar, type TarItem } from '../../service/sync/tar-reader';
import { TarGuard, type TarLimits } from '../../service/sync/tar-guard';
import { makeTar } from '../helpers/tar';

const limits: TarLimits = { maxEntries: 20, maxFileBytes: 1024, maxTotalBytes: 4096, maxHeaderBytes: 2048 };

/** Rewrites the size field of the header at block `index`, with a checksum to match. */
function setSize(tar: Buffer, index: number, size: number): void {
  const header = tar.subarray(index * 512, index * 512 + 512);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.fill(0x20, 148, 156);
  const sum = header.reduce((a, b) => a + b, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

async function read(tar: Buffer | Readable, opts: Partial<Parameters<typeof readTar>[1]> = {}): Promise<TarItem[]> {
  const items: TarItem[] = [];
  for await (const item of readTar(Buffer.isBuffer(tar) ? Readable.from([tar]) : tar, { limits, ...opts })) items.push(item);
  return items;
}

describe('untrusted tar reader', () => {
  it('reads files and folders, hashing each file', async () => {
    const items = await read(
      await makeTar([
        { name: 'workspace/', type: 'directory' },
        { name: 'workspace/a.py', data: 'print(1)\n' },
        { name: 'workspace/pkg/', type: 'directory' },
      ]),
      { stripPrefix: 'workspace' },
    );
    assert.deepEqual(
      items.map((i) => (i.kind === 'file' ? [i.kind, i.path, i.sha256.slice(0, 8)] : [i.kind, 'path' in i ? i.path : i.name])),
      [
        ['file', 'a.py', 'cc421550'],
        ['dir', 'pkg'],
      ],
    );
  });

  it('takes an archive made with `tar -C dir .`: its ./ root folder is no entry, ./a.py is a.py', async () => {
    const items = await read(
      await makeTar([
        { name: './', type: 'directory' },
        { name: './books/', type: 'directory' },
        { name: './books/settings.py', data: 'BOT_NAME = "books"\n' },
        { name: './scrapy.cfg', data: '[settings]\n' },
      ]),
    );
    assert.deepEqual(
      items.map((i) => [i.kind, 'path' in i ? i.path : i.name]),
      [
        ['dir', 'books'],
        ['file', 'books/settings.py'],
        ['file', 'scrapy.cfg'],
      ],
    );
    // Only a folder can be the root: a file named "." or "./" is still refused, and so is "/".
    const odd = await read(
      await makeTar([
        { name: '/', type: 'directory' },
        { name: '.', data: 'x' },
      ]),
    );
    assert.deepEqual(
      odd.map((i) => i.kind),
      ['skipped', 'skipped'],
    );
  });

  it('skips and reports links, devices, pipes, escaping and control-character names', async () => {
    const items = await read(
      await makeTar([
        { name: 'ok.py', data: 'ok' },
        { name: 'link', type: 'symlink', linkname: '/etc/passwd' },
        { name: 'hard', type: 'link', linkname: 'ok.py' },
        { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 },
        { name: 'disk', type: 'block-device', devmajor: 8, devminor: 0 },
        { name: 'pipe', type: 'fifo' },
        { name: '../up.py', data: 'x' },
        { name: '/abs.py', data: 'x' },
        { name: 'a/../../b.py', data: 'x' },
        { name: 'bell\u0007.py', data: 'x' },
        { name: 'back\\slash.py', data: 'x' },
      ]),
    );
    assert.deepEqual(
      items.filter((i) => i.kind === 'file').map((i) => (i as { path: string }).path),
      ['ok.py'],
    );
    const skipped = items.filter((i) => i.kind === 'skipped') as { name: string; reason: string }[];
    assert.deepEqual(
      skipped.map((s) => s.name),
      ['link', 'hard', 'null', 'disk', 'pipe', '../up.py', '/abs.py', 'a/../../b.py', 'bell\u0007.py', 'back\\slash.py'],
    );
    assert.ok(skipped.every((s) => s.reason.length > 0));
  });

  it('aborts on each cap: entries, file size, total bytes, header size, time', async () => {
    const reject = (p: Promise<unknown>, code: string) => assert.rejects(p, (e: { code?: string }) => e.code === code);
    await reject(read(await makeTar(Array.from({ length: 21 }, (_, i) => ({ name: `f${i}`, data: 'x' })))), 'archive_limit');
    await reject(read(await makeTar([{ name: 'big', data: Buffer.alloc(1025) }])), 'archive_limit');
    await reject(read(await makeTar(Array.from({ length: 5 }, (_, i) => ({ name: `f${i}`, data: Buffer.alloc(1000) })))), 'archive_limit');
    await reject(read(await makeTar([{ name: 'x', data: 'x', pax: { comment: 'c'.repeat(4000) } }])), 'archive_limit');
    // A stream that never ends: the time cap stops it.
    const endless = new Readable({ read() {} });
    endless.push((await makeTar([{ name: 'a', data: 'a' }])).subarray(0, 1024));
    await reject(read(endless, { timeoutMs: 200 }), 'archive_timeout');
  });

  it('keeps counting past zero blocks: entries hidden behind an early end-of-archive still meet the caps', async () => {
    // tar-stream reads on past zero blocks, so a guard that stopped at the first one would let these through.
    const head = await makeTar([{ name: 'a', data: 'a' }]);
    const tail = await makeTar(Array.from({ length: 25 }, (_, i) => ({ name: `f${i}`, data: 'x' })));
    const hidden = Buffer.concat([head, tail]);
    // The guard alone, on the raw blocks…
    await assert.rejects(
      pipeline(Readable.from([hidden]), new TarGuard(limits), new Writable({ write: (_c, _e, done) => done() })),
      (e: { code?: string }) => e.code === 'archive_limit',
    );
    // …and the count on the parsed entries alone (with an ignore list the guard counts no entries).
    await assert.rejects(read(hidden, { ignore: () => false }), (e: { code?: string }) => e.code === 'archive_limit');
  });

  it("reads sizes as the parser does: a folder's size field or a pax size= cannot hide an entry from the caps", async () => {
    const big = Buffer.alloc(3000);
    // A folder whose header claims 1 KiB of data (the parser reads none), then a file over the cap.
    const folder = await makeTar([
      { name: 'd/', type: 'directory' },
      { name: 'big', data: big },
    ]);
    setSize(folder, 0, 1024);
    // A file whose header says 0 bytes while its pax record says 3000 (the parser believes the pax).
    const pax = await makeTar([{ name: 'big', data: big, pax: { size: '3000' } }]);
    assert.equal(pax.subarray(512, 1024).toString('latin1').replace(/\0+$/, ''), '12 path=big\n13 size=3000\n');
    setSize(pax, 2, 0);
    // An old-style folder: a file entry whose name ends in a slash.
    const oldStyle = await makeTar([
      { name: 'e/', data: '' },
      { name: 'big', data: big },
    ]);
    oldStyle[156] = 0;
    setSize(oldStyle, 0, 1024);
    for (const [what, tar] of Object.entries({ folder, pax, oldStyle })) {
      await assert.rejects(
        pipeline(Readable.from([tar]), new TarGuard(limits), new Writable({ write: (_c, _e, done) => done() })),
        (e: { code?: string }) => e.code === 'archive_limit',
        what,
      );
      await assert.rejects(read(tar), (e: { code?: string }) => e.code === 'archive_limit', what);
    }
  });

  it('refuses headers the guard and the parser would read apart: odd base-256 sizes, bad pax lengths, empty long headers', async () => {
    const header = (name: string, type: string, size: number | Buffer) => {
      const b = Buffer.alloc(512);
      b.write(name, 0, 'latin1');
      b.write('0000644\0', 100, 'latin1');
      if (typeof size === 'number') b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
      else size.copy(b, 124);
      b[156] = type.charCodeAt(0);
      b.write('ustar\0', 257, 'latin1');
      b.write('00', 263, 'latin1');
      b.fill(0x20, 148, 156);
      b.write(
        `${b
          .reduce((x, y) => x + y, 0)
          .toString(8)
          .padStart(6, '0')}\0 `,
        148,
        'latin1',
      );
      return b;
    };
    const block = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
    const end = Buffer.alloc(1024);
    const base256 = Buffer.alloc(12);
    base256[0] = 0x81;
    base256[10] = 0x02;
    const negative = Buffer.from('-3 size=1024\nxyz');
    const archives = {
      base256: Buffer.concat([header('PaxHeader', 'x', base256), header('inner', '0', 5), block(Buffer.from('hello')), end]),
      negative: Buffer.concat([header('PaxHeader', 'x', negative.length), block(negative), header('a', '0', 0), end]),
      empty: Buffer.concat([header('PaxHeader', 'x', 0), header('a', '0', 100), block(Buffer.alloc(100, 0x61)), end]),
    };
    for (const [what, tar] of Object.entries(archives)) {
      await assert.rejects(
        pipeline(Readable.from([tar]), new TarGuard(limits), new Writable({ write: (_c, _e, done) => done() })),
        (e: { code?: string }) => e.code === 'invalid_archive',
        what,
      );
    }
  });

  it("passes over ignored entries unread: they count for no cap but the stream's raw size", async () => {
    const ignore = (path: string) => path.split('/').some((s) => s === 'node_modules' || s === '.git');
    const tar = await makeTar([
      { name: 'app.js', data: 'main()' },
      ...Array.from({ length: 40 }, (_, i) => ({ name: `web/node_modules/m${i}.js`, data: 'x' })),
      { name: 'web/node_modules/.bin/tool', type: 'symlink' as const, linkname: '../tool/cli.js' },
      { name: '.git/objects/pack/big.pack', data: Buffer.alloc(3000, 7) },
      { name: 'web/index.js', data: 'ok' },
    ]);
    // The raw size allowed is twice the files' total.
    const roomy = { ...limits, maxTotalBytes: 64 * 1024 };
    const items = await read(tar, { ignore, limits: roomy });
    assert.deepEqual(
      items.map((i) => [i.kind, 'path' in i ? i.path : i.name]),
      [
        ['file', 'app.js'],
        ['file', 'web/index.js'],
      ],
    );
    // What is kept still meets the caps, and the raw bound holds the ignored bytes too.
    await assert.rejects(read(tar, { ignore: () => false, limits: roomy }), (e: { code?: string }) => e.code === 'archive_limit');
    assert.ok(tar.length > limits.maxTotalBytes * 2);
    await assert.rejects(read(tar, { ignore }), (e: { code?: string }) => e.code === 'archive_limit');
    // A workspace's ignored folders may hold more than a spider may: a raw bound of their own lets them by.
    assert.equal((await read(tar, { ignore, limits: { ...limits, maxRawBytes: tar.length * 2 } })).length, 2);
    await assert.rejects(
      read(tar, { ignore, limits: { ...limits, maxRawBytes: 4096 } }),
      (e: { code?: string }) => e.code === 'archive_limit',
    );
  });

  it("a workspace's archive skips a name not in NFC form instead of reading it as its NFC twin, and says which stored file it would be", async () => {
    const nfc = 'pkg/caf\u00e9.py';
    const nfd = 'pkg/cafe\u0301.py';
    const tar = await makeTar([
      { name: nfd, data: 'OTHER FILE' },
      { name: nfc, data: 'GOOD' },
      { name: 'link.py', type: 'symlink' as const, linkname: '/etc/passwd' },
    ]);
    const items = await read(tar, { exactNames: true });
    assert.deepEqual(
      items.map((i) =>
        i.kind === 'file' ? [i.path, i.data.toString()] : i.kind === 'skipped' ? [i.kind, i.name, i.path] : [i.kind, i.path],
      ),
      [
        ['skipped', nfd, nfc],
        [nfc, 'GOOD'],
        ['skipped', 'link.py', 'link.py'],
      ],
    );
    // A name the rules refuse today still says which stored file it stands for (one stored before the rule).
    const refused = await read(await makeTar([{ name: 'quo\u200Btes.py', data: 'x' }]), { exactNames: true });
    assert.deepEqual(
      refused.map((i) => (i.kind === 'skipped' ? [i.name, i.path] : [])),
      [['quo\u200Btes.py', 'quo\u200Btes.py']],
    );
    // An upload's names are normalised instead: both entries are the NFC file.
    assert.deepEqual(
      (await read(tar)).filter((i) => i.kind === 'file').map((i) => (i.kind === 'file' ? i.path : '')),
      [nfc, nfc],
    );
  });

  it('refuses an archive without its end-of-archive marker: an empty stream, or one cut between entries', async () => {
    const whole = await makeTar([
      { name: 'a.py', data: 'a' },
      { name: 'b.py', data: 'b' },
    ]);
    assert.equal((await read(whole)).length, 2);
    for (const cut of [Buffer.alloc(0), whole.subarray(0, 1024)])
      await assert.rejects(
        read(cut),
        (e: { code?: string; message?: string }) => e.code === 'invalid_archive' && /cut short/.test(e.message!),
      );
  });

  it('refuses garbage and truncation as invalid archives', async () => {
    await assert.rejects(read(Buffer.from('not a tar '.repeat(100))), (e: { code?: string }) => e.code === 'invalid_archive');
    await assert.rejects(
      read((await makeTar([{ name: 'a', data: Buffer.alloc(900, 1) }])).subarray(0, 700)),
      (e: { code?: string }) => e.code === 'invalid_archive',
    );
  });

  it('reads gzip when asked, and bounds what it inflates', async () => {
    const items = await read(await makeTar([{ name: 'a.py', data: 'a' }], { gzip: true }), { gunzip: true });
    assert.equal(items.length, 1);
    const bomb = await makeTar([{ name: 'zeros', data: Buffer.alloc(1024 * 1024) }], { gzip: true });
    assert.ok(bomb.length < 5000);
    await assert.rejects(read(bomb, { gunzip: true }), (e: { code?: string }) => e.code === 'archive_limit');
  });
});
