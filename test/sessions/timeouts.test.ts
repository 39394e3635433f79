import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { containerName, docker, dockerExec, removeContainers, requireDocker, until } from '../helpers/docker';
import { json, startTestService, type TestService } from '../helpers/service';
import { Workspace } from '../../service/sessions/workspace';
import { holdCalls } from '../helpers/hold';

describe('idle and hard timeouts (short configured values)', () => {
  const services: TestService[] = [];
  const start = async (env: Record<string, string>) => {
    requireDocker();
    const svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '250ms', ...env } });
    services.push(svc);
    return svc;
  };
  after(async () => {
    for (const svc of services) {
      await svc.close();
      removeContainers(svc.config.instance);
    }
  });
  const open = async (svc: TestService, name: string) => {
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name }));
    await svc.api(svc.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'v1\n');
    const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready');
    return { spider, session, container: containerName(svc, session.session_id) };
  };
  /** Close Session while storage refuses writes: the save fails, so the container is kept (save_pending). */
  const closeWhileStorageIsDown = async (svc: TestService, spiderId: string) => {
    const blobs = svc.services.blobs;
    const realPut = blobs.put.bind(blobs);
    blobs.put = () => Promise.reject(new Error('storage is down'));
    try {
      const closing = await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spiderId}/code-session`);
      assert.equal(closing.status, 409);
      assert.equal((await json(closing)).error.code, 'save_failed');
    } finally {
      blobs.put = realPut;
    }
  };
  const status = async (svc: TestService, id: string) => json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${id}`));
  const file = async (svc: TestService, spiderId: string) =>
    (await svc.api(svc.adminToken, 'GET', `/api/spiders/${spiderId}/files/main.py`)).text();

  it('an idle session is warned, saved, then stopped; heartbeats keep it alive', async () => {
    const svc = await start({ CRAWLHUB_IDLE_TIMEOUT: '5s', CRAWLHUB_STOP_WARNING: '4s' });
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${svc.adminToken}` } });
    const messages: any[] = [];
    ws.on('message', (d: Buffer) => messages.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    const { spider, session, container } = await open(svc, 'idle');
    dockerExec(container, 'echo v2 > /workspace/main.py');
    // Heartbeats for a while: still ready after more than the idle timeout.
    const until6s = Date.now() + 7000;
    while (Date.now() < until6s) {
      await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
      await new Promise((r) => setTimeout(r, 700));
    }
    assert.equal((await status(svc, session.session_id)).status, 'ready');
    const stopped = await until(
      'idle stop',
      async () => {
        const s = await status(svc, session.session_id);
        return s.status === 'stopped' ? s : null;
      },
      30_000,
      200,
    );
    assert.match(stopped.status_reason, /idle/);
    assert.equal(await file(svc, spider.id), 'v2\n', 'saved before it stopped');
    const warning = messages.find((m) => m.type === 'warning' && m.session_id === session.session_id);
    assert.ok(warning, 'a "stops in N minutes" warning came first');
    assert.equal(warning.reason, 'idle');
    assert.ok(Date.parse(warning.stops_at) > 0);
    assert.ok(messages.some((m) => m.type === 'sync' && m.trigger === 'idle' && m.result?.modified?.includes('main.py')));
    await until('container gone', () => docker('ps', '-aq', '--filter', `name=${container}`).trim() === '', 60_000, 500);
    ws.close();
  });

  it("one user's container that holds the sweep up does not hold up another user's idle stop", async () => {
    const svc = await start({ CRAWLHUB_IDLE_TIMEOUT: '3s', CRAWLHUB_STOP_WARNING: '0' });
    const slow = await open(svc, 'held-up');
    const bob = await svc.newUser('bob');
    const spider = await json(await svc.api(bob.token, 'POST', '/api/spiders', { name: 'bobs' }));
    const session = await json(await svc.api(bob.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    // Every engine call about the first user's session waits (as a container that stalls its exec would make it).
    const sessions = svc.services.sessions as unknown as { pollBrowserActivity(em: unknown, s: { id: string }): Promise<void> };
    const poll = sessions.pollBrowserActivity.bind(sessions);
    let letGo!: () => void;
    const held = new Promise<void>((r) => (letGo = r));
    sessions.pollBrowserActivity = async (em, s) => {
      if (s.id === slow.session.session_id) await held;
      return poll(em, s);
    };
    try {
      const stopped = await until(
        "bob's idle stop",
        async () => ((await status(svc, session.session_id)).status === 'stopped' ? true : null),
        30_000,
        200,
      );
      assert.ok(stopped);
      assert.equal((await status(svc, slow.session.session_id)).status, 'ready', 'the held one is still being looked at');
    } finally {
      letGo();
      sessions.pollBrowserActivity = poll;
    }
  });

  it('a session older than the maximum age is saved and stopped even while active', async () => {
    const svc = await start({ CRAWLHUB_MAX_SESSION_AGE: '5s' });
    const { spider, session, container } = await open(svc, 'old');
    dockerExec(container, 'echo aged > /workspace/main.py');
    const stopped = await until(
      'age stop',
      async () => {
        await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
        const s = await status(svc, session.session_id);
        return s.status === 'stopped' ? s : null;
      },
      30_000,
      300,
    );
    assert.match(stopped.status_reason, /max_age/);
    assert.equal(await file(svc, spider.id), 'aged\n');
  });

  it('a failed save never destroys: the container is kept, the session marked for user and admin, and the save retried', async () => {
    const svc = await start({ CRAWLHUB_IDLE_TIMEOUT: '2s' });
    const user = await svc.newUser('dana');
    const spider = await json(await svc.api(user.token, 'POST', '/api/spiders', { name: 'fragile' }));
    await svc.api(user.token, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'v1\n');
    // Storage refuses writes for a while (a full disk, an outage).
    const blobs = svc.services.blobs;
    const realPut = blobs.put.bind(blobs);
    let broken = true;
    blobs.put = (...args: Parameters<typeof realPut>) => (broken ? Promise.reject(new Error('storage is down')) : realPut(...args));
    const session = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const container = containerName(svc, session.session_id);
    dockerExec(container, 'echo precious > /workspace/main.py');
    const failed = await until(
      'failed save',
      async () => {
        const s = await json(await svc.api(user.token, 'GET', `/api/sessions/${session.session_id}`));
        return s.save_pending ? s : null;
      },
      30_000,
      200,
    );
    assert.equal(failed.status, 'failed');
    assert.match(failed.status_reason, /save failed/);
    // What broke inside the server (here, storage) is logged, not shown: it may name paths and hosts.
    assert.match(failed.last_error, /internal error/);
    assert.doesNotMatch(`${failed.last_error} ${failed.status_reason}`, /storage is down/);
    // Stopped between retries (each retry starts it briefly to read its files).
    await until(
      'the kept container stopped',
      () => docker('inspect', '-f', '{{.State.Running}}', container).trim() === 'false',
      30_000,
      50,
    );
    const all = await json<any[]>(await svc.api(svc.adminToken, 'GET', '/api/sessions'));
    assert.ok(all.find((s) => s.session_id === session.session_id)?.save_pending, 'an admin sees it too');
    assert.equal(await (await svc.api(user.token, 'GET', `/api/spiders/${spider.id}/files/main.py`)).text(), 'v1\n');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(docker('ps', '-aq', '--filter', `name=${container}`).trim(), 'still kept while saves keep failing');
    broken = false;
    await until(
      'retried save',
      async () => (await json(await svc.api(user.token, 'GET', `/api/sessions/${session.session_id}`))).status === 'stopped',
      60_000,
      250,
    );
    assert.equal(await (await svc.api(user.token, 'GET', `/api/spiders/${spider.id}/files/main.py`)).text(), 'precious\n');
  });

  it('opening a spider whose last container was kept resumes that container, its idle time and age counted anew', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_MAX_SESSION_AGE: '2h' });
    const { spider, session, container } = await open(svc, 'resume');
    dockerExec(container, 'echo unsaved > /workspace/main.py');
    await closeWhileStorageIsDown(svc, spider.id);
    const resumed = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(resumed.session_id, session.session_id);
    assert.equal(resumed.status, 'ready');
    assert.equal(dockerExec(container, 'cat /workspace/main.py').stdout, 'unsaved\n', 'the unsaved work is still there');
    // A resume is a new start for its user: the idle clock and the age limit count from it.
    assert.equal(Date.parse(resumed.expires_at) - Date.parse(resumed.last_active_at), 2 * 3_600_000);
    assert.ok(Date.parse(resumed.expires_at) > Date.parse(session.expires_at));
  });

  it('opening while the retried save of a kept container runs waits for it, and opens a new session when it ended that one', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'race');
    dockerExec(container, 'echo unsaved > /workspace/main.py');
    await closeWhileStorageIsDown(svc, spider.id);
    // The session's lock held for a moment, so that the sweep's retry and then the open queue behind it in that order.
    const sessions = svc.services.sessions as unknown as {
      sessionLock: { run<T>(key: string, work: () => Promise<T>): Promise<T> };
      sweep(): Promise<void>;
    };
    let release!: () => void;
    const held = sessions.sessionLock.run(session.session_id, () => new Promise<void>((resolve) => (release = resolve)));
    const sweeping = sessions.sweep();
    await new Promise((r) => setTimeout(r, 500));
    const opening = svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
    await new Promise((r) => setTimeout(r, 500));
    release();
    await held;
    await sweeping;
    const opened = await json(await opening);
    assert.notEqual(opened.session_id, session.session_id, 'not the session the retry stopped');
    assert.equal(opened.status, 'ready');
    assert.equal((await status(svc, session.session_id)).status, 'stopped');
    assert.equal(await file(svc, spider.id), 'unsaved\n', 'the retry saved the kept work');
  });
  type Internals = {
    sessionLock: { run<T>(key: string, work: () => Promise<T>): Promise<T> };
    sweep(now?: number): Promise<void>;
    spawner: { waitHealthy(containerId: string, port: number): Promise<void> };
  };
  /** Holds the session's lock until released, so that what queues behind it runs in a known order. */
  const holdLock = (svc: TestService, sessionId: string) => {
    let release!: () => void;
    const held = (svc.services.sessions as unknown as Internals).sessionLock.run(
      sessionId,
      () => new Promise<void>((resolve) => (release = resolve)),
    );
    return async () => {
      release();
      await held;
    };
  };

  it('Close while a kept session is being reopened waits for the resume, then saves the kept work', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'close-resume');
    dockerExec(container, 'echo unsaved > /workspace/main.py');
    await closeWhileStorageIsDown(svc, spider.id);
    const release = holdLock(svc, session.session_id);
    const opening = svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session`);
    await new Promise((r) => setTimeout(r, 300));
    const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
    await new Promise((r) => setTimeout(r, 300));
    await release();
    assert.equal((await json(await opening)).session_id, session.session_id);
    const closed = await closing;
    assert.equal(closed.status, 200);
    assert.equal((await json(closed)).session.status, 'stopped');
    assert.equal(await file(svc, spider.id), 'unsaved\n', 'saved before it was removed');
  });

  it('the idle stop is decided on the session as it is when its turn comes: a heartbeat since then keeps it', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_IDLE_TIMEOUT: '2s', CRAWLHUB_STOP_WARNING: '0' });
    const { spider, session } = await open(svc, 'late-beat');
    await until('idle', async () => Date.now() > Date.parse((await status(svc, session.session_id)).idle_deadline) + 200, 10_000, 100);
    // The sweep found it idle; its turn waits behind the lock (a save, the sessions before it)…
    const release = holdLock(svc, session.session_id);
    const sweeping = (svc.services.sessions as unknown as Internals).sweep();
    await new Promise((r) => setTimeout(r, 300));
    // …while its user comes back.
    const beat = await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
    assert.equal(beat.status, 200);
    await release();
    await sweeping;
    assert.equal((await status(svc, session.session_id)).status, 'ready');
  });

  it('reopening a kept session whose container was removed behind the service marks it gone at once, not kept', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const spawner = (svc.services.sessions as unknown as { spawner: { restart(id: string): Promise<void> } } & Internals).spawner;
    const restart = spawner.restart.bind(spawner);
    const waitHealthy = spawner.waitHealthy.bind(spawner);
    try {
      // Removed between the resume's look at the container and its restart, or while it comes up again.
      for (const when of ['restart', 'health'] as const) {
        const { spider, session, container } = await open(svc, `gone-on-resume-${when}`);
        dockerExec(container, 'echo unsaved > /workspace/main.py');
        await closeWhileStorageIsDown(svc, spider.id);
        assert.equal((await status(svc, session.session_id)).save_pending, true);
        spawner.restart = async (id) => {
          if (when === 'restart') docker('rm', '-f', id);
          return restart(id);
        };
        spawner.waitHealthy = async (id, port) => {
          if (when === 'health') docker('rm', '-f', id);
          return waitHealthy(id, port);
        };
        const opened = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
        assert.equal(opened.session_id, session.session_id);
        assert.equal(opened.status, 'failed', when);
        // Marked gone by the resume, or first by the engine's "destroy" event: either way, nothing kept.
        assert.match(opened.status_reason, /could not resume: the kept container is gone|the container was removed outside the service/);
        assert.equal(opened.save_pending, false, `${when}: nothing is kept behind it`);
        assert.equal(docker('ps', '-aq', '--filter', `name=${container}`).trim(), '');
        spawner.restart = restart;
        spawner.waitHealthy = waitHealthy;
        // Nothing left in the way: the next open is a fresh session.
        const again = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
        assert.notEqual(again.session_id, session.session_id);
        assert.equal(again.status, 'ready');
        assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
      }
    } finally {
      spawner.restart = restart;
      spawner.waitHealthy = waitHealthy;
    }
  });

  it('a container that dies while its session starts fails the start and keeps nothing', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const spawner = (svc.services.sessions as unknown as Internals).spawner;
    const waitHealthy = spawner.waitHealthy.bind(spawner);
    let events = 0;
    spawner.waitHealthy = async (containerId, port) => {
      docker('kill', containerId);
      // The engine's "died" event reaches the service before the start notices.
      await new Promise((r) => setTimeout(r, 500));
      events++;
      return waitHealthy(containerId, port);
    };
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'dies' }));
    const failed = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    spawner.waitHealthy = waitHealthy;
    assert.equal(events, 1);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.save_pending, false, 'nothing to save from a start');
    assert.equal(docker('ps', '-aq', '--filter', `name=${containerName(svc, failed.session_id)}`).trim(), '');
    const again = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.notEqual(again.session_id, failed.session_id);
    assert.equal(again.status, 'ready');
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
  });
  it('a kept session whose retried save finds only conflicts is retried ever more rarely, not every sweep', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'conflicted');
    dockerExec(container, 'echo mine > /workspace/main.py');
    // The same file changed on the server meanwhile: saving finds a conflict.
    assert.equal((await svc.api(svc.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'theirs\n')).status, 200);
    const sessions = svc.services.sessions as unknown as Internals;
    // Past its maximum age: the stop's save finds the conflict and keeps the container.
    await sessions.sweep(Date.now() + 10 * 3_600_000);
    assert.equal((await status(svc, session.session_id)).save_pending, true);
    for (let i = 0; i < 3; i++) await sessions.sweep();
    const history = await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}/history`));
    const retries = history.saves.filter((r: { trigger: string }) => r.trigger === 'retry');
    assert.equal(retries.length, 1, 'one retry, then it waits');
    assert.equal(retries[0].conflicts, 1);
    const kept = await status(svc, session.session_id);
    assert.equal(kept.save_pending, true);
    assert.match(kept.status_reason, /conflict/);
    assert.equal(await file(svc, spider.id), 'theirs\n', 'nothing was overwritten');
  });
  it('a kept session whose retried save breaks a cap only its user can mend is retried ever more rarely too', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_MAX_FILE_SIZE: '1k' });
    const { spider, session, container } = await open(svc, 'over-cap');
    dockerExec(container, 'head -c 4096 /dev/zero > /workspace/big.bin');
    const sessions = svc.services.sessions as unknown as Internals;
    // Past its maximum age: the stop's save breaks the file size cap and keeps the container.
    await sessions.sweep(Date.now() + 10 * 3_600_000);
    assert.equal((await status(svc, session.session_id)).save_pending, true);
    for (let i = 0; i < 3; i++) await sessions.sweep();
    const history = await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}/history`));
    const retries = history.statuses.filter((e: { reason: string }) => e.reason.startsWith('save failed again'));
    assert.equal(retries.length, 1, 'one retry, then it waits');
    assert.match(retries[0].reason, /big\.bin is 4096 bytes/);
    assert.equal((await status(svc, session.session_id)).save_pending, true);
    assert.equal(await file(svc, spider.id), 'v1\n');
  });
  it('a start that comes after its session was closed starts nothing', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session } = await open(svc, 'late-start');
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
    const containers = () => docker('ps', '-aq', '--filter', `label=crawlhub.session=${session.session_id}`).trim();
    await until('its container removed', () => containers() === '', 30_000, 100);
    // What a close between the session's row and its start leaves for the start to find.
    await (svc.services.sessions as unknown as { startContainer(id: string): Promise<void> }).startContainer(session.session_id);
    assert.equal((await status(svc, session.session_id)).status, 'stopped');
    assert.equal(containers(), '', 'no container was made');
  });
  /** Saves wait at their start until released: `reached` resolves when the first one gets there. */
  const holdSaves = (svc: TestService) => holdCalls(svc.services.sync, 'save');
  it("while a session is saved to be stopped, the editor's file changes are refused instead of lost with the container", async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session } = await open(svc, 'closing');
    const { reached: started, release, restore } = holdSaves(svc);
    try {
      const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
      await started;
      const fs = (method: string, path: string, body?: string) =>
        svc.api(svc.adminToken, method, `/api/sessions/${session.session_id}/fs${path}`, body);
      const write = await fs('PUT', '/file?path=late.py&create=1', 'typed during the save\n');
      assert.equal(write.status, 409);
      assert.equal((await json(write)).error.code, 'session_stopping');
      assert.equal((await fs('POST', '/mkdir?path=later')).status, 409);
      assert.equal((await fs('GET', '/file?path=main.py')).status, 200, 'reading goes on');
      release();
      assert.equal((await closing).status, 200);
    } finally {
      restore();
    }
  });
  it('a file change under way when a close begins is in its save: the close waits for it', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session } = await open(svc, 'closing-late');
    const { reached: started, release, restore: restoreWrite } = holdCalls(Workspace.prototype, 'write');
    const sync = svc.services.sync;
    const save = sync.save.bind(sync);
    let saves = 0;
    sync.save = (...args: Parameters<typeof save>) => (saves++, save(...args));
    try {
      const put = svc.api(svc.adminToken, 'PUT', `/api/sessions/${session.session_id}/fs/file?path=late.py&create=1`, 'just in time\n');
      await started;
      const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(saves, 0, 'the close waits for the write under way before it saves');
      release();
      assert.equal((await put).status, 204);
      assert.equal((await closing).status, 200);
      const stored = await svc.api(svc.adminToken, 'GET', `/api/spiders/${spider.id}/files/late.py`);
      assert.equal(stored.status, 200, 'the answered write was saved');
      assert.equal(await stored.text(), 'just in time\n');
    } finally {
      restoreWrite();
      sync.save = save;
    }
  });
  it('a heartbeat while the idle stop saves calls the stop off: the session stays ready with its container and what it typed', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_IDLE_TIMEOUT: '2s', CRAWLHUB_STOP_WARNING: '0' });
    const { spider, session, container } = await open(svc, 'back-during-save');
    dockerExec(container, 'echo before > /workspace/main.py');
    await until('idle', async () => Date.now() > Date.parse((await status(svc, session.session_id)).idle_deadline) + 200, 10_000, 100);
    const { reached: started, release, restore } = holdSaves(svc);
    try {
      const sweeping = (svc.services.sessions as unknown as Internals).sweep();
      await started;
      // Its user comes back while the idle stop saves, and types in the browser IDE.
      const beat = await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
      assert.equal(beat.status, 200);
      dockerExec(container, 'echo typed during the save > /workspace/later.py');
      release();
      await sweeping;
    } finally {
      restore();
    }
    const after = await status(svc, session.session_id);
    assert.equal(after.status, 'ready', after.status_reason);
    assert.equal(await file(svc, spider.id), 'before\n', 'the idle save went through');
    assert.equal(dockerExec(container, 'cat /workspace/later.py').stdout, 'typed during the save\n', 'the container is still there');
    assert.equal(stoppedProcesses(container), 0, 'what the stop froze runs on');
  });
  it('opening a spider while its session is saved to be stopped waits for the stop, then opens a new session', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'reopen-during-close');
    dockerExec(container, 'echo closing > /workspace/main.py');
    const { reached: started, release, restore } = holdSaves(svc);
    try {
      const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
      await started;
      const opening = svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
      await new Promise((r) => setTimeout(r, 300));
      release();
      assert.equal((await closing).status, 200);
      const opened = await opening;
      const body = await json(opened);
      assert.notEqual(body.session_id, session.session_id, 'not the session that was being stopped');
      assert.equal(opened.status, 201);
      assert.equal(body.status, 'ready');
      assert.equal(
        dockerExec(containerName(svc, body.session_id), 'cat /workspace/main.py').stdout,
        'closing\n',
        'with what the close saved',
      );
    } finally {
      restore();
    }
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
  });
  it('a heartbeat for a session that stops while it is handled answers 409 and announces no stale "ready"', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session } = await open(svc, 'late-heartbeat');
    const sessions = svc.services.sessions as unknown as { current: (...args: unknown[]) => Promise<unknown> };
    const current = sessions.current.bind(sessions);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let found!: () => void;
    const read = new Promise<void>((r) => (found = r));
    // The heartbeat has read the session (ready) when the close comes in.
    sessions.current = async (...args: unknown[]) => {
      sessions.current = current;
      const row = await current(...args);
      found();
      await gate;
      return row;
    };
    const events = svc.services.events;
    const publish = events.publish.bind(events);
    const published: Parameters<typeof publish>[1][] = [];
    events.publish = (userId, event) => (published.push(event), publish(userId, event));
    try {
      const beating = svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/heartbeat`);
      await read;
      assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
      release();
      const beat = await beating;
      assert.equal(beat.status, 409);
      assert.equal((await json(beat)).error.code, 'session_not_live');
    } finally {
      release();
      sessions.current = current;
      events.publish = publish;
    }
    const last = published.flatMap((e) => (e.type === 'session' && e.session.session_id === session.session_id ? [e.session] : [])).at(-1);
    assert.equal(last?.status, 'stopped', 'the last word on the session is that it stopped');
    assert.equal((await status(svc, session.session_id)).status, 'stopped');
  });
  it('a spider deleted while a session of it is being opened: the open answers 404 and nothing is started', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'deleted-while-opening' }));
    await svc.api(svc.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'v1\n');
    // The open has found the spider and is about to make its session when the spider is deleted.
    const { reached: checking, release, restore } = holdCalls(svc.services.sessions.spawner, 'checkEngine');
    try {
      const opening = svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
      await checking;
      assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}`)).status, 204);
      release();
      const opened = await opening;
      assert.equal(opened.status, 404, JSON.stringify(await opened.clone().json()));
      assert.equal((await json(opened)).error.code, 'not_found');
    } finally {
      restore();
    }
    const rows = await json<{ spider_id: string }[]>(await svc.api(svc.adminToken, 'GET', '/api/sessions'));
    assert.equal(rows.filter((s) => s.spider_id === spider.id).length, 0, 'no session of the deleted spider');
    assert.equal(docker('ps', '-aq', '--filter', `label=crawlhub.spider=${spider.id}`).trim(), '');
  });
  it('a stop the sweep comes to after the service began to stop is left for its next start: nothing is saved or stopped past the stop', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_STOP_WARNING: '0' });
    const { session, container } = await open(svc, 'sweep-at-shutdown');
    const sessions = svc.services.sessions as unknown as Internals & { shutdown(): Promise<void> };
    // The sweep asks code-server after its browser when the stop (SIGTERM) begins.
    const { reached: asking, release, restore } = holdCalls(svc.services.sessions.spawner, 'browserHeartbeat');
    const sync = svc.services.sync;
    const save = sync.save.bind(sync);
    let saves = 0;
    sync.save = (...args: Parameters<typeof save>) => (saves++, save(...args));
    try {
      const sweeping = sessions.sweep(Date.now() + 10 * 3_600_000); // past its maximum age
      await asking;
      const stopping = sessions.shutdown();
      release();
      await stopping;
      await sweeping;
      assert.equal(saves, 0, 'no save began after the stop');
    } finally {
      restore();
      sync.save = save;
    }
    assert.equal((await status(svc, session.session_id)).status, 'ready', 'left as it was, for the next start');
    assert.equal(docker('inspect', '-f', '{{.State.Running}}', container).trim(), 'true');
  });
  /** A process of the container's user appending a counter to a file every 50 ms, as code-server saving or a crawl in a terminal writes. */
  const startTyping = (container: string) =>
    docker(
      'exec',
      '-d',
      '-u',
      '1000:1000',
      container,
      'sh',
      '-c',
      'i=0; while :; do i=$((i+1)); echo "$i" >> /workspace/typing.txt; sleep 0.05; done',
    );
  const typed = (container: string) => dockerExec(container, 'cat /workspace/typing.txt 2>/dev/null').stdout;
  const lines = (text: string) => text.split('\n').filter(Boolean).length;
  /** Processes of the container's user left stopped (state T). */
  const stoppedProcesses = (container: string) => Number(dockerExec(container, "ps -o stat= -u 1000 | grep -c '^T'").stdout.trim());
  for (const agent of ['alive', 'killed by its user', 'stopped by its user'] as const) {
    it(`a close freezes what its user runs from its save until the container goes: no write is lost (agent ${agent})`, async () => {
      const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
      const { spider, container } = await open(svc, `typing-at-close-${agent.split(' ')[0]}`);
      startTyping(container);
      await until('the loop writes', () => lines(typed(container)) >= 3, 10_000, 50);
      // The helper shell the save reads through, gone or not answering: the freeze falls back to a one-off exec.
      if (agent !== 'alive')
        assert.equal(dockerExec(container, `pkill ${agent === 'killed by its user' ? '' : '-STOP'} -f 'crawlhub-[a]gent'`).code, 0);
      const spawner = svc.services.sessions.spawner;
      const stopAndRemove = spawner.stopAndRemove.bind(spawner);
      let last: string | null = null;
      // The engine takes a moment to stop the container: what it holds at the very end is what counts.
      spawner.stopAndRemove = async (...args: Parameters<typeof stopAndRemove>) => {
        await new Promise((r) => setTimeout(r, 300));
        last = typed(container);
        return stopAndRemove(...args);
      };
      const { reached: started, release, restore } = holdSaves(svc);
      try {
        const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
        await started;
        await new Promise((r) => setTimeout(r, 300)); // the save waits while its user's loop would write on
        release();
        assert.equal((await closing).status, 200);
      } finally {
        restore();
        spawner.stopAndRemove = stopAndRemove;
      }
      assert.ok(last !== null && lines(last) >= 3, 'the container was read just before it went');
      const stored = await svc.api(svc.adminToken, 'GET', `/api/spiders/${spider.id}/files/typing.txt`);
      assert.equal(stored.status, 200);
      assert.equal(await stored.text(), last, 'the stored file ends with the last line written in the container');
    });
  }
  it('a close that does not go ahead (conflicts) lets what its user runs go on, and a job they had suspended stays so', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'typing-conflicts');
    dockerExec(container, 'echo mine > /workspace/main.py');
    assert.equal((await svc.api(svc.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'theirs\n')).status, 200);
    startTyping(container);
    // A job its user suspended (Ctrl-Z in a terminal): resuming it is theirs to do.
    docker('exec', '-d', '-u', '1000:1000', container, 'sleep', '1001');
    await until('the job runs', () => dockerExec(container, "pkill -STOP -f '^sleep 1001'").code === 0, 10_000, 50);
    await until('the loop writes', () => lines(typed(container)) >= 3, 10_000, 50);
    const closing = await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
    assert.equal(closing.status, 409);
    assert.equal((await json(closing)).error.code, 'conflicts');
    assert.equal((await status(svc, session.session_id)).status, 'ready');
    assert.equal(stoppedProcesses(container), 1, 'code-server and the loop run, the suspended job does not');
    assert.match(dockerExec(container, "ps -o stat= -C sleep -o args= | grep 'sleep 1001'").stdout, /^T/);
    const before = lines(typed(container));
    await until('the loop writes on', () => lines(typed(container)) > before + 2, 10_000, 50);
    assert.equal((await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}/fs/file?path=typing.txt`)).status, 200);
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`)).status, 200);
  });
  it('a named pipe its user leaves where a stop marks its freeze holds up neither the close nor its save', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session, container } = await open(svc, 'fifo-mark');
    // Opening a pipe to write (or read) it waits for the other end, which nothing ever opens.
    assert.equal(dockerExec(container, 'mkfifo /tmp/.crawlhub-frozen && echo "v2" > /workspace/main.py').code, 0);
    const closing = await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
    assert.equal(closing.status, 200, JSON.stringify(await closing.clone().json()));
    assert.equal((await status(svc, session.session_id)).status, 'stopped');
    assert.equal(await file(svc, spider.id), 'v2\n');
  });
  it("a restart's thaw of an adopted container reads no pipe and no mark its user filled: it answers, and what was frozen runs", async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { container } = await open(svc, 'fifo-mark-restart');
    const id = docker('inspect', '-f', '{{.Id}}', container).trim();
    // Without the agent: the one-off exec a thaw falls back to, whose time limit a blocked read waits out.
    const workspace = new Workspace(svc.services.docker, id);
    const frozen = () => Number(dockerExec(container, "ps -o stat= -u 1000 | grep -c '^T'").stdout.trim());
    assert.equal(dockerExec(container, 'mkfifo /tmp/.crawlhub-frozen').code, 0);
    await workspace.thaw({ ifFrozen: true });
    assert.equal(dockerExec(container, 'rm /tmp/.crawlhub-frozen').code, 0);
    // Frozen by a stop a restart cut short, with a mark its user wrote: one line as long as their disk allows.
    await workspace.freeze();
    assert.equal(dockerExec(container, 'head -c 100000000 /dev/zero | tr "\\0" x > /tmp/.crawlhub-frozen').code, 0);
    assert.ok(frozen() >= 2, 'code-server is frozen');
    await workspace.thaw({ ifFrozen: true });
    assert.equal(frozen(), 0, 'every process runs again');
  });
  it('no terminal shell escapes a stop: one starting as a close begins is waited for (and frozen), one asked for during its save is refused', async () => {
    const svc = await start({ CRAWLHUB_SWEEP_INTERVAL: '1h' });
    const { spider, session } = await open(svc, 'terminal-at-close');
    const terminal = () =>
      new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${session.session_id}/terminal`, {
        headers: { authorization: `Bearer ${svc.adminToken}` },
      });
    const { reached: starting, release, restore: restoreTty } = holdCalls(svc.services.docker, 'execTty');
    const sync = svc.services.sync;
    const save = sync.save.bind(sync);
    let saves = 0;
    let during: number | null = null;
    sync.save = async (...args: Parameters<typeof save>) => {
      saves++;
      const ws = terminal();
      during = await new Promise<number>((r) => {
        ws.once('unexpected-response', (_req, res) => r(res.statusCode ?? 0));
        ws.once('open', () => (ws.close(), r(101)));
      });
      return save(...args);
    };
    const early = terminal();
    try {
      await starting;
      const closing = svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(saves, 0, 'the close waits for the shell that is starting');
      release();
      assert.equal((await closing).status, 200);
      assert.equal(during, 409, 'a terminal asked for during the save is refused');
    } finally {
      restoreTty();
      early.terminate();
      sync.save = save;
    }
  });
});
