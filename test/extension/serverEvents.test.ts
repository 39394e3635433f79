import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { ServerEvent, Session } from '../../extension/api/types';
import { silentLog } from '../../extension/core/log';
import { ServerEventRouter } from '../../extension/core/serverEvents';
import { SessionWatches } from '../../extension/core/sessionWatches';
import { SessionFileSystemProvider } from '../../extension/fs/provider';
import { sampleSave, sampleSession } from './helpers/server';

// What the events socket brings, routed to the parts of the extension it concerns.

const A = 'session-a';
const B = 'session-b';
const hello: ServerEvent = { type: 'hello', user: { id: 'u1', name: 'alice', isAdmin: false } };
const doc = (id: string, path: string) => ({
  uri: vscodeStandIn.Uri.from({ scheme: 'crawlhub', authority: id, path: `/workspace/${path}` }),
});
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The events socket's watch bookkeeping, with what it would send. */
function fakeSocket(initial: string[]) {
  const watching = new Set(initial);
  const sent: string[] = [];
  return {
    watching,
    sent,
    watch(id: string) {
      if (watching.has(id)) return;
      watching.add(id);
      sent.push(`watch ${id}`);
    },
    unwatch(id: string) {
      if (watching.delete(id)) sent.push(`unwatch ${id}`);
    },
    forget(id: string) {
      watching.delete(id);
    },
  };
}

function setup() {
  const logged: string[] = [];
  const fileChanges: string[] = [];
  const scheduled: string[] = [];
  const socket = fakeSocket([A, B]);
  const watched = socket.watching;
  const wanted = new Set([A, B]);
  const watches = new SessionWatches(socket, () => wanted);
  const fs = new SessionFileSystemProvider({ client: async () => undefined, watchSession() {}, unwatchSession() {}, batchDelayMs: 1 });
  fs.onDidChangeFile((changes) => fileChanges.push(...changes.map((c) => `${c.type} ${c.uri.toString()}`)));
  const sessions = new Map<string, Session>();
  let refreshes = 0;
  const state = {
    connection: { kind: 'online' },
    loadedAt: Date.now(),
    refresh: async () => void refreshes++,
    upsertSession: (s: Session) => sessions.set(s.session_id, s),
    session: (id: string) => sessions.get(id),
  };
  const router = new ServerEventRouter({
    state: state as any,
    fs,
    tracker: { session() {}, saved() {}, serverFailed() {} },
    counter: { schedule: (id: string) => scheduled.push(id) },
    warnings: { show: async () => undefined, outOfMemory() {} },
    windowSessions: { folders: () => [A], has: (id: string) => id === A },
    log: { ...silentLog, warn: (m: string) => logged.push(m) },
    watched: () => watched,
    watches,
    documents: () =>
      [doc(A, 'spider.py'), doc(B, 'b.py'), doc('not-watched', 'x.py'), { uri: vscodeStandIn.Uri.parse('file:///home/x.py') }] as any,
  });
  return { router, fileChanges, scheduled, watched, sessions, fs, socket, wanted, watches, logged, refreshes: () => refreshes };
}

describe('ServerEventRouter', () => {
  beforeEach(() => stubs.reset());

  it('after a reconnect, says that the watched sessions and their open documents changed, and counts again', async () => {
    const { router, fileChanges, scheduled } = setup();
    router.handle(hello);
    await tick(10);
    assert.deepEqual(fileChanges, [], 'the first hello is no reconnect');
    assert.deepEqual(scheduled, []);
    router.handle(hello);
    await tick(10);
    assert.deepEqual(fileChanges.sort(), [
      '1 crawlhub://session-a/workspace',
      '1 crawlhub://session-a/workspace/spider.py',
      '1 crawlhub://session-b/workspace',
      '1 crawlhub://session-b/workspace/b.py',
    ]);
    assert.deepEqual(scheduled, [A], "the window's session's changes are counted again");
  });

  it('loads the sessions again after every reconnect, even one soon after a load (session events of the gap were missed)', () => {
    const { router, refreshes } = setup();
    router.handle(hello);
    assert.equal(refreshes(), 0, 'the first hello follows a load of a moment ago');
    // Dropped and back within a second or two of that load: a stop, a save or a warning of the gap never came.
    router.handle(hello);
    assert.equal(refreshes(), 1);
  });

  it('asks again for a watch the server refused: at the next hello, or when the session is ready', () => {
    const { router, socket } = setup();
    const refused: ServerEvent = {
      type: 'error',
      session_id: B,
      error: { code: 'session_not_ready', message: 'The session is starting.' },
    };
    router.handle(refused);
    assert.ok(!socket.watching.has(B), 'no longer counted as watched');
    router.handle({ type: 'session', session: sampleSession({ session_id: B, status: 'ready' }) });
    assert.deepEqual(socket.sent, [`watch ${B}`]);
    router.handle(refused);
    router.handle(hello);
    assert.deepEqual(socket.sent, [`watch ${B}`, `watch ${B}`]);
    router.handle({ type: 'error', error: { code: 'bad_message', message: 'x' } });
    assert.deepEqual([...socket.watching].sort(), [A, B], 'an error without a session leaves the watches alone');
  });

  it('reads a session again when the server had too many changes to list', () => {
    const { router, fileChanges } = setup();
    router.handle({ type: 'files', session_id: A, changes: [], overflow: true });
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        assert.ok(
          fileChanges.some((c) => c.endsWith(`crawlhub://${A}/workspace`) || c.includes(`crawlhub://${A}/`)),
          fileChanges.join(),
        );
        resolve();
      }, 20),
    );
  });

  it('asks again for a watch when its session is ready again (a kept session resumed: the server ended the watch when it stopped)', () => {
    const { router, socket } = setup();
    assert.ok(socket.watching.has(A));
    router.handle({ type: 'session', session: sampleSession({ session_id: A, status: 'failed', save_pending: true }) });
    router.handle({ type: 'session', session: sampleSession({ session_id: A, status: 'ready' }) });
    assert.deepEqual(socket.sent, [`watch ${A}`]);
  });

  it("names in the log the files that the server's own save of the window's session skipped", () => {
    const { router, logged, sessions } = setup();
    sessions.set(A, sampleSession({ session_id: A, spider_name: 'books' }));
    router.handle({
      type: 'sync',
      session_id: A,
      spider_id: 'sp1',
      trigger: 'idle',
      result: sampleSave({ modified: ['a.py'], skipped: [{ path: 'data/feed.json', reason: 'symbolic links are not stored' }] }),
      error: null,
    });
    assert.deepEqual(logged, [
      'books: 1 skipped (not stored; the server keeps its own copy of each, if it has one):',
      '  data/feed.json: symbolic links are not stored',
    ]);
  });

  it('stops watching sessions that are no longer folders of the window nor watched by an editor', () => {
    const { socket, wanted, watches } = setup();
    wanted.delete(B);
    watches.sync();
    assert.deepEqual(socket.sent, [`unwatch ${B}`]);
    wanted.add('session-c');
    watches.sync();
    assert.deepEqual(socket.sent, [`unwatch ${B}`, 'watch session-c']);
  });
});

describe('EventsSocket.forget', () => {
  it('drops a watch without an unwatch, so that the next watch() asks again', async () => {
    const { EventsSocket } = await import('../../extension/api/events');
    const socket = new EventsSocket({ target: () => undefined });
    socket.watch(A);
    socket.forget(A);
    assert.equal(socket.watching.has(A), false);
    socket.watch(A);
    assert.equal(socket.watching.has(A), true);
    socket.dispose();
  });
});
