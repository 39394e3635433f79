import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { browserCookies, json, startTestService, type TestService } from '../helpers/service';
import { containerName, docker, dockerExec, removeContainers, requireDocker, until } from '../helpers/docker';
import { makeTar } from '../helpers/tar';
import { createLogger } from '../../service/logger';
import { Spawner } from '../../service/sessions/spawner';
import { Workspace } from '../../service/sessions/workspace';

const SCRAPY_PROJECT = [
  { name: 'scrapy.cfg', data: '[settings]\ndefault = quotes.settings\n\n[deploy]\nproject = quotes\n' },
  { name: 'quotes/__init__.py', data: '' },
  { name: 'quotes/settings.py', data: 'BOT_NAME = "quotes"\nSPIDER_MODULES = ["quotes.spiders"]\nROBOTSTXT_OBEY = True\n' },
  { name: 'quotes/spiders/__init__.py', data: '' },
  {
    name: 'quotes/spiders/quotes.py',
    data: 'import scrapy\n\n\nclass QuotesSpider(scrapy.Spider):\n    name = "quotes"\n    start_urls = ["https://quotes.toscrape.com/"]\n\n    def parse(self, response):\n        for q in response.css("div.quote"):\n            yield {"text": q.css("span.text::text").get()}\n',
  },
];

describe('code sessions on the real engine', () => {
  let svc: TestService;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };

  before(async () => {
    requireDocker();
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    alice = await svc.newUser('alice');
    bob = await svc.newUser('bob');
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  const spiderWithProject = async (token: string, name: string) => {
    const spider = await json(await svc.api(token, 'POST', '/api/spiders', { name }));
    const res = await svc.api(token, 'POST', `/api/spiders/${spider.id}/archive`, await makeTar(SCRAPY_PROJECT));
    assert.equal(res.status, 200);
    return spider as { id: string };
  };
  const open = async (token: string, spiderId: string) => {
    const res = await svc.api(token, 'POST', `/api/spiders/${spiderId}/code-session?wait=1`);
    const body = await json(res);
    assert.ok([200, 201].includes(res.status), JSON.stringify(body));
    assert.equal(body.status, 'ready', JSON.stringify(body));
    return body;
  };
  /** The storage objects of a spider are exactly those its file rows use: nothing leaked, nothing missing. */
  const assertStorageClean = async (spiderId: string) => {
    const root = path.join(svc.dataDir, 'files', 'spiders', spiderId);
    const onDisk = ['blobs', 'packs']
      .flatMap((kind) =>
        fs.existsSync(path.join(root, kind)) ? fs.readdirSync(path.join(root, kind), { recursive: true, encoding: 'utf8' }) : [],
      )
      .map(String)
      .filter((name) => /[0-9a-f]{64}$/.test(name))
      .map((name) => name.slice(-64))
      .sort();
    const rows = (await svc.services.orm.em
      .fork()
      .getConnection()
      .execute('select distinct storage_key from spider_files where spider_id = ?', [spiderId])) as { storage_key: string }[];
    assert.deepEqual(onDisk, rows.map((r) => r.storage_key.slice(-64)).sort());
  };
  const storedFiles = async (token: string, spiderId: string) =>
    Object.fromEntries(
      await Promise.all(
        (await json<{ path: string }[]>(await svc.api(token, 'GET', `/api/spiders/${spiderId}/files`))).map(async (f) => [
          f.path,
          await (await svc.api(token, 'GET', `/api/spiders/${spiderId}/files/${f.path}`)).text(),
        ]),
      ),
    );

  it('opens a session: the files are in /workspace, owned by the container user, and code-server answers', async () => {
    const spider = await spiderWithProject(alice.token, 'open');
    const session = await open(alice.token, spider.id);
    assert.match(session.session_id, /^[0-9a-f-]{36}$/);
    for (const key of ['url', 'expires_at', 'idle_deadline']) assert.ok(session[key], key);
    assert.ok(Date.parse(session.expires_at) - Date.now() > 3.9 * 3600_000);
    assert.ok(Date.parse(session.idle_deadline) - Date.now() > 29 * 60_000);
    const c = containerName(svc, session.session_id);
    const listing = dockerExec(c, 'cd /workspace && find . -type f | sort && stat -c %U quotes/spiders/quotes.py');
    assert.equal(
      listing.stdout.trim(),
      [
        './quotes/__init__.py',
        './quotes/settings.py',
        './quotes/spiders/__init__.py',
        './quotes/spiders/quotes.py',
        './scrapy.cfg',
        'coder',
      ].join('\n'),
    );
    assert.equal(dockerExec(c, 'cat /workspace/scrapy.cfg').stdout, SCRAPY_PROJECT[0].data);
    assert.equal(
      dockerExec(c, 'cd /workspace && python3 -c "import scrapy, quotes.settings; print(quotes.settings.BOT_NAME)"').stdout.trim(),
      'quotes',
    );
    assert.equal(dockerExec(c, 'cd /workspace && scrapy list').stdout.trim(), 'quotes', 'a real Scrapy project runs in the session');
    const port = Number(docker('port', c, '8080/tcp').trim().split(':').at(-1));
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
    assert.equal(health.status === 'alive' || health.status === 'expired', true);
    const again = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session`);
    assert.equal(again.status, 200);
    assert.equal((await json(again)).session_id, session.session_id);
    const events = await json(await svc.api(alice.token, 'GET', `/api/sessions/${session.session_id}`));
    assert.equal(events.status, 'ready');
  });

  it('the browser IDE proxy reaches code-server at the container’s network address; where that fails, at its published port', async () => {
    const spider = await spiderWithProject(alice.token, 'route');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    const address = docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${svc.config.CRAWLHUB_NETWORK}").IPAddress}}`, c).trim();
    assert.deepEqual(svc.services.sessions.find(session.session_id)?.direct, { host: address, port: 8080 });
    const { url } = await json(await svc.api(alice.token, 'POST', `/api/sessions/${session.session_id}/launch`));
    const opened = await fetch(url, { redirect: 'manual' });
    assert.equal(opened.status, 302);
    const cookie = browserCookies(opened);
    const health = await fetch(`${svc.url}/code-server/${session.session_id}/healthz`, { headers: { cookie } });
    assert.equal(health.status, 200);

    // A container that does not answer at its address nor on a published port (nothing listens in it)
    // is the container's failure, not the network's: it alone goes without an address, the others keep theirs.
    const lines: string[] = [];
    const logger = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    const spawner = new Spawner(svc.services.docker, svc.config, svc.services.secret, logger);
    const silent = `${c}-silent`;
    docker(
      'run',
      '-d',
      '--name',
      silent,
      '--network',
      svc.config.CRAWLHUB_NETWORK,
      '--entrypoint',
      'sleep',
      svc.config.CRAWLHUB_IMAGE,
      '60',
    );
    try {
      assert.equal(await spawner.networkAddress(docker('inspect', '-f', '{{.Id}}', silent).trim()), null);
      assert.deepEqual(await spawner.networkAddress(docker('inspect', '-f', '{{.Id}}', c).trim()), { host: address, port: 8080 });
      assert.equal(lines.filter((l) => l.includes('through their published ports')).length, 0);
    } finally {
      docker('rm', '-f', silent);
    }
    const byPort = new Spawner(svc.services.docker, { ...svc.config, CRAWLHUB_PROXY_UPSTREAM: 'port' }, svc.services.secret, logger);
    assert.equal(await byPort.networkAddress(docker('inspect', '-f', '{{.Id}}', c).trim()), null);
  });

  it("what answers on a session's port cannot redirect the service's probes elsewhere or make it read without end", async () => {
    const spawner = new Spawner(svc.services.docker, svc.config, svc.services.secret, createLogger('silent'));
    const http = await import('node:http');
    const listen = async (handler: import('node:http').RequestListener) => {
      const server = http.createServer(handler);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return { server, port: (server.address() as import('node:net').AddressInfo).port };
    };
    let elsewhere = 0;
    const target = await listen((_req, res) => {
      elsewhere++;
      res.end(JSON.stringify({ status: 'alive', lastHeartbeat: Date.now() }));
    });
    const redirecting = await listen((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${target.port}/healthz` });
      res.end();
    });
    let sent = 0;
    const endless = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.write('{"lastHeartbeat": 1, "pad": "');
      pump();
    });
    try {
      assert.equal(await spawner.browserHeartbeat(redirecting.port), 0);
      assert.equal(elsewhere, 0, 'the redirect was not followed');
      assert.equal(await spawner.browserHeartbeat(endless.port), 0);
      assert.ok(sent < 32 * 1024 * 1024, `the probe read ${sent} bytes`);
    } finally {
      for (const { server } of [target, redirecting, endless]) {
        server.closeAllConnections();
        server.close();
      }
    }
  });

  it('gives the session address on its own host, port included, when sessions have their own domain', async () => {
    const own = await startTestService({ env: { CRAWLHUB_CODE_DOMAIN: 'code.test', CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    try {
      const spider = await json(await own.api(own.adminToken, 'POST', '/api/spiders', { name: 'domain' }));
      const session = await json(await own.api(own.adminToken, 'POST', `/api/spiders/${spider.id}/code-session`));
      const port = new URL(own.url).port;
      assert.equal(session.url, `http://${session.session_id}.code.test:${port}/`);
      const launch = await json(await own.api(own.adminToken, 'POST', `/api/sessions/${session.session_id}/launch`));
      assert.ok(launch.url.startsWith(session.url), 'the launch URL opens the same address');
      await own.api(own.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`);
    } finally {
      await own.close();
      removeContainers(own.config.instance);
    }
  });

  it('opens a server the user starts in the session through code-server’s port forwarding, behind the same cookie', async () => {
    const spider = await spiderWithProject(alice.token, 'ports');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    dockerExec(
      c,
      'mkdir -p /tmp/site && echo served-from-8000 > /tmp/site/index.html && (nohup python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/site >/dev/null 2>&1 &)',
    );
    const launch = (body: unknown) => svc.api(alice.token, 'POST', `/api/sessions/${session.session_id}/launch`, body);
    const forPort = await json(await launch({ port: 8000 }));
    assert.match(forPort.url, new RegExp(`/code-server/${session.session_id}/proxy/8000/\\?ticket=`));
    const redeemed = await fetch(forPort.url, { redirect: 'manual' });
    assert.equal(redeemed.status, 302);
    assert.equal(redeemed.headers.get('location'), `/code-server/${session.session_id}/proxy/8000/`);
    const portCookie = browserCookies(redeemed);
    const served = await until('the server in the session', async () => {
      const r = await fetch(`${svc.url}/code-server/${session.session_id}/proxy/8000/`, { headers: { cookie: portCookie } });
      return r.status === 200 ? r.text() : null;
    });
    assert.equal(served.trim(), 'served-from-8000');
    assert.equal((await fetch(`${svc.url}/code-server/${session.session_id}/proxy/8000/`)).status, 403, 'not without the cookie');
    for (const port of [8080, 0, 65536, 1.5, '8000']) {
      const refused = await launch({ port });
      assert.equal(refused.status, 400, String(port));
      assert.match((await json(refused)).error.message, port === 8080 ? /code-server itself/ : /port/);
    }
  });

  it('saves added, modified and deleted files; ignores what the ignore list names; skips what cannot be stored', async () => {
    const spider = await spiderWithProject(alice.token, 'save');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    const script = [
      'cd /workspace',
      'printf "BOT_NAME = \\"quotes2\\"\\n" > quotes/settings.py',
      'printf "import scrapy\\n" > quotes/spiders/books.py',
      'rm quotes/spiders/__init__.py',
      'mkdir -p quotes/__pycache__ .venv/lib node_modules/x .git',
      'echo junk > quotes/__pycache__/settings.cpython-311.pyc',
      'echo junk > .venv/lib/site.py',
      'echo junk > node_modules/x/index.js',
      'echo "[core]" > .git/config',
      'ln -s /etc/passwd passwd-link',
      'ln quotes/spiders/quotes.py hardlink.py',
      'mkfifo pipe',
      'touch "$(printf "bad\\001name.py")"',
      // A name from a Windows zip (Latin-1 bytes) and one as macOS writes it (NFD): neither can be stored as it is.
      'touch "$(printf "caf\\351.csv")" "$(printf "cafe\\314\\201.csv")"',
    ].join(' && ');
    assert.equal(dockerExec(c, script).code, 0);
    const dry = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync?dry_run=1`));
    assert.equal(dry.dry_run, true);
    assert.equal(dry.saved_at, null);
    assert.deepEqual((await storedFiles(alice.token, spider.id))['quotes/settings.py'], SCRAPY_PROJECT[2].data, 'a dry run writes nothing');
    const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
    const result = await json(res);
    assert.equal(res.status, 200, JSON.stringify(result));
    assert.deepEqual(result.added.sort(), ['hardlink.py', 'quotes/spiders/books.py']);
    assert.deepEqual(result.modified, ['quotes/settings.py']);
    assert.deepEqual(result.deleted, ['quotes/spiders/__init__.py']);
    assert.deepEqual(
      { added: dry.added.sort(), modified: dry.modified, deleted: dry.deleted },
      { added: result.added, modified: result.modified, deleted: result.deleted },
      'the dry run planned exactly what the save did',
    );
    assert.equal(result.unchanged, 3);
    assert.ok(result.bytes > 0);
    assert.ok(!Number.isNaN(Date.parse(result.saved_at)));
    const skipped = result.skipped.map((s: { path: string }) => s.path).sort();
    assert.deepEqual(skipped, ['bad\u0001name.py', 'caf\uFFFD.csv', 'cafe\u0301.csv', 'passwd-link', 'pipe'].sort());
    const stored = await storedFiles(alice.token, spider.id);
    assert.deepEqual(Object.keys(stored).sort(), [
      'hardlink.py',
      'quotes/__init__.py',
      'quotes/settings.py',
      'quotes/spiders/books.py',
      'quotes/spiders/quotes.py',
      'scrapy.cfg',
    ]);
    assert.equal(stored['quotes/settings.py'], 'BOT_NAME = "quotes2"\n');
    assert.equal(stored['hardlink.py'], SCRAPY_PROJECT[4].data, 'a hard link inside the workspace is just another regular file');
    // A second save right away finds nothing to do.
    const second = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    assert.deepEqual([second.added, second.modified, second.deleted, second.unchanged], [[], [], [], 6]);
    await assertStorageClean(spider.id);
  });

  it('reads nothing outside /workspace: a folder swapped for a link to /etc after the listing is not followed', async () => {
    const spider = await spiderWithProject(alice.token, 'swapped');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    assert.equal(dockerExec(c, 'mkdir /workspace/d && echo mine > /workspace/d/shadow').code, 0);
    // /etc/shadow is root's alone: the container's user cannot read it.
    assert.notEqual(dockerExec(c, 'cat /etc/shadow').code, 0);
    const containerId = docker('inspect', '-f', '{{.Id}}', c).trim();
    const workspace = svc.services.sessions.workspaceOf(containerId);
    const listed = await workspace.manifest([], 1000);
    assert.ok(listed.entries.some((e) => e.path === 'd/shadow'));
    // Between the listing and the read, the user swaps the folder for a link out of the workspace.
    assert.equal(dockerExec(c, 'mv /workspace/d /workspace/d.old && ln -s /etc /workspace/d').code, 0);
    const limits = { maxEntries: 1000, maxFileBytes: 1 << 20, maxTotalBytes: 64 << 20, maxHeaderBytes: 64 << 10 };
    const read = [];
    for await (const item of workspace.readFiles(['d/shadow'], limits, Date.now() + 60_000)) read.push(item);
    for (const item of read) assert.ok(item.kind !== 'file' || !item.data.toString().includes('root:'), 'root-only bytes came out');
    assert.deepEqual(read, [], 'the file is gone from where it was listed');
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
  });

  it('saves what the container user made unreadable as it is: never as an empty file, never as deleted', async () => {
    const spider = await spiderWithProject(alice.token, 'unreadable');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    const sync = async () => {
      const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      return body;
    };
    // A changed file the user then locked, and a folder the user can no longer enter.
    const locked = 'cd /workspace && printf "X = 1\\n" > quotes/settings.py && chmod 000 quotes/settings.py && chmod 000 quotes/spiders';
    assert.equal(dockerExec(c, locked).code, 0);
    const first = await sync();
    assert.deepEqual([first.modified, first.added, first.deleted], [['quotes/settings.py'], [], []]);
    assert.deepEqual(
      first.skipped.map((s: { path: string }) => s.path),
      ['quotes/spiders'],
    );
    let stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored['quotes/settings.py'], 'X = 1\n', 'read by the engine, which the file mode does not stop');
    assert.equal(stored['quotes/spiders/quotes.py'], SCRAPY_PROJECT[4].data, 'the locked folder’s files are kept');
    // Many files across many top-level folders go through one tar in the container, which cannot read the locked one.
    const many =
      'cd /workspace && for i in $(seq 1 40); do mkdir d$i && echo "v $i" > d$i/f.py; done && echo secret > d7/locked.py && chmod 000 d7/locked.py';
    assert.equal(dockerExec(c, many).code, 0);
    const second = await sync();
    assert.equal(second.added.length, 41);
    assert.deepEqual(second.deleted, []);
    stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored['d7/locked.py'], 'secret\n');
    assert.equal(stored['d40/f.py'], 'v 40\n');
    // The folder opened again: its files are compared as usual, nothing was lost in between.
    assert.equal(dockerExec(c, 'chmod 755 /workspace/quotes/spiders && rm /workspace/quotes/spiders/__init__.py').code, 0);
    const third = await sync();
    assert.deepEqual([third.deleted, third.skipped], [['quotes/spiders/__init__.py'], []]);
    await assertStorageClean(spider.id);
    // A workspace the user cannot read at all: nothing is saved, and the answer says why. Only the real
    // save is announced on /api/events; a dry run (the editor's change count) answers its caller alone.
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${alice.token}` } });
    const heard: any[] = [];
    ws.on('message', (d: Buffer) => heard.push(JSON.parse(d.toString())));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    assert.equal(dockerExec(c, 'chmod 000 /workspace').code, 0);
    try {
      for (const query of ['?dry_run=1', '']) {
        const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync${query}`);
        assert.equal(res.status, 409);
        assert.equal((await json(res)).error.code, 'workspace_unreadable');
      }
      await until('the failed save event', () => heard.find((m) => m.type === 'sync' && m.error));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(heard.filter((m) => m.type === 'sync').length, 1, 'the failed dry run was not announced');
      assert.equal(Object.keys(await storedFiles(alice.token, spider.id)).length, 45, 'nothing stored was touched');
    } finally {
      docker('exec', '-u', '1000:1000', '-w', '/', c, 'chmod', '755', '/workspace');
      ws.close();
    }
  });

  it('reads past large ignored folders inside the folders it archives', async () => {
    const spider = await spiderWithProject(alice.token, 'ignored-inside');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    // 20 changed files in one top-level folder (read through the engine's archive of it), next to an
    // installed node_modules holding a file over the per-file cap and a git clone's objects.
    const script = [
      'cd /workspace && mkdir -p web/node_modules/pkg web/vendor/repo/.git/objects',
      'head -c 30M /dev/zero > web/node_modules/pkg/huge.bin',
      'head -c 30M /dev/zero > web/vendor/repo/.git/objects/pack.pack',
      'for i in $(seq 1 20); do echo "page $i" > web/p$i.js; done',
    ].join(' && ');
    assert.equal(dockerExec(c, script).code, 0);
    const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.added.length, 20);
    assert.ok(body.added.every((p: string) => /^web\/p\d+\.js$/.test(p)));
    assert.equal((await storedFiles(alice.token, spider.id))['web/p20.js'], 'page 20\n');
  });

  it('keeps a stored file or folder that became something it cannot store, and never saves a name not in NFC form as its twin', async () => {
    const spider = await spiderWithProject(alice.token, 'skipped-kept');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    const nfc = 'pkg/caf\u00e9.py';
    const nfd = 'pkg/cafe\u0301.py';
    // A file swapped for a link, a folder swapped for a link, and in one folder 20 changed files
    // (read through the engine's archive of the folder) with a file and its NFD twin.
    const script = [
      'cd /workspace && rm scrapy.cfg && ln -s /etc/hostname scrapy.cfg',
      'rm -r quotes/spiders && ln -s /tmp quotes/spiders',
      'mkdir pkg && for i in $(seq 1 20); do echo "m$i" > pkg/m$i.py; done',
      `printf GOOD > "${nfc}" && printf OTHER > "${nfd}"`,
    ].join(' && ');
    assert.equal(dockerExec(c, script).code, 0);
    const save = async () => {
      const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      return body;
    };
    const first = await save();
    assert.deepEqual(first.deleted, [], 'nothing skipped is deleted');
    assert.ok(first.added.includes(nfc));
    assert.deepEqual(first.skipped.map((x: { path: string }) => x.path).sort(), [nfd, 'quotes/spiders', 'scrapy.cfg'].sort());
    let stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored[nfc], 'GOOD', 'the NFC file is saved with its own bytes');
    assert.equal(stored['scrapy.cfg'], SCRAPY_PROJECT[0].data);
    assert.equal(stored['quotes/spiders/quotes.py'], SCRAPY_PROJECT[4].data);

    // The same from a stopped container's archive.
    assert.equal(dockerExec(c, `printf GOOD-2 > "${nfc}" && printf OTHER-2 > "${nfd}"`).code, 0);
    docker('kill', c);
    await until('marked', async () => (await json(await svc.api(alice.token, 'GET', `/api/sessions/${session.session_id}`))).save_pending);
    const second = await save();
    assert.deepEqual([second.modified, second.deleted], [[nfc], []]);
    stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored[nfc], 'GOOD-2');
    assert.equal(stored['scrapy.cfg'], SCRAPY_PROJECT[0].data);
    assert.equal(stored['quotes/spiders/quotes.py'], SCRAPY_PROJECT[4].data);
    await assertStorageClean(spider.id);
  });

  it('saves a stopped container from its archive: a second hard link to a file is that file again', async () => {
    const spider = await spiderWithProject(alice.token, 'stopped-links');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    const script =
      'cd /workspace && echo "X = 2" > quotes/settings.py && ln quotes/spiders/quotes.py copy.py && ln scrapy.cfg quotes/scrapy.cfg';
    assert.equal(dockerExec(c, script).code, 0);
    docker('kill', c);
    await until('marked', async () => (await json(await svc.api(alice.token, 'GET', `/api/sessions/${session.session_id}`))).save_pending);
    // Kept and stopped: a save reads the engine's archive of /workspace, which holds each second link as a link.
    const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
    const result = await json(res);
    assert.equal(res.status, 200, JSON.stringify(result));
    assert.deepEqual(
      [result.added.sort(), result.modified, result.deleted, result.skipped],
      [['copy.py', 'quotes/scrapy.cfg'], ['quotes/settings.py'], [], []],
    );
    const stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored['copy.py'], SCRAPY_PROJECT[4].data);
    assert.equal(stored['quotes/scrapy.cfg'], SCRAPY_PROJECT[0].data);
    assert.equal(stored['quotes/settings.py'], 'X = 2\n');
    await assertStorageClean(spider.id);
  });

  it('a save of many new small files stores them in one pack', async () => {
    const spider = await spiderWithProject(alice.token, 'packed-save');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    assert.equal(
      dockerExec(c, 'mkdir -p /workspace/items && for i in $(seq 1 40); do echo "item $i" > /workspace/items/i$i.json; done').code,
      0,
    );
    const res = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    assert.equal(res.added.length, 40);
    assert.equal(fs.readdirSync(path.join(svc.dataDir, 'files', 'spiders', spider.id, 'packs')).length, 1);
    const stored = await storedFiles(alice.token, spider.id);
    assert.equal(stored['items/i7.json'], 'item 7\n');
    assert.equal(stored['items/i40.json'], 'item 40\n');
    await assertStorageClean(spider.id);
  });

  it('reports a file changed on the server since the pull as a conflict, keeps it, and overwrites on request', async () => {
    const spider = await spiderWithProject(alice.token, 'conflict');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    await svc.api(alice.token, 'PUT', `/api/spiders/${spider.id}/files/scrapy.cfg`, 'server edit\n');
    dockerExec(c, 'echo "container edit" > /workspace/scrapy.cfg && echo x >> /workspace/quotes/settings.py');
    const res = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    assert.deepEqual(
      res.conflicts.map((x: { path: string }) => x.path),
      ['scrapy.cfg'],
    );
    assert.deepEqual(res.modified, ['quotes/settings.py']);
    assert.equal((await storedFiles(alice.token, spider.id))['scrapy.cfg'], 'server edit\n');
    await assertStorageClean(spider.id); // the conflicting content was read, but is not kept
    const closing = await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}/code-session`);
    assert.equal(closing.status, 409, 'closing with a conflict keeps the session');
    assert.equal((await json(closing)).error.code, 'conflicts');
    const forced = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync?overwrite=1`));
    assert.deepEqual(forced.modified, ['scrapy.cfg']);
    assert.equal((await storedFiles(alice.token, spider.id))['scrapy.cfg'], 'container edit\n');
    await assertStorageClean(spider.id);
  });

  it('a new file where the server now has a folder, or a folder where it has a file, is a conflict: the rest is saved', async () => {
    const spider = await spiderWithProject(alice.token, 'file-folder-clash');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    // Since the pull, the server got a folder "lib", a file "notes" and a changed quotes/__init__.py (another session, or the API).
    const put = async (p: string, data: string) =>
      assert.equal((await svc.api(alice.token, 'PUT', `/api/spiders/${spider.id}/files/${p}`, data)).status, 200);
    await put('lib/util.py', 'server lib\n');
    await put('notes', 'server notes\n');
    await put('quotes/__init__.py', 'server init\n');
    const script = [
      'cd /workspace',
      'echo ws > lib',
      'mkdir notes && echo todo > notes/todo.txt',
      'rm quotes/__init__.py && mkdir quotes/__init__.py && echo x > quotes/__init__.py/x',
      'echo "X = 3" > quotes/settings.py',
      // A file becomes a folder of the same name, and a folder a file, in one save; and an empty file.
      'rm scrapy.cfg && mkdir scrapy.cfg && echo inner > scrapy.cfg/inner.cfg',
      'rm -r quotes/spiders && echo flat > quotes/spiders',
      ': > empty.txt',
    ].join(' && ');
    assert.equal(dockerExec(c, script).code, 0);
    const save = async (query = '') => {
      const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync${query}`);
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      return body;
    };
    const first = await save();
    assert.deepEqual(
      first.conflicts.map((x: { path: string }) => x.path),
      ['lib', 'notes/todo.txt', 'quotes/__init__.py', 'quotes/__init__.py/x'],
    );
    const reasons = Object.fromEntries(first.conflicts.map((x: { path: string; reason: string }) => [x.path, x.reason]));
    assert.match(reasons.lib, /the server has a folder of this name/);
    assert.match(reasons['notes/todo.txt'], /"notes" is a file on the server/);
    assert.match(reasons['quotes/__init__.py/x'], /a conflict of its own/);
    assert.deepEqual(first.added.sort(), ['empty.txt', 'quotes/spiders', 'scrapy.cfg/inner.cfg']);
    assert.deepEqual(first.modified, ['quotes/settings.py']);
    assert.deepEqual(first.deleted.sort(), ['quotes/spiders/__init__.py', 'quotes/spiders/quotes.py', 'scrapy.cfg']);
    // Overwrite resolves the conflict that makes a folder of quotes/__init__.py; no overwrite makes a file and a folder of one name.
    const forced = await save('?overwrite=1');
    assert.deepEqual(
      forced.conflicts.map((x: { path: string }) => x.path),
      ['lib', 'notes/todo.txt'],
    );
    assert.deepEqual([forced.added, forced.modified, forced.deleted], [['quotes/__init__.py/x'], [], ['quotes/__init__.py']]);
    const stored = await storedFiles(alice.token, spider.id);
    assert.deepEqual(
      [stored['lib/util.py'], stored.notes, stored['quotes/settings.py'], stored['quotes/spiders'], stored['empty.txt']],
      ['server lib\n', 'server notes\n', 'X = 3\n', 'flat\n', ''],
    );
    assert.deepEqual([stored['scrapy.cfg/inner.cfg'], stored['quotes/__init__.py/x']], ['inner\n', 'x\n']);
    await assertStorageClean(spider.id);
  });

  it('closing saves, then removes the container; the session shows as stopped', async () => {
    const spider = await spiderWithProject(alice.token, 'close');
    const session = await open(alice.token, spider.id);
    const c = containerName(svc, session.session_id);
    dockerExec(c, 'echo "# last edit" >> /workspace/quotes/spiders/quotes.py');
    const res = await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}/code-session`);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.session.status, 'stopped');
    assert.deepEqual(body.save.modified, ['quotes/spiders/quotes.py']);
    assert.match((await storedFiles(alice.token, spider.id))['quotes/spiders/quotes.py'], /# last edit/);
    assert.equal(docker('ps', '-q', '--filter', `name=${c}`).trim(), '', 'the container is stopped at once');
    await until('the container removed', () => docker('ps', '-aq', '--filter', `name=${c}`).trim() === '', 60_000, 500);
    const current = await json(await svc.api(alice.token, 'GET', `/api/spiders/${spider.id}/code-session`));
    assert.equal(current.status, 'stopped');
    const history = await json(await svc.api(alice.token, 'GET', `/api/sessions/${session.session_id}/history`));
    assert.deepEqual(
      history.statuses.map((e: { status: string }) => e.status),
      ['pending', 'starting', 'ready', 'syncing', 'ready', 'stopped'],
    );
    assert.ok(history.statuses.every((e: { reason: string; at: string }) => e.reason && !Number.isNaN(Date.parse(e.at))));
    assert.deepEqual(
      history.saves.map((r: { trigger: string; ok: boolean; modified: number }) => [r.trigger, r.ok, r.modified]),
      [['close', true, 1]],
    );
    assert.equal((await svc.api(bob.token, 'GET', `/api/sessions/${session.session_id}/history`)).status, 404);
    // A closed spider can be deleted; an open one cannot.
    const other = await spiderWithProject(alice.token, 'busy');
    await open(alice.token, other.id);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${other.id}`)).status, 409);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${other.id}/code-session?discard=1`)).status, 200);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${other.id}`)).status, 204);
  });

  it('keeps users out of each other sessions; an admin sees all', async () => {
    const spider = await spiderWithProject(alice.token, 'mine');
    const session = await open(alice.token, spider.id);
    for (const [method, path] of [
      ['POST', `/api/spiders/${spider.id}/code-session`],
      ['GET', `/api/spiders/${spider.id}/code-session`],
      ['DELETE', `/api/spiders/${spider.id}/code-session`],
      ['POST', `/api/spiders/${spider.id}/code-session/sync`],
      ['POST', `/api/spiders/${spider.id}/code-session/heartbeat`],
      ['GET', `/api/sessions/${session.session_id}`],
      ['POST', `/api/sessions/${session.session_id}/launch`],
      ['GET', `/api/sessions/${session.session_id}/fs/stat?path=scrapy.cfg`],
      ['GET', `/api/sessions/${session.session_id}/fs/file?path=scrapy.cfg`],
      ['PUT', `/api/sessions/${session.session_id}/fs/file?path=x.py&create=1`],
    ] as const) {
      const res = await svc.api(bob.token, method, path, method === 'PUT' ? 'x' : undefined);
      assert.equal(res.status, 404, `${method} ${path}`);
    }
    const bobs = await json<{ session_id: string }[]>(await svc.api(bob.token, 'GET', '/api/sessions'));
    assert.ok(!bobs.some((s) => s.session_id === session.session_id));
    const all = await json<{ session_id: string }[]>(await svc.api(svc.adminToken, 'GET', '/api/sessions'));
    assert.ok(all.some((s) => s.session_id === session.session_id));
    // An admin reaches it by its id; the spider's code-session routes are the admin's own session there,
    // so an admin's heartbeat, save or close never lands on the user's session.
    assert.equal((await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}`)).status, 200);
    for (const [method, path] of [
      ['GET', `/api/spiders/${spider.id}/code-session`],
      ['POST', `/api/spiders/${spider.id}/code-session/heartbeat`],
      ['POST', `/api/spiders/${spider.id}/code-session/sync`],
      ['DELETE', `/api/spiders/${spider.id}/code-session`],
    ] as const) {
      const res = await svc.api(svc.adminToken, method, path);
      assert.equal(res.status, 404, `admin ${method} ${path}`);
      assert.equal((await json(res)).error.code, 'no_session');
    }
    assert.equal((await json(await svc.api(alice.token, 'GET', `/api/sessions/${session.session_id}`))).status, 'ready');
    // As with its files and terminal, an admin's launch URL opens the user's browser IDE (that session only).
    const { url } = await json(await svc.api(svc.adminToken, 'POST', `/api/sessions/${session.session_id}/launch`));
    const opened = await fetch(url, { redirect: 'manual' });
    assert.equal(opened.status, 302);
    const cookie = browserCookies(opened);
    assert.equal((await fetch(`${svc.url}/code-server/${session.session_id}/healthz`, { headers: { cookie } })).status, 200);
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${session.session_id}/terminal`, {
      headers: { authorization: `Bearer ${bob.token}` },
    });
    const refused = await new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    assert.equal(refused, 404);
  });

  it("an admin's session in a user's spider: the owner's delete is refused naming it, and goes through once the admin closed it", async () => {
    const spider = await spiderWithProject(alice.token, 'admin-inside');
    await open(svc.adminToken, spider.id);
    await open(alice.token, spider.id);
    const refusal = async (expected: RegExp) => {
      const res = await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}`);
      const { error } = await json(res);
      assert.equal(res.status, 409);
      assert.equal(error.code, 'session_active');
      assert.match(error.message, expected);
    };
    await refusal(/^Another user \("admin"\) has a code session of this spider open or kept; .*, and yours too\.$/);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
    // Her spider's code-session routes are her own session: the admin's is not hers to close, nor lost by her delete.
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}/code-session`)).status, 200);
    await refusal(
      /^Another user \("admin"\) has a code session of this spider open or kept; the spider can be deleted once that session is closed\.$/,
    );
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/spiders/${spider.id}`)).status, 204);
  });

  it('DELETE /api/sessions/:id closes a session by its id: its user, or an admin for anyone (saved to its spider); no one else', async () => {
    const spider = await spiderWithProject(alice.token, 'close-by-id');
    const session = await open(alice.token, spider.id);
    dockerExec(containerName(svc, session.session_id), 'echo "BOT_NAME = \\"left\\"" > /workspace/quotes/settings.py');
    const url = `/api/sessions/${session.session_id}`;
    // Another user: as if it did not exist, and nothing happens to it.
    const stranger = await svc.api(bob.token, 'DELETE', url);
    assert.equal(stranger.status, 404);
    assert.equal((await json(stranger)).error.code, 'not_found');
    assert.equal((await json(await svc.api(alice.token, 'GET', url))).status, 'ready');
    // An admin closes it: saved first, into its user's spider.
    const closed = await json(await svc.api(svc.adminToken, 'DELETE', url));
    assert.equal(closed.session.status, 'stopped');
    assert.deepEqual(closed.save.modified, ['quotes/settings.py']);
    const stored = await svc.api(alice.token, 'GET', `/api/spiders/${spider.id}/files/quotes/settings.py`);
    assert.equal(await stored.text(), 'BOT_NAME = "left"\n');
    // Its user closes their own by id; closing again is a no-op answer.
    const mine = await open(alice.token, spider.id);
    assert.notEqual(mine.session_id, session.session_id);
    const discarded = await json(await svc.api(alice.token, 'DELETE', `/api/sessions/${mine.session_id}?discard=1`));
    assert.equal(discarded.session.status, 'stopped');
    assert.equal(discarded.save, null);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/sessions/${mine.session_id}`)).status, 200);
    assert.equal((await svc.api(alice.token, 'DELETE', '/api/sessions/not-a-session')).status, 404);
  });

  it('sync and heartbeat by session id act on that session only: a stopped one answers 409, never its spider’s newer session', async () => {
    const spider = await spiderWithProject(alice.token, 'by-id');
    const old = await open(alice.token, spider.id);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/sessions/${old.session_id}?discard=1`)).status, 200);
    // A window still on the old session; the spider has a newer one (opened from the browser, say) with an edit.
    const current = await open(alice.token, spider.id);
    dockerExec(containerName(svc, current.session_id), 'echo "BOT_NAME = \\"newer\\"" > /workspace/quotes/settings.py');
    const refused = async (path: string, code: string) => {
      const res = await svc.api(alice.token, 'POST', path);
      assert.equal(res.status, 409, path);
      assert.equal((await json(res)).error.code, code);
    };
    await refused(`/api/sessions/${old.session_id}/sync`, 'session_not_ready');
    await refused(`/api/sessions/${old.session_id}/heartbeat`, 'session_not_live');
    const after = await json(await svc.api(alice.token, 'GET', `/api/sessions/${current.session_id}`));
    assert.equal(after.last_active_at, current.last_active_at, 'the newer session was not kept alive by the old window');
    const stored = await svc.api(alice.token, 'GET', `/api/spiders/${spider.id}/files/quotes/settings.py`);
    assert.doesNotMatch(await stored.text(), /newer/, 'nor saved by it');
    // The session itself, by its id: a dry run, a save, a heartbeat; another user's id is not found.
    const plan = await json(await svc.api(alice.token, 'POST', `/api/sessions/${current.session_id}/sync?dry_run=1`));
    assert.deepEqual(plan.modified, ['quotes/settings.py']);
    assert.deepEqual((await json(await svc.api(alice.token, 'POST', `/api/sessions/${current.session_id}/sync`))).modified, [
      'quotes/settings.py',
    ]);
    await new Promise((r) => setTimeout(r, 20));
    const beat = await json(await svc.api(alice.token, 'POST', `/api/sessions/${current.session_id}/heartbeat`));
    assert.ok(Date.parse(beat.idle_deadline) > Date.parse(current.idle_deadline));
    for (const path of [`/api/sessions/${current.session_id}/sync`, `/api/sessions/${current.session_id}/heartbeat`])
      assert.equal((await svc.api(bob.token, 'POST', path)).status, 404, path);
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/sessions/${current.session_id}?discard=1`)).status, 200);
  });

  it('forgets the base of a session once it ended (a row per file it was given)', async () => {
    const spider = await spiderWithProject(alice.token, 'base-rows');
    const baseRows = async (id: string) =>
      Number(
        (
          (await svc.services.orm.em
            .fork()
            .getConnection()
            .execute('select count(*) as n from session_base_files where session_id = ?', [id])) as { n: number | string }[]
        )[0].n,
      );
    const session = await open(alice.token, spider.id);
    assert.ok((await baseRows(session.session_id)) > 0, 'a live session has its base');
    assert.equal((await svc.api(alice.token, 'DELETE', `/api/sessions/${session.session_id}`)).status, 200);
    assert.equal(await baseRows(session.session_id), 0, 'an ended session’s base is gone');
  });

  it('heartbeat moves the idle deadline', async () => {
    const spider = await spiderWithProject(alice.token, 'heartbeat');
    const session = await open(alice.token, spider.id);
    await new Promise((r) => setTimeout(r, 20));
    const beat = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`));
    assert.ok(Date.parse(beat.idle_deadline) > Date.parse(session.idle_deadline));
    assert.equal(beat.expires_at, session.expires_at, 'the hard deadline does not move');
  });

  it('serves the editor file operations inside /workspace with the path rules', async () => {
    const spider = await spiderWithProject(alice.token, 'fs');
    const { session_id: id } = await open(alice.token, spider.id);
    const fs = (method: string, path: string, body?: unknown) => svc.api(alice.token, method, `/api/sessions/${id}/fs${path}`, body);
    const stat = await json(await fs('GET', '/stat?path=scrapy.cfg'));
    assert.equal(stat.type, 'file');
    assert.equal(stat.size, SCRAPY_PROJECT[0].data.length);
    assert.ok(stat.mtime > 0);
    assert.equal((await json(await fs('GET', '/stat?path='))).type, 'directory');
    assert.deepEqual((await json(await fs('GET', '/dir?path=quotes'))).map((e: { name: string }) => e.name).sort(), [
      '__init__.py',
      'settings.py',
      'spiders',
    ]);
    assert.equal(await (await fs('GET', '/file?path=scrapy.cfg')).text(), SCRAPY_PROJECT[0].data);
    assert.equal((await fs('PUT', '/file?path=new.py', 'x')).status, 404, 'no create flag');
    assert.equal((await fs('PUT', '/file?path=new.py&create=1', 'print("new")\n')).status, 204);
    assert.equal((await fs('PUT', '/file?path=new.py&create=1', 'again')).status, 409, 'no overwrite flag');
    assert.equal((await fs('PUT', '/file?path=new.py&overwrite=1', 'print("v2")\n')).status, 204);
    assert.equal(dockerExec(containerName(svc, id), 'cat /workspace/new.py; stat -c %U /workspace/new.py').stdout, 'print("v2")\ncoder\n');
    assert.equal((await fs('POST', '/mkdir?path=out/items')).status, 204);
    const onFile = await fs('POST', '/mkdir?path=scrapy.cfg');
    assert.equal(onFile.status, 409, 'a file is in the way');
    assert.equal((await json(onFile)).error.code, 'file_exists');
    assert.equal((await fs('POST', '/rename', { from: 'new.py', to: 'out/items/new.py' })).status, 204);
    assert.equal((await fs('GET', '/stat?path=new.py')).status, 404);
    assert.equal((await fs('DELETE', '?path=out')).status, 409, 'a folder with contents needs recursive');
    assert.equal((await fs('DELETE', '?path=out&recursive=1')).status, 204);
    // An empty folder the user may not remove (its parent is read-only) is no_permission, not not_empty.
    assert.equal(dockerExec(containerName(svc, id), 'mkdir -p /workspace/locked/empty && chmod 555 /workspace/locked').code, 0);
    const locked = await fs('DELETE', '?path=locked/empty');
    assert.equal(locked.status, 403);
    assert.equal((await json(locked)).error.code, 'no_permission');
    dockerExec(containerName(svc, id), 'chmod 755 /workspace/locked && rm -r /workspace/locked');
    for (const bad of ['..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', 'a%00b', 'quotes%2F..%2F..%2Fetc']) {
      const res = await fs('GET', `/file?path=${bad}`);
      assert.equal(res.status, 400, bad);
      assert.equal((await json(res)).error.code, 'invalid_path');
    }
    assert.equal((await fs('POST', '/rename', { from: 'scrapy.cfg', to: '../escape' })).status, 400);
    // A symlink inside the workspace to a root-only file is read with the user's own rights.
    dockerExec(containerName(svc, id), 'ln -s /etc/shadow /workspace/shadow');
    assert.equal((await fs('GET', '/file?path=shadow')).status, 403);
    // A name in Unicode NFD form (as macOS writes "café"), beside its NFC twin: each listed, read and
    // written as it is on disk, never the one for the other.
    const nfd = 'cafe\u0301.py';
    const nfc = 'caf\u00e9.py';
    dockerExec(containerName(svc, id), `mkdir -p /workspace/out2 && printf nfd > "/workspace/out2/${nfd}"`);
    dockerExec(containerName(svc, id), `printf nfc > "/workspace/out2/${nfc}"`);
    const names = (await json(await fs('GET', '/dir?path=out2'))).map((e: { name: string }) => e.name).sort();
    assert.deepEqual(names, [nfd, nfc].sort());
    const at = (name: string) => `/file?path=${encodeURIComponent(`out2/${name}`)}`;
    assert.equal(await (await fs('GET', at(nfd))).text(), 'nfd');
    assert.equal(await (await fs('GET', at(nfc))).text(), 'nfc');
    assert.equal((await fs('PUT', `${at(nfd)}&overwrite=1`, 'nfd v2')).status, 204);
    assert.equal(
      dockerExec(containerName(svc, id), `cat "/workspace/out2/${nfd}"; echo; cat "/workspace/out2/${nfc}"`).stdout,
      'nfd v2\nnfc',
    );
  });

  it('says what a symbolic link leads to, lists and reads through links to folders, and saves no link', async () => {
    const spider = await spiderWithProject(alice.token, 'links');
    const { session_id: id } = await open(alice.token, spider.id);
    const c = containerName(svc, id);
    const fs = (path: string) => svc.api(alice.token, 'GET', `/api/sessions/${id}/fs${path}`);
    type Entry = { name: string; type: string; target?: string | null };
    const byName = (entries: Entry[]) => [...entries].sort((a, b) => a.name.localeCompare(b.name));
    // What a virtualenv holds (lib64 -> lib), a link to a folder of the project, to a file, to nothing,
    // a loop, a link to a pipe, to a folder outside /workspace, into a folder the user may not enter.
    const made = dockerExec(
      c,
      [
        'cd /workspace && mkdir -p .venv/lib/site && echo "x = 1" > .venv/lib/site/a.py && ln -s lib .venv/lib64',
        'ln -s quotes quotes-link && ln -s scrapy.cfg cfg-link && ln -s missing dangling && ln -s loop loop',
        'mkfifo pipe && ln -s pipe pipe-link && ln -s /etc etc-link && mkdir -p closed/in && ln -s closed/in closed-link && chmod 000 closed',
      ].join(' && '),
    );
    assert.equal(made.code, 0, made.stderr);
    const expected: Record<string, string | null> = {
      '.venv/lib64': 'directory',
      'quotes-link': 'directory',
      'cfg-link': 'file',
      dangling: null,
      loop: null,
      'pipe-link': 'other',
      'etc-link': 'directory',
      'closed-link': null,
    };
    for (const [path, target] of Object.entries(expected)) {
      const stat = await json(await fs(`/stat?path=${encodeURIComponent(path)}`));
      assert.deepEqual([stat.type, stat.target], ['symlink', target], path);
    }
    // What is not a link has no target.
    assert.equal('target' in (await json(await fs('/stat?path=scrapy.cfg'))), false);
    assert.equal('target' in (await json(await fs('/stat?path=.venv'))), false);
    const root = new Map((await json<Entry[]>(await fs('/dir?path='))).map((e) => [e.name, e]));
    for (const [path, target] of Object.entries(expected))
      if (!path.includes('/')) assert.deepEqual(root.get(path), { name: path, type: 'symlink', target }, path);
    assert.deepEqual(root.get('scrapy.cfg'), { name: 'scrapy.cfg', type: 'file' });
    assert.deepEqual(root.get('quotes'), { name: 'quotes', type: 'directory' });
    assert.deepEqual(byName(await json(await fs('/dir?path=.venv'))), [
      { name: 'lib', type: 'directory' },
      { name: 'lib64', type: 'symlink', target: 'directory' },
    ]);

    // A link to a folder lists as that folder, and what is below it is reached through it.
    assert.deepEqual(await json(await fs('/dir?path=.venv/lib64')), [{ name: 'site', type: 'directory' }]);
    assert.deepEqual(await json(await fs('/dir?path=.venv/lib64/site')), [{ name: 'a.py', type: 'file' }]);
    assert.equal((await json(await fs('/stat?path=.venv/lib64/site/a.py'))).type, 'file');
    assert.equal(await (await fs('/file?path=.venv/lib64/site/a.py')).text(), 'x = 1\n');
    assert.equal(await (await fs('/file?path=quotes-link/settings.py')).text(), SCRAPY_PROJECT[2].data);
    // Outside /workspace: the user's own container, listed with the user's own rights.
    assert.ok((await json<Entry[]>(await fs('/dir?path=etc-link'))).some((e) => e.name === 'hostname'));
    // Opening a link to a folder as a file says it is a folder; a link to a file reads as that file.
    const asFile = await fs('/file?path=.venv/lib64');
    assert.equal(asFile.status, 400);
    assert.equal((await json(asFile)).error.code, 'is_a_directory');
    assert.equal(await (await fs('/file?path=cfg-link')).text(), SCRAPY_PROJECT[0].data);
    for (const notDir of ['cfg-link', 'dangling']) {
      const res = await fs(`/dir?path=${notDir}`);
      assert.equal(res.status, 400, notDir);
      assert.equal((await json(res)).error.code, 'not_a_directory', notDir);
    }

    // The same without the helper process (the one-off exec every operation falls back to).
    const plain = new Workspace(svc.services.docker, c);
    for (const [path, target] of Object.entries(expected)) assert.deepEqual([(await plain.stat(path)).target], [target], path);
    assert.equal((await plain.stat('scrapy.cfg')).target, undefined);
    assert.deepEqual(
      (await plain.list('.venv/lib64')).map((e) => [e.path, e.type, e.target]),
      [['.venv/lib64/site', 'directory', undefined]],
    );
    const plainRoot = new Map((await plain.list('')).map((e) => [e.path, e.target]));
    for (const [path, target] of Object.entries(expected)) if (!path.includes('/')) assert.equal(plainRoot.get(path), target, path);

    // Saves skip links as before, whatever they lead to; the files a link leads to are saved where they are.
    dockerExec(c, 'chmod 755 /workspace/closed && rm -f /workspace/pipe /workspace/pipe-link');
    const saved = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    const skipped = new Map<string, string>(saved.skipped.map((s: { path: string; reason: string }) => [s.path, s.reason]));
    for (const link of ['quotes-link', 'cfg-link', 'dangling', 'loop', 'etc-link', 'closed-link'])
      assert.equal(skipped.get(link), 'symbolic links are not stored', link);
    assert.deepEqual(saved.added, []);
    assert.deepEqual(Object.keys(await storedFiles(alice.token, spider.id)).sort(), SCRAPY_PROJECT.map((f) => f.name).sort());
  });

  it('stats a link with the size and times of what it leads to, and says where that is; a dangling link keeps its own', async () => {
    const spider = await spiderWithProject(alice.token, 'link-stat');
    const { session_id: id } = await open(alice.token, spider.id);
    const c = containerName(svc, id);
    const stat = async (path: string) =>
      json(await svc.api(alice.token, 'GET', `/api/sessions/${id}/fs/stat?path=${encodeURIComponent(path)}`));
    // Each link's own times are set far in the past (touch -h): whatever differs from them is the target's.
    const made = dockerExec(
      c,
      [
        'cd /workspace && mkdir -p src && printf "hello world" > src/b.py && ln -s src/b.py a.py && ln -s a.py chain.py && ln -s src d',
        'ln -s missing dangling && ln -s /etc/hostname host && touch -h -d 2020-01-01 a.py chain.py d dangling host',
      ].join(' && '),
    );
    assert.equal(made.code, 0, made.stderr);
    const own = Date.UTC(2020, 0, 1);
    const b = await stat('src/b.py');
    const times = (s: { size: number; mtime: number; ctime: number }) => [s.size, s.mtime, s.ctime];
    for (const link of ['a.py', 'chain.py']) {
      const s = await stat(link);
      assert.deepEqual([s.type, s.target, s.real_path], ['symlink', 'file', 'src/b.py'], link);
      assert.deepEqual(times(s), times(b), link);
    }
    const d = await stat('d');
    assert.deepEqual([d.type, d.target, d.real_path, d.mtime], ['symlink', 'directory', 'src', (await stat('src')).mtime]);
    // Outside /workspace: the target's values, no path in the workspace to name.
    const host = await stat('host');
    assert.deepEqual([host.type, host.target, 'real_path' in host], ['symlink', 'file', false]);
    assert.notEqual(host.mtime, own);
    // Dangling: the link's own values ("missing" is 7 bytes), and nowhere it leads.
    assert.deepEqual(await stat('dangling'), { type: 'symlink', target: null, size: 7, mtime: own, ctime: (await stat('dangling')).ctime });
    // The target's content changes: the link's stat follows (an editor open on the link sees it).
    assert.equal(dockerExec(c, 'printf "hello, world!" > /workspace/src/b.py && touch -d 2030-01-01 /workspace/src/b.py').code, 0);
    assert.deepEqual([(await stat('a.py')).size, (await stat('a.py')).mtime], [13, Date.UTC(2030, 0, 1)]);

    // The same without the helper process (the one-off exec every operation falls back to).
    const plain = new Workspace(svc.services.docker, c);
    const viaExec = await plain.stat('chain.py');
    assert.deepEqual(
      [viaExec.type, viaExec.target, viaExec.size, viaExec.mtimeMs, viaExec.realPath],
      ['symlink', 'file', 13, Date.UTC(2030, 0, 1), 'src/b.py'],
    );
    const dangling = await plain.stat('dangling');
    assert.deepEqual([dangling.size, dangling.mtimeMs, dangling.realPath], [7, own, undefined]);
    assert.equal((await plain.stat('src/b.py')).realPath, undefined);

    // Saves still never follow a link: the links are skipped, the file is saved where it is.
    const saved = await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    const skipped = new Map<string, string>(saved.skipped.map((s: { path: string; reason: string }) => [s.path, s.reason]));
    for (const link of ['a.py', 'chain.py', 'd', 'dangling', 'host'])
      assert.equal(skipped.get(link), 'symbolic links are not stored', link);
    assert.deepEqual(saved.added, ['src/b.py']);
  });

  it('gives a terminal in the container over a WebSocket', async () => {
    const spider = await spiderWithProject(alice.token, 'terminal');
    const { session_id: id } = await open(alice.token, spider.id);
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${id}/terminal?cols=100&rows=30`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    let output = '';
    ws.on('message', (data: Buffer) => (output += data.toString()));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
    ws.send(Buffer.from('echo "$(whoami)@$(pwd) $((6*7))"; stty size\n'));
    await until('terminal output', () => output.includes('coder@/workspace 42') && /40 120/.test(output), 15_000);
    ws.send(Buffer.from('exit\n'));
    const code = await new Promise<number>((r) => ws.once('close', r));
    assert.equal(code, 1000);
  });

  it('pushes session changes and saves over /api/events', async () => {
    const spider = await spiderWithProject(alice.token, 'events');
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${alice.token}` } });
    const messages: any[] = [];
    ws.on('message', (d: Buffer) => messages.push(JSON.parse(d.toString())));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const session = await open(alice.token, spider.id);
    ws.send(JSON.stringify({ type: 'watch', session_id: session.session_id }));
    await json(await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
    const statuses = messages
      .filter((m) => m.type === 'session' && m.session.session_id === session.session_id)
      .map((m) => m.session.status);
    assert.deepEqual(statuses.slice(0, 3), ['starting', 'ready', 'syncing']);
    await until('sync event', () => messages.find((m) => m.type === 'sync' && m.session_id === session.session_id));
    dockerExec(containerName(svc, session.session_id), 'echo out > /workspace/items.json');
    const files = await until(
      'files event',
      () => messages.find((m) => m.type === 'files' && m.changes.some((c: { path: string }) => c.path === 'items.json')),
      15_000,
    );
    assert.equal(files.changes.find((c: { path: string }) => c.path === 'items.json').kind, 'created');
    assert.equal(messages[0].type, 'hello');
    // Another user hears nothing of it; a bad token is refused.
    const stranger = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${bob.token}` } });
    const heard: any[] = [];
    stranger.on('message', (d: Buffer) => heard.push(JSON.parse(d.toString())));
    await new Promise((r) => stranger.once('open', r));
    await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      heard.map((m) => m.type),
      ['hello'],
    );
    const bad = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(await new Promise((r) => bad.on('unexpected-response', (_q, res) => r(res.statusCode))), 401);
    const foreign = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, {
      headers: { authorization: `Bearer ${alice.token}`, origin: 'https://evil.example' },
    });
    assert.equal(await new Promise((r) => foreign.on('unexpected-response', (_q, res) => r(res.statusCode))), 403);
    // An unwatch sent before the watch has started (its lookup still under way) cancels it.
    ws.send(JSON.stringify({ type: 'unwatch', session_id: session.session_id }));
    await new Promise((r) => setTimeout(r, 300));
    const watches = (svc.services.watcher as unknown as { watches: Map<string, unknown> }).watches;
    assert.equal(watches.has(session.session_id), false, 'unwatched');
    ws.send(JSON.stringify({ type: 'watch', session_id: session.session_id }));
    ws.send(JSON.stringify({ type: 'unwatch', session_id: session.session_id }));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(watches.has(session.session_id), false, 'a watch unwatched before it started is not kept');
    ws.close();
    stranger.close();
  });
});
