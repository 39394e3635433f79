import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Session } from '../../extension/api/types';
import { portProblem } from '../../extension/commands/ports';
import { saveButtonView } from '../../extension/statusBar/view';
import {
  deadlines,
  formatAgo,
  formatCountdown,
  formatDuration,
  sessionDescription,
  sessionsViewMessage,
  sessionTooltip,
  spiderState,
  spidersViewMessage,
} from '../../extension/views/presentation';
import { sampleSession } from './helpers/server';

const NOW = Date.parse('2026-01-01T10:05:00.000Z');
const session = (over: Partial<Session> = {}) => sampleSession(over) as Session;

describe('spider and session presentation', () => {
  it('maps session statuses to the six spider states', () => {
    assert.equal(spiderState(undefined), 'none');
    assert.equal(spiderState({ status: 'pending' }), 'starting');
    assert.equal(spiderState({ status: 'starting' }), 'starting');
    assert.equal(spiderState({ status: 'ready' }), 'ready');
    assert.equal(spiderState({ status: 'syncing' }), 'syncing');
    assert.equal(spiderState({ status: 'failed' }), 'failed');
    assert.equal(spiderState({ status: 'failed', save_pending: false }), 'failed');
    assert.equal(spiderState({ status: 'failed', save_pending: true }), 'kept', 'a failed save keeps the container');
    assert.equal(spiderState({ status: 'stopped' }), 'none');
    assert.equal(spiderState({ status: 'from-the-future' }), 'none');
  });

  it('formats durations, countdowns and ages', () => {
    assert.equal(formatDuration(12_400), '12 s');
    assert.equal(formatDuration(25 * 60_000), '25 min');
    assert.equal(formatDuration(3 * 3600_000 + 55 * 60_000), '3 h 55 min');
    assert.equal(formatDuration(4 * 3600_000), '4 h');
    assert.equal(formatDuration(50 * 3600_000), '2 d 2 h');
    assert.equal(formatCountdown('2026-01-01T10:30:00.000Z', NOW), 'in 25 min');
    assert.equal(formatCountdown('2026-01-01T10:00:00.000Z', NOW), 'now');
    assert.equal(formatCountdown('garbage', NOW), 'unknown');
    assert.equal(formatAgo('2026-01-01T10:04:30.000Z', NOW), 'just now');
    assert.equal(formatAgo('2026-01-01T10:00:00.000Z', NOW), '5 min ago');
  });

  it('describes a session by both deadlines', () => {
    assert.equal(sessionDescription(session(), NOW), 'idle 25 min · hard 3 h 55 min');
    assert.equal(sessionDescription(session({ status: 'syncing' }), NOW), 'saving… idle 25 min · hard 3 h 55 min');
    assert.equal(sessionDescription(session({ idle_deadline: '2026-01-01T10:00:00.000Z' }), NOW), 'idle now · hard 3 h 55 min');
    assert.equal(sessionDescription(session({ status: 'starting' }), NOW), 'starting…');
    assert.deepEqual(deadlines(session()).first, 'idle');
    assert.deepEqual(deadlines(session({ idle_deadline: '2026-01-01T15:00:00.000Z' })).first, 'hard');
  });

  it('calls a kept session kept, and says what it costs and what can be done with it', () => {
    const kept = session({
      status: 'failed',
      save_pending: true,
      status_reason: 'save failed (idle): disk full; the container is kept and the save will be retried',
    });
    assert.equal(sessionDescription(kept, NOW), 'kept: not saved yet');
    const tip = sessionTooltip(kept, NOW).join('\n');
    assert.match(tip, /— kept \(save failed \\\(idle\\\): disk full/);
    assert.match(tip, /counts toward your session limit/);
    assert.match(tip, /Save to Server saves what it holds now, Close Session saves and removes it, Open in Editor resumes it/);
    assert.doesNotMatch(tip, /Idle stop/);
    assert.equal(sessionDescription(session({ status: 'failed' }), NOW), 'failed');
  });

  it('puts both deadlines, the last save and the last error in the tooltip', () => {
    const lines = sessionTooltip(session({ last_saved_at: '2026-01-01T10:00:00.000Z', last_error: 'disk full' }), NOW).join('\n');
    assert.match(lines, /Idle stop: .*\(in 25 min; activity moves it\)/);
    assert.match(lines, /Hard stop: .*\(in 3 h 55 min\)/);
    assert.match(lines, /Last saved: .*\(5 min ago\)/);
    assert.match(lines, /Last error: disk full/);
    assert.doesNotMatch(sessionTooltip(session({ status: 'stopped' }), NOW).join('\n'), /Idle stop/);
  });
});

describe('the Save to Server button', () => {
  const idle = { saving: false, conflicts: 0 };

  it('shows the plain button with deadlines in the tooltip when nothing is known', () => {
    const v = saveButtonView(session(), idle, NOW);
    assert.equal(v.text, '$(cloud-upload) Save to Server');
    assert.equal(v.warning, false);
    const tip = v.tooltip.join('\n');
    assert.match(tip, /Changes waiting: not counted yet/);
    assert.match(tip, /Idle stop: .*in 25 min/);
    assert.match(tip, /Hard stop: .*in 3 h 55 min/);
    assert.match(tip, /Last saved: not yet/);
    assert.equal(v.accessibilityLabel, 'Save to Server');
  });

  it('counts waiting changes and says when the last save was', () => {
    const v = saveButtonView(session(), { saving: false, conflicts: 0, pending: 3, lastSavedAt: '2026-01-01T10:00:00.000Z' }, NOW);
    assert.equal(v.text, '$(cloud-upload) Save to Server (3) · saved 5 min ago');
    assert.match(v.tooltip.join('\n'), /Changes waiting: 3/);
    const none = saveButtonView(session(), { saving: false, conflicts: 0, pending: 0 }, NOW);
    assert.equal(none.text, '$(cloud-upload) Save to Server');
    assert.match(none.tooltip.join('\n'), /Changes waiting: none/);
  });

  it('shows a failed heartbeat with a warning icon and the reason in the tooltip', () => {
    const v = saveButtonView(session(), { ...idle, pending: 2 }, NOW, undefined, 'Cannot reach http://127.0.0.1:1 (ECONNREFUSED).');
    assert.equal(v.text, '$(warning) Save to Server (2)');
    assert.equal(v.warning, true);
    assert.match(v.tooltip.join('\n'), /Keeping the session open failed: Cannot reach .*ECONNREFUSED.*idle stop did not move/);
    assert.equal(saveButtonView(session(), idle, NOW, undefined, undefined).warning, false);
  });

  it('spins while saving (ours, or the server syncing)', () => {
    assert.equal(saveButtonView(session(), { ...idle, saving: true }, NOW).text, '$(sync~spin) Saving to Server…');
    assert.equal(saveButtonView(session({ status: 'syncing' }), idle, NOW).text, '$(sync~spin) Saving to Server…');
  });

  it('warns about conflicts, failed saves and a stopped session', () => {
    const c = saveButtonView(session(), { saving: false, conflicts: 2, pending: 2 }, NOW);
    assert.equal(c.text, '$(warning) Save to Server (2 conflicts)');
    assert.equal(c.warning, true);
    const f = saveButtonView(session(), { ...idle, lastError: 'The workspace is full.' }, NOW);
    assert.equal(f.warning, true);
    assert.match(f.tooltip.join('\n'), /Last save failed: The workspace is full\\\./);
    const s = saveButtonView(session({ status: 'stopped' }), idle, NOW);
    assert.equal(s.text, '$(cloud-upload) Save to Server · session stopped');
    assert.equal(s.warning, true);
    assert.doesNotMatch(s.tooltip.join('\n'), /Idle stop/);
  });

  it('offers to save a kept session (the server saves its stopped container), not "can no longer be saved"', () => {
    const v = saveButtonView(session({ status: 'failed', save_pending: true }), idle, NOW);
    assert.equal(v.text, '$(cloud-upload) Save to Server · session kept');
    assert.equal(v.warning, true);
    assert.equal(v.action, 'save');
    const tip = v.tooltip.join('\n');
    assert.doesNotMatch(tip, /can no longer be saved/);
    assert.match(tip, /The session is kept\. .*Save to Server saves what it holds now/);
    assert.doesNotMatch(tip, /Idle stop/);
    assert.match(saveButtonView(session({ status: 'failed' }), idle, NOW).tooltip.join('\n'), /can no longer be saved from here/);
    // A running save and conflicts show as they do for a live session.
    const kept = session({ status: 'failed', save_pending: true });
    assert.equal(saveButtonView(kept, { saving: true, conflicts: 0 }, NOW).text, '$(sync~spin) Saving to Server…');
    assert.equal(saveButtonView(kept, { saving: false, conflicts: 2 }, NOW).text, '$(warning) Save to Server (2 conflicts)');
  });

  it('says to sign in again while the server refuses the token, and a click signs in instead of saving', () => {
    const v = saveButtonView(session(), { ...idle, pending: 2 }, NOW, undefined, undefined, true);
    assert.equal(v.text, '$(warning) Save to Server · sign in again');
    assert.equal(v.warning, true);
    assert.equal(v.action, 'signIn');
    assert.match(v.tooltip[1], /^The server no longer accepts the stored API token .*: sign in to CrawlHub again\.$/);
    assert.equal(v.tooltip.at(-1), 'Click to sign in again.');
    assert.equal(saveButtonView(session(), idle, NOW).action, 'save');
  });

  it("says to sign in when signed out (nothing is known of the window's session), and a click signs in", () => {
    const v = saveButtonView(undefined, idle, NOW, undefined, undefined, false, true);
    assert.equal(v.text, '$(warning) Save to Server · sign in');
    assert.equal(v.warning, true);
    assert.equal(v.action, 'signIn');
    assert.equal(v.tooltip[1], "Signed out of CrawlHub: sign in to reach and save this session's files.");
    assert.equal(v.tooltip.at(-1), 'Click to sign in.');
    assert.equal(v.accessibilityLabel, 'Save to Server · sign in');
    // A refused token says its own words.
    assert.equal(saveButtonView(undefined, idle, NOW, undefined, undefined, true, true).text, '$(warning) Save to Server · sign in again');
  });

  it('warns while live updates are unavailable, with the reason, and stops when they are back', () => {
    const out = saveButtonView(session(), idle, NOW, 'the connection failed (read ECONNRESET)');
    assert.equal(out.warning, true);
    assert.equal(out.text, '$(cloud-upload) Save to Server');
    assert.match(
      out.tooltip[1],
      /^Live updates unavailable: the connection failed \\\(read ECONNRESET\\\) — stop warnings and file changes from the container will not arrive\\\. Retrying…$/,
    );
    assert.equal(saveButtonView(session(), idle, NOW, undefined).warning, false);
  });
});

describe('the view messages', () => {
  const online = { kind: 'online', server: 'https://hub', me: { id: 'u1', name: 'alice', isAdmin: false } } as const;
  const outage = { reason: 'the server answered HTTP 502 instead of opening a WebSocket' };

  it('tell that live updates are unavailable while the server otherwise answers', () => {
    const expected =
      'Live updates unavailable: the server answered HTTP 502 instead of opening a WebSocket — stop warnings and file changes from the container will not arrive. Retrying…';
    assert.equal(spidersViewMessage(online, outage), expected);
    assert.equal(sessionsViewMessage(online, outage), expected);
    assert.equal(spidersViewMessage(online, undefined), undefined);
    assert.equal(sessionsViewMessage(online, undefined), undefined);
  });

  it('leave the Spiders view to say why it is empty when the server cannot be reached or is loading', () => {
    const down = { kind: 'unreachable', server: 'https://hub', message: 'Cannot reach https://hub.', rejected: false } as const;
    assert.equal(spidersViewMessage(down, outage), 'Cannot reach https://hub.');
    assert.equal(sessionsViewMessage(down, outage), undefined);
    assert.equal(spidersViewMessage({ kind: 'loading', server: 'https://hub' }, outage), 'Loading from https://hub…');
    assert.equal(spidersViewMessage({ kind: 'signedOut' }, outage), undefined);
  });
});

describe('the port typed for Open a Port in Browser', () => {
  it('takes a whole number from 1 to 65535, spaces around it allowed, and not code-server’s own 8080', () => {
    for (const ok of ['8000', ' 3000 ', '1', '65535']) assert.equal(portProblem(ok), undefined, ok);
    for (const bad of ['', '0', '65536', '80.5', '-1', '8000x', 'http://localhost:8000', '1e3'])
      assert.match(portProblem(bad) ?? '', /whole number from 1 to 65535/, bad);
    assert.match(portProblem('8080') ?? '', /code-server itself/);
  });
});
