import './helpers/vscode';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { CrawlHubClient } from '../../extension/api/client';
import { silentLog } from '../../extension/core/log';
import type { Session } from '../../extension/api/types';
import { Emitter } from '../../extension/core/emitter';
import { TerminalConnection } from '../../extension/terminal/connection';
import { SessionPseudoterminal, stoppedSession } from '../../extension/terminal/pty';
import { sampleSession } from './helpers/server';

async function until(what: string, check: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A terminal of session "x" on `client`, opened at 80×24: what it writes and how it closes are kept. */
function openPty(client: object, opts: Partial<ConstructorParameters<typeof SessionPseudoterminal>[0]> = {}) {
  const pty = new SessionPseudoterminal({
    client: client as any,
    sessionId: 'x',
    spiderName: 'books',
    log: silentLog,
    onInput() {},
    ...opts,
  });
  let output = '';
  const closed: unknown[] = [];
  pty.onDidWrite((t) => (output += t));
  pty.onDidClose((c) => closed.push(c));
  pty.open({ columns: 80, rows: 24 });
  return { pty, closed, output: () => output };
}

/** Ends a test's WebSocket server: its clients cut off, its HTTP server closed. */
async function stopServer(wss: WebSocketServer, server: http.Server): Promise<void> {
  for (const c of wss.clients) c.terminate();
  wss.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}
describe('TerminalConnection', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let base: string;
  const frames: { data: Buffer; binary: boolean }[] = [];
  let shell: WebSocket | undefined;
  let upgradeUrl = '';

  before(async () => {
    server = http.createServer();
    wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      upgradeUrl = req.url ?? '';
      const refuse = (status: string, code: string, message: string) => {
        const body = JSON.stringify({ error: { code, message } });
        socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      };
      if (req.url?.includes('refuse')) return refuse('409 Conflict', 'session_not_ready', 'The session is stopped.');
      // The service's answers to a revoked token, and to a request a proxy stripped of its "Upgrade: websocket".
      if (req.url?.includes('revoked'))
        return refuse('401 Unauthorized', 'unauthorized', 'A valid API token is required: send "Authorization: Bearer <token>".');
      if (req.url?.includes('upgrade-dropped'))
        return refuse('426 Upgrade Required', 'upgrade_required', 'This is a WebSocket: connect with "Upgrade: websocket".');
      wss.handleUpgrade(req, socket, head, (ws) => {
        // The network gone under an open terminal (no close frame), and the service finding the token revoked.
        if (req.url?.includes('cut-off')) return void setTimeout(() => ws.terminate(), 20);
        if (req.url?.includes('ends-1008')) return void setTimeout(() => ws.close(1008, 'the API token was revoked'), 20);
        shell = ws;
        ws.on('message', (data: Buffer, binary) => frames.push({ data, binary }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await stopServer(wss, server);
  });

  it('sends keystrokes as binary frames, resizes with a text frame, decodes UTF-8 across frames', async () => {
    const conn = new TerminalConnection(silentLog);
    let output = '';
    const closed: { code: number }[] = [];
    conn.onOutput((t) => (output += t));
    conn.onClose((c) => closed.push(c));
    conn.resize({ columns: 100, rows: 30 }); // before open: sent once it opens
    conn.connect({ url: new URL(`${base}/api/sessions/x/terminal?cols=100&rows=30`), headers: {} });
    conn.input('ls\r'); // typed before the socket opened: kept, not lost
    await until('open', () => conn.open && frames.length >= 2);
    assert.equal(upgradeUrl, '/api/sessions/x/terminal?cols=100&rows=30');
    assert.deepEqual(JSON.parse(frames[0].data.toString()), { type: 'resize', cols: 100, rows: 30 });
    assert.equal(frames[0].binary, false);
    assert.equal(frames[1].binary, true);
    assert.equal(frames[1].data.toString(), 'ls\r');
    const euro = Buffer.from('€ ok\r\n');
    shell!.send(euro.subarray(0, 2), { binary: true });
    shell!.send(euro.subarray(2), { binary: true });
    await until('output', () => output.includes('ok'));
    assert.equal(output, '€ ok\r\n');
    conn.resize({ columns: 80, rows: 24 });
    await until('resize', () => frames.length >= 3);
    assert.deepEqual(JSON.parse(frames[2].data.toString()), { type: 'resize', cols: 80, rows: 24 });
    shell!.close(1000, 'the shell exited');
    await until('close', () => closed.length === 1);
    assert.equal(closed[0].code, 1000);
    conn.dispose();
  });

  it('sends a paste of several MiB whole, in frames the service takes (at most 1 MiB each), multi-byte characters included', async () => {
    // The service's sockets refuse a frame over 1 MiB (1009) and end the terminal: one big paste must not be one frame.
    const server = http.createServer();
    const limited = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
    const received: Buffer[] = [];
    let closedByServer: number | undefined;
    server.on('upgrade', (req, socket, head) =>
      limited.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data: Buffer) => received.push(data));
        ws.on('close', (code) => (closedByServer = code));
        ws.on('error', () => undefined); // (a frame over the limit: the close code says it)
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const conn = new TerminalConnection(silentLog);
    const closed: { code: number }[] = [];
    conn.onClose((c) => closed.push(c));
    try {
      // Typed while connecting (more than the old 64 KiB that was kept), then pasted once open.
      const early = 'é'.repeat(100_000);
      const paste = `${'€𝄞 line\n'.repeat(300_000)}end`;
      conn.connect({ url: new URL(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`), headers: {} });
      conn.input(early);
      await until('open', () => conn.open);
      conn.input(paste);
      const expected = Buffer.byteLength(early) + Buffer.byteLength(paste);
      await until('every byte', () => received.reduce((n, b) => n + b.length, 0) >= expected || closed.length > 0, 1000);
      assert.deepEqual(closed, [], 'the terminal stays connected');
      assert.equal(closedByServer, undefined);
      assert.ok(received.every((b) => b.length <= 1024 * 1024));
      assert.ok(Buffer.concat(received).equals(Buffer.from(early + paste, 'utf8')), 'every byte arrives, in order');
    } finally {
      conn.dispose();
      await stopServer(limited, server);
    }
  });

  it("reports the server's refusal message", async () => {
    const conn = new TerminalConnection(silentLog);
    const closed: { error?: string }[] = [];
    conn.onClose((c) => closed.push(c));
    conn.connect({ url: new URL(`${base}/refuse`), headers: {} });
    await until('refusal', () => closed.length === 1);
    assert.equal(closed[0].error, 'The session is stopped.');
    conn.dispose();
  });

  describe('a CrawlHub terminal the server refuses, or that loses its connection', () => {
    /** A terminal of session `sessionId` over a real client; what it wrote, and the client's 401 reports. */
    async function refused(sessionId: string, serverUrl = base.replace(/^ws:/, 'http:')) {
      let unauthorized = 0;
      const client = new CrawlHubClient({ serverUrl, token: 't', onUnauthorized: () => unauthorized++ });
      const pty = new SessionPseudoterminal({ client, sessionId, spiderName: 'books', log: silentLog, onInput() {} });
      let output = '';
      pty.onDidWrite((t) => (output += t));
      pty.open({ columns: 80, rows: 24 });
      await until('the refusal', () => output.includes('Press any key'));
      pty.close();
      return { output, unauthorized: () => unauthorized };
    }

    it('says to sign in again when the token was revoked (401), and tells the client, as any 401 is', async () => {
      const t = await refused('revoked');
      assert.match(t.output, /Sign in to CrawlHub again: the server no longer accepts the stored API token/);
      assert.doesNotMatch(t.output, /Bearer/, "the API's wording is for API clients");
      assert.equal(t.unauthorized(), 1);
    });

    it('blames a proxy that does not pass WebSocket upgrades for a 426: the extension did send the upgrade', async () => {
      const t = await refused('upgrade-dropped');
      assert.match(t.output, /a proxy between VS Code and the server does not pass WebSocket upgrades/i);
      assert.doesNotMatch(t.output, /connect with "Upgrade: websocket"/);
      assert.equal(t.unauthorized(), 0);
    });

    it('says the connection was lost, not "code 1006", when the network drops under an open terminal, and how to go on', async () => {
      const t = await refused('cut-off');
      assert.match(t.output, /The connection to the server was lost; the server ended the shell and what it ran\./);
      assert.match(t.output, /"CrawlHub: Open Terminal" opens a new one\./);
      assert.doesNotMatch(t.output, /code 1006/);
      assert.equal(t.unauthorized(), 0);
    });

    it('says it could not connect, not that the connection "ended", when the server cannot be reached', async () => {
      const closedPort = await new Promise<number>((resolve) => {
        const probe = http.createServer().listen(0, '127.0.0.1', () => {
          const { port } = probe.address() as AddressInfo;
          probe.close(() => resolve(port));
        });
      });
      const t = await refused('x', `http://127.0.0.1:${closedPort}`);
      assert.match(
        t.output,
        /The terminal could not connect to the server \(connect ECONNREFUSED [^)]*\)\. Check that the server is reachable/,
      );
      assert.doesNotMatch(t.output, /connection ended/);
    });

    it('says to sign in again when the service ends an open terminal because its token was revoked, and tells the client', async () => {
      const t = await refused('ends-1008');
      assert.match(t.output, /Sign in to CrawlHub again: the server no longer accepts the stored API token/);
      assert.equal(t.unauthorized(), 1);
    });
  });

  describe('a CrawlHub terminal whose shell ends', () => {
    /** The state as the terminal asks it, with the session in `status`. */
    function fakeState(status: string) {
      const changed = new Emitter<void>();
      let session = sampleSession({ session_id: 'x', status, status_reason: 'stopped after saving (idle)' }) as Session;
      return {
        session: (id: string) => (id === 'x' ? session : undefined),
        onDidChange: changed.event,
        set(next: string) {
          session = { ...session, status: next };
          changed.fire();
        },
      };
    }

    async function run(state: ReturnType<typeof fakeState>, whileClosing?: () => void) {
      const client = {
        socketUrl: (path: string) => new URL(`${base}${path}`),
        authorize: () => ({}),
      };
      shell = undefined;
      const t = openPty(client, { sessionStopped: () => stoppedSession(state, 'x', 500) });
      await until('the shell', () => shell !== undefined);
      shell!.close(1000, 'the shell exited');
      whileClosing?.();
      return t;
    }

    it('says that the session stopped, and closes at the next key', async () => {
      const t = await run(fakeState('stopped'));
      await until('the message', () => t.output().includes('Press any key'));
      assert.match(t.output(), /The session stopped \(stopped after saving \(idle\)\)\..*Press any key to close\./);
      assert.deepEqual(t.closed, []);
      t.pty.handleInput('q');
      assert.equal(t.closed.length, 1);
      t.pty.close();
    });

    it('waits a moment for the stop of a session that was saving', async () => {
      const state = fakeState('syncing');
      const t = await run(state, () => setTimeout(() => state.set('stopped'), 50));
      await until('the message', () => t.output().includes('Press any key'));
      assert.deepEqual(t.closed, []);
      t.pty.close();
    });

    it('closes at once when the shell exited in a live session', async () => {
      const t = await run(fakeState('ready'));
      await until('closed', () => t.closed.length === 1);
      assert.deepEqual(t.closed, [0]);
      assert.doesNotMatch(t.output(), /Press any key/);
      t.pty.close();
    });
  });

  describe('a CrawlHub terminal whose connection is lost', () => {
    /**
     * A service that keeps shells: a new terminal gets id "shell-1", "one" is shown, then the
     * connection drops (no close frame) when `cut` says so; a reattach replays from offset 0.
     */
    async function keepingServer(opts: { attach: 'replay' | 'unknown' }) {
      const server = http.createServer();
      const wss = new WebSocketServer({ noServer: true });
      const urls: string[] = [];
      const texts: string[] = [];
      const closes: number[] = [];
      const input: string[] = [];
      let current: WebSocket | undefined;
      server.on('upgrade', (req, socket, head) =>
        wss.handleUpgrade(req, socket, head, (ws) => {
          urls.push(req.url ?? '');
          current = ws;
          ws.on('message', (d: Buffer, binary) => (binary ? input.push(d.toString()) : texts.push(d.toString())));
          ws.on('close', (code) => closes.push(code));
          const attach = new URL(req.url ?? '/', 'http://x').searchParams.get('attach');
          if (attach === null) {
            ws.send(JSON.stringify({ type: 'terminal', id: 'shell-1', offset: 0 }));
            ws.send(Buffer.from('one\r\n'), { binary: true });
          } else if (opts.attach === 'unknown' || attach !== 'shell-1') {
            ws.close(4404, 'the shell ended (or is unknown): open a new terminal');
          } else {
            ws.send(JSON.stringify({ type: 'terminal', id: 'shell-1', offset: 0 }));
            ws.send(Buffer.from('one\r\ntwo\r\n'), { binary: true });
          }
        }),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const client = {
        socketUrl: (path: string, query: Record<string, string | number> = {}) => {
          const u = new URL(`${url}${path}`);
          for (const [k, v] of Object.entries(query)) u.searchParams.set(k, String(v));
          return u;
        },
        authorize: () => ({}),
        unauthorized: () => undefined,
      };
      const { pty, closed, output } = openPty(client, { reconnectDelaysMs: [10] });
      await until('the shell', () => output().includes('one'));
      return {
        pty,
        urls,
        texts,
        closes,
        input,
        closed,
        output,
        cut: () => current!.terminate(),
        async stop() {
          pty.close();
          await stopServer(wss, server);
        },
      };
    }

    it('says it is reconnecting, reattaches the same shell, shows what it missed once, and goes on', async () => {
      const t = await keepingServer({ attach: 'replay' });
      try {
        t.cut();
        await until('the reattach', () => t.output().includes('two'));
        assert.match(t.output(), /Reconnecting…/);
        assert.equal(t.urls.length, 2);
        assert.equal(new URL(t.urls[1], 'http://x').searchParams.get('attach'), 'shell-1');
        assert.equal(t.output().match(/one/g)?.length, 1, 'what was shown is not shown again');
        assert.doesNotMatch(t.output(), /Press any key|lost/);
        t.pty.handleInput('ls\r');
        await until('input on the reattached shell', () => t.input.includes('ls\r'));
        assert.deepEqual(t.closed, []);
        // Lost again later: reattached again.
        t.cut();
        await until('the second reattach', () => t.urls.length === 3 && t.output().match(/two/g)?.length === 1 && t.closes.length === 2);
        t.pty.close();
        await until('the deliberate close', () => t.closes.length === 3);
        assert.deepEqual(JSON.parse(t.texts.at(-1)!), { type: 'close' });
        assert.equal(t.closes[2], 1000);
      } finally {
        await t.stop();
      }
    });

    it('does not reconnect when the user closes the terminal: it says so to the service, which hangs the shell up', async () => {
      const t = await keepingServer({ attach: 'replay' });
      try {
        t.pty.close();
        await until('the close', () => t.closes.length === 1);
        assert.deepEqual(t.closes, [1000]);
        assert.deepEqual(
          t.texts.map((x) => JSON.parse(x).type),
          ['resize', 'close'],
        );
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(t.urls.length, 1, 'no reattach');
        assert.doesNotMatch(t.output(), /Reconnecting/);
      } finally {
        await t.stop();
      }
    });

    it('says the shell ended when the service no longer has it', async () => {
      const t = await keepingServer({ attach: 'unknown' });
      try {
        t.cut();
        await until('the message', () => t.output().includes('Press any key'));
        assert.match(t.output(), /Reconnecting…/);
        assert.match(t.output(), /The shell ended while the terminal was disconnected/);
        assert.match(t.output(), /"CrawlHub: Open Terminal" opens a new one\./);
        assert.equal(t.urls.length, 2);
      } finally {
        await t.stop();
      }
    });
  });
});
