import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { Session } from '../../extension/api/types';
import { Targets } from '../../extension/commands/targets';
import { sampleSession } from './helpers/server';

// A command without a tree node acts on the URI's session (a status-bar click) or the window's.

const STOPPED = 'stopped-session';
const OTHER = 'other-spider-session';

describe('Targets.liveSession', () => {
  let current: string | undefined;
  let targets: Targets;
  let connection: { kind: string };
  let sessions: Map<string, Session>;

  beforeEach(() => {
    stubs.reset();
    current = STOPPED;
    sessions = new Map<string, Session>([
      [STOPPED, sampleSession({ session_id: STOPPED, spider_id: 'sp1', spider_name: 'books', status: 'stopped' })],
      [OTHER, sampleSession({ session_id: OTHER, spider_id: 'sp2', spider_name: 'quotes', status: 'ready' })],
    ]);
    connection = { kind: 'online' };
    const state = {
      get connection() {
        return connection;
      },
      session: (id: string) => sessions.get(id),
      liveSessions: () => [...sessions.values()].filter((s) => s.status === 'ready'),
    };
    targets = new Targets(state as any, { current: () => current } as any);
  });

  const uri = (id: string) => vscodeStandIn.Uri.from({ scheme: 'crawlhub', authority: id, path: '/' });

  it("says the URI's session has stopped instead of acting on another spider's", async () => {
    current = undefined;
    assert.equal(await targets.liveSession(uri(STOPPED), 'Save to Server'), undefined);
    assert.deepEqual(
      stubs.shown.map((s) => s.message),
      ['CrawlHub: The session of books is stopped; open a new one.'],
    );
  });

  it("says the window's session has stopped instead of picking the only live one of another spider", async () => {
    assert.equal(await targets.liveSession(undefined, 'Close Session'), undefined);
    assert.deepEqual(
      stubs.shown.map((s) => s.message),
      ['CrawlHub: The session of books is stopped; open a new one.'],
    );
  });

  it('takes a live session as before, and the only live one when the window has none', async () => {
    assert.equal((await targets.liveSession(uri(OTHER), 'Save to Server'))?.session_id, OTHER);
    current = undefined;
    assert.equal((await targets.liveSession(undefined, 'Save to Server'))?.session_id, OTHER);
    assert.equal(stubs.shown.length, 0);
  });

  it("says to sign in, not that there is no session, when signed out in a session's window", async () => {
    // Signed out: the state knows no session, not even the window's.
    connection = { kind: 'signedOut' };
    sessions.clear();
    current = 'the-windows-session';
    assert.equal(await targets.liveSession(undefined, 'Save to Server'), undefined);
    assert.deepEqual(
      stubs.shown.map((s) => s.message),
      ['CrawlHub: sign in first (or Refresh if the server was down).'],
    );
  });
});
