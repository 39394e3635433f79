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
  /** A terminal (`attach`: reattached to that shell) over a raw socket: its output, and the service's text frames. */
  const openTerminal = async (opts: { attach?: string; token?: string } = {}) => {
    const query = opts.attach === undefined ? '' : `?attach=${encodeURIComponent(opts.attach)}`;
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal${query}`, {
      headers: { authorization: `Bearer ${opts.token ?? alice.token}` },
    });
    let output = '';
    const texts: { type?: string; id?: string; offset?: number }[] = [];
    const closed = new Promise<[number, string]>((r) => ws.once('close', (c: number, why: Buffer) => r([c, why.toString()])));
    ws.on('message', (d: Buffer, binary: boolean) => (binary ? (output += d.toString('latin1')) : texts.push(JSON.parse(d.toString()))));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    /** Cuts the connection (no close frame), as a network that drops does. */
    const cut = async () => {
      (ws as unknown as { _socket: import('node:net').Socket })._socket.destroy();
      await closed;
    };
    return { ws, output: () => output, texts, closed, cut };
  };
  /** The service's shells of the session, and how many have no socket (private state, read to know the service saw a cut). */
  const detached = () =>
    [...(svc.services.sockets as unknown as { shells: Map<string, { attached: boolean }> }).shells.values()].filter((s) => !s.attached)
      .length;
  const ps = () => docker('top', containerName(svc, sessionId), '-o', 'pid,args');
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

  it('a terminal closed the moment it opens, before its shell said its id, leaves no shell behind', async () => {
    const before = shells();
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
        headers: { authorization: `Bearer ${alice.token}` },
      });
      await new Promise((r) => ws.once('open', () => (ws.close(), ws.once('close', r))));
    }
    await until('every shell hung up', () => shells() === before, 30_000, 100);
  });

  it('a lost connection leaves the shell running; reattaching with its id replays what it wrote meanwhile, and input works', async () => {
    const before = shells();
    const term = await openTerminal();
    term.ws.send(Buffer.from('rm -f /tmp/away; sleep 300 & echo job-$((6*7))\n'), { binary: true });
    await until('the shell answers', () => term.output().includes('job-42'), 30_000, 50);
    const id = term.texts.find((t) => t.type === 'terminal')?.id;
    assert.ok(id && id.length >= 20, `the service gave the terminal an id: ${JSON.stringify(term.texts)}`);
    term.ws.send(Buffer.from('(sleep 1; echo away-$((6*7)); touch /tmp/away) &\n'), { binary: true });
    await term.cut();
    await until('the service saw the cut', () => detached() === 1, 30_000, 50);
    await until(
      'the shell wrote while detached',
      () => {
        try {
          docker('exec', containerName(svc, sessionId), 'test', '-f', '/tmp/away');
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      100,
    );
    assert.equal(shells(), before + 1, 'the shell still runs');
    assert.match(ps(), /sleep 300/, 'and so does its job');

    const back = await openTerminal({ attach: id });
    await until('the replay', () => back.output().includes('away-42'), 30_000, 50);
    const hello = back.texts[0];
    assert.equal(hello.type, 'terminal');
    assert.equal(hello.id, id);
    assert.ok(Number.isInteger(hello.offset) && hello.offset! >= 0, 'the replay says where in the output it starts');
    assert.ok(back.output().includes('job-42'), 'output from before the cut is replayed too');
    back.ws.send(Buffer.from('echo back-$((6*7))\n'), { binary: true });
    await until('input works', () => back.output().includes('back-42'), 30_000, 50);
    assert.equal(detached(), 0);

    // The user closes the terminal: `{"type":"close"}`, whatever the close (or cut) that follows, hangs it up at once.
    await new Promise((r) => back.ws.send(JSON.stringify({ type: 'close' }), r));
    await back.cut();
    await until('the shell is gone', () => shells() === before, 30_000, 100);
    await until('its job is gone', () => !/sleep 300/.test(ps()), 30_000, 100);
    const again = await openTerminal({ attach: id });
    assert.deepEqual(await again.closed, [4404, 'the shell ended (or is unknown): open a new terminal']);
  });

  it("no other user attaches a shell, an unknown id or one whose grace ran out is refused, and a revoked token's detached shells end", async () => {
    const sockets = svc.services.sockets;
    const before = shells();
    const term = await openTerminal();
    await until('the id', () => term.texts.length > 0, 30_000, 20);
    const id = term.texts[0].id!;
    // The id comes from the shell's first line, before it becomes bash (and on a busy engine, a while before).
    await until('its bash runs', () => shells() === before + 1, 30_000, 100);
    await term.cut();
    await until('the service saw the cut', () => detached() === 1, 30_000, 50);
    // The admin reaches alice's session, but not her shell; bob reaches neither.
    const admin = await openTerminal({ attach: id, token: svc.adminToken });
    assert.equal((await admin.closed)[0], 4404);
    const bob = await svc.newUser('bob-terminal');
    const refused = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal?attach=${id}`, {
      headers: { authorization: `Bearer ${bob.token}` },
    });
    refused.on('error', () => undefined);
    const status = await new Promise<number>((r) => {
      refused.once('unexpected-response', (_req, res) => r(res.statusCode ?? 0));
      refused.once('open', () => r(101));
    });
    refused.terminate();
    assert.equal(status, 404);
    assert.equal((await (await openTerminal({ attach: 'made-up' })).closed)[0], 4404);
    assert.equal(detached(), 1, 'the refused attaches left the shell alone');
    assert.equal(shells(), before + 1);

    // Grace runs out: hung up; its id is refused.
    sockets.terminalGraceMs = 200;
    try {
      const short = await openTerminal();
      await until('the id', () => short.texts.length > 0, 30_000, 20);
      await short.cut();
      await until('the shell hung up after its grace', () => shells() === before + 1 && detached() === 1, 30_000, 100);
      assert.equal((await (await openTerminal({ attach: short.texts[0].id })).closed)[0], 4404);
    } finally {
      sockets.terminalGraceMs = 5 * 60_000;
    }

    // A revoked token: the detached shell opened with it ends.
    const users = svc.services.users;
    const em = svc.services.orm.em.fork();
    const { token, info } = await users.createToken(em, await users.findUser(em, 'alice'), 'to revoke, detached');
    sockets.tokenRecheckMs = 100;
    try {
      const revoked = await openTerminal({ token });
      await until('the id', () => revoked.texts.length > 0, 30_000, 20);
      await revoked.cut();
      await until('the service saw the cut', () => detached() === 2, 30_000, 50);
      await users.revokeToken(svc.services.orm.em.fork(), info.id);
      await until('the revoked shell hung up', () => detached() === 1 && shells() === before + 1, 30_000, 100);
    } finally {
      sockets.tokenRecheckMs = 30_000;
    }
    const last = await openTerminal({ attach: id });
    await until('the replay', () => last.texts.length > 0, 30_000, 20);
    last.ws.close();
    await until('every shell hung up', () => shells() === before, 30_000, 100);
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
      // Within the ping interval in use; but a shell still starting on a busy engine (its socket reads nothing until
      // then) has been seen to hold the close handshake until ws's own 30-second close timeout.
      const within = <T>(p: Promise<T>) =>
        Promise.race([p, new Promise<never>((_, j) => setTimeout(() => j(new Error('still open after 60 s')), 60_000))]);
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
          if (next.status === 101) next.ws.close();
          else next.ws.terminate();
          return next.status === 101;
        },
        10_000,
        50,
      );
      for (const o of open) {
        if (o.status === 101) o.ws.close();
        else o.ws.terminate();
      }
    }
  });

  it('counts detached shells under the limit of 10 terminals a session has', async () => {
    await until('no shell is left', () => shells() === 0 && detached() === 0, 30_000, 100);
    const open: Awaited<ReturnType<typeof openTerminal>>[] = [];
    for (let i = 0; i < 10; i++) open.push(await openTerminal());
    await until('the ids', () => open.every((t) => t.texts.length > 0), 30_000, 20);
    for (const t of open) await t.cut();
    await until('the service saw the cuts', () => detached() === 10, 30_000, 50);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${sessionId}/terminal`, {
        headers: { authorization: `Bearer ${alice.token}` },
      });
      ws.on('error', () => undefined);
      ws.once('open', () => (resolve(101), ws.close()));
      ws.once('unexpected-response', (_req, res) => (resolve(res.statusCode ?? 0), ws.terminate()));
    });
    assert.equal(status, 429, 'the eleventh is refused while ten shells wait detached');
    for (const t of open) {
      const back = await openTerminal({ attach: t.texts[0].id });
      await until('attached', () => back.texts.length > 0, 30_000, 20);
      back.ws.close();
    }
    await until('every shell hung up', () => shells() === 0 && detached() === 0, 30_000, 100).catch((e) => {
      console.log('DEBUG', shells(), detached(), ps());
      throw e;
    });
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

describe('detached terminal shells and the service stop', () => {
  it('are hung up by it: they cannot outlive the service, whose restart finds no shell to reattach', { timeout: 120_000 }, async () => {
    requireDocker();
    const svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    let name = '';
    let stopped = false;
    try {
      const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'detached-stop' }));
      const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
      assert.equal(session.status, 'ready', JSON.stringify(session));
      name = containerName(svc, session.session_id);
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${session.session_id}/terminal`, {
        headers: { authorization: `Bearer ${svc.adminToken}` },
      });
      let output = '';
      ws.on('message', (d: Buffer, binary: boolean) => binary && (output += d.toString('latin1')));
      const closed = new Promise((r) => ws.once('close', r));
      await new Promise((r, j) => ws.once('open', r).once('error', j));
      ws.send(Buffer.from('sleep 300 & echo job-$((6*7))\n'), { binary: true });
      await until('the shell answers', () => output.includes('job-42'), 30_000, 50);
      (ws as unknown as { _socket: import('node:net').Socket })._socket.destroy();
      await closed;
      const shells = svc.services.sockets as unknown as { shells: Map<string, { attached: boolean }> };
      await until('the service saw the cut', () => [...shells.shells.values()].some((s) => !s.attached), 30_000, 50);
      stopped = true;
      await svc.close();
      const top = docker('top', name, '-o', 'pid,args');
      assert.doesNotMatch(top, /bash -i/, 'the detached shell was hung up');
      assert.doesNotMatch(top, /sleep 300/, 'and its job with it');
    } finally {
      if (!stopped) await svc.close();
      removeContainers(svc.config.instance);
    }
  });
});

describe('detached terminal shells and the session stop', () => {
  it('end with the session: its place under the limit is given back', { timeout: 120_000 }, async () => {
    requireDocker();
    const svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h' } });
    try {
      const spider = await json(await svc.api(svc.adminToken, 'POST', '/api/spiders', { name: 'detached-session-stop' }));
      const session = await json(await svc.api(svc.adminToken, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
      assert.equal(session.status, 'ready', JSON.stringify(session));
      const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/sessions/${session.session_id}/terminal`, {
        headers: { authorization: `Bearer ${svc.adminToken}` },
      });
      const closed = new Promise((r) => ws.once('close', r));
      await new Promise((r, j) => ws.once('message', r).once('error', j)); // the shell's id: it runs
      (ws as unknown as { _socket: import('node:net').Socket })._socket.destroy();
      await closed;
      const shells = (svc.services.sockets as unknown as { shells: Map<string, { attached: boolean }> }).shells;
      await until('the service saw the cut', () => [...shells.values()].some((s) => !s.attached), 30_000, 50);
      assert.equal((await svc.api(svc.adminToken, 'DELETE', `/api/spiders/${spider.id}/code-session`)).status, 200);
      await until('the detached shell ended with its session', () => shells.size === 0, 30_000, 50);
    } finally {
      await svc.close();
      removeContainers(svc.config.instance);
    }
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
