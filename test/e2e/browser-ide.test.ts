import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { containerName, docker, dockerExec, removeContainers, requireDocker, until } from '../helpers/docker';
import { explorerNames, openFileInExplorer, openWorkbench, typeAndSave } from '../helpers/ide';
import { browserCookies, json, startTestService, type TestService } from '../helpers/service';
import { makeTar } from '../helpers/tar';

describe('the browser IDE through the service', () => {
  let svc: TestService;
  before(async () => {
    requireDocker();
    // A short reconnection grace, so that the test of a vanished tab waits seconds, not minutes.
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_RECONNECT_GRACE: '5s' } });
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  it('a launch URL opens the workbench with the spider files; an edit saved with Ctrl+S reaches the server by Save to Server', async () => {
    const user = await svc.newUser('erin');
    const spider = await json(await svc.api(user.token, 'POST', '/api/spiders', { name: 'books' }));
    await svc.api(
      user.token,
      'POST',
      `/api/spiders/${spider.id}/archive`,
      await makeTar([
        { name: 'scrapy.cfg', data: '[settings]\ndefault = books.settings\n' },
        { name: 'books/__init__.py', data: '' },
        { name: 'books/settings.py', data: 'BOT_NAME = "books"\n' },
        { name: 'books/spiders/__init__.py', data: '' },
        { name: 'books/spiders/books.py', data: 'import scrapy\n\n\nclass BooksSpider(scrapy.Spider):\n    name = "books"\n' },
      ]),
    );
    const session = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready');
    const launch = await svc.api(user.token, 'POST', `/api/sessions/${session.session_id}/launch`);
    assert.equal(launch.status, 200);
    const { url } = await json(launch);
    assert.ok(url.startsWith(`${svc.url}/code-server/${session.session_id}/`), url);
    assert.ok(!url.includes(user.token), 'no API token in the URL');

    const ide = await openWorkbench(url);
    try {
      assert.ok(!ide.page.url().includes('ticket'), 'the ticket is gone from the address bar');
      const names = await explorerNames(ide.page);
      assert.ok(names.includes('books') && names.includes('scrapy.cfg'), names.join(', '));
      await ide.screenshot('browser-ide-explorer');
      await openFileInExplorer(ide.page, 'books/settings.py');
      await typeAndSave(ide.page, '\nLOG_LEVEL = "INFO"');
      await ide.screenshot('browser-ide-edited');
      await until(
        'the edit on disk',
        () => dockerExec(containerName(svc, session.session_id), 'cat /workspace/books/settings.py').stdout.includes('LOG_LEVEL'),
        15_000,
      );
      const save = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
      assert.deepEqual(save.modified, ['books/settings.py']);
      const stored = await (await svc.api(user.token, 'GET', `/api/spiders/${spider.id}/files/books/settings.py`)).text();
      assert.match(stored, /BOT_NAME = "books"\n+LOG_LEVEL = "INFO"/);
      // code-server's own heartbeat (a browser is connected) counts as activity at the next sweep.
      const port = Number(docker('port', containerName(svc, session.session_id), '8080/tcp').trim().split(':').at(-1));
      const beat = await until(
        'a code-server heartbeat',
        async () => ((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { lastHeartbeat: number }).lastHeartbeat,
        30_000,
        250,
      );
      await svc.services.sessions.sweep();
      const after = await json(await svc.api(user.token, 'GET', `/api/sessions/${session.session_id}`));
      assert.ok(Date.parse(after.last_active_at) >= beat, `${after.last_active_at} is not after ${new Date(beat).toISOString()}`);
    } finally {
      await ide.close();
    }
  });

  it('a tab that vanishes without closing (a crash, a lost network) does not leave its extension host in the container', async () => {
    const user = await svc.newUser('hal');
    const spider = await json(await svc.api(user.token, 'POST', '/api/spiders', { name: 'crash' }));
    await svc.api(user.token, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'print("hi")\n');
    const session = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const container = containerName(svc, session.session_id);
    const hosts = () => Number(dockerExec(container, "ps -eo args | grep -c '[e]xtensionHost'").stdout.trim());
    const { url } = await json(await svc.api(user.token, 'POST', `/api/sessions/${session.session_id}/launch`));
    // An unknown switch that Chromium ignores marks this browser's process for pkill.
    const marker = `--crawlhub-test-${session.session_id}`;
    const ide = await openWorkbench(url, { args: [marker] });
    try {
      await until('the tab’s extension host', () => hosts() > 0, 30_000, 250);
      // The browser dies: its connections are cut without a goodbye, which code-server answers by
      // keeping the extension host for the tab to reconnect (3 h unless told otherwise).
      assert.equal(spawnSync('pkill', ['-KILL', '-f', `^\\S*chromium.*${marker}`]).status, 0, 'the browser was killed');
    } finally {
      // Also when a wait above failed: no Chromium outlives the test.
      await ide.close().catch(() => undefined);
    }
    await until('the extension host to go', () => hosts() === 0, 60_000, 500);
  });

  it("another user's launch ticket or cookie does not open the session", async () => {
    const owner = await svc.newUser('fay');
    const other = await svc.newUser('gus');
    const spider = await json(await svc.api(owner.token, 'POST', '/api/spiders', { name: 'secret' }));
    const session = await json(await svc.api(owner.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const entry = `${svc.url}/code-server/${session.session_id}/`;
    /** The cookies a redeemed launch URL sets in a fresh browser (the IDE cookie and the browser's user), as a Cookie header. */
    const redeem = async (launchUrl: string) => {
      const res = await fetch(launchUrl, { redirect: 'manual' });
      assert.equal(res.status, 302, 'a fresh ticket is traded for a cookie');
      const cookies = browserCookies(res);
      assert.match(cookies, /(^|; )crawlhub_ide=/, 'the redirect sets the IDE cookie');
      return cookies;
    };
    /** The status of her session's address asked with `cookie`. */
    const open = async (cookie: string) => {
      const res = await fetch(entry, { redirect: 'manual', headers: { cookie } });
      await res.arrayBuffer();
      return res.status;
    };

    assert.equal((await svc.api(other.token, 'POST', `/api/sessions/${session.session_id}/launch`)).status, 404);
    const plain = await fetch(entry, { redirect: 'manual' });
    assert.equal(plain.status, 403, 'no cookie, no entry');
    const { url } = await json(await svc.api(owner.token, 'POST', `/api/sessions/${session.session_id}/launch`));
    const ownCookie = await redeem(url);
    const reused = await fetch(url, { redirect: 'manual' });
    assert.equal(reused.status, 403, 'a ticket is single-use');
    assert.match(await reused.text(), /This link has expired/);
    // The owner's cookie opens the session: what follows is refused for who is asking, not for how.
    const admitted = await open(ownCookie);
    assert.ok(admitted < 400, `the owner's cookie is let through to code-server (got ${admitted})`);

    // The other user, with a session (a ticket and a cookie) of his own.
    const mine = await json(await svc.api(other.token, 'POST', '/api/spiders', { name: 'mine' }));
    const hisSession = await json(await svc.api(other.token, 'POST', `/api/spiders/${mine.id}/code-session?wait=1`));
    const launchHis = async () =>
      new URL((await json(await svc.api(other.token, 'POST', `/api/sessions/${hisSession.session_id}/launch`))).url);
    const hisCookie = await redeem((await launchHis()).toString());
    // His ticket, taken to her session's address, is refused and sets no cookie; it is spent too.
    const his = await launchHis();
    const stolen = await fetch(`${entry}?folder=/workspace&ticket=${his.searchParams.get('ticket')}`, { redirect: 'manual' });
    assert.equal(stolen.status, 403, "another user's ticket does not open the session");
    assert.deepEqual(stolen.headers.getSetCookie(), [], 'and sets no cookie');
    assert.equal((await fetch(his, { redirect: 'manual' })).status, 403, 'a ticket tried on another session is spent');
    // His cookie, sent to her session, is refused.
    assert.equal(await open(hisCookie), 403, "another user's cookie does not open the session");
    // So is a cookie for her very session that names him (as one minted for him would be).
    const forHim = await redeem(svc.services.launchUrl({ id: session.session_id, userId: other.id, tokenId: other.tokenId }));
    assert.equal(await open(forHim), 403, 'a cookie naming another user does not open the session');

    // Her second token (a laptop, say) opens the IDE; once it is revoked, what it opened does not.
    const em = svc.services.orm.em.fork();
    const user = await svc.services.users.findUser(em, 'fay');
    const laptop = await svc.services.users.createToken(em, user, 'laptop');
    const launched = await json(
      await fetch(`${svc.url}/api/sessions/${session.session_id}/launch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${laptop.token}` },
      }),
    );
    const laptopCookie = await redeem(launched.url);
    await svc.services.users.revokeToken(em, laptop.info.id);
    const revoked = await fetch(entry, { redirect: 'manual', headers: { cookie: laptopCookie } });
    assert.equal(revoked.status, 403, "a revoked token's IDE cookie does not open the session");
    assert.match(await revoked.text(), /has been revoked/);
    assert.ok((await open(ownCookie)) < 400, 'her other token’s IDE still opens');
  });
});
