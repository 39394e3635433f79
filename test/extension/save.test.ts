import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SaveResult } from '../../extension/api/types';
import { ActivityTracker } from '../../extension/heartbeat/activity';
import { PendingCounter } from '../../extension/save/pendingCounter';
import { changeCount, describeResult, listPaths, previewEntries, printablePath } from '../../extension/save/summary';
import { SaveTracker } from '../../extension/save/tracker';
import { silentLog } from '../../extension/core/log';
import { sampleSave, sampleSession } from './helpers/server';

const result = (over: Partial<SaveResult> = {}) => sampleSave(over) as SaveResult;

describe('save summaries', () => {
  it('shows a name with invisible, direction, line-breaking characters or backslashes as escapes', () => {
    assert.equal(printablePath('x\u202Ey.py'), 'x\\u{202E}y.py');
    assert.equal(printablePath('a\u2028b\u2029c.py'), 'a\\u{2028}b\\u{2029}c.py');
    assert.equal(printablePath('a\nb'), 'a\\u{A}b');
    assert.equal(printablePath('a\\u{202E}b'), 'a\\\\u{202E}b', 'a real backslash does not read as an escape');
    assert.equal(printablePath('caf\u00e9/ok.py'), 'caf\u00e9/ok.py');
  });

  it('counts and describes what a save writes', () => {
    const r = result({
      added: ['n.py'],
      modified: ['a.py', 'b.py'],
      deleted: ['old.py'],
      conflicts: [{ path: 'c.py', reason: 'changed on the server' }],
    });
    assert.equal(changeCount(r), 4);
    assert.equal(describeResult(r), '2 modified, 1 added, 1 deleted, 1 conflict');
    assert.equal(describeResult(result()), 'no changes');
    assert.equal(listPaths(['a', 'b', 'c', 'd', 'e']), 'a, b, c and 2 more');
  });

  it('lists a preview with conflicts first, each group sorted', () => {
    const r = result({
      added: ['z.py', 'b.py'],
      modified: ['m2.py', 'm1.py'],
      deleted: ['d.py'],
      conflicts: [{ path: 'c.py', reason: 'changed on the server since this session pulled it' }],
      skipped: [{ path: 'big.bin', reason: 'too large' }],
    });
    assert.deepEqual(
      previewEntries(r).map((e) => `${e.kind}:${e.path}`),
      ['conflict:c.py', 'modified:m1.py', 'modified:m2.py', 'added:b.py', 'added:z.py', 'deleted:d.py', 'skipped:big.bin'],
    );
  });
});

describe('SaveTracker', () => {
  it('follows a save from start to result, and a dry run', () => {
    const t = new SaveTracker();
    const fired: string[] = [];
    t.onDidChange((id) => fired.push(id));
    assert.deepEqual(t.get('s'), { saving: false, conflicts: 0 });
    t.planned('s', result({ modified: ['a'], added: ['b'] }));
    assert.equal(t.get('s').pending, 2);
    t.touched('s');
    assert.equal(t.get('s').pending, undefined);
    t.begin('s');
    assert.equal(t.get('s').saving, true);
    t.saved('s', result({ modified: ['a'], saved_at: '2026-01-01T10:00:00.000Z' }));
    assert.deepEqual(t.get('s'), {
      saving: false,
      pending: 0,
      conflicts: 0,
      lastSavedAt: '2026-01-01T10:00:00.000Z',
      lastError: undefined,
    });
    t.failed('s', 'boom');
    assert.equal(t.get('s').lastError, 'boom');
    t.saved('s', result({ conflicts: [{ path: 'x', reason: 'r' }], saved_at: '2026-01-01T10:01:00.000Z' }));
    assert.equal(t.get('s').conflicts, 1);
    assert.equal(t.get('s').pending, 1);
    assert.equal(t.get('s').lastError, undefined);
    assert.ok(fired.length >= 6 && fired.every((id) => id === 's'));
  });

  it('takes a failed sync event as a failed save, and leaves our own save running until its answer', () => {
    const t = new SaveTracker();
    t.serverFailed('s', 'container busy');
    assert.equal(t.get('s').lastError, 'container busy', "another window's save");
    t.begin('s');
    t.serverFailed('s', 'disk full');
    assert.equal(t.get('s').lastError, 'disk full');
    assert.equal(t.get('s').saving, true, 'our save is over when its answer comes');
  });

  it("takes the server's last save time only when newer", () => {
    const t = new SaveTracker();
    t.session(sampleSession({ last_saved_at: '2026-01-01T10:00:00.000Z' }));
    assert.equal(t.get(sampleSession().session_id).lastSavedAt, '2026-01-01T10:00:00.000Z');
    t.saved(sampleSession().session_id, result({ saved_at: '2026-01-01T11:00:00.000Z' }));
    t.session(sampleSession({ last_saved_at: '2026-01-01T10:00:00.000Z' }));
    assert.equal(t.get(sampleSession().session_id).lastSavedAt, '2026-01-01T11:00:00.000Z');
  });
});

describe('ActivityTracker (heartbeat)', () => {
  it('sends only for sessions with activity while focused, once per interval', () => {
    const a = new ActivityTracker();
    a.note('s1', true);
    a.note('s1', true);
    a.note('s2', false); // the window was not focused: an unattended window keeps nothing alive
    assert.deepEqual(a.take(), ['s1']);
    assert.deepEqual(a.take(), [], 'nothing happened in the next interval: no heartbeat');
    a.note('s2', true);
    a.note('s3', true);
    assert.equal(a.takeOne('s2'), true, 'a heartbeat for s2 goes now');
    assert.equal(a.takeOne('s2'), false);
    assert.deepEqual(a.take(), ['s3']);
  });
});

describe('PendingCounter', () => {
  const live = { spider_id: 'sp1', status: 'ready', save_pending: false };
  const until = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 200; i++) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  it('counts with a dry run once files stop changing, one run per quiet period', async () => {
    const tracker = new SaveTracker();
    const calls: unknown[] = [];
    const client = {
      sync: async (session: string, opts: unknown) => (calls.push([session, opts]), result({ modified: ['a.py'], added: ['b.py'] })),
    };
    const counter = new PendingCounter(
      async () => client as any,
      tracker,
      () => live,
      () => true,
      silentLog,
      20,
    );
    counter.schedule('s');
    counter.schedule('s');
    counter.schedule('s');
    assert.equal(tracker.get('s').pending, undefined);
    await until('a count', () => tracker.get('s').pending !== undefined);
    assert.equal(tracker.get('s').pending, 2);
    assert.deepEqual(calls, [['s', { dryRun: true }]], 'by the session’s id, not its spider’s');
    counter.dispose();
  });

  it('drops a count that a save or a file change overtook', async () => {
    const tracker = new SaveTracker();
    let release: (() => void) | undefined;
    const client = {
      sync: () =>
        new Promise((resolve) => {
          release = () => resolve(result({ modified: ['a.py'] }));
        }),
    };
    const counter = new PendingCounter(
      async () => client as any,
      tracker,
      () => live,
      () => true,
      silentLog,
      5,
    );
    const counting = counter.count('s');
    await until('the dry run to start', () => release !== undefined);
    tracker.begin('s');
    tracker.saved('s', result({ modified: ['a.py'], saved_at: '2026-01-01T10:00:00.000Z' }));
    release!();
    await counting;
    assert.equal(tracker.get('s').pending, 0, 'the save said nothing is waiting; the older count is stale');
    counter.dispose();
  });

  it("counts nothing for a session that stopped: the spider's next session is not it", async () => {
    const tracker = new SaveTracker();
    const calls: string[] = [];
    const client = { sync: async (session: string) => (calls.push(session), result({ modified: ['a.py'] })) };
    const sessions: Record<string, { spider_id: string; status: string; save_pending: boolean }> = {
      stopped: { spider_id: 'sp1', status: 'stopped', save_pending: false },
      kept: { spider_id: 'sp2', status: 'failed', save_pending: true },
    };
    const counter = new PendingCounter(
      async () => client as any,
      tracker,
      (id) => sessions[id],
      () => true,
      silentLog,
      1,
    );
    await counter.count('stopped');
    assert.deepEqual(calls, []);
    assert.equal(tracker.get('stopped').pending, undefined, 'no count of another session on its button');
    await counter.count('kept');
    assert.deepEqual(calls, ['kept'], 'a kept session still has its files to save');
    counter.dispose();
  });

  it('does nothing when switched off', async () => {
    const tracker = new SaveTracker();
    let called = false;
    const counter = new PendingCounter(
      async () => ({ sync: async () => ((called = true), result()) }) as any,
      tracker,
      () => live,
      () => false,
      silentLog,
      1,
    );
    counter.schedule('s');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(called, false);
    counter.dispose();
  });
});
