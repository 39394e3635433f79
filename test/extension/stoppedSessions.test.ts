import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Session } from '../../extension/api/types';
import { reopenPlan, StoppedSessions, stoppedNotice } from '../../extension/core/stoppedSessions';
import { sampleSession } from './helpers/server';

// The window's sessions that stopped: announced once per stop, not for a Close Session of this window.

const ID = sampleSession().session_id;

function world() {
  const sessions = new Map<string, Session>();
  const set = (status: string, reason = 'idle') => sessions.set(ID, sampleSession({ status, status_reason: reason }));
  const stopped = new StoppedSessions();
  const announce = () => stopped.toAnnounce([ID], (id) => sessions.get(id)).map((s) => s.status);
  return { set, stopped, announce };
}

describe('StoppedSessions', () => {
  it('announces a stop once', () => {
    const { set, announce } = world();
    assert.deepEqual(announce(), [], 'an unknown session is not announced');
    set('ready');
    assert.deepEqual(announce(), []);
    set('stopped');
    assert.deepEqual(announce(), ['stopped']);
    assert.deepEqual(announce(), [], 'not twice');
  });

  it('announces the second stop of a session that was resumed in between', () => {
    const { set, announce } = world();
    set('stopped');
    assert.deepEqual(announce(), ['stopped']);
    set('starting');
    assert.deepEqual(announce(), []);
    set('ready');
    assert.deepEqual(announce(), []);
    set('stopped');
    assert.deepEqual(announce(), ['stopped'], 'the second stop is news again');
  });

  it('does not announce the stop of a Close Session from this window, even with live statuses on the way', () => {
    const { set, stopped, announce } = world();
    set('ready');
    assert.deepEqual(announce(), []);
    stopped.closing(ID);
    set('syncing'); // the close saves first
    assert.deepEqual(announce(), []);
    set('stopped', 'closed');
    assert.deepEqual(announce(), [], 'the user closed it');
    set('ready'); // resumed later, then stopped by the sweeper
    assert.deepEqual(announce(), []);
    set('stopped');
    assert.deepEqual(announce(), ['stopped']);
  });

  it('announces a later stop when the close did not happen', () => {
    const { set, stopped, announce } = world();
    set('ready');
    stopped.closing(ID);
    stopped.closeFailed(ID);
    set('stopped');
    assert.deepEqual(announce(), ['stopped']);
  });
});

describe('a stopped session of the window', () => {
  const folder = (id: string) => ({ uri: { authority: id } });

  it('offers a new session when it stopped, and to resume it when it is kept (a failed save stopped its container)', () => {
    const stopped = stoppedNotice(sampleSession({ status: 'stopped', status_reason: 'idle' }));
    assert.equal(stopped.message, 'CrawlHub: the session of books is stopped (idle); its files are no longer reachable here.');
    assert.equal(stopped.action, 'Open a New Session');
    const kept = stoppedNotice(
      sampleSession({ status: 'failed', save_pending: true, status_reason: 'save failed (idle): the disk is full; the container is kept' }),
    );
    assert.doesNotMatch(kept.message, /is failed|no longer reachable/);
    assert.match(kept.message, /stopped and is kept .*until it is resumed/);
    assert.equal(kept.action, 'Resume the Session');
  });

  it('names the editors with unsaved changes, which the stop did not save, and says how to keep them', () => {
    const stopped = stoppedNotice(sampleSession({ status: 'stopped', status_reason: 'idle' }), ['spiders/books.py']);
    assert.equal(
      stopped.message,
      'CrawlHub: the session of books is stopped (idle); its files are no longer reachable here. An editor has unsaved changes that are not in the session (spiders/books.py): copy them elsewhere (File > Save As) before you open a new session.',
    );
    const kept = stoppedNotice(sampleSession({ status: 'failed', save_pending: true, status_reason: '' }), ['a.py', 'b.py']);
    assert.match(
      kept.message,
      /until it is resumed\. 2 editors have unsaved changes that are not in the session \(a\.py, b\.py\): save them once it is\.$/,
    );
  });

  it('leaves the window as it is when the same session was resumed, and replaces the folder of a new one', () => {
    // Resuming a kept session answers the same session: reopening its folder would reload the window for nothing.
    assert.deepEqual(reopenPlan([folder(ID)], ID, ID), { kind: 'nothing' });
    assert.deepEqual(reopenPlan([folder('other'), folder(ID)], ID, ID), { kind: 'nothing' });
    assert.deepEqual(reopenPlan([folder(ID)], ID, 'fresh'), { kind: 'openFolder' });
    assert.deepEqual(reopenPlan([folder('other'), folder(ID)], ID, 'fresh'), { kind: 'replaceFolder', index: 1 });
  });
});
