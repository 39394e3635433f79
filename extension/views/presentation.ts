import { isKept, type Session } from '../api/types';
import type { Connection } from '../state/store';

// How spiders and sessions are shown: pure functions of the data and the clock, shared by the
// trees, the status bar and the notifications, and unit-tested without VS Code.

export type SpiderState = 'none' | 'starting' | 'ready' | 'syncing' | 'kept' | 'failed';

/** A spider's state from its newest session: stopped (or no) session is "none"; a failed one whose container the server keeps is "kept". */
export function spiderState(session: (Pick<Session, 'status'> & Partial<Pick<Session, 'save_pending'>>) | undefined): SpiderState {
  if (session && isKept(session)) return 'kept';
  switch (session?.status) {
    case 'pending':
    case 'starting':
      return 'starting';
    case 'ready':
      return 'ready';
    case 'syncing':
      return 'syncing';
    case 'failed':
      return 'failed';
    default:
      return 'none';
  }
}

/** Codicon and theme colour per state. */
export const STATE_ICON: Record<SpiderState, { icon: string; color?: string }> = {
  none: { icon: 'circle-large-outline' },
  starting: { icon: 'loading~spin' },
  ready: { icon: 'vm-running', color: 'testing.iconPassed' },
  syncing: { icon: 'sync~spin' },
  // A stopped machine that still holds work: not an error yet, but not to be forgotten.
  kept: { icon: 'vm-outline', color: 'list.warningForeground' },
  failed: { icon: 'error', color: 'errorForeground' },
};

export const STATE_LABEL: Record<SpiderState, string> = {
  none: 'no session',
  starting: 'starting…',
  ready: 'ready',
  syncing: 'saving…',
  kept: 'kept: not saved yet',
  failed: 'failed',
};

/** What a kept session is and what can be done with it (tooltips of the trees and the status bar). */
export const KEPT_HELP =
  'Its container stopped when a save failed and is kept until the server’s retried save succeeds; until then it counts toward your session limit. Save to Server saves what it holds now, Close Session saves and removes it, Open in Editor resumes it.';

/** "45 s", "24 min", "3 h 5 min", "2 d 4 h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** "in 24 min", or "now" once the moment has passed. */
export function formatCountdown(iso: string, now: number): string {
  const ms = Date.parse(iso) - now;
  if (!Number.isFinite(ms)) return 'unknown';
  return ms <= 0 ? 'now' : `in ${formatDuration(ms)}`;
}

/** "just now", "5 min ago", "2 h ago". */
export function formatAgo(iso: string, now: number): string {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return 'unknown';
  if (ms < 45_000) return 'just now';
  return `${formatDuration(ms)} ago`;
}

/** Local wall-clock time "14:05" (with the date when it is not today). */
export function formatClock(iso: string, now: number): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return 'unknown';
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  const today = new Date(now);
  const sameDay = at.getFullYear() === today.getFullYear() && at.getMonth() === today.getMonth() && at.getDate() === today.getDate();
  return sameDay ? time : `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`;
}

/** The two deadlines of a live session, in the order they come. */
export function deadlines(session: Pick<Session, 'idle_deadline' | 'expires_at'>): { idle: string; hard: string; first: 'idle' | 'hard' } {
  return {
    idle: session.idle_deadline,
    hard: session.expires_at,
    first: Date.parse(session.idle_deadline) <= Date.parse(session.expires_at) ? 'idle' : 'hard',
  };
}

/** What is left of a deadline: "24 min", or "now" once it has passed. */
function timeLeft(iso: string, now: number): string {
  const ms = Date.parse(iso) - now;
  if (!Number.isFinite(ms)) return 'unknown';
  return ms <= 0 ? 'now' : formatDuration(ms);
}

/** The session tree's description, short enough for a sidebar: "idle 24 min · hard 3 h 55 min" (the tooltip says it in full). */
export function sessionDescription(
  session: Pick<Session, 'status' | 'save_pending' | 'idle_deadline' | 'expires_at'>,
  now: number,
): string {
  const state = spiderState(session);
  if (state === 'starting' || state === 'kept') return STATE_LABEL[state];
  if (state === 'none' || state === 'failed') return session.status;
  const countdown = `idle ${timeLeft(session.idle_deadline, now)} · hard ${timeLeft(session.expires_at, now)}`;
  return state === 'syncing' ? `${STATE_LABEL.syncing} ${countdown}` : countdown;
}

/** Tooltip lines (markdown) for a session: status, both deadlines with clock times, last save. */
export function sessionTooltip(session: Session, now: number): string[] {
  const state = spiderState(session);
  const lines = [
    `**${escapeMarkdown(session.spider_name)}** — ${state === 'kept' ? 'kept' : session.status}${session.status_reason ? ` (${escapeMarkdown(session.status_reason)})` : ''}`,
  ];
  if (state === 'kept') lines.push(escapeMarkdown(KEPT_HELP));
  else if (state !== 'none' && state !== 'failed') {
    lines.push(
      `Idle stop: ${formatClock(session.idle_deadline, now)} (${formatCountdown(session.idle_deadline, now)}; activity moves it)`,
      `Hard stop: ${formatClock(session.expires_at, now)} (${formatCountdown(session.expires_at, now)})`,
    );
  }
  lines.push(
    `Last saved: ${session.last_saved_at ? `${formatClock(session.last_saved_at, now)} (${formatAgo(session.last_saved_at, now)})` : 'not yet'}`,
  );
  if (session.save_pending && state !== 'kept') lines.push('A save is pending on the server.');
  if (session.last_error) lines.push(`Last error: ${escapeMarkdown(session.last_error)}`);
  return lines;
}

/** What is said while the events socket keeps failing to connect (retrying all the while). */
export function liveUpdatesUnavailable(reason: string): string {
  return `Live updates unavailable: ${reason} — stop warnings and file changes from the container will not arrive. Retrying…`;
}

/** The Sessions view's message: its countdowns and statuses go stale while live updates are out. */
export function sessionsViewMessage(conn: Connection, outage: { reason: string } | undefined): string | undefined {
  return conn.kind === 'online' && outage ? liveUpdatesUnavailable(outage.reason) : undefined;
}

/** The Spiders view's message: why it is empty (the welcome text below offers the way out), or that live updates are out. */
export function spidersViewMessage(conn: Connection, outage: { reason: string } | undefined): string | undefined {
  if (conn.kind === 'unreachable') return conn.message;
  if (conn.kind === 'loading') return `Loading from ${conn.server}…`;
  return sessionsViewMessage(conn, outage);
}

export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
