import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Session } from '../../extension/api/types';
import { StoppedSessions } from '../../extension/core/stoppedSessions';
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
