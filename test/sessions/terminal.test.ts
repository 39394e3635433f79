import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { json, startTestService, type TestService } from '../helpers/service';
import { containerName, docker, removeContainers, requireDocker, until } from '../helpers/docker';
import { rawExchange } from '../proxy/harness';
import { silentLog } from '../../extension/core/log';
import { TerminalConnection } from '../../extension/terminal/connection';

describe('the terminal WebSocket on the real engine', () => {
  let svc: TestService;
  let alice: { id: string; token: string };
  let sessionId: string;

  before(async () => {
    requireDocker();
    svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    alice = await svc.newUser('alice');
    const spider = await json(await svc.api(alice.token, 'POST', '/api/spiders', { name: 'terminal' }));
    const res = await svc.api(alice.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`);
    const session = await json(res);
    assert.equal(session.status, 'ready', JSON.stringify(session));
    sessionId = session.session_id;
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  it('starts no shell for a handshake that ws refuses, and closes with 1011 when the shell cannot start', async () => {
    const runtime = svc.services.docker;
    const execTty = runtime.execTty.bind(runtime);
    let started = 0;
    runtime.execTty = (...args) => {
      started++;
      return execTty(...args);
    };
    try {
      // No Sec-WebSocket-Key: ws answers 400 and never calls back.
      const reply = await rawExchange(
        Number(new URL(svc.url).port),
        `GET /api/sessions/${sessionId}/terminal HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n` +
          'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      assert.match(reply, /^HTTP\/1\.1 400 /);
      assert.equal(started, 0, 'no shell was started');
      assert.doesNotMatch(docker('top', containerName(svc, sessionId), '-o', 'pid,args'), /bash -i/);

      runtime.execTty = () => Promise.reject(new Error('exec failed'));
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
        headers: { authorization: `Bearer ${alice.token}` },
      });
      const [code, reason] = await new Promise<[number, string]>((r) =>
        ws.once('close', (c: number, why: Buffer) => r([c, why.toString()])),
      );
      assert.equal(code, 1011);
      assert.match(reason, /shell could not start/);
    } finally {
      runtime.execTty = execTty;
    }
  });
  const openTerminal = async () => {
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    let output = '';
    ws.on('message', (d: Buffer) => (output += d.toString('latin1')));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    return { ws, output: () => output };
  };
  const shells = () => (docker('top', containerName(svc, sessionId), '-o', 'pid,args').match(/bash -i/g) ?? []).length;

  it('runs what is typed after a resize at the new size, however long the engine takes to resize', async () => {
    const runtime = svc.services.docker;
    const execTty = runtime.execTty.bind(runtime);
    let letResize!: () => void;
    const resizeHeld = new Promise<void>((r) => (letResize = r));
    let asked = 0;
    runtime.execTty = async (...args) => {
      const tty = await execTty(...args);
      return {
        ...tty,
        resize: async (cols: number, rows: number) => {
          asked++;
          await resizeHeld;
          return tty.resize(cols, rows);
        },
      };
    };
    try {
      const term = await openTerminal();
      term.ws.send(Buffer.from('echo ready\n'), { binary: true });
      await until('the shell', () => /[\r\n]ready\r\n/.test(term.output()), 15_000);
      term.ws.send(JSON.stringify({ type: 'resize', cols: 123, rows: 45 }));
      term.ws.send(Buffer.from('stty size\n'), { binary: true });
      await until('the resize to reach the engine', () => asked === 1, 15_000);
      await new Promise((r) => setTimeout(r, 300)); // an old-size answer would be back by now
      assert.doesNotMatch(term.output(), /[\r\n]\d+ \d+\r\n/, 'nothing ran before the resize');
      letResize();
      await until('the size', () => /[\r\n]45 123\r\n/.test(term.output()), 15_000);
      term.ws.close();
    } finally {
      letResize();
      runtime.execTty = execTty;
    }
  });

  it("keeps the image's PATH, as the editor's own terminal does (the crawl tools first)", async () => {
    const env = JSON.parse(docker('inspect', '--format', '{{json .Config.Env}}', containerName(svc, sessionId))) as string[];
    const imagePath = env.find((e) => e.startsWith('PATH='))!.slice('PATH='.length);
    const term = await openTerminal();
    term.ws.send(Buffer.from('echo "path<$PATH>"\n'), { binary: true });
    // The echoed command line shows `$PATH` itself; the answer starts with a slash.
    await until('the shell answers', () => /path<\/[^>]*>/.test(term.output()), 30_000, 50);
    const shellPath = /path<(\/[^>]*)>/.exec(term.output())![1];
    term.ws.close();
    await until('the shell is gone', () => shells() === 0, 30_000, 100);
    assert.ok(shellPath.startsWith(imagePath), `the shell's PATH ${shellPath} keeps the image's ${imagePath}`);
  });

  it('closing the terminal hangs up its shell and what it runs, as closing a terminal window does', async () => {
    const before = shells();
    const term = await openTerminal();
    term.ws.send(Buffer.from('sleep 600 & echo started-$((6*7))\n'), { binary: true });
    await until('the shell answers', () => term.output().includes('started-42'), 30_000, 50);
    assert.doesNotMatch(term.output(), /crawlhub-shell-pid/, 'the shell id is not shown');
    assert.equal(shells(), before + 1);
    term.ws.close();
    await until('the shell is gone', () => shells() === before, 30_000, 100);
    await until('its job is gone', () => !/sleep 600/.test(docker('top', containerName(svc, sessionId), '-o', 'pid,args')), 30_000, 100);
  });

  it('input sent the moment the socket opens (as the editor sends what was typed while connecting) keeps the hang-up working', async () => {
    const before = shells();
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
        headers: { authorization: `Bearer ${alice.token}` },
      });
      let output = '';
      ws.on('message', (d: Buffer) => (output += d.toString('latin1')));
      ws.on('open', () => ws.send(Buffer.from('echo early-$((6*7))\n'), { binary: true }));
      await until('the shell answers', () => output.includes('early-42'), 30_000, 20);
      assert.doesNotMatch(output, /crawlhub-shell-pid/, 'the shell id is not shown');
      ws.close();
    }
    await until('every shell hung up', () => shells() === before, 30_000, 100);
  });

  it('a revoked token ends the terminal and the live-updates sockets it opened', async () => {
    const users = svc.services.users;
    const em = svc.services.orm.em.fork();
    const { token, info } = await users.createToken(em, await users.findUser(em, 'alice'), 'to revoke');
    svc.services.sockets.tokenRecheckMs = 100;
    try {
      const open = async (path: string) => {
        const ws = new WebSocket(`${svc.url.replace('http', 'ws')}${path}`, { headers: { authorization: `Bearer ${token}` } });
        const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
        await new Promise((r, j) => ws.once('open', r).once('error', j));
        return { closed };
      };
      const terminal = await open(`/api/sessions/${sessionId}/terminal`);
      const events = await open('/api/events');
      await users.revokeToken(svc.services.orm.em.fork(), info.id);
      const within = <T>(p: Promise<T>) =>
        Promise.race([p, new Promise<never>((_, j) => setTimeout(() => j(new Error('still open after 10 s')), 10_000))]);
      assert.equal(await within(terminal.closed), 1008);
      assert.equal(await within(events.closed), 1008);
    } finally {
      svc.services.sockets.tokenRecheckMs = 30_000;
    }
  });

  it('holds at most 10 terminals per session and 20 live-update sockets per user: the next is refused with 429', async () => {
    const connect = (path: string) =>
      new Promise<{ ws: WebSocket; status: number }>((resolve) => {
        const ws = new WebSocket(`${svc.url.replace('http', 'ws')}${path}`, { headers: { authorization: `Bearer ${alice.token}` } });
        ws.once('open', () => resolve({ ws, status: 101 }));
        ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode ?? 0 }));
        ws.once('error', () => resolve({ ws, status: -1 }));
      });
    for (const [path, max] of [
      [`/api/sessions/${sessionId}/terminal`, 10],
      ['/api/events', 20],
    ] as const) {
      const open = [];
      for (let i = 0; i < max; i++) open.push(await connect(path));
      assert.deepEqual(
        open.map((o) => o.status),
        Array(max).fill(101),
      );
      assert.equal((await connect(path)).status, 429, `${path}: one past the limit`);
      const first = open[0].ws;
      await new Promise((r) => {
        first.once('close', r);
        first.close();
      });
      await until(
        'a place freed',
        async () => {
          const next = await connect(path);
          next.ws.terminate();
          return next.status === 101;
        },
        10_000,
        50,
      );
      for (const o of open) o.ws.terminate();
    }
  });

  it("a paste of several MiB from the editor's terminal reaches the shell whole, and the terminal stays open", async () => {
    // VS Code hands a paste to the terminal as one piece; the service refuses a frame over 1 MiB (1009).
    const conn = new TerminalConnection(silentLog);
    let output = '';
    const closed: number[] = [];
    conn.onOutput((t) => (output += t));
    conn.onClose((c) => closed.push(c.code));
    try {
      const url = new URL(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`);
      conn.connect({ url, headers: { authorization: `Bearer ${alice.token}` } });
      const line = `${'é€𝄞'.repeat(10)}${'x'.repeat(40)}\n`; // 110 bytes, multi-byte characters included
      const paste = line.repeat(20_000); // 2.2 MB
      conn.input(`stty -echo; echo go-$((6*7)); head -c ${Buffer.byteLength(paste)} > /tmp/pasted; stty echo; echo pasted-$((6*7))\n`);
      await until('the shell reads', () => output.includes('go-42') || closed.length > 0, 30_000, 20);
      conn.input(paste);
      await until('the shell took the paste', () => output.includes('pasted-42') || closed.length > 0, 60_000, 50);
      assert.deepEqual(closed, [], 'the terminal stays open');
      const sum = docker('exec', containerName(svc, sessionId), 'sh', '-c', 'wc -c < /tmp/pasted; sha256sum < /tmp/pasted').split(/\s+/);
      assert.equal(Number(sum[0]), Buffer.byteLength(paste));
      const { createHash } = await import('node:crypto');
      assert.equal(sum[1], createHash('sha256').update(paste).digest('hex'), 'every byte, in order');
    } finally {
      conn.dispose();
    }
  });

  it("a browser that stops reading pauses the shell's output instead of filling the service's memory", async () => {
    const term = await openTerminal();
    term.ws.send(Buffer.from('echo ready-$((6*7))\n'), { binary: true });
    await until('the shell answers', () => term.output().includes('ready-42'), 30_000, 50);
    const socket = (term.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const start = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - start)), 25);
    try {
      term.ws.send(Buffer.from("head -c 400000000 /dev/zero | tr '\\0' x; echo; echo done-$((6*7))\n"), { binary: true });
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      clearInterval(watch);
    }
    assert.ok(peak < 64 * 1024 * 1024, `the service held ${peak} more bytes while the browser did not read`);
    term.ws.terminate();
  });
});

describe('the terminal on an engine that answers late', () => {
  it('a shell whose start the service gave up on is not left running attached to nothing', { timeout: 120_000 }, async () => {
    requireDocker();
    const svc = await startTestService({ env: { CRAWLHUB_DOCKER_TIMEOUT: '2s', CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    const engine = (svc.services.docker as unknown as { docker: Docker }).docker;
    const getContainer = engine.getContainer.bind(engine);
    try {
      const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'late-shell' }));
      const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
      assert.equal(session.status, 'ready', JSON.stringify(session));
      const shells = () => (docker('top', containerName(svc, session.session_id), '-o', 'pid,args').match(/bash -i/g) ?? []).length;
      // The engine starts the shell, but answers only after the service's time limit.
      let lateStarts = 0;
      let late: Duplex | null = null;
      engine.getContainer = (id: string) => {
        const container = getContainer(id);
        const exec = container.exec.bind(container) as (opts: Docker.ExecCreateOptions) => Promise<Docker.Exec>;
        container.exec = (async (opts: Docker.ExecCreateOptions) => {
          const created = await exec(opts);
          if (!opts.Tty) return created;
          const start = created.start.bind(created) as (o: Docker.ExecStartOptions) => Promise<Duplex>;
          created.start = (async (o: Docker.ExecStartOptions) => {
            const socket = await start(o);
            await new Promise((r) => setTimeout(r, 3000));
            lateStarts++;
            late = socket;
            return socket;
          }) as never;
          return created;
        }) as never;
        return container;
      };
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${session.session_id}/terminal`, {
        headers: { authorization: `Bearer ${svc.adminToken}` },
      });
      const [code] = await new Promise<[number, string]>((r) => ws.once('close', (c: number, why: Buffer) => r([c, why.toString()])));
      assert.equal(code, 1011, 'the terminal says the shell could not start');
      await until('the engine answered', () => lateStarts === 1, 30_000, 50);
      await until('the late shell is gone', () => shells() === 0, 30_000, 100);
      await until('its connection is closed', () => late!.destroyed, 30_000, 100);
    } finally {
      engine.getContainer = getContainer;
      await svc.close();
      removeContainers(svc.config.instance);
    }
  });
});
