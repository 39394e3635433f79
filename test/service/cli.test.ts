import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { initOrm, type Orm } from '../../service/db/orm';
import { User } from '../../service/auth/entities';
import { UserService } from '../../service/auth/users';
import { AppError } from '../../service/http/errors';
import { spawnService } from '../helpers/process';
import { databases } from '../helpers/service';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist/cli.js');

function run(args: string[], env: Record<string, string>, input?: string) {
  const res = spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000, input });
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

  it('revokes a token by the prefix as listed, or by the whole token', () => {
    const tokenOf = (res: { stdout: string }) => res.stdout.trim().split('\n').at(-1)!;
    const added = run(['user', 'add', 'evan'], env);
    assert.equal(added.code, 0, added.stderr);
    const tokens = [tokenOf(added), ...['a', 'b', 'c'].map((label) => tokenOf(run(['token', 'add', 'evan', '--label', label], env)))];
    const listed = run(['token', 'list', 'evan'], env).stdout;
    const shown = (token: string) => {
      const line = listed.split('\n').find((l) => l.includes(token.slice(0, 12)))!;
      return line.split('\t')[1];
    };
    assert.match(shown(tokens[0]), /^chub_.{7}…$/, 'listed with an ellipsis');
    // As pasted from the list: with its ellipsis, as three dots, with stray spaces.
    for (const pasted of [shown(tokens[0]), `${tokens[1].slice(0, 12)}...`, ` ${shown(tokens[2])} `]) {
      const res = run(['token', 'revoke', pasted], env);
      assert.equal(res.code, 0, `${pasted}: ${res.stderr}`);
      assert.match(res.stdout, /^Revoked token \S+ \(chub_.{7}…\)\.$/m);
    }
    // A leaked token, pasted whole: found by its hash, and never repeated in what the CLI prints.
    const whole = run(['token', 'revoke', tokens[3]], env);
    assert.equal(whole.code, 0, whole.stderr);
    assert.ok(whole.stdout.includes(tokens[3].slice(0, 12)) && !whole.stdout.includes(tokens[3].slice(12)), whole.stdout);
    // Or from standard input, out of the process list and the shell's history.
    const fifth = tokenOf(run(['token', 'add', 'evan', '--label', 'd'], env));
    const piped = run(['token', 'revoke', '-'], env, `${fifth}\n`);
    assert.equal(piped.code, 0, piped.stderr);
    assert.ok(piped.stdout.includes(fifth.slice(0, 12)) && !piped.stdout.includes(fifth.slice(12)), piped.stdout);
    assert.equal(run(['token', 'revoke', '-'], env, '').code, 1, 'nothing given: nothing revoked');
    const rows = run(['token', 'list', 'evan'], env).stdout.trim().split('\n').slice(1);
    assert.equal(rows.length, 5);
    for (const line of rows) assert.match(line, /\d{4}-\d\d-\d\dT[^\t]*Z$/, `revoked: ${line}`);
    const unknown = `chub_${randomBytes(32).toString('base64url')}`;
    const missing = run(['token', 'revoke', unknown], env);
    assert.equal(missing.code, 1);
    assert.ok(!missing.stderr.includes(unknown.slice(12)), `an unknown token is not repeated: ${missing.stderr}`);
  });

  it('stops at start with one line naming a bad variable', () => {
    const res = run(['serve'], { ...env, CRAWLHUB_PORT: 'eighty' });
    assert.equal(res.code, 78);
    assert.equal(res.stderr.trim().split('\n').length, 1);
    assert.match(res.stderr, /^crawlhub: bad configuration: CRAWLHUB_PORT: got "eighty"; expected a whole number/);
  });

  it('stops at start with one line naming the setting when the database, storage or data dir it names cannot be opened', async () => {
    // A port nothing listens on: taken, then given back.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const aFile = path.join(dataDir, 'not-a-folder');
    fs.writeFileSync(aFile, '');
    const sqlite = `sqlite:${path.join(dataDir, 'elsewhere.db')}`;
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['serve'], { CRAWLHUB_STORAGE: 'nosuch' }, /^CRAWLHUB_STORAGE: cannot open the file storage "nosuch": .*not enabled or supported/],
      [
        ['serve'],
        { CRAWLHUB_STORAGE: 's3?secret_access_key=hunter2zz' },
        /^CRAWLHUB_STORAGE: cannot open the file storage "s3\?secret_access_key=\*\*\*": .*bucket/,
      ],
      [
        ['serve'],
        { DATABASE_URL: `postgres://crawl:hunter2zz@127.0.0.1:${closedPort}/x` },
        new RegExp(`^DATABASE_URL: cannot open the database "postgres://\\*\\*\\*@127\\.0\\.0\\.1:${closedPort}/x": .*ECONNREFUSED`),
      ],
      [
        ['token', 'list', 'dora'],
        { DATABASE_URL: `postgres://crawl:hunter2zz@127.0.0.1:${closedPort}/x` },
        /^DATABASE_URL: cannot open the database .*ECONNREFUSED/,
      ],
      [
        ['serve'],
        { CRAWLHUB_DATA_DIR: path.join(aFile, 'data') },
        /^CRAWLHUB_DATA_DIR: cannot open the database "sqlite:.*not-a-folder\/data\/crawlhub\.db": ENOTDIR/,
      ],
      [
        ['serve'],
        { CRAWLHUB_DATA_DIR: path.join(aFile, 'data'), DATABASE_URL: sqlite },
        /^CRAWLHUB_DATA_DIR: cannot open the file storage ".*not-a-folder\/data": /,
      ],
    ];
    for (const [args, extra, expected] of cases) {
      const res = run(args, { ...env, CRAWLHUB_PORT: '0', DOCKER_HOST: `unix://${path.join(dataDir, 'no-docker.sock')}`, ...extra });
      const what = `${args.join(' ')} with ${JSON.stringify(extra)}: ${res.stderr}`;
      assert.equal(res.code, 78, what);
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line, no stack: ${what}`);
      assert.ok(res.stderr.startsWith('crawlhub: bad configuration: '), what);
      assert.match(res.stderr.slice('crawlhub: bad configuration: '.length), expected, what);
      assert.ok(!res.stderr.includes('hunter2zz'), `no credentials: ${what}`);
    }
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

  it('serve on :: tells browsers http://[::1]:<port>, an address they can reach', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-serve-v6-'));
    // No Docker engine: the service starts without one, and this test leaves the real one alone.
    const service = await spawnService(
      { CRAWLHUB_DATA_DIR: dir, CRAWLHUB_HOST: '::', DOCKER_HOST: `unix://${path.join(dir, 'no-docker.sock')}` },
      { cli },
    ).catch((err: unknown) => {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    });
    try {
      const port = /^http:\/\/\[::\]:(\d+)$/.exec(service.url)?.[1];
      assert.ok(port, service.url);
      const doc = (await (await fetch(`http://[::1]:${port}/openapi.json`)).json()) as { servers: { url: string }[] };
      assert.deepEqual(doc.servers, [{ url: `http://[::1]:${port}` }]);
    } finally {
      await service.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve on an empty database prints the admin token once and serves /healthz', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-serve-'));
    const service = await spawnService({ CRAWLHUB_DATA_DIR: dir }, { cli }).catch((err: unknown) => {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    });
    try {
      const token = fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
      const out = service.output();
      assert.ok(out.includes(token), 'the first start prints the token');
      assert.equal(out.split(token).length - 1, 1, 'exactly once');
      const health = (await (await fetch(`${service.url}/healthz`)).json()) as { status: string };
      assert.equal(health.status, 'ok');
    } finally {
      await service.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** An empty database of its own: a SQLite file, or a fresh PostgreSQL database on the test server. */
async function emptyDatabase(db: 'sqlite' | 'postgres'): Promise<{ url: string; drop(): Promise<void> }> {
  if (db === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-users-'));
    return { url: `sqlite:${path.join(dir, 'crawlhub.db')}`, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const { Client } = (await import('pg')) as unknown as typeof import('pg');
  const admin = process.env.TEST_POSTGRES_URL!;
  const name = `crawlhub_test_${randomBytes(6).toString('hex')}`;
  const query = async (sql: string) => {
    const client = new Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await query(`create database ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => query(`drop database if exists ${name} with (force)`) };
}

for (const db of databases()) {
  describe(`users and tokens on ${db}, with callers at once`, () => {
    let database: { url: string; drop(): Promise<void> };
    // Two replicas of the service (or two runs of the CLI): each its own ORM on the one database.
    let replicas: Orm[];
    const users = new UserService();
    before(async () => {
      database = await emptyDatabase(db);
      replicas = [await initOrm(database.url)];
      replicas.push(await initOrm(database.url));
    });
    after(async () => {
      for (const orm of replicas ?? []) await orm.close();
      await database?.drop();
    });

    it('two replicas starting on an empty database: one creates the admin, the other starts without one', async () => {
      const dirs = replicas.map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-bootstrap-')));
      try {
        // Both are waited for, whatever happens: neither writes into a folder already cleaned up.
        const settled = await Promise.allSettled(replicas.map((orm, i) => users.bootstrapAdmin(orm.em.fork(), dirs[i])));
        const results = settled.map((r) => {
          if (r.status === 'rejected') throw r.reason;
          return r.value;
        });
        assert.equal(results.filter((r) => r !== null).length, 1, 'exactly one replica created the admin');
        const admins = await replicas[0].em.fork().find(User, {});
        assert.deepEqual(
          admins.map((u) => [u.name, u.isAdmin]),
          [['admin', true]],
        );
        const winner = results.findIndex((r) => r !== null);
        assert.ok(fs.existsSync(path.join(dirs[winner], 'admin.token')));
        assert.ok(!fs.existsSync(path.join(dirs[1 - winner], 'admin.token')), 'the other wrote no token');
      } finally {
        for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('two "user add bob" at once: one creates bob, the other answers 409 duplicate_name', async () => {
      const results = await Promise.allSettled(replicas.map((orm) => users.createUser(orm.em.fork(), 'bob')));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
      const failed = results.find((r) => r.status === 'rejected')!.reason as unknown;
      assert.ok(failed instanceof AppError, `a conflict, not ${String(failed)}`);
      assert.equal(failed.status, 409);
      assert.equal(failed.code, 'duplicate_name');
      assert.match(failed.message, /A user named "bob" already exists/);
      assert.equal(await replicas[0].em.fork().count(User, { name: 'bob' }), 1);
    });

    it('the same conflict when the name is taken between the check and the insert, and the caller goes on', async () => {
      const em = replicas[0].em.fork();
      // What another process does in between: the check sees no "carol", the insert finds one.
      const findOne = em.findOne.bind(em);
      em.findOne = (async (...args: Parameters<typeof findOne>) => {
        const found = await findOne(...args);
        await users.createUser(replicas[1].em.fork(), 'carol');
        return found;
      }) as typeof em.findOne;
      await assert.rejects(users.createUser(em, 'carol'), (err: unknown) => err instanceof AppError && err.code === 'duplicate_name');
      em.findOne = findOne;
      const dave = await users.createUser(em, 'dave');
      assert.equal((await replicas[1].em.fork().findOne(User, { id: dave.id }))?.name, 'dave', 'the same entity manager still works');
    });
  });
}

for (const db of databases()) {
  describe(`one service per database, on ${db}`, () => {
    it('a second service on the same database is refused in one line; the successor of a killed one starts', async () => {
      const database = await emptyDatabase(db);
      const dirs = [0, 1, 2].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-serving-')));
      // Each its own data dir (a second data dir is no way around it on PostgreSQL); SQLite's file is the first's.
      const env = (i: number) => ({
        CRAWLHUB_DATA_DIR: dirs[i],
        DATABASE_URL: database.url,
        DOCKER_HOST: `unix://${path.join(dirs[i], 'no-docker.sock')}`,
      });
      const started: Awaited<ReturnType<typeof spawnService>>[] = [];
      try {
        started.push(await spawnService(env(0), { cli }));
        const second = run(['serve'], { ...env(1), CRAWLHUB_PORT: '0', CRAWLHUB_LOG_LEVEL: 'warn' });
        assert.equal(second.code, 78, second.stderr);
        assert.equal(second.stderr.trim().split('\n').length, 1, second.stderr);
        assert.match(
          second.stderr,
          new RegExp(
            `^crawlhub: bad configuration: DATABASE_URL: another CrawlHub service is serving from ${db === 'sqlite' ? '\\S+crawlhub\\.db' : 'this database'}; run one service per database`,
          ),
        );
        // The CLI's commands run beside the service.
        assert.equal(run(['user', 'add', 'fay'], env(1)).code, 0);
        // Killed without a chance to let go: the lock goes with its process.
        started[0].child.kill('SIGKILL');
        await started[0].exited;
        started.push(await spawnService(env(2), { cli }));
        assert.equal(((await (await fetch(`${started[1].url}/healthz`)).json()) as { status: string }).status, 'ok');
      } finally {
        for (const s of started) await s.stop();
        for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
        await database.drop();
      }
    });
  });
}
