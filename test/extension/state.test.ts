import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../extension/api/errors';
import type { Session } from '../../extension/api/types';
import { CrawlHubState } from '../../extension/state/store';
import { sampleSession } from './helpers/server';

const s = (over: Partial<Session>) => sampleSession(over) as Session;

function fakeClient(opts: { fail?: unknown; sessions?: Session[]; whileLoading?: () => void } = {}) {
  let loads = 0;
  const client = {
    origin: 'http://127.0.0.1:1',
    me: async () => {
      opts.whileLoading?.();
      loads++;
      if (opts.fail) throw opts.fail;
      await new Promise((r) => setTimeout(r, 5));
      return { id: 'u1', name: 'alice', isAdmin: true };
    },
    spiders: async () => [
      { id: 'sp2', name: 'quotes' },
      { id: 'sp1', name: 'books' },
    ],
    sessions: async () => opts.sessions ?? [],
  };
  return { client: client as any, loads: () => loads };
}

describe('CrawlHubState', () => {
  it('is signed out without a client', async () => {
    const state = new CrawlHubState(async () => undefined);
    assert.equal(state.known, false, 'not yet: the stored token has not been looked at');
    await state.refresh();
    assert.equal(state.connection.kind, 'signedOut');
    assert.equal(state.known, true);
  });

  it("loads spiders sorted by name and only the user's own sessions (an admin sees all)", async () => {
    const { client } = fakeClient({
      sessions: [
        s({ session_id: 'a', spider_id: 'sp1', status: 'stopped', created_at: '2026-01-01T09:00:00Z' }),
        s({ session_id: 'b', spider_id: 'sp1', status: 'ready', created_at: '2026-01-01T08:00:00Z' }),
        s({ session_id: 'c', spider_id: 'sp1', status: 'stopped', created_at: '2026-01-01T10:00:00Z' }),
        s({ session_id: 'x', spider_id: 'sp2', user_id: 'someone-else', status: 'ready' }),
      ],
    });
    const state = new CrawlHubState(async () => client);
    let changes = 0;
    state.onDidChange(() => changes++);
    await state.refresh();
    assert.equal(state.connection.kind, 'online');
    assert.deepEqual(
      state.spiders().map((x) => x.name),
      ['books', 'quotes'],
    );
    assert.equal(state.sessionForSpider('sp1')?.session_id, 'b', 'the live session wins over newer stopped ones');
    assert.equal(state.sessionForSpider('sp2'), undefined, "another user's session is not mine");
    assert.deepEqual(
      state.liveSessions().map((x) => x.session_id),
      ['b'],
    );
    state.upsertSession(s({ session_id: 'b', spider_id: 'sp1', status: 'stopped', created_at: '2026-01-01T08:00:00Z' }));
    assert.equal(state.sessionForSpider('sp1')?.session_id, 'c', 'with none live, the newest');
    state.upsertSession(s({ session_id: 'y', user_id: 'someone-else' }));
    assert.equal(state.session('y'), undefined);
    state.upsertSession(s({ session_id: 'n', spider_id: 'sp9', spider_name: 'new-spider' }));
    assert.equal(state.spider('sp9')?.name, 'new-spider');
    assert.ok(changes >= 3);
  });

  it('keeps the session events that arrive while a reload runs over its (older) list', async () => {
    const { client } = fakeClient({
      sessions: [s({ session_id: 'a', spider_id: 'sp1', status: 'ready' })],
      // The list was read before the session stopped; the event of the stop arrives before the answer.
      whileLoading: () => state.upsertSession(s({ session_id: 'a', spider_id: 'sp1', status: 'stopped' })),
    });
    const state: CrawlHubState = new CrawlHubState(async () => client);
    await state.refresh();
    assert.equal(state.session('a')?.status, 'stopped');
    assert.deepEqual(state.liveSessions(), []);
  });

  it('shares one load among overlapping refreshes, and loads once more after', async () => {
    const fake = fakeClient();
    const state = new CrawlHubState(async () => fake.client);
    await Promise.all([state.refresh(), state.refresh(), state.refresh()]);
    assert.equal(fake.loads(), 2);
  });

  it('marks the token refused, as a reload answered 401 does, when any other call is answered 401', async () => {
    const { client } = fakeClient();
    const state = new CrawlHubState(async () => client);
    await state.refresh();
    let changes = 0;
    state.onDidChange(() => changes++);
    state.markRejected();
    assert.deepEqual(state.connection, {
      kind: 'unreachable',
      server: 'http://127.0.0.1:1',
      rejected: true,
      message: 'http://127.0.0.1:1 refused the stored token; sign in again.',
    });
    state.markRejected();
    assert.equal(changes, 1, 'told once');
  });

  it('is unreachable with the reason when the server does not answer or refuses the token', async () => {
    const down = new CrawlHubState(
      async () => fakeClient({ fail: new ApiError(0, 'unreachable', 'Cannot reach http://127.0.0.1:1 (ECONNREFUSED).') }).client,
    );
    await down.refresh();
    assert.deepEqual(down.connection, {
      kind: 'unreachable',
      server: 'http://127.0.0.1:1',
      rejected: false,
      message: 'Cannot reach http://127.0.0.1:1 (ECONNREFUSED).',
    });
    const refused = new CrawlHubState(
      async () => fakeClient({ fail: new ApiError(401, 'unauthorized', 'A valid API token is required') }).client,
    );
    await refused.refresh();
    assert.equal(refused.connection.kind === 'unreachable' && refused.connection.rejected, true);
  });
});
