import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { EventHub, type SessionView } from '../../service/events/hub';
import { createLogger } from '../../service/logger';
import { DockerError } from '../../service/runtime/docker';
import { WorkspaceWatcher } from '../../service/sessions/watcher';
import type { Workspace } from '../../service/sessions/workspace';

const quiet = createLogger('error', new Writable({ write: (_c, _e, done) => done() }));

describe('the workspace watcher', () => {
  it("ends a session's watch when the session stops, and an old leave does not end a newer watch", async () => {
    const hub = new EventHub();
    let listings = 0;
    const workspace = {
      manifest: () => {
        listings++;
        return Promise.resolve({ entries: [], problems: [], unreadable: [] });
      },
    } as unknown as Workspace;
    const watcher = new WorkspaceWatcher(hub, quiet, [], 20);
    const watches = (watcher as unknown as { watches: Map<string, unknown> }).watches;
    try {
      const leaveOld = watcher.watch('s1', 'u1', workspace);
      const status = (s: string) => hub.publish('u1', { type: 'session', session: { session_id: 's1', status: s } as SessionView });
      status('syncing');
      assert.ok(watches.has('s1'), 'a save does not end it');
      status('stopped');
      assert.ok(!watches.has('s1'), 'the session stopped: nothing to poll');
      assert.equal(watcher.isWatching('s1'), false, 'a socket asked to watch it again starts it anew');
      const seen = listings;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(listings, seen, 'no more listings of its removed container');
      // Resumed under the same id and watched again: the leave of the first watch is not this one's.
      const leaveNew = watcher.watch('s1', 'u1', workspace);
      leaveOld();
      assert.ok(watches.has('s1'), 'the newer watch goes on');
      leaveNew();
      assert.ok(!watches.has('s1'));
    } finally {
      watcher.stopAll();
    }
  });

  it('ends a watch whose container is gone instead of asking the engine every interval', async () => {
    const hub = new EventHub();
    let listings = 0;
    const workspace = {
      manifest: () => {
        listings++;
        return Promise.reject(new DockerError('no such container', 404, 410, 'container_gone'));
      },
    } as unknown as Workspace;
    const watcher = new WorkspaceWatcher(hub, quiet, [], 10);
    try {
      const leave = watcher.watch('s1', 'u1', workspace);
      for (let i = 0; i < 50 && watcher.isWatching('s1'); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(watcher.isWatching('s1'), false);
      const seen = listings;
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(listings, seen, 'no more listings of the removed container');
      assert.equal(leave.live(), false, 'a socket that asks again starts it anew');
    } finally {
      watcher.stopAll();
    }
  });

  it('names a changed file as it is on disk (a name in NFD form too), as the editor lists it', async () => {
    const hub = new EventHub();
    const sent: string[] = [];
    hub.subscribe({ id: 'u1', isAdmin: false }, (e) => {
      if (e.type === 'files') sent.push(...e.changes.map((c) => `${c.kind} ${c.path}`));
    });
    let stat = '1:1:1:1';
    const workspace = {
      manifest: () =>
        Promise.resolve({
          entries: [{ path: 'caf\u00e9.py', onDisk: 'cafe\u0301.py', type: 'file', statKey: stat }],
          problems: [],
          unreadable: [],
        }),
    } as unknown as Workspace;
    const watcher = new WorkspaceWatcher(hub, quiet, [], 10);
    try {
      watcher.watch('s1', 'u1', workspace);
      await new Promise((r) => setTimeout(r, 40));
      stat = '2:2:2:2';
      for (let i = 0; i < 50 && sent.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(sent, ['changed cafe\u0301.py']);
    } finally {
      watcher.stopAll();
    }
  });

  it('sends one overflow event instead of listing more changes than a socket should hold', async () => {
    const hub = new EventHub();
    const sent: { changes: number; overflow?: boolean }[] = [];
    hub.subscribe({ id: 'u1', isAdmin: false }, (e) => {
      if (e.type === 'files') sent.push({ changes: e.changes.length, ...(e.overflow ? { overflow: true } : {}) });
    });
    let files = 10;
    let listed = 0;
    const workspace = {
      manifest: () => {
        listed++;
        return Promise.resolve({
          entries: Array.from({ length: files }, (_, k) => ({ path: `out/${k}.json`, type: 'file', statKey: '1:1:1:1' })),
          problems: [],
          unreadable: [],
        });
      },
    } as unknown as Workspace;
    const watcher = new WorkspaceWatcher(hub, quiet, [], 20);
    try {
      const until = async (what: string, done: () => boolean) => {
        for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(done(), what);
      };
      watcher.watch('s1', 'u1', workspace);
      await until('the first listing', () => listed > 0);
      files = 3000; // a crawl wrote 2990 files since the last poll
      await until('the overflow event', () => sent.length === 1);
      files = 3100;
      await until('the next changes', () => sent.length === 2);
      assert.deepEqual(sent, [{ changes: 0, overflow: true }, { changes: 100 }]);
    } finally {
      watcher.stopAll();
    }
  });
});
