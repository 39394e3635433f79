import { fire, stubs } from './helpers/windowStubs';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Session, WarningEvent } from '../../extension/api/types';
import { effectiveIntervalMs, HeartbeatController } from '../../extension/heartbeat/heartbeat';
import { vscodeStandIn } from './helpers/vscode';
import { StopWarnings } from '../../extension/heartbeat/warnings';
import { sampleSession } from './helpers/server';

const MIN = 60_000;

describe('the heartbeat interval', () => {
  const session = (lastActive: string, idleDeadline: string) => ({ last_active_at: lastActive, idle_deadline: idleDeadline });

  it("is the setting, at most a third of the server's idle timeout that the sessions tell", () => {
    const thirtyMinutes = session('2026-01-01T10:00:00.000Z', '2026-01-01T10:30:00.000Z');
    assert.equal(effectiveIntervalMs(60 * MIN, [thirtyMinutes]), 10 * MIN, 'the largest setting against the default timeout');
    assert.equal(effectiveIntervalMs(5 * MIN, [thirtyMinutes]), 5 * MIN);
    assert.equal(effectiveIntervalMs(60 * MIN, []), 60 * MIN, 'no session: nothing to go by');
  });

  it('never goes below a minute, and ignores answers it cannot read', () => {
    assert.equal(effectiveIntervalMs(5 * MIN, [session('2026-01-01T10:00:00.000Z', '2026-01-01T10:00:00.100Z')]), MIN);
    assert.equal(effectiveIntervalMs(5 * MIN, [session('garbage', '2026-01-01T10:30:00.000Z')]), 5 * MIN);
    assert.equal(effectiveIntervalMs(5 * MIN, [session('2026-01-01T10:30:00.000Z', '2026-01-01T10:00:00.000Z')]), 5 * MIN);
  });
});

describe('an idle stop warning', () => {
  const SESSION = sampleSession().session_id;
  const warning = (reason = 'idle'): WarningEvent => ({
    type: 'warning',
    session_id: SESSION,
    spider_id: 'sp1',
    reason,
    stops_at: '2026-01-01T10:30:00.000Z',
    minutes: 7,
  });
  let heartbeat: HeartbeatController;
  let beats: string[];
  let warnings: StopWarnings;
  let failNext: Error | undefined;

  beforeEach(() => {
    stubs.reset();
    beats = [];
    failNext = undefined;
    const sessions = new Map<string, Session>([[SESSION, sampleSession()]]);
    const state = {
      session: (id: string) => sessions.get(id),
      spider: () => undefined,
      liveSessions: () => [...sessions.values()],
      upsertSession: (s: Session) => sessions.set(s.session_id, s),
      onDidChange: () => ({ dispose() {} }),
    };
    const client = {
      heartbeat: async (sessionId: string) => {
        const failure = failNext;
        failNext = undefined;
        if (failure) throw failure;
        beats.push(sessionId);
        return sampleSession({ last_active_at: '2026-01-01T10:24:00.000Z', idle_deadline: '2026-01-01T10:54:00.000Z' });
      },
    };
    const log = { debug() {}, warn() {} } as any;
    heartbeat = new HeartbeatController(async () => client as any, state as any, log);
    warnings = new StopWarnings(state, heartbeat, {} as any, {} as any, () => true);
  });
  afterEach(() => heartbeat.dispose());

  it('sends a heartbeat at once, and shows nothing, when the user worked in the session since the last one', async () => {
    heartbeat.note(SESSION);
    await warnings.show(warning());
    assert.deepEqual(beats, [SESSION]);
    assert.deepEqual(stubs.shown, [], 'no warning for someone who is typing');
  });

  it('is shown when nothing happened since the last heartbeat (and sends none by itself)', async () => {
    await warnings.show(warning());
    assert.deepEqual(beats, []);
    assert.equal(stubs.shown.length, 1);
    assert.match(stubs.shown[0].message, /stops in 7 minutes .* for lack of activity/);
  });

  it('is shown for activity in an unfocused window, and for the hard stop, which no heartbeat moves', async () => {
    stubs.focused = false;
    heartbeat.note(SESSION);
    await warnings.show(warning());
    stubs.focused = true;
    heartbeat.note(SESSION);
    await warnings.show(warning('max_age'));
    assert.deepEqual(beats, []);
    assert.equal(stubs.shown.length, 2);
  });

  it('tells the status bar when a heartbeat fails, and when one goes through again', async () => {
    const problems: { sessionId: string; message: string | undefined }[] = [];
    heartbeat.onDidChangeProblem((p) => problems.push(p));
    await heartbeat.send(SESSION);
    failNext = new Error('Cannot reach the server');
    await assert.rejects(() => heartbeat.send(SESSION));
    await heartbeat.send(SESSION);
    assert.deepEqual(problems, [
      { sessionId: SESSION, message: undefined },
      { sessionId: SESSION, message: 'Cannot reach the server' },
      { sessionId: SESSION, message: undefined },
    ]);
  });

  it('takes "stays open until…" off the status bar when the session ends before the message times out', async () => {
    const sessions = new Map<string, Session>([[SESSION, sampleSession()]]);
    const changed = new Set<() => void>();
    const state = {
      session: (id: string) => sessions.get(id),
      onDidChange: (listener: () => void) => {
        changed.add(listener);
        return { dispose: () => void changed.delete(listener) };
      },
    };
    const stateChanged = (session: Session) => {
      sessions.set(session.session_id, session);
      for (const listener of changed) listener();
    };
    const own = new StopWarnings(state, heartbeat, {} as any, {} as any, () => true);
    stubs.answers = ['Keep working'];
    await own.show(warning());
    await own.show(warning()); // a second "Keep working": its message replaces the first
    assert.deepEqual(
      stubs.statusMessages.map((m) => [m.text.replace(/until .*/, 'until …'), m.timeout, m.disposed]),
      [
        ['$(check) CrawlHub: books stays open until …', 5000, true],
        ['$(check) CrawlHub: books stays open until …', 5000, false],
      ],
    );
    stateChanged(sampleSession({ status: 'syncing' }));
    assert.equal(stubs.statusMessages[1].disposed, false, 'a save: the session goes on');
    stateChanged(sampleSession({ status: 'stopped', status_reason: 'closed' }));
    assert.equal(stubs.statusMessages[1].disposed, true, 'closed: the message goes at once');

    // A session gone from the list (closed elsewhere), and the extension's end: the same.
    stateChanged(sampleSession());
    await own.show(warning());
    sessions.clear();
    for (const listener of changed) listener();
    assert.equal(stubs.statusMessages[2].disposed, true);
    sessions.set(SESSION, sampleSession());
    await own.show(warning());
    own.dispose();
    assert.deepEqual([stubs.statusMessages[3].disposed, changed.size], [true, 0]);
  });

  it("ignores the warnings and out-of-memory notices of other users' sessions (an admin's socket carries them all)", async () => {
    const foreign = 'someone-elses-session';
    heartbeat.note(foreign);
    await warnings.show({ ...warning(), session_id: foreign, spider_id: 'sp-other' });
    await warnings.show({ ...warning('max_age'), session_id: foreign, spider_id: 'sp-other' });
    warnings.outOfMemory({ type: 'oom', session_id: foreign, spider_id: 'sp-other', memory_limit: 1 << 30 });
    assert.deepEqual(beats, []);
    assert.equal(stubs.shown.length, 0);
    warnings.outOfMemory({ type: 'oom', session_id: SESSION, spider_id: 'sp1', memory_limit: 1 << 30 });
    assert.equal(stubs.shown.length, 1, "the user's own session is still told");
    assert.match(stubs.shown[0].message, /out of memory in the session of books \(1 GB\)/);
  });
});

describe('the heartbeat and what counts as activity', () => {
  const LIVE = sampleSession().session_id;
  const STOPPED = 'stopped-session';
  let sessions: Map<string, Session>;
  let beats: string[];
  let heartbeat: HeartbeatController;
  const fileOf = (id: string) => vscodeStandIn.Uri.from({ scheme: 'crawlhub', authority: id, path: '/workspace/books.py' });

  beforeEach(() => {
    stubs.reset();
    beats = [];
    sessions = new Map([[LIVE, sampleSession()]]);
    const state = {
      session: (id: string) => sessions.get(id),
      liveSessions: () => [...sessions.values()].filter((s) => s.status === 'ready'),
      upsertSession: (s: Session) => sessions.set(s.session_id, s),
      onDidChange: () => ({ dispose() {} }),
    };
    const client = {
      heartbeat: async (sessionId: string) => {
        beats.push(sessionId);
        return sampleSession();
      },
    };
    heartbeat = new HeartbeatController(async () => client as any, state as any, { debug() {}, warn() {} } as any);
  });
  afterEach(() => heartbeat.dispose());

  it("counts typing and the user's cursor moves, not a file VS Code reloaded because it changed in the container", async () => {
    const document = { uri: fileOf(LIVE), isDirty: false };
    const change = { text: '{"title": "x"}\n' };
    // A crawl appends to items.json (open, unedited) in a focused window whose user went away.
    fire('onDidChangeTextDocument', { document, contentChanges: [change], reason: undefined });
    fire('onDidChangeTextEditorSelection', { textEditor: { document }, selections: [], kind: undefined });
    assert.equal(await heartbeat.keepAliveIfActive(LIVE), undefined);
    assert.deepEqual(beats, [], 'an unattended window keeps no session alive');

    fire('onDidChangeTextDocument', { document: { ...document, isDirty: true }, contentChanges: [change], reason: undefined });
    assert.ok(await heartbeat.keepAliveIfActive(LIVE), 'typing is activity');
    fire('onDidChangeTextDocument', { document, contentChanges: [change], reason: 1 });
    assert.ok(await heartbeat.keepAliveIfActive(LIVE), 'an undo back to the saved text is activity too');
    fire('onDidChangeTextEditorSelection', { textEditor: { document }, selections: [], kind: 2 });
    assert.ok(await heartbeat.keepAliveIfActive(LIVE), 'a click in the editor is activity');
    assert.deepEqual(beats, [LIVE, LIVE, LIVE]);
  });

  it("sends none for a session that has stopped, which would move the idle stop of the spider's next session", async () => {
    // The window still shows a session that stopped; the spider has a new one, opened elsewhere.
    sessions.set(STOPPED, sampleSession({ session_id: STOPPED, status: 'stopped', status_reason: 'idle' }));
    const problems: unknown[] = [];
    heartbeat.onDidChangeProblem((p) => problems.push(p));
    fire('onDidChangeTextDocument', { document: { uri: fileOf(STOPPED), isDirty: true }, contentChanges: [{ text: 'x' }] });
    assert.equal(await heartbeat.keepAliveIfActive(STOPPED), undefined);
    assert.equal(await heartbeat.send(STOPPED), undefined, '"Keep working" too');
    assert.deepEqual(beats, []);
    assert.deepEqual(problems, [], 'and no "keeping the session open failed" for it');
    assert.ok(await heartbeat.send(LIVE));
    assert.deepEqual(beats, [LIVE]);
  });
});
