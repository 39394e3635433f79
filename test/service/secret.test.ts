import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../service/config';
import { ServiceSecret } from '../../service/secret';

const secretModule = path.resolve(__dirname, '../../service/secret.ts');

/** Runs `node --import tsx <script> ...args` and resolves with its exit code and output. */
function runNode(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('service secret key', () => {
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-secret-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('creates a 32-byte key with mode 0600, leaves no temporary file and reads the same key back', () => {
    const dir = path.join(tmp, 'fresh', 'data');
    const first = ServiceSecret.loadOrCreate(dir);
    assert.equal(first.key.length, 32);
    assert.deepEqual(fs.readdirSync(dir), ['secret.key']);
    assert.equal(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(path.join(dir, 'secret.key'), 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/);
    assert.ok(ServiceSecret.loadOrCreate(dir).key.equals(first.key));
    const handMade = path.join(tmp, 'hand-made');
    fs.mkdirSync(handMade);
    fs.writeFileSync(path.join(handMade, 'secret.key'), first.key.toString('base64url'));
    assert.ok(ServiceSecret.loadOrCreate(handMade).key.equals(first.key), 'an unpadded or base64url key is read too');
  });

  it('services starting together on a fresh data dir all start, with one key', async () => {
    // Each child waits for the same moment, then calls loadOrCreate on each of the same fresh dirs;
    // several rounds make the race between "no key yet" and "create it" show reliably.
    const script = path.join(tmp, 'load-key.ts');
    fs.writeFileSync(
      script,
      [
        `import { ServiceSecret } from ${JSON.stringify(secretModule)};`,
        `const [startAt, ...dirs] = process.argv.slice(2);`,
        `const keys: string[] = [];`,
        `dirs.forEach((dir, i) => {`,
        `  while (Date.now() < Number(startAt) + i * 40) {}`,
        `  keys.push(ServiceSecret.loadOrCreate(dir).key.toString('hex'));`,
        `});`,
        `process.stdout.write(keys.join('\\n'));`,
      ].join('\n'),
    );
    const dirs = Array.from({ length: 15 }, (_, i) => path.join(tmp, 'race', `d${i}`));
    const startAt = Date.now() + 3000;
    const results = await Promise.all(Array.from({ length: 6 }, () => runNode(script, [String(startAt), ...dirs])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    dirs.forEach((dir, i) => {
      const onDisk = Buffer.from(fs.readFileSync(path.join(dir, 'secret.key'), 'utf8').trim(), 'base64').toString('hex');
      for (const r of results) assert.equal(r.stdout.split('\n')[i], onDisk, `every service uses the key on disk (${dir})`);
      assert.deepEqual(fs.readdirSync(dir), ['secret.key'], 'no temporary file is left behind');
    });
  });

  it('refuses an existing key file that is empty or malformed, naming the file and what to do, and never replaces it', () => {
    for (const [name, content] of [
      ['empty', ''],
      ['short', `${Buffer.alloc(16, 7).toString('base64')}\n`],
      ['garbage', 'not a key at all\n'],
    ]) {
      const dir = path.join(tmp, 'bad', name);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'secret.key');
      fs.writeFileSync(file, content, { mode: 0o600 });
      assert.throws(
        () => ServiceSecret.loadOrCreate(dir),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.variable === 'CRAWLHUB_DATA_DIR' &&
          err.message.includes(file) &&
          /32 random bytes in base64/.test(err.message) &&
          /restore it from a backup/.test(err.message) &&
          /delete it/.test(err.message) &&
          !err.message.includes('\n'),
        name,
      );
      assert.equal(fs.readFileSync(file, 'utf8'), content, 'the file is left as it was');
      assert.deepEqual(fs.readdirSync(dir), ['secret.key']);
    }
  });
});
