import { TOKEN_REFUSED } from '../api/errors';
import type { Session } from '../api/types';
import type { SaveStatus } from '../save/tracker';
import {
  escapeMarkdown,
  formatAgo,
  formatClock,
  formatCountdown,
  KEPT_HELP,
  liveUpdatesUnavailable,
  spiderState,
} from '../views/presentation';

export interface SaveButtonView {
  text: string;
  /** Markdown lines. */
  tooltip: string[];
  /** Needs attention (conflicts, a failed save, a stopped session, no live updates, a failed heartbeat): warning background. */
  warning: boolean;
  accessibilityLabel: string;
  /** What a click does: save, or (the token was refused, so a save cannot work) sign in again. */
  action: 'save' | 'signIn';
}

/**
 * The Save to Server button for the window's session: pure, so its every state is unit-tested.
 * `liveUpdatesOutage` is why the events socket cannot connect, once that has lasted: the button is
 * always in sight in a session's window, where a stop warning that never comes costs work.
 * `tokenRefused`: the server answered 401 (the token was revoked); nothing saves until a new sign-in.
 * `signedOut`: no token is stored for the server (or no server is set); the same, but a first sign-in.
 */
export function saveButtonView(
  session: Session | undefined,
  status: SaveStatus,
  now: number,
  liveUpdatesOutage?: string,
  heartbeatProblem?: string,
  tokenRefused = false,
  signedOut = false,
): SaveButtonView {
  const tooltip: string[] = [];
  const name = session?.spider_name ?? 'this session';
  tooltip.push(`**Save to Server** — ${escapeMarkdown(name)}`);

  let text: string;
  let warning = false;
  if (liveUpdatesOutage !== undefined) {
    warning = true;
    tooltip.push(escapeMarkdown(liveUpdatesUnavailable(liveUpdatesOutage)));
  }
  const state = session ? spiderState(session) : 'none';
  if (status.saving || state === 'syncing') {
    text = '$(sync~spin) Saving to Server…';
  } else if (status.conflicts > 0) {
    text = `$(warning) Save to Server (${status.conflicts} conflict${status.conflicts === 1 ? '' : 's'})`;
    warning = true;
  } else if (status.pending !== undefined && status.pending > 0) {
    text = `$(cloud-upload) Save to Server (${status.pending})`;
  } else {
    text = '$(cloud-upload) Save to Server';
  }
  if (status.lastSavedAt && !status.saving) text += ` · saved ${formatAgo(status.lastSavedAt, now)}`;

  if (session && state === 'kept') {
    // Saving still works: the server reads the stopped container's files. (A running save and
    // conflicts keep their text.)
    if (!status.saving && status.conflicts === 0) text = '$(cloud-upload) Save to Server · session kept';
    warning = true;
    tooltip.push(`The session is kept. ${escapeMarkdown(KEPT_HELP)}`);
  } else if (session && (state === 'none' || state === 'failed')) {
    text = `$(cloud-upload) Save to Server · session ${session.status}`;
    warning = true;
    tooltip.push(`The session is ${escapeMarkdown(session.status)}: its files can no longer be saved from here.`);
  }
  if (status.lastError) {
    warning = true;
    tooltip.push(`Last save failed: ${escapeMarkdown(status.lastError)}`);
  }
  // The work goes on in the editor, but the idle stop no longer moves: worth a glance, not a notification.
  if (heartbeatProblem !== undefined) {
    warning = true;
    if (text.startsWith('$(cloud-upload)')) text = text.replace('$(cloud-upload)', '$(warning)');
    tooltip.push(`Keeping the session open failed: ${escapeMarkdown(heartbeatProblem)} (its idle stop did not move)`);
  }

  if (status.pending === undefined) tooltip.push('Changes waiting: not counted yet');
  else if (status.pending === 0) tooltip.push('Changes waiting: none');
  else tooltip.push(`Changes waiting: ${status.pending}${status.conflicts ? ` (${status.conflicts} in conflict with the server)` : ''}`);
  tooltip.push(
    `Last saved: ${status.lastSavedAt ? `${formatClock(status.lastSavedAt, now)} (${formatAgo(status.lastSavedAt, now)})` : 'not yet in this session'}`,
  );
  if (session && state !== 'none' && state !== 'failed' && state !== 'kept') {
    tooltip.push(
      `Idle stop: ${formatClock(session.idle_deadline, now)} (${formatCountdown(session.idle_deadline, now)}; activity moves it)`,
      `Hard stop: ${formatClock(session.expires_at, now)} (${formatCountdown(session.expires_at, now)})`,
    );
  }
  // Above everything else: until a new sign-in, no save (or anything else) goes through.
  if (tokenRefused) {
    text = '$(warning) Save to Server · sign in again';
    warning = true;
    tooltip.splice(1, 0, `${escapeMarkdown(TOKEN_REFUSED[0].toUpperCase() + TOKEN_REFUSED.slice(1))}: sign in to CrawlHub again.`);
  }
  // Signed out (Sign Out, or a session's window opened where no token is stored): nothing is known of
  // the session and nothing saves; a click that only said "you have no open sessions" would mislead.
  if (signedOut && !tokenRefused) {
    text = '$(warning) Save to Server · sign in';
    warning = true;
    tooltip.splice(1, 0, "Signed out of CrawlHub: sign in to reach and save this session's files.");
  }
  const signIn = tokenRefused || signedOut;
  tooltip.push('', tokenRefused ? 'Click to sign in again.' : signedOut ? 'Click to sign in.' : 'Click to save.');
  return {
    text,
    tooltip,
    warning,
    accessibilityLabel: text.replace(/\$\([^)]*\)\s*/g, ''),
    action: signIn ? 'signIn' : 'save',
  };
}
