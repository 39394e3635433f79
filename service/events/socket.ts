import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { User } from '../auth/entities';
import { bearerToken } from '../auth/middleware';
import type { UserService } from '../auth/users';
import type { Orm } from '../db/orm';
import { AppError } from '../http/errors';
import type { Logger } from '../logger';
import type { SessionService } from '../sessions/service';
import type { WorkspaceWatcher } from '../sessions/watcher';
import type { DockerRuntime } from '../runtime/docker';
import { CONTAINER_USER, WORKSPACE } from '../sessions/workspace';
import type { EventHub, ServiceEvent } from './hub';
import { SHELL_PID_MARK, TERMINAL_DETACH_GRACE_MS, TerminalShell } from './terminals';

export interface SocketDeps {
  orm: Orm;
  users: UserService;
  sessions: SessionService;
  events: EventHub;
  watcher: WorkspaceWatcher;
  docker: DockerRuntime;
  logger: Logger;
  /** The service's own origin (read when a connection arrives: the port may be known only after listening). */
  publicOrigin(): string;
}

const TERMINAL_PATH = /^\/api\/sessions\/([0-9a-f-]{36})\/terminal$/;
const MAX_MESSAGE = 1024 * 1024;
/** Live-update connections one user may hold (windows, tabs), and terminals one session may have. */
const MAX_EVENT_SOCKETS_PER_USER = 20;
const MAX_TERMINALS_PER_SESSION = 10;
/** Events a client has not taken yet: past this, it is disconnected (its views reload on reconnect). */
export const MAX_EVENT_BACKLOG = 8 * 1024 * 1024;

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The API's WebSockets: /api/events (session changes, saves, warnings, file changes) and
 * /api/sessions/:id/terminal (a shell in the container). Both take the same Bearer token as the
 * rest of the API; a browser page cannot send that header, and a foreign Origin is refused too.
 */
/** Sessions one live-updates connection may watch at once. */
const MAX_WATCHES = 50;

export class ApiSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE });

  constructor(private readonly d: SocketDeps) {}

  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    const terminal = TERMINAL_PATH.exec(path);
    if (path !== '/api/events' && !terminal) return false;
    void this.accept(req, socket, head, terminal?.[1]).catch((err: unknown) => {
      const e = err instanceof AppError ? err : new AppError(500, 'internal', 'Something went wrong on the server.');
      if (!(err instanceof AppError)) this.d.logger.error({ err }, 'websocket upgrade failed');
      refuse(socket, e.status, e.code, e.message);
    });
    return true;
  }

  /** How long a shell whose socket was lost waits, detached, for its terminal to reattach (tests shorten it). */
  terminalGraceMs = TERMINAL_DETACH_GRACE_MS;
  /** Terminal shells, attached or detached, by id. */
  private readonly shells = new Map<string, TerminalShell>();

  /** How long a stop waits for clients to answer their close frame (tests may change it). */
  closeGraceMs = 2000;

  /**
   * Closes every socket with 1001 (the extension reconnects later). ws waits 30 s for the answer
   * to a close frame; a client that never gives it (asleep, or not reading) is cut off after a
   * short grace instead, so that it does not hold the stop up.
   */
  async close(): Promise<void> {
    // Shells do not outlive the service (a reattach after its restart finds none): hung up, not detached.
    const hungUp = [...this.shells.values()].map((shell) => shell.end(1001, 'service stopping', true));
    const clients = [...this.wss.clients];
    this.wss.close();
    const closed = clients.map(
      (client) => new Promise<void>((resolve) => (client.readyState === client.CLOSED ? resolve() : client.once('close', () => resolve()))),
    );
    for (const client of clients) client.close(1001, 'service stopping');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeGraceMs)))]);
    clearTimeout(timer);
    for (const client of clients) if (client.readyState !== client.CLOSED) client.terminate();
    await Promise.all(hungUp);
  }

  private async accept(req: http.IncomingMessage, socket: Duplex, head: Buffer, sessionId?: string): Promise<void> {
    const origin = req.headers.origin;
    if (origin && origin !== this.d.publicOrigin())
      throw new AppError(403, 'forbidden_origin', 'This WebSocket does not accept connections from that origin.');
    const token = bearerToken(req.headers.authorization);
    const em = this.d.orm.em.fork();
    const user = token ? await this.d.users.authenticate(em, token) : null;
    if (!user) throw new AppError(401, 'unauthorized', 'A valid API token is required: send "Authorization: Bearer <token>".');
    if (sessionId) {
      // Not while the session is saved to be stopped: see openTerminal.
      const { session } = await this.d.sessions.workspace(em, user, sessionId, { change: true });
      const url = new URL(req.url ?? '/', 'http://x');
      const size = (name: string, dflt: number) => Math.min(Math.max(Number(url.searchParams.get(name)) || dflt, 1), 1000);
      const attach = url.searchParams.get('attach');
      if (attach !== null) {
        if (socket.destroyed) return;
        // Ids are per user and session: another's id is as unknown as a made-up one.
        const found = this.shells.get(attach);
        const shell = found && found.owner.sessionId === session.id && found.owner.userId === user.id ? found : undefined;
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('error', () => ws.terminate());
          if (!shell) return void ws.close(4404, 'the shell ended (or is unknown): open a new terminal');
          shell.owner.token = token!;
          this.keepChecking(ws, token!, () => void shell.end(1008, 'the API token was revoked', true));
          shell.attach(ws, true);
        });
        return;
      }
      const shell = { containerId: session.containerId!, cols: size('cols', 80), rows: size('rows', 24), userId: user.id, token: token! };
      // Reset during the checks above: its 'close' has passed, and a count taken now would never be given back.
      if (socket.destroyed) return;
      const release = this.take(`terminal:${session.id}`, MAX_TERMINALS_PER_SESSION, 'terminals open in this session');
      // The place is the socket's until its shell runs, then the shell's (detached, it still counts).
      const place = { release, shell: false };
      // The shell starts only once the handshake is accepted: ws drops a bad one without calling
      // back, and a shell started before it would stay behind in the container.
      socket.once('close', () => place.shell || release());
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        let running: TerminalShell | undefined;
        this.keepChecking(ws, token!, () => void running?.end(1008, 'the API token was revoked', true));
        this.openTerminal(ws, session.id, shell, place, (s) => (running = s));
      });
      return;
    }
    if (socket.destroyed) return;
    const release = this.take(`events:${user.id}`, MAX_EVENT_SOCKETS_PER_USER, 'live-update connections open');
    socket.once('close', release);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.keepChecking(ws, token!);
      this.eventsChannel(ws, user);
    });
  }

  /** Open sockets per key (a user's event channels, a session's terminals). */
  private readonly open = new Map<string, number>();

  /** Counts a socket under `key`, or refuses it past `max` (429); the returned function releases it once. */
  private take(key: string, max: number, what: string): () => void {
    const n = this.open.get(key) ?? 0;
    if (n >= max) throw new AppError(429, 'too_many_sockets', `You have ${n} ${what} (at most ${max}); close one first.`);
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }

  /** How often an open socket's token is checked again (tests shorten it). */
  tokenRecheckMs = 30_000;

  /**
   * A ping, and the token asked after again, every 30 s: a socket outlives no revocation (of the
   * token, or of its user) by more than that.
   */
  private keepChecking(ws: WebSocket, token: string, revoked?: () => void): void {
    // A client gone without a close (a laptop asleep) misses its pong: its socket, and the place it
    // holds under the per-user limit, end at the next check instead of when TCP gives up.
    let answered = true;
    ws.on('pong', () => (answered = true));
    const timer = setInterval(() => {
      if (ws.readyState !== ws.OPEN) return;
      // A terminal whose shell is still starting reads nothing (paused), its pong included: not a vanished client.
      if (!answered && !ws.isPaused) return ws.terminate();
      answered = false;
      ws.ping();
      this.d.users.authenticate(this.d.orm.em.fork(), token).then(
        (user) => {
          if (user || ws.readyState !== ws.OPEN) return;
          revoked?.();
          if (ws.readyState !== ws.OPEN) return;
          // A terminal whose shell is still starting reads nothing yet (paused): it reads again, so
          // that the client's answer to this close can come in.
          ws.resume();
          ws.close(1008, 'the API token was revoked');
        },
        (err: unknown) => this.d.logger.warn({ err }, 'could not check a socket’s token again'),
      );
    }, this.tokenRecheckMs);
    ws.on('close', () => clearInterval(timer));
  }

  private eventsChannel(ws: WebSocket, user: User): void {
    /** The sessions this connection watches: `live` while the watch it joined runs (or its lookup is under way). */
    const watches = new Map<string, { end(): void; live(): boolean }>();
    /**
     * Everything this connection sends (events, and the answers to its own requests) goes through
     * here: a client that stopped reading is let go rather than buffered for without end.
     */
    const reply = (message: unknown) => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_EVENT_BACKLOG) return ws.terminate();
      ws.send(JSON.stringify(message));
    };
    const send = (event: ServiceEvent) => {
      if (event.type === 'files' && !watches.has(event.session_id)) return;
      reply(event);
    };
    const unsubscribe = this.d.events.subscribe(user, send);
    reply({ type: 'hello', user: { id: user.id, name: user.name, isAdmin: user.isAdmin } });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse((data as Buffer).toString('utf8'));
      } catch {
        return;
      }
      // JSON, but no object (null, a number, a list): nothing this channel takes. (A throw here
      // would escape ws's frame parser and end the service.)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
      const msg = parsed as { type?: unknown; session_id?: unknown };
      const sessionId = typeof msg.session_id === 'string' ? msg.session_id : '';
      // A watch whose session stopped has ended in the watcher: asked again (the session resumed), it
      // starts anew, or joins the new watch that another connection (another window) started first.
      if (msg.type === 'watch' && sessionId && watches.get(sessionId)?.live() === false) {
        watches.get(sessionId)?.end();
        watches.delete(sessionId);
      }
      if (msg.type === 'watch' && sessionId && !watches.has(sessionId)) {
        if (watches.size >= MAX_WATCHES) {
          const error = { code: 'too_many_watches', message: `A connection watches at most ${MAX_WATCHES} sessions; unwatch one first.` };
          reply({ type: 'error', session_id: sessionId, error });
          return;
        }
        // Held at once (an unwatch that comes before the lookup ends cancels it), and counted against the limit.
        let leave: ReturnType<WorkspaceWatcher['watch']> | null = null;
        let cancelled = false;
        const pending = {
          end: () => {
            cancelled = true;
            leave?.();
          },
          live: () => leave?.live() ?? !cancelled,
        };
        watches.set(sessionId, pending);
        void this.d.sessions
          .workspace(this.d.orm.em.fork(), user, sessionId)
          .then(({ session, workspace }) => {
            if (cancelled || ws.readyState !== ws.OPEN || watches.get(sessionId) !== pending) return;
            leave = this.d.watcher.watch(sessionId, session.userId, workspace);
          })
          .catch((err: unknown) => {
            if (watches.get(sessionId) === pending) watches.delete(sessionId);
            const e = err instanceof AppError ? err : new AppError(500, 'internal', 'watch failed');
            reply({ type: 'error', session_id: sessionId, error: { code: e.code, message: e.message } });
          });
      } else if (msg.type === 'unwatch' && sessionId) {
        watches.get(sessionId)?.end();
        watches.delete(sessionId);
      }
    });
    ws.on('close', () => {
      unsubscribe();
      for (const watch of watches.values()) watch.end();
    });
    ws.on('error', () => ws.terminate());
  }

  private openTerminal(
    ws: WebSocket,
    sessionId: string,
    shell: { containerId: string; cols: number; rows: number; userId: string; token: string },
    place: { release(): void; shell: boolean },
    onShell: (shell: TerminalShell) => void,
  ): void {
    // Frames wait in the socket (not in memory) until the shell is there to take them.
    ws.pause();
    ws.on('error', () => ws.terminate());
    const started = (tty: Awaited<ReturnType<DockerRuntime['execTty']>>) => {
      const term = new TerminalShell({ sessionId, userId: shell.userId, token: shell.token }, tty, {
        touch: () => this.d.sessions.touch(sessionId),
        hangUp: (pid) => this.hangUp(shell.containerId, pid),
        ended: (s) => {
          if (this.shells.get(s.id) === s) this.shells.delete(s.id);
          place.release();
        },
        stillValid: async (token) => (await this.d.users.authenticate(this.d.orm.em.fork(), token)) !== null,
        graceMs: () => this.terminalGraceMs,
        recheckMs: () => this.tokenRecheckMs,
      });
      // Closed while its shell started: hung up once it says its id (the engine would leave it running).
      if (ws.readyState !== ws.OPEN) return void term.end(1000, 'closed', true);
      place.shell = true;
      this.shells.set(term.id, term);
      onShell(term);
      term.attach(ws, false);
    };
    // A stop's save (Close, idle, age) freezes the session's processes before it reads the files: a
    // shell started after that would write what goes with the container. Counted as a file change
    // until it runs (its first output), the shell is refused by a stop under way, or waited for (and
    // then frozen) by one that begins.
    this.d.sessions
      .change(sessionId, async () => {
        const tty = await this.d.docker
          // The shell's process id comes first (read off the stream, never shown): closing the terminal
          // hangs that shell up, as closing a terminal window does, instead of leaving it running. An
          // interactive shell, not a login one, as the editor's own terminal starts it: a login shell's
          // /etc/profile sets PATH anew and would drop the image's (the crawl tools' virtualenv first).
          .execTty(shell.containerId, ['/bin/sh', '-c', `echo ${SHELL_PID_MARK}$$; exec /bin/bash -i`], {
            user: CONTAINER_USER,
            workingDir: WORKSPACE,
            env: ['TERM=xterm-256color', 'HOME=/home/coder'],
            cols: shell.cols,
            rows: shell.rows,
          });
        await new Promise<void>((running) => {
          const timer = setTimeout(running, 10_000);
          const done = () => (clearTimeout(timer), running());
          tty.socket.once('data', done).once('close', done);
          started(tty);
        });
      })
      .catch((err: unknown) => {
        this.d.logger.warn({ err, sessionId }, 'terminal shell did not start');
        ws.resume();
        const stopping = err instanceof AppError && err.code === 'session_stopping';
        ws.close(1011, stopping ? 'the session is being saved and stopped' : 'the shell could not start in the session container');
      });
  }

  /** SIGHUP to a terminal's shell, which passes it on to its jobs, as when a terminal window closes. */
  private hangUp(containerId: string, pid: number): Promise<void> {
    return this.d.docker.exec(containerId, ['kill', '-HUP', String(pid)], { user: CONTAINER_USER, timeoutMs: 10_000 }).then(
      () => undefined,
      (err: unknown) => this.d.logger.debug({ err }, 'could not hang up a terminal shell'),
    );
  }
}
