import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist/cli.js');

function run(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('crawlhub CLI', () => {
  let dataDir: string;
  let env: Record<string, string>;
  before(() => {
    if (!fs.existsSync(cli)) spawnSync('node', ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-cli-'));
    env = { CRAWLHUB_DATA_DIR: dataDir, CRAWLHUB_LOG_LEVEL: 'warn', DATABASE_URL: '' };
  });
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('run away from the service, with the default data dir, says where it looked and creates no database', () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-cli-elsewhere-'));
    try {
      const bare = { ...process.env };
      delete bare.CRAWLHUB_DATA_DIR;
      delete bare.DATABASE_URL;
      const res = spawnSync(process.execPath, [cli, 'token', 'list', 'dora'], {
        cwd: elsewhere,
        env: bare,
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(res.status, 1);
      assert.match(res.stderr, /no database at .*crawlhub-cli-elsewhere-.*\/data\/crawlhub\.db.*CRAWLHUB_DATA_DIR/);
      assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing was created');
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('adds users and tokens, lists them by prefix and revokes them', () => {
    const added = run(['user', 'add', 'dora'], env);
    assert.equal(added.code, 0, added.stderr);
    const token = added.stdout.trim().split('\n').at(-1)!;
    assert.match(token, /^chub_[A-Za-z0-9_-]{43}$/);
    const admin = run(['user', 'add', 'root2', '--admin'], env);
    assert.match(admin.stdout, /Created admin user "root2"/);
    assert.notEqual(run(['user', 'add', 'dora'], env).code, 0, 'a duplicate user must fail');
    assert.match(run(['user', 'add', 'Bad Name'], env).stderr, /user name/);

    const second = run(['token', 'add', 'dora', '--label', 'laptop'], env);
    assert.equal(second.code, 0, second.stderr);
    const id = /New token (\S+)/.exec(second.stdout)![1];
    const list = run(['token', 'list', 'dora'], env);
    assert.equal(list.code, 0);
    assert.ok(list.stdout.includes(token.slice(0, 12)), 'tokens are listed by their visible prefix');
    assert.ok(!list.stdout.includes(token.slice(12)), 'the secret part is never listed');
    assert.match(list.stdout, /laptop/);
    const revoked = run(['token', 'revoke', id], env);
    assert.match(revoked.stdout, /Revoked token/);
    assert.match(run(['token', 'list', 'dora'], env).stdout, new RegExp(`${id}.*\\d{4}-\\d\\d-\\d\\dT.*Z\\s*$`, 'm'));
    assert.notEqual(run(['token', 'revoke', 'nope'], env).code, 0);
    assert.notEqual(run(['token', 'add', 'nobody'], env).code, 0);
  });

  it('stops at start with one line naming a bad variable', () => {
    const res = run(['serve'], { ...env, CRAWLHUB_PORT: 'eighty' });
    assert.equal(res.code, 78);
    assert.equal(res.stderr.trim().split('\n').length, 1);
    assert.match(res.stderr, /^crawlhub: bad configuration: CRAWLHUB_PORT: got "eighty"; expected a whole number/);
  });

  it('stops at start with one line when its port is taken', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((holder.address() as net.AddressInfo).port);
      const res = run(['serve'], { ...env, CRAWLHUB_PORT: port });
      assert.equal(res.code, 78);
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
      assert.match(res.stderr, new RegExp(`^crawlhub: bad configuration: CRAWLHUB_PORT: 127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      holder.close();
    }
  });

  it('serve on an empty database prints the admin token once and serves /healthz', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-serve-'));
    const child = spawn(process.execPath, [cli, 'serve'], {
      env: { ...process.env, CRAWLHUB_DATA_DIR: dir, CRAWLHUB_PORT: '0', CRAWLHUB_LOG_LEVEL: 'info' },
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line within 30 s: ${out}`)), 30_000);
        const check = () => {
          const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        };
        child.stdout.on('data', check);
        // A service that stops before it listens fails the test at once, with what it said.
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`the service exited (${code ?? signal}) before it listened: ${out}`));
        });
      });
      const token = fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
      assert.ok(out.includes(token), 'the first start prints the token');
      assert.equal(out.split(token).length - 1, 1, 'exactly once');
      const health = (await (await fetch(`${url}/healthz`)).json()) as { status: string };
      assert.equal(health.status, 'ok');
    } finally {
      // Only a service still running is stopped and waited for: one that exited early has no exit left to wait for.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const stuck = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(stuck);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
