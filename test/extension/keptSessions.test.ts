import { stubs } from './helpers/windowStubs';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { Session } from '../../extension/api/types';
import { closeSession, copyUrl, openTerminal, saveToServer, type SessionDeps } from '../../extension/commands/sessions';
import { Targets } from '../../extension/commands/targets';
import { CrawlHubState } from '../../extension/state/store';
import { SessionsTreeProvider } from '../../extension/views/sessionsTree';
import { sampleSession } from './helpers/server';

// A kept session: its save failed, so the server stopped its container and keeps it (and its port)
// until a retried save succeeds. It counts toward CRAWLHUB_MAX_USER_SESSIONS (a new session is
// refused with 429 session_limit), so it must be in sight and closable: the server's DELETE
// …/code-session saves it from its archive and removes it, POST …/sync saves it.

const s = (over: Partial<Session>) => sampleSession(over) as Session;
const KEPT = s({
  session_id: 'kept-1',
  spider_id: 'sp1',
  spider_name: 'books',
  status: 'failed',
  status_reason: 'save failed (idle): disk full; the container is kept and the save will be retried',
  save_pending: true,
  created_at: '2026-01-01T09:00:00Z',
});
const FAILED = s({ session_id: 'failed-1', spider_id: 'sp2', spider_name: 'quotes', status: 'failed', save_pending: false });
const STOPPED_LATER = s({ session_id: 'stopped-1', spider_id: 'sp1', status: 'stopped', created_at: '2026-01-01T10:00:00Z' });

async function loadedState(sessions: Session[]): Promise<CrawlHubState> {
  const client = {
    origin: 'http://127.0.0.1:1',
    me: async () => ({ id: 'u1', name: 'alice', isAdmin: false }),
    spiders: async () => [
      { id: 'sp1', name: 'books' },
      { id: 'sp2', name: 'quotes' },
    ],
    sessions: async () => sessions,
  };
  const state = new CrawlHubState(async () => client as any);
  await state.refresh();
  return state;
}

describe('kept sessions', () => {
  let state: CrawlHubState;
  let asked: string[];
  let deps: SessionDeps;

  beforeEach(async () => {
    stubs.reset();
    state = await loadedState([KEPT, FAILED, STOPPED_LATER]);
    asked = [];
    deps = {
      state,
      targets: new Targets(state, { current: () => undefined } as any),
      saves: {
        save: async (x: Session) => void asked.push(`save ${x.session_id}`),
        close: async (x: Session) => void asked.push(`close ${x.session_id}`),
      },
      client: async () => undefined,
    } as unknown as SessionDeps;
  });

  it('are listed in the Sessions view (a failed one without a container is not)', () => {
    const rows = new SessionsTreeProvider(state).getChildren();
    assert.deepEqual(
      rows.map((r) => r.session.session_id),
      ['kept-1'],
    );
  });

  it("are the spider's session that commands act on, before a newer stopped one", () => {
    assert.equal(state.sessionForSpider('sp1')?.session_id, 'kept-1');
  });

  it('can be closed and saved: from the tree, the Spiders view and the palette', async () => {
    await closeSession(deps, { kind: 'session', session: KEPT });
    await closeSession(deps, { kind: 'spider', spider: { id: 'sp1', name: 'books' } });
    await closeSession(deps, undefined);
    await saveToServer(deps, { kind: 'session', session: KEPT });
    await saveToServer(deps, undefined);
    assert.deepEqual(asked, ['close kept-1', 'close kept-1', 'close kept-1', 'save kept-1', 'save kept-1']);
    assert.deepEqual(stubs.shown, []);
  });

  it('are not offered to commands that need the container running, and say why', async () => {
    await openTerminal(deps, { kind: 'session', session: KEPT });
    await copyUrl(deps, { kind: 'spider', spider: { id: 'sp1', name: 'books' } });
    assert.deepEqual(asked, []);
    assert.equal(stubs.shown.length, 2);
    for (const shown of stubs.shown)
      assert.match(shown.message, /^CrawlHub: The session of books is kept .*open it again to go on, or save or close it\.$/);
  });
});
