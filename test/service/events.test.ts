import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { MAX_EVENT_BACKLOG } from '../../service/events/socket';
import { until } from '../helpers/docker';
import { startTestService, type TestService } from '../helpers/service';

// /api/events against clients that misbehave: what they send, how (or whether) they read.

describe('the live-updates socket against a misbehaving client', () => {
  let svc: TestService;
  let alice: { id: string; token: string };

  before(async () => {
    svc = await startTestService();
    alice = await svc.newUser('alice');
  });
  after(() => svc?.close());

  const open = async (token = alice.token) => {
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${token}` } });
    const messages: { type: string; error?: { code: string } }[] = [];
    ws.on('message', (d: Buffer) => messages.push(JSON.parse(d.toString()) as (typeof messages)[number]));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    await until('hello', () => messages.some((m) => m.type === 'hello'), 10_000, 10);
    return { ws, messages };
  };
  /** The service's side of the connections it holds. */
  const serverSide = () => [...(svc.services.sockets as unknown as { wss: { clients: Set<WebSocket> } }).wss.clients];
  /** The client stops reading: what the service sends stays in its buffers. */
  const stopReading = (ws: WebSocket) => (ws as unknown as { _socket: Socket })._socket.pause();

  it('ignores frames that are JSON but no object (null, a number, a list) and goes on answering', async () => {
    const { ws, messages } = await open();
    for (const frame of ['null', '42', '"watch"', '[]', 'true', '{"type":"watch","session_id":null}']) ws.send(frame);
    // The service is still there and the connection still answers: an unknown session's watch is refused.
    ws.send(JSON.stringify({ type: 'watch', session_id: '00000000-0000-0000-0000-000000000000' }));
    await until('the refused watch', () => messages.some((m) => m.type === 'error' && m.error?.code === 'not_found'), 10_000, 10);
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
  });

  it('lets go of a client that stops reading, whether the backlog is events or the answers to its own requests', async () => {
    const baseline = svc.services.events.size;
    const earlier = new Set(serverSide());
    const { ws } = await open();
    stopReading(ws);
    const conn = serverSide().find((c) => !earlier.has(c))!;
    // Events (as many as the service may hold for it) up to just below the bound...
    const filler = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 2000 && conn.bufferedAmount < MAX_EVENT_BACKLOG - 128 * 1024; i++) {
      svc.services.events.publish(alice.id, {
        type: 'warning',
        session_id: filler,
        spider_id: 's',
        reason: 'idle',
        stops_at: new Date().toISOString(),
        minutes: 1,
      });
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(conn.bufferedAmount >= MAX_EVENT_BACKLOG - 192 * 1024, `filled to ${conn.bufferedAmount}`);
    assert.equal(conn.readyState, WebSocket.OPEN, 'not let go yet');
    // ...then the client's own requests, whose answers it does not read either: past the bound, it goes.
    for (let i = 0; i < 3000; i++)
      ws.send(JSON.stringify({ type: 'watch', session_id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}` }));
    await until('the connection is let go', () => svc.services.events.size === baseline, 10_000, 20);
    assert.ok(conn.bufferedAmount <= MAX_EVENT_BACKLOG + 64 * 1024, `held ${conn.bufferedAmount} bytes`);
    ws.terminate();
  });

  it('a connection that asks again for the watch of a resumed session joins the new watch, even when another connection started it', async () => {
    // Two windows watch one session; it stops (kept) and resumes: both ask again as it is ready. The
    // session's lookup is stood in for (no container needed): the watch polls an empty folder.
    const id = '11111111-2222-3333-4444-555555555555';
    const sessions = svc.services.sessions as unknown as { workspace: (...args: unknown[]) => Promise<unknown> };
    const lookup = sessions.workspace;
    sessions.workspace = () =>
      Promise.resolve({ session: { id, userId: alice.id }, workspace: { manifest: () => Promise.resolve({ entries: [] }) } });
    const watcher = svc.services.watcher;
    const watchers = () => (watcher as unknown as { watches: Map<string, { watchers: number }> }).watches.get(id)?.watchers ?? 0;
    const a = await open();
    const b = await open();
    try {
      const watch = (ws: WebSocket) => ws.send(JSON.stringify({ type: 'watch', session_id: id }));
      watch(a.ws);
      watch(b.ws);
      await until('both watch', () => watchers() === 2, 10_000, 10);
      watcher.stop(id); // the session stopped, kept
      watch(a.ws);
      await until('the resumed session is watched again', () => watchers() === 1, 10_000, 10);
      watch(b.ws);
      await until('the second window joins that watch', () => watchers() === 2, 10_000, 10);
      // The first window closes: the second one's watch goes on.
      a.ws.send(JSON.stringify({ type: 'unwatch', session_id: id }));
      await until('the unwatch is taken', () => watchers() === 1, 10_000, 10);
      assert.equal(watcher.isWatching(id), true);
    } finally {
      sessions.workspace = lookup;
      a.ws.close();
      b.ws.close();
    }
  });

  it('a stop closes every connection with 1001 and does not wait on a client that never answers the close', async () => {
    const own = await startTestService();
    try {
      const user = await own.newUser('carol');
      const connect = async () => {
        const ws = new WebSocket(`${own.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${user.token}` } });
        await new Promise((r, j) => ws.once('open', r).once('error', j));
        return ws;
      };
      const reading = await connect();
      const code = new Promise<number>((r) => reading.once('close', (c: number) => r(c)));
      const silent = await connect();
      stopReading(silent);
      // Without an answer to its close frame, ws waits 30 s before it lets a connection go.
      const within = <T>(p: Promise<T>, what: string) =>
        Promise.race([p, new Promise<never>((_, j) => setTimeout(() => j(new Error(`${what}: not within 10 s`)), 10_000).unref())]);
      await within(own.close(), 'the stop');
      assert.equal(await within(code, 'the close'), 1001);
      silent.terminate();
    } finally {
      await own.close();
    }
  });
});
