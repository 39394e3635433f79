import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { containerName, docker, dockerExec, removeContainers, requireDocker, until } from '../helpers/docker';
import { spawnService, type ServiceProcess } from '../helpers/process';
import { json, startTestService, type TestService } from '../helpers/service';
import { makeTar } from '../helpers/tar';
import { DockerError, DockerRuntime } from '../../service/runtime/docker';
import { User } from '../../service/auth/entities';
import { CodeSession } from '../../service/sessions/entities';
import { Spawner } from '../../service/sessions/spawner';
import { FREEZE_SCRIPT } from '../../service/sessions/agent';
import type { SpiderService } from '../../service/spiders/service';
import { SyncService } from '../../service/sync/save';

const instance = `rec${process.pid}`;

describe('sessions survive the service and notice their containers', () => {
  let dataDir: string;
  let proc: ServiceProcess | null = null;
  let token: string;
  const env = () => ({ CRAWLHUB_DATA_DIR: dataDir, CRAWLHUB_INSTANCE: instance, CRAWLHUB_SWEEP_INTERVAL: '1h' });
  const api = (method: string, p: string, body?: unknown) =>
    fetch(proc!.url + p, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });

  before(() => {
    requireDocker();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-recovery-'));
  });
  after(() => {
    proc?.child.kill('SIGKILL');
    removeContainers(instance);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('kill -9 of the service mid-session: after a restart the session is adopted and saves', async () => {
    proc = await spawnService(env());
    token = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const spider = await json(await api('POST', '/api/spiders', { name: 'survivor' }));
    await fetch(`${proc.url}/api/spiders/${spider.id}/archive`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: new Uint8Array(await makeTar([{ name: 'a.py', data: 'a = 1\n' }])),
    });
    const session = await json(await api('POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready');
    const c = `crawlhub-${instance}-${session.session_id}`;
    const containerId = docker('inspect', '-f', '{{.Id}}', c).trim();
    dockerExec(c, 'echo "a = 2" > /workspace/a.py && echo new > /workspace/b.py');
    proc.child.kill('SIGKILL');
    await proc.exited;
    assert.equal(docker('inspect', '-f', '{{.State.Running}}', c).trim(), 'true', 'the container outlives the service');
    // Its processes frozen, as a stop cut short between its freeze and the container's removal leaves them.
    assert.equal(dockerExec(c, FREEZE_SCRIPT).stdout, '0');

    proc = await spawnService(env());
    const adopted = await until('adoption', async () => {
      const s = await json(await api('GET', `/api/sessions/${session.session_id}`));
      return s.status_reason.startsWith('adopted') ? s : null;
    });
    assert.equal(adopted.status, 'ready');
    assert.equal(docker('inspect', '-f', '{{.Id}}', c).trim(), containerId, 'the same container');
    assert.equal(dockerExec(c, "ps -o stat= -u 1000 | grep -c '^T'").stdout.trim(), '0', 'its processes run again');
    const saved = await json(await api('POST', `/api/spiders/${spider.id}/code-session/sync`));
    assert.deepEqual([saved.added, saved.modified], [['b.py'], ['a.py']]);
    assert.equal(await (await api('GET', `/api/spiders/${spider.id}/files/a.py`)).text(), 'a = 2\n');
  });

  it('SIGTERM stops the service and leaves containers running for the next start', async () => {
    const spider = await json(await api('POST', '/api/spiders', { name: 'graceful' }));
    const session = await json(await api('POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    proc!.child.kill('SIGTERM');
    assert.equal(await proc!.exited, 0);
    assert.equal(docker('inspect', '-f', '{{.State.Running}}', `crawlhub-${instance}-${session.session_id}`).trim(), 'true');
    proc = await spawnService(env());
    await until('adoption', async () =>
      (await json(await api('GET', `/api/sessions/${session.session_id}`))).status_reason.startsWith('adopted'),
    );
  });

  it('kill -9 while a kept container is being resumed: after a restart it is still kept, and the retry saves it', async () => {
    const spider = await json(await api('POST', '/api/spiders', { name: 'resumed-crash' }));
    await fetch(`${proc!.url}/api/spiders/${spider.id}/files/a.py`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: 'a = 1\n',
    });
    const session = await json(await api('POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const c = `crawlhub-${instance}-${session.session_id}`;
    dockerExec(c, 'echo "a = 2  # unsaved" > /workspace/a.py');
    // The container stops behind the service's back: kept, its files to be saved.
    docker('kill', c);
    await until('kept', async () => (await json(await api('GET', `/api/sessions/${session.session_id}`))).save_pending);
    // Its user opens it again (the resume starts) and the service dies before the resume ends.
    const reopened = await json(await api('POST', `/api/spiders/${spider.id}/code-session`));
    assert.equal(reopened.session_id, session.session_id);
    assert.equal(reopened.status, 'starting');
    proc!.child.kill('SIGKILL');
    await proc!.exited;

    proc = await spawnService({ ...env(), CRAWLHUB_SWEEP_INTERVAL: '500ms' });
    const saved = await until('the retried save', async () => {
      const s = await json(await api('GET', `/api/sessions/${session.session_id}`));
      return s.status === 'stopped' ? s : null;
    });
    assert.match(saved.status_reason, /retried save/);
    assert.equal(await (await api('GET', `/api/spiders/${spider.id}/files/a.py`)).text(), 'a = 2  # unsaved\n', 'the kept work was saved');
    const history = await json(await api('GET', `/api/sessions/${session.session_id}/history`));
    assert.ok(history.statuses.some((e: { reason: string }) => /restarted while the kept container was resuming/.test(e.reason)));
    // Back to the usual sweep for the tests after this one.
    proc.child.kill('SIGTERM');
    await proc.exited;
    proc = await spawnService(env());
  });

  it('at start, a container without a live session is saved and removed; a live session without its container is marked', async () => {
    const spider = await json(await api('POST', '/api/spiders', { name: 'orphan' }));
    const s1 = await json(await api('POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const c1 = `crawlhub-${instance}-${s1.session_id}`;
    dockerExec(c1, 'echo orphaned > /workspace/orphan.py');
    const other = await json(await api('POST', '/api/spiders', { name: 'vanishing' }));
    const s2 = await json(await api('POST', `/api/spiders/${other.id}/code-session?wait=1`));
    const thrown = await json(await api('POST', '/api/spiders', { name: 'discarded' }));
    const s3 = await json(await api('POST', `/api/spiders/${thrown.id}/code-session?wait=1`));
    const c3 = `crawlhub-${instance}-${s3.session_id}`;
    dockerExec(c3, 'echo unwanted > /workspace/draft.py');
    proc!.child.kill('SIGKILL');
    await proc!.exited;
    // Behind the service's back: the first session's row says stopped, the second's container is gone,
    // and the third was closed with discard=1 by a service that died after stopping its container,
    // before removing it.
    const { initOrm } = await import('../../service/db/orm');
    const orm = await initOrm(`sqlite:${path.join(dataDir, 'crawlhub.db')}`);
    const sql = `update code_sessions set status = 'stopped', save_pending = false where id in (?, ?)`;
    await orm.em.fork().getConnection().execute(sql, [s1.session_id, s3.session_id]);
    await orm.close();
    docker('rm', '-f', `crawlhub-${instance}-${s2.session_id}`);
    docker('stop', '-t', '1', c3);

    proc = await spawnService(env());
    await until('orphan removed', () => docker('ps', '-aq', '--filter', `name=${c1}`).trim() === '', 60_000, 500);
    assert.equal(await (await api('GET', `/api/spiders/${spider.id}/files/orphan.py`)).text(), 'orphaned\n', 'the orphan was saved first');
    await until('discarded container removed', () => docker('ps', '-aq', '--filter', `name=${c3}`).trim() === '', 60_000, 500);
    assert.equal((await api('GET', `/api/spiders/${thrown.id}/files/draft.py`)).status, 404, 'a discarded session stays discarded');
    const gone = await json(await api('GET', `/api/sessions/${s2.session_id}`));
    assert.equal(gone.status, 'failed');
    assert.match(gone.status_reason, /gone/);
  });
});

describe('containers that stop behind the service', () => {
  let svc: TestService;
  before(async () => {
    requireDocker();
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '300ms' } });
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  it('when the engine event stream ends, the sweep subscribes again and catches up on what it missed', async () => {
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'missed-event' }));
    const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready');
    type Watch = (handlers: unknown) => Promise<boolean>;
    const spawner = (svc.services.sessions as unknown as { spawner: { watch: Watch; eventStream: { destroy(): void } | null } }).spawner;
    const watch = spawner.watch.bind(spawner);
    let subscriptions = 0;
    let allow!: () => void;
    const gate = new Promise<void>((r) => (allow = r));
    spawner.watch = async (handlers) => {
      await gate;
      subscriptions++;
      return watch(handlers);
    };
    try {
      // The engine restarts, say: its stream ends, and the container dies while nobody listens.
      spawner.eventStream!.destroy();
      docker('kill', containerName(svc, session.session_id));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal((await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}`))).status, 'ready');
      allow();
      // Marked as stopped and kept for its files (which the retry then saves).
      await until('the missed death noticed', async () => {
        const history = await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}/history`));
        return history.statuses.some((e: { reason: string }) => /stopped unexpectedly.*kept/.test(e.reason));
      });
      assert.ok(subscriptions >= 1);
    } finally {
      allow();
      spawner.watch = watch;
    }
  });

  it('a killed container is noticed and marked, the last save is intact, and its files are saved by the retry', async () => {
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'killed' }));
    await svc.api(svc.adminToken, 'PUT', `/api/spiders/${spider.id}/files/k.py`, 'v1\n');
    const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    const c = containerName(svc, session.session_id);
    dockerExec(c, 'echo v2 > /workspace/k.py');
    await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
    dockerExec(c, 'echo v3 > /workspace/k.py');
    docker('kill', c);
    const marked = await until('marked', async () => {
      const s = await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}`));
      return s.status !== 'ready' && s.status !== 'syncing' ? s : null;
    });
    assert.equal(marked.status, 'failed');
    assert.match(marked.status_reason, /stopped unexpectedly/);
    assert.equal(
      await (await svc.api(svc.adminToken, 'GET', `/api/spiders/${spider.id}/files/k.py`)).text(),
      'v2\n',
      'the last save is intact',
    );
    // The sweeper retries: starts the kept container, saves it, then removes it.
    await until(
      'retried save',
      async () => (await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}`))).status === 'stopped',
      60_000,
      300,
    );
    assert.equal(await (await svc.api(svc.adminToken, 'GET', `/api/spiders/${spider.id}/files/k.py`)).text(), 'v3\n');
  });

  it('a process killed for memory is reported to its user and the session goes on; a container killed that way says so', async () => {
    const user = await svc.newUser('mem');
    const spider = await json(await svc.api(user.token, 'POST', '/api/spiders', { name: 'hungry' }));
    const events = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${user.token}` } });
    const heard: any[] = [];
    events.on('message', (d: Buffer) => heard.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => events.once('open', resolve).once('error', reject));
    try {
      const session = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
      const c = containerName(svc, session.session_id);
      // A crawl that holds twice the session's memory (1 GiB, no swap): the kernel kills it.
      const crawl = dockerExec(c, 'python3 -c "x = bytearray(2 << 30)"; echo "exit=$?"');
      assert.match(crawl.stdout, /exit=137/);
      const oom = await until('the oom event', () => heard.find((m) => m.type === 'oom'));
      assert.deepEqual(oom, { type: 'oom', session_id: session.session_id, spider_id: spider.id, memory_limit: 1024 ** 3 });
      const alive = await json(await svc.api(user.token, 'GET', `/api/sessions/${session.session_id}`));
      assert.equal(alive.status, 'ready');

      // Now code-server is what the kernel picks (its processes may raise their own oom_score_adj): the container dies.
      dockerExec(
        c,
        'for p in $(pgrep -f "[o]ut/node/entry"); do echo 1000 > /proc/$p/oom_score_adj; done; python3 -c "x = bytearray(2 << 30)"',
      );
      const marked = await until('marked', async () => {
        const v = await json(await svc.api(user.token, 'GET', `/api/sessions/${session.session_id}`));
        return v.status === 'failed' ? v : null;
      });
      assert.match(marked.status_reason, /ran out of memory \(1 GB\)/);
      assert.equal(marked.save_pending, true);
    } finally {
      events.close();
    }
  });

  it('a container removed behind its back is marked failed and its port is free again', async () => {
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'removed' }));
    const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    docker('rm', '-f', containerName(svc, session.session_id));
    const s = await until('marked', async () => {
      const v = await json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${session.session_id}`));
      return v.status === 'failed' && !v.save_pending ? v : null;
    });
    assert.match(s.status_reason, /removed|gone/);
    assert.equal(s.save_pending, false);
    const reopened = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(reopened.status, 'ready');
    assert.notEqual(reopened.session_id, session.session_id);
  });
});

/**
 * Services in this process on one data folder and instance, each started again after the one before
 * (a restart); all closed, their containers removed and the folder deleted after the suite.
 */
function restarts(instance: string): () => Promise<TestService> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `crawlhub-${instance}-`));
  const env = { CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_INSTANCE: `${instance}${process.pid}` };
  const services: TestService[] = [];
  after(async () => {
    for (const svc of services) await svc.close();
    removeContainers(env.CRAWLHUB_INSTANCE);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return async () => {
    const svc = await startTestService({ dataDir, env });
    services.push(svc);
    return svc;
  };
}

describe('the start-up reconcile, session by session', () => {
  const start = restarts('rcn');

  it('a session the engine fails on holds up neither the others nor the sweep, and is tried again by it', async () => {
    requireDocker();
    const first = await start();
    const open = async (name: string) => {
      const spider = await json(await first.api(first.adminToken, 'POST', '/api/spiders', { name }));
      await first.api(first.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'v1\n');
      const session = await json(await first.api(first.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
      assert.equal(session.status, 'ready');
      const container = containerName(first, session.session_id);
      return { spider, id: session.session_id as string, container, containerId: docker('inspect', '-f', '{{.Id}}', container).trim() };
    };
    const interrupted = await open('interrupted-start'); // its container cannot be removed for a while
    const stopped = await open('stopped-while-down');
    const unreachable = await open('not-adopted-at-first'); // the engine fails on it once
    const orphan = await open('orphaned'); // its row ended, its container did not: it cannot be removed for a while
    dockerExec(stopped.container, 'echo unsaved > /workspace/main.py');
    dockerExec(orphan.container, 'echo left behind > /workspace/main.py');
    // What a crash in the middle of a start leaves, and one between a row's end and its container's.
    await first.services.orm.em.fork().nativeUpdate(CodeSession, { id: interrupted.id }, { status: 'starting' });
    await first.services.orm.em.fork().nativeUpdate(CodeSession, { id: orphan.id }, { status: 'stopped' });
    await first.close();
    docker('stop', '-t', '1', stopped.container);

    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, then called with its own `this`
    const remove = DockerRuntime.prototype.remove;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- the same
    const networkAddress = Spawner.prototype.networkAddress;
    let engineFails = true;
    DockerRuntime.prototype.remove = function (this: DockerRuntime, id: string) {
      return engineFails && (id === interrupted.containerId || id === orphan.containerId)
        ? Promise.reject(new DockerError('remove failed: driver failed to remove root filesystem: device or resource busy'))
        : remove.call(this, id);
    };
    Spawner.prototype.networkAddress = function (this: Spawner, id: string) {
      return engineFails && id === unreachable.containerId
        ? Promise.reject(new Error('the engine hung up'))
        : networkAddress.call(this, id);
    };
    try {
      const svc = await start();
      const status = async (id: string) => json(await svc.api(svc.adminToken, 'GET', `/api/sessions/${id}`));
      const kept = await status(stopped.id);
      assert.equal(kept.status, 'failed', 'handled although the engine failed on another session');
      assert.equal(kept.save_pending, true);
      assert.equal(svc.services.sessions.find(unreachable.id), null, 'not adopted yet');
      assert.notEqual(docker('ps', '-aq', '--filter', `name=${orphan.container}`).trim(), '', 'the orphan is still there');
      engineFails = false;
      await (svc.services.sessions as unknown as { sweep(): Promise<void> }).sweep();
      assert.equal((await status(stopped.id)).status, 'stopped', 'the sweep ran: the kept container was saved and removed');
      assert.equal(await (await svc.api(svc.adminToken, 'GET', `/api/spiders/${stopped.spider.id}/files/main.py`)).text(), 'unsaved\n');
      assert.equal(svc.services.sessions.find(unreachable.id)?.status, 'ready', 'adopted by the sweep');
      const failed = await status(interrupted.id);
      assert.equal(failed.status, 'failed');
      assert.match(failed.status_reason, /while the session was starting/);
      await until(
        'the interrupted start’s container removed',
        () => docker('ps', '-aq', '--filter', `name=${interrupted.container}`).trim() === '',
      );
      await until('the orphan removed', () => docker('ps', '-aq', '--filter', `name=${orphan.container}`).trim() === '');
      assert.equal(await (await svc.api(svc.adminToken, 'GET', `/api/spiders/${orphan.spider.id}/files/main.py`)).text(), 'left behind\n');
    } finally {
      DockerRuntime.prototype.remove = remove;
      Spawner.prototype.networkAddress = networkAddress;
    }
  });
});

describe('an orphaned container whose spider is deleted while the start-up reconcile saves it', () => {
  const start = restarts('odl');

  it('stores nothing for the deleted spider, and the container (whose files have nowhere to go) is removed', async () => {
    requireDocker();
    const first = await start();
    const spider = await json(await first.api(first.adminToken, 'POST', '/api/spiders', { name: 'deleted-under-orphan' }));
    await first.api(first.adminToken, 'PUT', `/api/spiders/${spider.id}/files/main.py`, 'v1\n');
    const session = await json(await first.api(first.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready');
    const container = containerName(first, session.session_id);
    dockerExec(container, 'echo left behind > /workspace/main.py && echo new > /workspace/new.py');
    // Its row ended, its container did not (a crash between the two): an orphan at the next start.
    await first.services.orm.em.fork().nativeUpdate(CodeSession, { id: session.session_id }, { status: 'stopped' });
    await first.close();

    // The reconcile has found the spider; its owner's DELETE completes before the save takes the spider's lock.
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, then called with its own `this`
    const save = SyncService.prototype.save;
    let deleted = false;
    SyncService.prototype.save = async function (this: SyncService, em, s, workspace, opts) {
      if (opts.trigger === 'orphan' && s.spiderId === spider.id && !deleted) {
        const spiders = (this as unknown as { spiders: SpiderService }).spiders;
        await spiders.remove(em.fork(), await em.fork().findOneOrFail(User, { name: 'admin' }), spider.id);
        deleted = true;
      }
      return save.call(this, em, s, workspace, opts);
    };
    try {
      const svc = await start();
      assert.equal(deleted, true, 'the deletion came between the reconcile’s look at the spider and its save');
      assert.equal((await svc.api(svc.adminToken, 'GET', `/api/spiders/${spider.id}`)).status, 404);
      const rows = await svc.services.orm.em
        .fork()
        .getConnection()
        .execute('select count(*) as n from spider_files where spider_id = ?', [spider.id]);
      assert.equal(Number((rows as { n: number | string }[])[0].n), 0, 'no file row for a spider that is gone');
      assert.equal(fs.existsSync(path.join(svc.dataDir, 'files', 'spiders', spider.id)), false, 'nothing in storage');
      await until('the orphan removed', () => docker('ps', '-aq', '--filter', `name=${container}`).trim() === '', 60_000, 500);
      assert.match(svc.logs(), /the spider of an orphaned container was deleted/);
    } finally {
      SyncService.prototype.save = save;
    }
  });
});
