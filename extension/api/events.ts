import WebSocket from 'ws';
import { Emitter } from '../core/emitter';
import { silentLog, type Log } from '../core/log';
import { Backoff } from './backoff';
import { readRefusal, UPGRADE_DROPPED, type SocketRefusal } from './socketRefusal';
import { ServerEvent } from './types';

const toText = (data: WebSocket.RawData): string =>
  (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');

/** Why a refused attempt failed, in words for the user (the outage text). */
function refusalReason(r: SocketRefusal): string {
  if (r.status === 426) return UPGRADE_DROPPED;
  // The service's own refusal (429 too_many_sockets: this user has too many windows open) says what to do.
  if (r.error) return `the server refused the connection (HTTP ${r.status}): ${r.error.message.replace(/\.$/, '')}`;
  return `the server answered HTTP ${r.status} instead of opening a WebSocket (a proxy in between may not pass WebSocket upgrades)`;
}

export type EventsState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  /**
   * `status` is the HTTP status when the server refused the upgrade: 401 (the token) or 403 (the
   * service's `forbidden_origin`) end the retries; `message` is the server's own words then.
   */
  | { kind: 'closed'; reason: string; status?: number; retryInMs?: number; message?: string };

/** Live updates have not been arriving for long enough to tell the user; the socket keeps retrying. */
export interface EventsOutage {
  /** Why the last attempt failed, in words for the user. */
  reason: string;
  /** Since when no `hello` has come (ms since the epoch). */
  since: number;
}

export interface EventsTarget {
  url: URL;
  headers: Record<string, string>;
}

export interface EventsSocketOptions {
  /** Where to connect, read on every attempt (the token or server may have changed); undefined: signed out. */
  target: () => EventsTarget | undefined;
  log?: Log;
  backoff?: Backoff;
  /** After a 429 (the server's `too_many_sockets`): minutes, not seconds (default 1 min doubling to 10 min). */
  throttledBackoff?: Backoff;
  /** The server pings every 30 s; silence for this long means the connection is dead. */
  staleMs?: number;
  /** Attempts in a row that end without a `hello` before it is an outage (default 3). */
  outageAfterFailures?: number;
  /** Or this long without a `hello` (default 30 s), whatever the attempts are doing. */
  outageAfterMs?: number;
  now?: () => number;
}

/**
 * /api/events: one WebSocket that pushes session changes, saves, stop warnings and file changes.
 * It reconnects with backoff, re-sends its `watch` requests after every reconnect, and stops
 * trying only when the server refuses the token (401) or this client's origin (the service's own
 * 403 `forbidden_origin`; a retry cannot fix either), or when stopped.
 *
 * Anything else that keeps it from connecting (a proxy that passes HTTP but not WebSocket upgrades,
 * say) leaves the rest of the extension working and looking online, yet no stop warning, save or
 * file change arrives. So after a few failed attempts, or a while without the server's `hello`,
 * it reports an outage (onOutage), which ends with the next `hello`. The server's 429 (this user
 * has too many live-update connections open) is an outage at once, in the server's words, and is
 * retried minutes apart: seconds apart, the retries would only hold the limit.
 */
export class EventsSocket {
  private readonly events = new Emitter<ServerEvent>();
  private readonly states = new Emitter<EventsState>();
  readonly onEvent = this.events.event;
  readonly onState = this.states.event;
  private readonly outages = new Emitter<EventsOutage | undefined>();
  /** Fires when an outage begins, on every failed attempt while it lasts, and (undefined) when it ends. */
  readonly onOutage = this.outages.event;

  private socket: WebSocket | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly watched = new Set<string>();
  private readonly log: Log;
  private readonly backoff: Backoff;
  private readonly throttledBackoff: Backoff;
  private readonly staleMs: number;
  private current: EventsState = { kind: 'closed', reason: 'not started' };
  /** Attempts in a row that ended without a `hello`. */
  private failures = 0;
  /** Since when no `hello` has come; undefined while greeted (or not trying). */
  private waitingSince: number | undefined;
  private outageTimer: NodeJS.Timeout | undefined;
  private lastFailure: string | undefined;
  private currentOutage: EventsOutage | undefined;
  private readonly outageAfterFailures: number;
  private readonly outageAfterMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: EventsSocketOptions) {
    this.log = opts.log ?? silentLog;
    this.backoff = opts.backoff ?? new Backoff();
    // Retrying a limit every few seconds only keeps it reached (and the server busy refusing).
    this.throttledBackoff = opts.throttledBackoff ?? new Backoff({ initialMs: 60_000, maxMs: 10 * 60_000 });
    this.staleMs = opts.staleMs ?? 75_000;
    this.outageAfterFailures = opts.outageAfterFailures ?? 3;
    this.outageAfterMs = opts.outageAfterMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  get state(): EventsState {
    return this.current;
  }

  /** Set while live updates have been failing for long enough to tell the user. */
  get outage(): EventsOutage | undefined {
    return this.currentOutage;
  }

  /** Connects (again) now; a running connection is replaced. An outage goes on until a `hello`. */
  start(): void {
    this.running = true;
    this.backoff.reset();
    this.throttledBackoff.reset();
    this.waitForHello();
    this.connect();
  }

  stop(): void {
    this.running = false;
    this.teardown();
    this.endOutage();
    this.setState({ kind: 'closed', reason: 'stopped' });
  }

  /** Asks for `files` events of a session; remembered across reconnects. */
  watch(sessionId: string): void {
    if (this.watched.has(sessionId)) return;
    this.watched.add(sessionId);
    this.sendJson({ type: 'watch', session_id: sessionId });
  }

  unwatch(sessionId: string): void {
    if (!this.watched.delete(sessionId)) return;
    this.sendJson({ type: 'unwatch', session_id: sessionId });
  }

  /**
   * The server refused to watch the session (not ready yet, say): it is no longer watched there, so
   * it is dropped here without an `unwatch`, and a later watch() sends the request again.
   */
  forget(sessionId: string): void {
    this.watched.delete(sessionId);
  }

  get watching(): ReadonlySet<string> {
    return this.watched;
  }

  dispose(): void {
    this.stop();
    this.events.dispose();
    this.states.dispose();
    this.outages.dispose();
  }

  /** Starts the clock for `outageAfterMs`, unless it runs already. */
  private waitForHello(): void {
    if (this.waitingSince !== undefined) return;
    this.waitingSince = this.now();
    this.outageTimer = setTimeout(
      () => this.declareOutage(this.lastFailure ?? 'the server has not greeted this window yet'),
      this.outageAfterMs,
    );
  }

  private declareOutage(reason: string): void {
    if (!this.running) return;
    if (!this.currentOutage) this.log.warn(`events: live updates unavailable: ${reason}`);
    this.currentOutage = { reason, since: this.waitingSince ?? this.now() };
    this.outages.fire(this.currentOutage);
  }

  /** Greeted, stopped or refused for good: no outage to report (a refused token is told elsewhere). */
  private endOutage(): void {
    clearTimeout(this.outageTimer);
    this.outageTimer = undefined;
    this.failures = 0;
    this.waitingSince = undefined;
    this.lastFailure = undefined;
    if (!this.currentOutage) return;
    this.currentOutage = undefined;
    this.log.info('events: live updates are back');
    this.outages.fire(undefined);
  }

  private setState(state: EventsState): void {
    this.current = state;
    this.states.fire(state);
  }

  private sendJson(message: unknown): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private teardown(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.staleTimer);
    this.retryTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.terminate();
    }
  }

  private connect(): void {
    this.teardown();
    if (!this.running) return;
    const target = this.opts.target();
    if (!target) {
      this.endOutage();
      this.setState({ kind: 'closed', reason: 'signed out' });
      return;
    }
    this.setState({ kind: 'connecting' });
    this.log.debug(`events: connecting to ${target.url.origin}`);
    const socket = new WebSocket(target.url, { headers: target.headers, handshakeTimeout: 15_000, followRedirects: false });
    this.socket = socket;
    /** The HTTP answer that came instead of the upgrade, body read. */
    let refusal: SocketRefusal | undefined;
    let greeted = false;
    let lastError: string | undefined;
    let silent = false;

    /** (Re)arms the dead-connection check. */
    const alive = () => {
      clearTimeout(this.staleTimer);
      this.staleTimer = setTimeout(() => {
        this.log.info('events: no word from the server; reconnecting');
        silent = true;
        socket.terminate();
      }, this.staleMs);
    };

    socket.on('open', () => {
      this.setState({ kind: 'open' });
      alive();
      for (const id of this.watched) socket.send(JSON.stringify({ type: 'watch', session_id: id }));
    });
    socket.on('ping', alive);
    socket.on('message', (data, isBinary) => {
      alive();
      if (isBinary) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(toText(data));
      } catch {
        return;
      }
      const event = ServerEvent.safeParse(parsed);
      if (!event.success) {
        this.log.debug('events: ignored a message of an unknown shape');
        return;
      }
      // A good greeting proves the server and token work: later drops start over at a short delay.
      if (event.data.type === 'hello') {
        greeted = true;
        this.backoff.reset();
        this.throttledBackoff.reset();
        this.endOutage();
      }
      this.events.fire(event.data);
    });
    // Every refusal's body is read: the service says why (a 429's limit, a 403's origin), a proxy does not.
    socket.on('unexpected-response', (_req, res) => {
      refusal = { status: res.statusCode ?? 0 };
      void readRefusal(res).then((r) => {
        refusal = r;
        this.log.warn(`events: the server refused the connection (${r.status}${r.error ? ` ${r.error.code}: ${r.error.message}` : ''})`);
        socket.terminate();
      });
    });
    socket.on('error', (err) => {
      lastError = err.message;
      this.log.debug(`events: ${err.message}`);
    });
    socket.on('close', (code, reason) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      clearTimeout(this.staleTimer);
      const refused = refusal?.status;
      const why = refused ? `refused (${refused})` : `closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`;
      if (!this.running) return;
      // A 403 is final only when it is the service's own refusal; a reverse proxy's 403 (a WAF, a
      // maintenance page) may pass once it is over, so that one is retried like any other outage.
      if (refused === 401 || (refused === 403 && refusal?.error?.code === 'forbidden_origin')) {
        this.running = false;
        this.endOutage();
        this.setState({ kind: 'closed', reason: why, status: refused, message: refusal?.error?.message });
        return;
      }
      const throttled = refused === 429;
      const delay = throttled ? this.throttledBackoff.next() : this.backoff.next();
      this.log.info(`events: ${why}; reconnecting in ${Math.round(delay / 100) / 10} s`);
      this.lastFailure = refusal
        ? refusalReason(refusal)
        : silent
          ? `no word from the server for ${Math.round(this.staleMs / 1000)} s`
          : `the connection ${lastError ? `failed (${lastError})` : `closed (${code})`}`;
      // A connection that was greeted and then dropped is not a failed attempt, but starts the clock.
      if (greeted) this.waitForHello();
      else this.failures++;
      // The server's own "too many" is no passing blip: say so now, not attempts (minutes) later.
      if (throttled || this.currentOutage || this.failures >= this.outageAfterFailures) this.declareOutage(this.lastFailure);
      this.setState({ kind: 'closed', reason: why, status: refused, retryInMs: delay });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }
}
