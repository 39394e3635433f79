import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { Backoff } from '../../extension/api/backoff';
import { EventsSocket, type EventsOutage, type EventsState } from '../../extension/api/events';
import type { ServerEvent } from '../../extension/api/types';
import { sampleSession } from './helpers/server';

/** Waits for a condition, a bounded number of times. */
async function until(what: string, check: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('Backoff', () => {
  it('doubles up to the cap, takes off at most the jitter share, and resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 0);
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert.equal(b.next(), 100);
    const j = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 1);
    assert.equal(j.next(), 50);
  });
});

describe('EventsSocket', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let url: string;
  /** How the next upgrades are answered: an HTTP status, a reset connection, or accepted without a `hello`. */
  let refuse: number | 'reset' | 'no hello' | 'forbidden_origin' | 'too_many_sockets' | undefined;
  let upgrades = 0;
  const connections: { ws: WebSocket; headers: http.IncomingHttpHeaders; received: string[] }[] = [];
  const hello = JSON.stringify({ type: 'hello', user: { id: 'u1', name: 'alice', isAdmin: false } });

  before(async () => {
    server = http.createServer();
    wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      upgrades++;
      if (refuse === 'reset') {
        (socket as Socket).resetAndDestroy();
        return;
      }
      if (refuse === 'forbidden_origin') {
        const body = JSON.stringify({
          error: { code: 'forbidden_origin', message: 'This WebSocket does not accept connections from that origin.' },
        });
        socket.end(
          `HTTP/1.1 403 forbidden_origin\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      if (refuse === 'too_many_sockets') {
        // The service's per-user limit on live-update connections (service/events/socket.ts).
        const body = JSON.stringify({
          error: { code: 'too_many_sockets', message: 'You have 20 live-update connections open (at most 20); close one first.' },
        });
        socket.end(
          `HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      if (typeof refuse === 'number') {
        socket.end(`HTTP/1.1 ${refuse} ${http.STATUS_CODES[refuse]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        return;
      }
      const greet = refuse !== 'no hello';
      wss.handleUpgrade(req, socket, head, (ws) => {
        const c = { ws, headers: req.headers, received: [] as string[] };
        connections.push(c);
        ws.on('message', (d: Buffer) => c.received.push(d.toString()));
        if (greet) ws.send(hello);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`;
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const make = () =>
    new EventsSocket({
      target: () => ({ url: new URL(url), headers: { authorization: 'Bearer t' } }),
      backoff: new Backoff({ initialMs: 20, maxMs: 40 }),
    });

  it('connects with the token, delivers typed events and ignores malformed ones', async () => {
    const socket = make();
    const events: ServerEvent[] = [];
    socket.onEvent((e) => events.push(e));
    const n = connections.length;
    socket.start();
    await until('hello', () => events.some((e) => e.type === 'hello'));
    const conn = connections[n];
    assert.equal(conn.headers.authorization, 'Bearer t');
    conn.ws.send('not json');
    conn.ws.send(JSON.stringify({ type: 'session', session: { nope: 1 } }));
    conn.ws.send(JSON.stringify({ type: 'mystery' }));
    conn.ws.send(JSON.stringify({ type: 'session', session: sampleSession() }));
    conn.ws.send(JSON.stringify({ type: 'files', session_id: 's', changes: [{ path: 'a.py', kind: 'changed' }] }));
    await until('files', () => events.some((e) => e.type === 'files'));
    assert.deepEqual(
      events.map((e) => e.type),
      ['hello', 'session', 'files'],
    );
    socket.dispose();
  });

  it('sends watch requests, and sends them again after a reconnect', async () => {
    const socket = make();
    const states: EventsState['kind'][] = [];
    socket.onState((s) => states.push(s.kind));
    const n = connections.length;
    socket.watch('s-before');
    socket.start();
    await until('first connection', () => connections.length > n && connections[n].received.length >= 1);
    socket.watch('s-after');
    socket.watch('s-after'); // once is enough
    await until('second watch', () => connections[n].received.length >= 2);
    assert.deepEqual(
      connections[n].received.map((m) => JSON.parse(m)),
      [
        { type: 'watch', session_id: 's-before' },
        { type: 'watch', session_id: 's-after' },
      ],
    );
    connections[n].ws.terminate();
    await until('reconnect', () => connections.length > n + 1 && connections[n + 1].received.length >= 2);
    assert.deepEqual(connections[n + 1].received.map((m) => JSON.parse(m).session_id).sort(), ['s-after', 's-before']);
    socket.unwatch('s-before');
    await until('unwatch', () => connections[n + 1].received.length >= 3);
    assert.deepEqual(JSON.parse(connections[n + 1].received[2]), { type: 'unwatch', session_id: 's-before' });
    assert.ok(states.includes('closed') && states.at(-1) === 'open');
    socket.dispose();
  });

  it('stops retrying when the server refuses the token', async () => {
    refuse = 401;
    try {
      const socket = make();
      const states: EventsState[] = [];
      socket.onState((s) => states.push(s));
      socket.start();
      await until('refusal', () => states.some((s) => s.kind === 'closed' && s.status === 401));
      const n = states.length;
      await new Promise((r) => setTimeout(r, 150)); // several backoff periods
      assert.equal(states.length, n, 'no further attempts');
      assert.equal(socket.state.kind, 'closed');
      assert.equal(socket.outage, undefined, 'the refused token is told as such, not as an outage');
      socket.dispose();
    } finally {
      refuse = undefined;
    }
  });

  it("retries a proxy's 403 as an outage, and stops only at the service's own forbidden_origin", async () => {
    refuse = 403;
    const socket = make();
    try {
      const states: EventsState[] = [];
      socket.onState((s) => states.push(s));
      const n = upgrades;
      socket.start();
      await until('an outage', () => socket.outage !== undefined);
      assert.ok(upgrades - n >= 3, 'retried');
      assert.match(socket.outage?.reason ?? '', /HTTP 403 instead of opening a WebSocket/);
      assert.ok(
        states.every((s) => s.kind !== 'closed' || s.retryInMs !== undefined),
        'a plain 403 is no refused token',
      );
      refuse = 'forbidden_origin';
      await until('the final refusal', () => states.some((s) => s.kind === 'closed' && s.retryInMs === undefined));
      const last = states.at(-1);
      assert.deepEqual(last && { ...last, reason: undefined }, {
        kind: 'closed',
        reason: undefined,
        status: 403,
        message: 'This WebSocket does not accept connections from that origin.',
      });
      const m = upgrades;
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(upgrades, m, 'no further attempts');
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it('reports an outage after three failed attempts (a proxy answering the upgrade with 502), retries on, and ends it at the next hello', async () => {
    refuse = 502;
    const socket = make();
    try {
      const outages: (EventsOutage | undefined)[] = [];
      const states: EventsState[] = [];
      const n = upgrades;
      let attemptsBeforeOutage: number | undefined;
      socket.onOutage((o) => {
        outages.push(o);
        attemptsBeforeOutage ??= upgrades - n;
      });
      socket.onState((s) => states.push(s));
      const started = Date.now();
      socket.start();
      await until('an outage', () => outages.length > 0);
      assert.equal(attemptsBeforeOutage, 3, 'after the third failed attempt, not before');
      assert.match(outages[0]?.reason ?? '', /HTTP 502 instead of opening a WebSocket/);
      assert.ok(outages[0] && outages[0].since >= started && outages[0].since <= Date.now());
      assert.deepEqual(socket.outage, outages[0]);
      await until('more attempts, each reported while the outage lasts', () => upgrades - n >= 5 && outages.length >= 3);
      assert.ok(outages.every((o) => o !== undefined));
      assert.ok(
        states.every((s) => s.kind !== 'closed' || s.retryInMs !== undefined),
        'it never gives up',
      );
      refuse = undefined;
      await until('the outage ends', () => outages.at(-1) === undefined);
      assert.equal(socket.outage, undefined);
      assert.equal(socket.state.kind, 'open');
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it("takes the server's 429 (too many live-update connections) as its reason at once, and retries minutes later, not in a loop", async () => {
    refuse = 'too_many_sockets';
    const socket = new EventsSocket({
      target: () => ({ url: new URL(url), headers: {} }),
      backoff: new Backoff({ initialMs: 20, maxMs: 40 }),
      throttledBackoff: new Backoff({ initialMs: 60_000, maxMs: 600_000, jitter: 0 }),
    });
    try {
      const states: EventsState[] = [];
      socket.onState((s) => states.push(s));
      const n = upgrades;
      socket.start();
      await until('the refusal', () => states.some((s) => s.kind === 'closed' && s.status === 429));
      await new Promise((r) => setTimeout(r, 200)); // several of the ordinary backoff's periods
      assert.equal(upgrades - n, 1, 'one attempt, no retry seconds later');
      const refused = states.find((s) => s.kind === 'closed' && s.status === 429);
      assert.equal(refused?.kind === 'closed' && refused.retryInMs, 60_000);
      const reason = socket.outage?.reason ?? '';
      assert.match(reason, /You have 20 live-update connections open \(at most 20\); close one first/, 'the outage is told at once');
      assert.doesNotMatch(reason, /proxy/, 'no proxy is to blame');
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it('waits at least half a minute after a 429 when not told otherwise', async () => {
    refuse = 'too_many_sockets';
    const socket = new EventsSocket({ target: () => ({ url: new URL(url), headers: {} }) });
    try {
      socket.start();
      await until('the refusal', () => socket.state.kind === 'closed' && socket.state.status === 429);
      const state = socket.state;
      assert.ok(state.kind === 'closed' && (state.retryInMs ?? 0) >= 30_000, JSON.stringify(state));
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it('names a reset connection as the reason', async () => {
    refuse = 'reset';
    const socket = make();
    try {
      socket.start();
      await until('an outage', () => socket.outage !== undefined);
      assert.match(socket.outage?.reason ?? '', /ECONNRESET|socket hang up/);
      socket.stop();
      assert.equal(socket.outage, undefined, 'stopping ends it');
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it('reports an outage after outageAfterMs without a hello, and none for a dropped connection that comes back', async () => {
    refuse = 'no hello';
    const socket = new EventsSocket({
      target: () => ({ url: new URL(url), headers: {} }),
      backoff: new Backoff({ initialMs: 20, maxMs: 40 }),
      outageAfterMs: 100,
    });
    try {
      const outages: (EventsOutage | undefined)[] = [];
      socket.onOutage((o) => outages.push(o));
      const n = connections.length;
      socket.start();
      await until('an outage', () => outages.length > 0);
      assert.equal(connections.length, n + 1, 'one attempt, open but silent');
      assert.match(outages[0]?.reason ?? '', /has not greeted/);
      connections[n].ws.send(hello);
      await until('the outage ends', () => outages.at(-1) === undefined);

      refuse = undefined;
      connections[n].ws.terminate();
      await until('a reconnect', () => connections.length > n + 1 && socket.state.kind === 'open');
      await new Promise((r) => setTimeout(r, 150)); // past outageAfterMs
      assert.equal(outages.length, 2, 'a drop that reconnects is no outage');
    } finally {
      socket.dispose();
      refuse = undefined;
    }
  });

  it('does not connect while signed out, and stop() ends reconnecting', async () => {
    const socket = new EventsSocket({ target: () => undefined });
    socket.start();
    assert.deepEqual(socket.state, { kind: 'closed', reason: 'signed out' });
    socket.dispose();
    const live = make();
    const n = connections.length;
    live.start();
    await until('connected', () => connections.length > n);
    live.stop();
    connections[n].ws.terminate();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(connections.length, n + 1);
    live.dispose();
  });

  it('treats a silent connection as dead', async () => {
    const socket = new EventsSocket({
      target: () => ({ url: new URL(url), headers: {} }),
      backoff: new Backoff({ initialMs: 10, maxMs: 10 }),
      staleMs: 60,
    });
    const n = connections.length;
    socket.start();
    await until('a reconnect after silence', () => connections.length >= n + 2, 300);
    socket.dispose();
  });
});
