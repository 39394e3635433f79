import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { ApiError, SIGN_IN_AGAIN } from '../api/errors';
import { isLive, type Session } from '../api/types';
import type { Event } from '../core/emitter';
import type { Log } from '../core/log';
import { TerminalConnection, type Dimensions, type TerminalClose } from './connection';

const red = (s: string) => `\x1b[31m${s}\x1b[0m`;
const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;

export interface SessionTerminalOptions {
  client: CrawlHubClient;
  sessionId: string;
  spiderName: string;
  log: Log;
  /** The user typed: counts as activity for the heartbeat. */
  onInput(): void;
  /**
   * The shell ended normally: resolves with the session when that was because the session stopped
   * (see stoppedSession), so the terminal says so instead of vanishing.
   */
  sessionStopped?(): Promise<Session | undefined>;
  /** The waits between attempts to reattach a shell whose connection was lost (tests shorten them). */
  reconnectDelaysMs?: readonly number[];
}

/**
 * Waits between attempts to reattach: within the service's grace for a detached shell (5 minutes),
 * the last repeated until RECONNECT_WINDOW_MS has passed.
 */
const RECONNECT_DELAYS_MS = [250, 1000, 2000, 4000, 8000, 15_000];
const RECONNECT_WINDOW_MS = 4.5 * 60_000;

/** What to do after the terminal ended: the shell is gone (the server hangs it up when the terminal is closed, or was away too long). */
const OPEN_ANOTHER = '"CrawlHub: Open Terminal" opens a new one.';

/**
 * Why the terminal's socket closed other than by the shell's own exit, in words for the user: what
 * failed, and what to do. Never a bare WebSocket close code ("code 1006").
 */
export function closeMessage(c: TerminalClose): string {
  if (c.refusal) return `The terminal could not connect: ${c.error ?? `the server answered ${c.refusal.status}`}`;
  if (!c.opened)
    return `The terminal could not connect to the server (${c.error ?? (c.reason || `code ${c.code}`)}). Check that the server is reachable; then ${OPEN_ANOTHER}`;
  switch (c.code) {
    case 1001:
      return `The server closed the terminal (${c.reason || 'going away'}): it is restarting or shutting down, and the shell is gone. Once it is back, ${OPEN_ANOTHER}`;
    case 1006:
      return `The connection to the server was lost${c.error ? ` (${c.error})` : ''}; the server ended the shell and what it ran. ${OPEN_ANOTHER}`;
    case 1008:
      return SIGN_IN_AGAIN;
    case 4404:
      return `The shell ended while the terminal was disconnected: the server keeps a shell for 5 minutes after its connection is lost, and not across its own restart. ${OPEN_ANOTHER}`;
    default:
      return `The terminal connection ended (${c.error ?? (c.reason || `code ${c.code}`)}). ${OPEN_ANOTHER}`;
  }
}

/** How long a session that is saving may take to be told stopped after its shell ended. */
const STOP_GRACE_MS = 5000;

/**
 * The session, if the state knows it is no longer live. A stop (idle, age, Close Session) saves
 * first, then removes the container, which ends the shell, and only then reports `stopped`: so a
 * session still `syncing` gets a few seconds for that report. Any other live status means the
 * shell just exited (`exit`), and the terminal closes at once.
 */
export function stoppedSession(
  state: { session(id: string): Session | undefined; onDidChange: Event<void> },
  sessionId: string,
  graceMs = STOP_GRACE_MS,
): Promise<Session | undefined> {
  const stopped = () => {
    const s = state.session(sessionId);
    return s && !isLive(s) ? s : undefined;
  };
  const now = state.session(sessionId);
  if (!now || !isLive(now)) return Promise.resolve(now);
  if (now.status !== 'syncing') return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const done = (s: Session | undefined) => {
      clearTimeout(timer);
      sub.dispose();
      resolve(s);
    };
    const sub = state.onDidChange(() => {
      const s = stopped();
      if (s) done(s);
    });
    const timer = setTimeout(() => done(undefined), graceMs);
  });
}

/** A shell in the session's container, as a VS Code terminal. */
export class SessionPseudoterminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  private readonly connection: TerminalConnection;
  private finished = false;
  private size: Dimensions = { columns: 80, rows: 24 };
  /** Reattaching after a lost connection: since when, the attempts made, the wait for the next. */
  private reconnecting: { since: number; attempts: number; timer?: NodeJS.Timeout } | undefined;
  private disposed = false;

  constructor(private readonly opts: SessionTerminalOptions) {
    this.connection = new TerminalConnection(opts.log);
    this.connection.onOutput((text) => this.writeEmitter.fire(text));
    // Reattached: a later loss starts its own attempts, over a new window.
    this.connection.onShell(() => (this.reconnecting = undefined));
    this.connection.onClose((closed) => {
      if (this.disposed) return;
      const { code, refusal } = closed;
      if (this.shouldReconnect(closed)) {
        void this.reconnect();
        return;
      }
      this.reconnecting = undefined;
      if (code === 1000 && !refusal) {
        void this.ended();
        return;
      }
      // The token is gone for every call, not just this one: the extension asks for a new sign-in.
      // (1008: the service found the token revoked while the terminal was open.)
      if (refusal?.status === 401 || (code === 1008 && closed.opened))
        opts.client.unauthorized(new ApiError(401, refusal?.error?.code ?? 'unauthorized', SIGN_IN_AGAIN));
      // Leave the reason on screen; the next key closes the terminal.
      this.finished = true;
      this.writeEmitter.fire(`\r\n${red(closeMessage(closed))}\r\n${dim('Press any key to close.')}`);
    });
  }

  open(initial: vscode.TerminalDimensions | undefined): void {
    this.size = { columns: initial?.columns ?? 80, rows: initial?.rows ?? 24 };
    this.writeEmitter.fire(dim(`Connecting to the ${this.opts.spiderName} session…\r\n`));
    this.connect();
  }

  /** Connects: a new shell, or (`attach`) the shell whose connection was lost. */
  private connect(attach?: string): void {
    try {
      const url = this.opts.client.socketUrl(`/api/sessions/${encodeURIComponent(this.opts.sessionId)}/terminal`, {
        cols: this.size.columns,
        rows: this.size.rows,
        ...(attach ? { attach } : {}),
      });
      this.connection.resize(this.size);
      this.connection.connect({ url, headers: this.opts.client.authorize(url) });
    } catch (err) {
      this.finished = true;
      this.reconnecting = undefined;
      this.writeEmitter.fire(red(`${(err as Error).message}\r\n`));
    }
  }

  /**
   * A shell the service keeps (it gave an id) whose connection was lost (1006: no close from the
   * service), or a reattach that could not reach the service yet (the network, a restart under
   * way), within the reconnect window. Any answer from the service (a refusal, a close with a
   * code) ends the terminal with its message instead.
   */
  private shouldReconnect(c: TerminalClose): boolean {
    if (!this.connection.id || c.refusal) return false;
    if (this.reconnecting) {
      const within = Date.now() - this.reconnecting.since < RECONNECT_WINDOW_MS;
      return within && (!c.opened || c.code === 1006);
    }
    return c.opened && c.code === 1006;
  }

  private async reconnect(): Promise<void> {
    if (!this.reconnecting) {
      this.reconnecting = { since: Date.now(), attempts: 0 };
      this.writeEmitter.fire(`\r\n${dim('Reconnecting…')}\r\n`);
    }
    const r = this.reconnecting;
    const delays = this.opts.reconnectDelaysMs ?? RECONNECT_DELAYS_MS;
    const wait = delays[Math.min(r.attempts, delays.length - 1)];
    r.attempts++;
    await new Promise<void>((resolve) => (r.timer = setTimeout(resolve, wait)));
    if (this.disposed || this.reconnecting !== r) return;
    // A session that stopped meanwhile took the shell with it: say so, as when the shell ends.
    const stopped = await this.opts.sessionStopped?.().catch(() => undefined);
    if (this.disposed || this.reconnecting !== r) return;
    if (stopped) {
      this.reconnecting = undefined;
      void this.ended();
      return;
    }
    const id = this.connection.id;
    if (id) this.connect(id);
  }

  handleInput(data: string): void {
    if (this.finished) {
      this.finish(undefined);
      return;
    }
    // Typed while the connection is being restored: not kept (it would run at a moment nobody sees).
    if (this.reconnecting && !this.connection.open) return;
    this.connection.input(data);
    this.opts.onInput();
  }

  setDimensions(size: vscode.TerminalDimensions): void {
    this.size = { columns: size.columns, rows: size.rows };
    this.connection.resize(this.size);
  }

  /** The user closed the terminal: the deliberate close, which hangs the shell up. */
  close(): void {
    this.disposed = true;
    clearTimeout(this.reconnecting?.timer);
    this.reconnecting = undefined;
    this.connection.dispose();
    this.writeEmitter.dispose();
    this.closeEmitter.dispose();
  }

  /** The shell ended: because the session stopped (say so; the next key closes), or by itself (close now). */
  private async ended(): Promise<void> {
    this.finished = true;
    const stopped = await this.opts.sessionStopped?.().catch(() => undefined);
    if (!stopped) {
      this.finish(0);
      return;
    }
    const why = stopped.status_reason ? ` (${stopped.status_reason})` : '';
    this.writeEmitter.fire(`\r\n${red(`The session ${stopped.status}${why}.`)} ${dim('Press any key to close.')}`);
  }

  private finish(code: number | undefined): void {
    this.finished = true;
    this.closeEmitter.fire(code);
  }
}
