import WebSocket from 'ws';
import { Emitter } from '../core/emitter';
import { silentLog, type Log } from '../core/log';
import { Backoff } from './backoff';
import { ServerEvent } from './types';

const toText = (data: WebSocket.RawData): string =>
  (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');

export type EventsState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  /** `status` is the HTTP status when the server refused the upgrade (401: the token). */
  | { kind: 'closed'; reason: string; status?: number; retryInMs?: number };

export interface EventsTarget {
  url: URL;
  headers: Record<string, string>;
}

export interface EventsSocketOptions {
  /** Where to connect, read on every attempt (the token or server may have changed); undefined: signed out. */
  target: () => EventsTarget | undefined;
  log?: Log;
  backoff?: Backoff;
  /** The server pings every 30 s; silence for this long means the connection is dead. */
  staleMs?: number;
}

/**
 * /api/events: one WebSocket that pushes session changes, saves, stop warnings and file changes.
 * It reconnects with backoff, re-sends its `watch` requests after every reconnect, and stops
 * trying only when the server refuses the token (a retry cannot fix that) or when stopped.
 */
export class EventsSocket {
  private readonly events = new Emitter<ServerEvent>();
  private readonly states = new Emitter<EventsState>();
  readonly onEvent = this.events.event;
  readonly onState = this.states.event;

  private socket: WebSocket | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly watched = new Set<string>();
  private readonly log: Log;
  private readonly backoff: Backoff;
  private readonly staleMs: number;
  private current: EventsState = { kind: 'closed', reason: 'not started' };

  constructor(private readonly opts: EventsSocketOptions) {
    this.log = opts.log ?? silentLog;
    this.backoff = opts.backoff ?? new Backoff();
    this.staleMs = opts.staleMs ?? 75_000;
  }

  get state(): EventsState {
    return this.current;
  }

  /** Connects (again) now; a running connection is replaced. */
  start(): void {
    this.running = true;
    this.backoff.reset();
    this.connect();
  }

  stop(): void {
    this.running = false;
    this.teardown();
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

  get watching(): ReadonlySet<string> {
    return this.watched;
  }

  dispose(): void {
    this.stop();
    this.events.dispose();
    this.states.dispose();
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
      this.setState({ kind: 'closed', reason: 'signed out' });
      return;
    }
    this.setState({ kind: 'connecting' });
    this.log.debug(`events: connecting to ${target.url.origin}`);
    const socket = new WebSocket(target.url, { headers: target.headers, handshakeTimeout: 15_000, followRedirects: false });
    this.socket = socket;
    let refused: number | undefined;

    socket.on('open', () => {
      this.setState({ kind: 'open' });
      this.alive();
      for (const id of this.watched) socket.send(JSON.stringify({ type: 'watch', session_id: id }));
    });
    socket.on('ping', () => this.alive());
    socket.on('message', (data, isBinary) => {
      this.alive();
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
      if (event.data.type === 'hello') this.backoff.reset();
      this.events.fire(event.data);
    });
    socket.on('unexpected-response', (_req, res) => {
      refused = res.statusCode;
      this.log.warn(`events: the server refused the connection (${res.statusCode})`);
      res.resume();
      socket.terminate();
    });
    socket.on('error', (err) => this.log.debug(`events: ${err.message}`));
    socket.on('close', (code, reason) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      clearTimeout(this.staleTimer);
      const why = refused ? `refused (${refused})` : `closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`;
      if (!this.running) return;
      if (refused === 401 || refused === 403) {
        this.running = false;
        this.setState({ kind: 'closed', reason: why, status: refused });
        return;
      }
      const delay = this.backoff.next();
      this.log.info(`events: ${why}; reconnecting in ${Math.round(delay / 100) / 10} s`);
      this.setState({ kind: 'closed', reason: why, status: refused, retryInMs: delay });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /** (Re)arms the dead-connection check. */
  private alive(): void {
    clearTimeout(this.staleTimer);
    const socket = this.socket;
    this.staleTimer = setTimeout(() => {
      this.log.info('events: no word from the server; reconnecting');
      socket?.terminate();
    }, this.staleMs);
  }
}
