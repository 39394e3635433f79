import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** Terminal output unsent to the browser before the shell's output is paused. */
export const TERMINAL_BACKLOG = 1024 * 1024;
/** The shell's latest output kept for a reattach (replayed to the new socket). */
export const TERMINAL_REPLAY = 256 * 1024;
/** How long a shell whose socket was lost (not closed by its user) waits for its terminal to reattach. */
export const TERMINAL_DETACH_GRACE_MS = 5 * 60_000;
/** The shell's first line: its process id. */
export const SHELL_PID_MARK = 'crawlhub-shell-pid:';
const SHELL_PID_LINE = new RegExp(`^${SHELL_PID_MARK}(\\d+)\\r?$`);

export interface ShellOwner {
  sessionId: string;
  userId: string;
  /** The token of the socket last attached: a detached shell ends when it is revoked. */
  token: string;
}

export interface ShellHooks {
  /** Output counts as activity in the session. */
  touch(): void;
  /** SIGHUP to the shell (and so to its jobs); resolves once sent (or given up on). */
  hangUp(pid: number): Promise<void>;
  /** The shell is gone (exited, hung up, expired): its place under the session's limit is free. */
  ended(shell: TerminalShell): void;
  /** Whether the token still authenticates its user (checked while the shell is detached). */
  stillValid(token: string): Promise<boolean>;
  graceMs(): number;
  recheckMs(): number;
}

type Tty = { socket: Duplex; resize(cols: number, rows: number): Promise<void> };

/**
 * A terminal's shell in the session container, outliving the socket that started it: a socket that
 * is lost (the network, a laptop asleep) detaches it, and the shell goes on running for a grace
 * period, its latest output kept (at most TERMINAL_REPLAY bytes: older output is dropped, never held
 * without end), until a socket of the same user and session reattaches with its id. A close the
 * client asks for (1000, no code, or `{"type":"close"}`), the shell's exit, a revoked token, the
 * grace's end and the service's stop end it: all but its exit hang it up.
 *
 * Bytes both ways with backpressure: the shell's output waits in its stream while the socket holds
 * more than 1 MiB unsent, and the socket's input waits in it while the shell is not taking it.
 */
export class TerminalShell {
  /** Random and unguessable; also checked against its user and session before any reattach. */
  readonly id = randomBytes(24).toString('base64url');
  private pid: number | null = null;
  private head: Buffer | null = Buffer.alloc(0);
  /** The latest output (for a replay), and the output's total length so far. */
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private total = 0;
  private ws: WebSocket | null = null;
  private unbind: (() => void) | null = null;
  private ended = false;
  private inputWaits = false;
  // Input waits here until the shell's id is read (echoed before it, the id would be missed, and
  // shown); a resize is applied at once, as the shell starts.
  private early: (Buffer | string)[] | null = [];
  private earlyBytes = 0;
  // Input after a resize waits for it: a command typed after the window changed size runs at the new size.
  private resizing = 0;
  private afterResize: (Buffer | string)[] = [];
  private afterResizeBytes = 0;
  private readonly fallback: NodeJS.Timeout;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Resolves once the shell's id is read, or it is gone. */
  private pidSeen!: () => void;
  private readonly pidKnown = new Promise<void>((resolve) => (this.pidSeen = resolve));
  /** The client said `{"type":"close"}`: the close that follows ends the shell, whatever its code. */
  private deliberate = false;
  private recheckTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly owner: ShellOwner,
    private readonly tty: Tty,
    private readonly hooks: ShellHooks,
  ) {
    // A shell that never says its id (it cannot start, say) still gets its terminal.
    this.fallback = setTimeout(() => this.head !== null && this.started(this.head), 10_000);
    tty.socket.on('data', (chunk: Buffer) => {
      hooks.touch();
      if (this.head === null) return this.output(chunk);
      // The first line is the shell's process id.
      this.head = Buffer.concat([this.head, chunk]);
      const nl = this.head.indexOf(0x0a);
      if (nl === -1 && this.head.length < 128) return;
      const match = nl === -1 ? null : SHELL_PID_LINE.exec(this.head.subarray(0, nl).toString('latin1'));
      if (match) this.pid = Number(match[1]);
      this.started(match ? this.head.subarray(nl + 1) : this.head);
    });
    // It exited by itself: nothing to hang up (its id may be another process's by now).
    const exited = () => {
      this.pid = null;
      this.pidSeen();
      void this.end(1000, 'the shell exited', false);
    };
    tty.socket.on('end', exited);
    tty.socket.on('close', exited);
    tty.socket.on('error', () => void this.end(1011, 'the terminal stream failed', true));
  }

  get attached(): boolean {
    return this.ws !== null;
  }

  /**
   * Puts `ws` on the shell: first a text frame `{"type":"terminal","id","offset"}` (offset: where in
   * the shell's output the bytes that follow start), then the kept output (on a reattach), then live
   * output. A socket still attached (one the service has not yet found dead) is let go.
   */
  attach(ws: WebSocket, replay: boolean): void {
    if (this.ended) return void ws.close(4404, 'the shell ended');
    this.release();
    clearTimeout(this.graceTimer);
    clearInterval(this.recheckTimer);
    this.ws = ws;
    const offset = replay ? this.total - this.keptBytes : this.total;
    ws.send(JSON.stringify({ type: 'terminal', id: this.id, offset }));
    if (replay && this.keptBytes > 0) this.forward(Buffer.concat(this.kept));
    const onMessage = (data: Buffer, isBinary: boolean) => this.message(data, isBinary);
    const onClose = (code: number) => this.lost(ws, code);
    const onError = () => ws.terminate();
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', onError);
    this.unbind = () => {
      ws.off('message', onMessage);
      ws.off('close', onClose);
      ws.off('error', onError);
    };
    this.tty.socket.resume();
    if (!this.inputWaits && this.early === null && this.resizing === 0) ws.resume();
  }

  /** Ends the shell: hangs it up (unless it exited), and closes its socket with `code`. */
  async end(code: number, reason: string, hangUp: boolean): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.fallback);
    clearTimeout(this.graceTimer);
    clearInterval(this.recheckTimer);
    const ws = this.ws;
    this.release();
    if (ws && ws.readyState === ws.OPEN) ws.close(code, reason);
    this.kept = [];
    this.keptBytes = 0;
    this.hooks.ended(this);
    // Ended before it said its id (closed the moment it opened, on a busy engine): the id is waited
    // for, or the hang-up would miss a shell that then runs on with nothing attached.
    if (hangUp && this.head !== null) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.pidKnown, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
      clearTimeout(timer);
    }
    const pid = this.pid;
    this.pid = null;
    try {
      if (hangUp && pid !== null) await this.hooks.hangUp(pid);
    } finally {
      this.tty.socket.destroy();
    }
  }

  private release(): void {
    this.unbind?.();
    this.unbind = null;
    const old = this.ws;
    this.ws = null;
    if (old && old.readyState !== old.CLOSED && !this.ended) old.terminate();
  }

  /** The socket closed: by the user's wish (1000, no code, or after `{"type":"close"}`) the shell ends; otherwise it waits, detached. */
  private lost(ws: WebSocket, code: number): void {
    if (this.ws !== ws) return;
    this.unbind?.();
    this.unbind = null;
    this.ws = null;
    if (this.ended) return;
    if (this.deliberate || code === 1000 || code === 1005) return void this.end(1000, 'closed', true);
    // Output goes on into the kept buffer (the oldest dropped past its size): the shell never blocks on a lost socket.
    this.tty.socket.resume();
    this.graceTimer = setTimeout(() => void this.end(1000, 'detached too long', true), this.hooks.graceMs());
    this.recheckTimer = setInterval(() => {
      this.hooks.stillValid(this.owner.token).then(
        (valid) => valid || this.ws !== null || void this.end(1008, 'the API token was revoked', true),
        () => undefined,
      );
    }, this.hooks.recheckMs());
  }

  private started(rest: Buffer): void {
    clearTimeout(this.fallback);
    this.head = null;
    this.pidSeen();
    this.output(rest);
    const waiting = this.early ?? [];
    this.early = null;
    for (const data of waiting) this.input(data);
    if (!this.inputWaits && this.resizing === 0) this.ws?.resume();
  }

  private output(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.total += chunk.length;
    this.kept.push(chunk);
    this.keptBytes += chunk.length;
    while (this.keptBytes - this.kept[0].length >= TERMINAL_REPLAY) this.keptBytes -= this.kept.shift()!.length;
    if (this.keptBytes > TERMINAL_REPLAY) {
      const cut = this.keptBytes - TERMINAL_REPLAY;
      this.kept[0] = this.kept[0].subarray(cut);
      this.keptBytes -= cut;
    }
    this.forward(chunk);
  }

  private forward(chunk: Buffer): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (this.ws === ws && this.tty.socket.isPaused() && ws.bufferedAmount < TERMINAL_BACKLOG) this.tty.socket.resume();
    });
    if (ws.bufferedAmount >= TERMINAL_BACKLOG) this.tty.socket.pause();
  }

  private input(data: Buffer | string): void {
    if (this.early !== null) {
      this.early.push(data);
      this.earlyBytes += data.length;
      if (this.earlyBytes > TERMINAL_BACKLOG) this.ws?.pause(); // (the rest waits in the socket)
      return;
    }
    if (this.resizing > 0) {
      this.afterResize.push(data);
      this.afterResizeBytes += data.length;
      if (this.afterResizeBytes > TERMINAL_BACKLOG) this.ws?.pause();
      return;
    }
    if (!this.tty.socket.write(data) && !this.inputWaits) {
      this.inputWaits = true;
      this.ws?.pause();
      this.tty.socket.once('drain', () => {
        this.inputWaits = false;
        this.ws?.resume();
      });
    }
  }

  private message(data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.input(data);
    try {
      const msg = JSON.parse(data.toString('utf8')) as { type?: string; cols?: unknown; rows?: unknown; data?: unknown };
      if (msg.type === 'resize' && Number.isInteger(msg.cols) && Number.isInteger(msg.rows)) {
        const cols = Math.min(Math.max(msg.cols as number, 1), 1000);
        const rows = Math.min(Math.max(msg.rows as number, 1), 1000);
        this.resizing++;
        void this.tty
          .resize(cols, rows)
          .catch(() => undefined)
          .finally(() => {
            if (--this.resizing > 0) return;
            const waiting = this.afterResize;
            this.afterResize = [];
            this.afterResizeBytes = 0;
            for (const d of waiting) this.input(d);
            if (!this.inputWaits && this.early === null) this.ws?.resume();
          });
      } else if (msg.type === 'input' && typeof msg.data === 'string') {
        this.input(msg.data);
      } else if (msg.type === 'close') {
        // The user closed the terminal: the close that follows (whatever its code) ends the shell.
        this.deliberate = true;
      }
    } catch {
      // ignore malformed control frames
    }
  }
}
