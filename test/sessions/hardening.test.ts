import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import { after, before, describe, it } from 'node:test';
import { json, startTestService, type TestService } from '../helpers/service';
import { containerName, docker, dockerExec, removeContainers, requireDocker, until } from '../helpers/docker';
import { makeTar } from '../helpers/tar';

describe('session containers are hardened and limited', () => {
  let svc: TestService;
  before(async () => {
    requireDocker();
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  const openFor = async (s: TestService, name: string, token = s.adminToken) => {
    const spider = await json(await s.api(token, 'POST', '/api/spiders', { name }));
    await s.api(token, 'POST', `/api/spiders/${spider.id}/archive`, await makeTar([{ name: 'main.py', data: 'print(1)\n' }]));
    const res = await s.api(token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
    return { spider, res, session: await json(res) };
  };

  it('has the hardening fields on docker inspect', async () => {
    const { session } = await openFor(svc, 'inspect');
    assert.equal(session.status, 'ready');
    const [info] = JSON.parse(docker('inspect', containerName(svc, session.session_id)));
    const host = info.HostConfig;
    assert.equal(info.Config.User, '1000:1000');
    assert.equal(host.Privileged, false);
    assert.deepEqual(host.CapDrop, ['ALL']);
    assert.ok(!host.CapAdd || host.CapAdd.length === 0);
    assert.ok(host.SecurityOpt.includes('no-new-privileges:true'));
    assert.equal(host.Memory, 1024 ** 3);
    assert.equal(host.MemorySwap, 1024 ** 3, 'no swap');
    assert.equal(host.NanoCpus, 1e9);
    assert.equal(host.PidsLimit, 1024);
    assert.equal(host.Init, true);
    assert.ok(Number(host.StorageOpt.size) > 500 * 1024 ** 2, 'writable storage is limited');
    assert.deepEqual(host.Binds ?? [], [], 'no host bind mounts');
    assert.deepEqual(info.Mounts, [], 'no mounts at all');
    const binding = host.PortBindings['8080/tcp'][0];
    assert.equal(binding.HostIp, '127.0.0.1');
    assert.ok(Number(binding.HostPort) >= 10000 && Number(binding.HostPort) <= 10100);
    assert.equal(host.NetworkMode, 'crawlhub-sessions');
    const [net] = JSON.parse(docker('network', 'inspect', 'crawlhub-sessions'));
    assert.equal(net.Options['com.docker.network.bridge.enable_icc'], 'false');
    for (const [k, v] of Object.entries({
      'crawlhub.app': 'crawlhub-code',
      'crawlhub.session': session.session_id,
      'crawlhub.spider': session.spider_id,
      'crawlhub.user': session.user_id,
      'crawlhub.instance': svc.config.instance,
    })) {
      assert.equal(info.Config.Labels[k], v, k);
    }
    assert.equal(info.Name, `/crawlhub-${svc.config.instance}-${session.session_id}`, 'a deterministic name');
    const inside = dockerExec(
      containerName(svc, session.session_id),
      'id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status',
    );
    assert.match(inside.stdout, /^1000\nCapEff:\s+0000000000000000\nNoNewPrivs:\s+1\n$/);
  });

  it('a write past 500 MB in /workspace fails inside the container', async () => {
    const { session } = await openFor(svc, 'quota');
    const c = containerName(svc, session.session_id);
    const ok = dockerExec(c, 'dd if=/dev/zero of=/workspace/fits.bin bs=1M count=300 2>&1; echo "exit=$?"');
    assert.match(ok.stdout, /exit=0/, ok.stdout);
    const over = dockerExec(c, 'dd if=/dev/zero of=/workspace/over.bin bs=1M count=400 2>&1; echo "exit=$?"');
    assert.match(over.stdout, /Disk quota exceeded|No space left/, over.stdout);
    assert.doesNotMatch(over.stdout, /exit=0/);
    const used = Number(dockerExec(c, 'du -sm /workspace | cut -f1').stdout.trim());
    assert.ok(used <= 570, `at most about 500 MB were written (${used} MB)`);
  });

  it('containers of different sessions cannot reach each other', async () => {
    const a = await openFor(svc, 'net-a');
    const b = await openFor(svc, 'net-b');
    const ipOf = (id: string) =>
      docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', containerName(svc, id)).trim();
    const probe = (from: string, ip: string) =>
      dockerExec(
        containerName(svc, from),
        `python3 -c "import socket; s=socket.socket(); s.settimeout(3); print('open' if s.connect_ex(('${ip}', 8080)) == 0 else 'closed')"`,
      ).stdout.trim();
    assert.equal(probe(a.session.session_id, ipOf(a.session.session_id)), 'open', 'the probe itself works');
    assert.equal(probe(a.session.session_id, ipOf(b.session.session_id)), 'closed');
    assert.equal(probe(b.session.session_id, ipOf(a.session.session_id)), 'closed');
  });

  it('what a container prints waits for the service to read it: unread stderr and a paused reader pile up nothing', async () => {
    const { session } = await openFor(svc, 'flood');
    const id = docker('inspect', '-f', '{{.Id}}', containerName(svc, session.session_id)).trim();
    const buffered = (s: import('node:stream').PassThrough) => s.readableLength + s.writableLength;
    // 64 MiB to stderr, which nobody reads (the agent and the in-container tar never do).
    const noisy = await svc.services.docker.execStream(id, ['sh', '-c', 'head -c 67108864 /dev/zero >&2; echo done'], {
      user: '1000:1000',
    });
    const out: Buffer[] = [];
    noisy.stream.stdout.on('data', (c: Buffer) => out.push(c));
    assert.equal(await noisy.done, 0);
    assert.equal(Buffer.concat(out).toString(), 'done\n');
    assert.ok(buffered(noisy.stream.stderr) < 1024 * 1024, `stderr held ${buffered(noisy.stream.stderr)} bytes`);
    // 64 MiB to stdout while its reader waits: the engine's connection is paused, not buffered.
    const fast = await svc.services.docker.execStream(id, ['head', '-c', '67108864', '/dev/zero'], { user: '1000:1000' });
    const stdout = fast.stream.stdout;
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, buffered(stdout))), 20);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      peak = Math.max(peak, buffered(stdout));
      let total = 0;
      for await (const c of stdout) total += (c as Buffer).length;
      assert.equal(total, 64 * 1024 * 1024, 'every byte still arrives');
      assert.equal(await fast.done, 0);
    } finally {
      clearInterval(watch);
    }
    assert.ok(peak < 4 * 1024 * 1024, `a paused reader let ${peak} bytes pile up`);
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${session.spider_id}/code-session?discard=1`)).status, 200);
  });

  it('an exec past its time limit loses its connection to the engine', async () => {
    const { session } = await openFor(svc, 'slow-exec');
    const id = docker('inspect', '-f', '{{.Id}}', containerName(svc, session.session_id)).trim();
    const runtime = svc.services.docker;
    const execStream = runtime.execStream.bind(runtime);
    const sockets: import('node:stream').Duplex[] = [];
    runtime.execStream = async (...args) => {
      const started = await execStream(...args);
      sockets.push(started.stream.stdin);
      return started;
    };
    try {
      await assert.rejects(runtime.exec(id, ['sleep', '30'], { user: '1000:1000', timeoutMs: 500 }), /did not finish within 500 ms/);
      assert.equal(sockets.length, 1);
      assert.ok(sockets[0].destroyed, 'the connection was closed');
    } finally {
      runtime.execStream = execStream;
    }
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${session.spider_id}/code-session?discard=1`)).status, 200);
  });

  it('pipes, devices and links to them in the workspace answer not_a_file at once, to reads and writes', async () => {
    const { session } = await openFor(svc, 'pipes');
    const c = containerName(svc, session.session_id);
    const fs = `/api/sessions/${session.session_id}/fs/file`;
    assert.equal(
      dockerExec(c, 'cd /workspace && mkfifo pipe && ln -s pipe to-pipe && ln -s /dev/zero zero && ln -s main.py link.py').code,
      0,
    );
    // Each waited for the engine's time limit (a pipe) or read the cap of a device, then answered 500.
    for (const path of ['pipe', 'to-pipe', 'zero']) {
      const read = await svc.api(svc.adminToken, 'GET', `${fs}?path=${path}`);
      assert.equal(read.status, 400, path);
      assert.equal((await json(read)).error.code, 'not_a_file', path);
    }
    for (const path of ['pipe', 'to-pipe']) {
      const write = await svc.api(svc.adminToken, 'PUT', `${fs}?path=${path}&overwrite=1`, 'x', {
        'content-type': 'application/octet-stream',
      });
      assert.equal(write.status, 400, path);
      assert.equal((await json(write)).error.code, 'not_a_file', path);
    }
    assert.equal(
      dockerExec(c, 'pgrep -u 1000 -x cat || pgrep -u 1000 -x head || pgrep -u 1000 -x dd').stdout,
      '',
      'nothing waits on the pipe',
    );
    // A link to a regular file still reads as the file.
    const link = await svc.api(svc.adminToken, 'GET', `${fs}?path=link.py`);
    assert.equal(link.status, 200);
    assert.equal(await link.text(), 'print(1)\n');
    assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${session.spider_id}/code-session?discard=1`)).status, 200);
  });

  it(
    'an engine that stops answering exec: saves and reads answer 504 docker_timeout, and later saves of the spider go on',
    { timeout: 120_000 },
    async () => {
      const stuck = await startTestService({ env: { CRAWLHUB_DOCKER_TIMEOUT: '3s', CRAWLHUB_SWEEP_INTERVAL: '1h' } });
      const engine = (stuck.services.docker as unknown as { docker: Docker }).docker;
      const getContainer = engine.getContainer.bind(engine);
      try {
        const { spider, session } = await openFor(stuck, 'stuck-engine');
        const c = containerName(stuck, session.session_id);
        dockerExec(c, 'echo changed > /workspace/main.py');
        // The engine takes requests to run commands and never answers them; the helper process the
        // service keeps in the container is gone (its user ended it), so it is started again.
        engine.getContainer = (id: string) => {
          const container = getContainer(id);
          container.exec = (() => new Promise(() => undefined)) as never;
          return container;
        };
        assert.equal(dockerExec(c, "pkill -f 'crawlhub-agen[t]'").code, 0);
        const sync = () => stuck.api(stuck.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
        for (const attempt of ['first', 'second']) {
          const res = await sync();
          const body = await json(res);
          assert.equal(res.status, 504, `${attempt}: ${JSON.stringify(body)}`);
          assert.equal(body.error.code, 'docker_timeout');
          assert.match(body.error.message, /did not finish within 3000 ms/);
        }
        const read = await stuck.api(stuck.adminToken, 'GET', `/api/sessions/${session.session_id}/fs/file?path=main.py`);
        assert.equal(read.status, 504);
        assert.equal((await json(read)).error.code, 'docker_timeout');
        engine.getContainer = getContainer;
        const saved = await sync();
        assert.equal(saved.status, 200, 'the spider is not held by the saves that gave up');
        assert.deepEqual((await json(saved)).modified, ['main.py']);
      } finally {
        engine.getContainer = getContainer;
        await stuck.close();
        removeContainers(stuck.config.instance);
      }
    },
  );

  it('an engine whose event stream does not answer holds up no sweep: an idle session is still stopped', { timeout: 120_000 }, async () => {
    const stuck = await startTestService({
      env: { CRAWLHUB_DOCKER_TIMEOUT: '2s', CRAWLHUB_SWEEP_INTERVAL: '250ms', CRAWLHUB_IDLE_TIMEOUT: '4s', CRAWLHUB_STOP_WARNING: '1s' },
    });
    const engine = (stuck.services.docker as unknown as { docker: Docker }).docker;
    const getEvents = engine.getEvents.bind(engine);
    try {
      const { session } = await openFor(stuck, 'stuck-events');
      // The engine restarts, say: its event stream ends, and the new one takes the request to
      // subscribe again without ever answering it.
      engine.getEvents = (() => new Promise(() => undefined)) as never;
      const spawner = (stuck.services.sessions as unknown as { spawner: { eventStream: { destroy(): void } | null } }).spawner;
      spawner.eventStream!.destroy();
      await until(
        'the idle session stopped',
        async () => (await json(await stuck.api(stuck.adminToken, 'GET', `/api/sessions/${session.session_id}`))).status === 'stopped',
        60_000,
        250,
      );
      assert.match(stuck.logs(), /not watching Docker events/);
    } finally {
      engine.getEvents = getEvents;
      await stuck.close();
      removeContainers(stuck.config.instance);
    }
  });

  it('refuses to put sessions on an existing network that lets containers reach each other', async () => {
    const network = `crawlhub-test-open-${process.pid}`;
    docker('network', 'create', network);
    const open = await startTestService({ env: { CRAWLHUB_NETWORK: network, CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    try {
      const { res, session } = await openFor(open, 'open-network');
      assert.equal(res.status, 201);
      const failed = await json(await open.api(open.adminToken, 'GET', `/api/sessions/${session.session_id}`));
      assert.equal(failed.status, 'failed');
      assert.match(failed.status_reason, /does not keep session containers apart.*enable_icc/);
      assert.equal(docker('ps', '-aq', '--filter', `label=crawlhub.instance=${open.config.instance}`).trim(), '', 'no container was made');
    } finally {
      await open.close();
      removeContainers(open.config.instance);
      docker('network', 'rm', network);
    }
  });

  it('twenty concurrent opens of one spider by one user make exactly one container', async () => {
    const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'twenty' }));
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session`)),
    );
    const bodies = await Promise.all(responses.map((r) => json(r)));
    assert.equal(new Set(bodies.map((b) => b.session_id)).size, 1);
    assert.equal(responses.filter((r) => r.status === 201).length, 1, 'one created it');
    assert.equal(responses.filter((r) => r.status === 200).length, 19, 'the others got the same session');
    await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
    const containers = docker('ps', '-aq', '--filter', `label=crawlhub.spider=${spider.id}`).trim().split('\n').filter(Boolean);
    assert.equal(containers.length, 1);
  });

  it('one user may keep at most CRAWLHUB_MAX_USER_SESSIONS sessions: the next answers 429, closing one makes room', async () => {
    const limited = await startTestService({ env: { CRAWLHUB_MAX_USER_SESSIONS: '2', CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    try {
      const dora = await limited.newUser('dora');
      const first = await openFor(limited, 'd1', dora.token);
      assert.equal(first.session.status, 'ready');
      assert.equal((await openFor(limited, 'd2', dora.token)).session.status, 'ready');
      const third = await openFor(limited, 'd3', dora.token);
      assert.equal(third.res.status, 429);
      assert.equal(third.session.error.code, 'session_limit');
      assert.match(third.session.error.message, /at most 2/);
      // Someone else is not held back by her sessions.
      assert.equal((await openFor(limited, 'admins')).session.status, 'ready');
      assert.equal((await limited.api(dora.token, 'DELETE', `/api/spiders/${first.spider.id}/code-session`)).status, 200);
      const again = await limited.api(dora.token, 'POST', `/api/spiders/${third.spider.id}/code-session?wait=1`);
      assert.equal(again.status, 201);
    } finally {
      await limited.close();
      removeContainers(limited.config.instance);
    }
  });

  it('an exhausted port pool answers 503 with a clear message', async () => {
    const small = await startTestService({ env: { CRAWLHUB_PORT_RANGE: '10095-10096', CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    try {
      const one = await openFor(small, 'one');
      assert.equal(one.session.status, 'ready');
      assert.equal((await openFor(small, 'two')).session.status, 'ready');
      const third = await openFor(small, 'three');
      assert.equal(third.res.status, 503);
      assert.equal(third.session.error.code, 'port_pool_exhausted');
      assert.match(third.session.error.message, /10095-10096/);
      // Closing one frees its port for the next.
      const closed = await small.api(small.adminToken, 'DELETE', `/api/spiders/${one.spider.id}/code-session`);
      assert.equal(closed.status, 200);
      const again = await small.api(small.adminToken, 'POST', `/api/spiders/${third.spider.id}/code-session?wait=1`);
      assert.equal(again.status, 201);
      assert.equal((await json(again)).status, 'ready', 'on the port the closed one freed (the pool has two)');
    } finally {
      await small.close();
      removeContainers(small.config.instance);
    }
  });

  it('a session whose code-server does not answer in time fails, and its container and port are freed', async () => {
    const slow = await startTestService({
      env: { CRAWLHUB_START_TIMEOUT: '100ms', CRAWLHUB_PORT_RANGE: '10097-10097', CRAWLHUB_SWEEP_INTERVAL: '1h' },
    });
    try {
      const { res, session } = await openFor(slow, 'slow');
      assert.equal(res.status, 201);
      assert.equal(session.status, 'failed');
      assert.match(session.status_reason, /did not answer within/);
      assert.equal(docker('ps', '-aq', '--filter', `label=crawlhub.session=${session.session_id}`).trim(), '', 'the container is removed');
      // The only port of the pool is free again: the next open gets it (and fails the same way, not with 503).
      const again = await openFor(slow, 'slow-again');
      assert.equal(again.res.status, 201);
    } finally {
      await slow.close();
      removeContainers(slow.config.instance);
    }
  });

  it('a save that breaks a cap aborts with a clear error and writes nothing', async () => {
    const capped = await startTestService({
      env: {
        CRAWLHUB_MAX_FILE_SIZE: '64k',
        CRAWLHUB_MAX_SPIDER_FILES: '20',
        CRAWLHUB_SYNC_TIMEOUT: '3s',
        CRAWLHUB_SWEEP_INTERVAL: '1h',
      },
    });
    try {
      const { spider, session } = await openFor(capped, 'caps');
      const c = containerName(capped, session.session_id);
      const sync = async () => {
        const res = await capped.api(capped.adminToken, 'POST', `/api/spiders/${spider.id}/code-session/sync`);
        return { status: res.status, body: await json(res) };
      };
      const files = async () =>
        (await json<{ path: string }[]>(await capped.api(capped.adminToken, 'GET', `/api/spiders/${spider.id}/files`))).map((f) => f.path);
      dockerExec(c, 'echo small > /workspace/ok.py && head -c 70000 /dev/zero > /workspace/big.bin');
      const big = await sync();
      assert.equal(big.status, 413, JSON.stringify(big.body));
      assert.match(big.body.error.message, /big\.bin/);
      assert.deepEqual(await files(), ['main.py'], 'nothing was written');
      dockerExec(c, 'rm /workspace/big.bin && for i in $(seq 1 25); do echo $i > /workspace/f$i.py; done');
      const many = await sync();
      assert.ok([413, 422].includes(many.status), JSON.stringify(many.body));
      assert.deepEqual(await files(), ['main.py']);
      // A container that stops answering (its helper process frozen by the user): the save gives up
      // at CRAWLHUB_SYNC_TIMEOUT for all its reads together, and writes nothing.
      dockerExec(c, 'rm /workspace/f*.py && echo changed > /workspace/ok.py');
      assert.equal(dockerExec(c, "pkill -STOP -f 'crawlhub-agen[t]'").code, 0);
      try {
        const frozen = await sync();
        assert.equal(frozen.status, 504, JSON.stringify(frozen.body));
        assert.equal(frozen.body.error.code, 'archive_timeout');
        assert.deepEqual(await files(), ['main.py']);
      } finally {
        dockerExec(c, "pkill -CONT -f 'crawlhub-agen[t]'");
      }
      const session2 = await json(await capped.api(capped.adminToken, 'GET', `/api/spiders/${spider.id}/code-session`));
      assert.equal(session2.status, 'ready', 'a failed manual save leaves the session usable');
    } finally {
      await capped.close();
      removeContainers(capped.config.instance);
    }
  });
});
