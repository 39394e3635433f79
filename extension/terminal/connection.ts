import WebSocket from 'ws';
import { SIGN_IN_AGAIN } from '../api/errors';
import { readRefusal, UPGRADE_DROPPED, type SocketRefusal } from '../api/socketRefusal';
import { Emitter } from '../core/emitter';
import type { Log } from '../core/log';

export interface TerminalTarget {
  url: URL;
  headers: Record<string, string>;
}

export interface Dimensions {
  columns: number;
  rows: number;
}

export interface TerminalClose {
  code: number;
  reason: string;
  /** Why it failed, in words for the user. */
  error?: string;
  /** The HTTP answer that came instead of the upgrade (the service's error in it, when it sent one). */
  refusal?: SocketRefusal;
  /** The socket had opened: false when it never connected. */
  opened: boolean;
}

/** The largest input frame: far below the service's 1 MiB limit on a frame. */
export const INPUT_FRAME = 64 * 1024;

/** A refused upgrade in words for the user. */
function refusalMessage(r: SocketRefusal): string {
  if (r.status === 401) return SIGN_IN_AGAIN;
  // The extension sent "Upgrade: websocket"; the service answers 426 only to a request without it.
  if (r.status === 426) return `${UPGRADE_DROPPED[0].toUpperCase()}${UPGRADE_DROPPED.slice(1)}.`;
  return r.error?.message ?? `the server answered ${r.status}`;
}

/**
 * The terminal WebSocket of a session: binary frames carry the shell's bytes both ways, a text frame
 * `{"type":"resize",cols,rows}` resizes its TTY. Output is decoded as a UTF-8 stream (a character may
 * span two frames). Input goes in frames of at most INPUT_FRAME bytes: the service refuses a frame
 * over 1 MiB by ending the terminal, and a paste arrives as one piece of any size. The bytes of a
 * character cut between two frames are joined again in the TTY, which takes a byte stream.
 *
 * The service's first text frame `{"type":"terminal",id,offset}` names the shell: a socket lost
 * without a close leaves it running, detached, and `connect` again with `?attach=<id>` reattaches.
 * The service then replays its latest output from `offset`; what was shown already is skipped.
 * `close` (the user closed the terminal) says so first, and the service hangs the shell up.
 */
export class TerminalConnection {
  private readonly output = new Emitter<string>();
  private readonly closed = new Emitter<TerminalClose>();
  readonly onOutput = this.output.event;
  readonly onClose = this.closed.event;
  private readonly shell = new Emitter<string>();
  /** The service named the shell (on a reattach: the shell is back). */
  readonly onShell = this.shell.event;
  private socket: WebSocket | undefined;
  private readonly decoder = new TextDecoder('utf-8');
  private pendingSize: Dimensions | undefined;
  /** Keystrokes (and pastes) typed before the socket opened, sent once it does: none is dropped. */
  private pendingInput: Buffer[] = [];
  /** The socket opened at some point (a close before that is a failure to connect). */
  private opened = false;
  private ended = false;
  /** The shell's id, once the service said it (a service without reattaching never does). */
  private shellId: string | undefined;
  /** Where in the shell's output the next byte is, and how much of it was shown (bytes). */
  private position: number | undefined;
  private shown = 0;

  constructor(private readonly log: Log) {}

  /** The id a reattach names (`?attach=`), once the service gave one. */
  get id(): string | undefined {
    return this.shellId;
  }

  /** Connects (again, after a close: to reattach, with the id in `target`). */
  connect(target: TerminalTarget): void {
    this.ended = false;
    this.opened = false;
    const socket = new WebSocket(target.url, { headers: target.headers, handshakeTimeout: 20_000, followRedirects: false });
    this.socket = socket;
    socket.binaryType = 'nodebuffer';
    let failure: string | undefined;
    let refusal: SocketRefusal | undefined;
    socket.on('open', () => {
      this.opened = true;
      if (this.pendingSize) this.resize(this.pendingSize);
      const pending = this.pendingInput;
      this.pendingInput = [];
      for (const bytes of pending) this.send(bytes);
    });
    socket.on('message', (data, isBinary) => {
      if (this.socket !== socket) return;
      let chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary) return this.control(chunk);
      if (this.position !== undefined) {
        // A replay repeats what was shown before the connection was lost: skipped.
        const start = this.position;
        this.position += chunk.length;
        if (this.position <= this.shown) return;
        if (start < this.shown) chunk = chunk.subarray(this.shown - start);
        this.shown = this.position;
      }
      this.output.fire(this.decoder.decode(chunk, { stream: true }));
    });
    socket.on('unexpected-response', (_req, res) => {
      refusal = { status: res.statusCode ?? 0 };
      void readRefusal(res).then((r) => {
        refusal = r;
        failure = refusalMessage(r);
        socket.terminate();
      });
    });
    socket.on('error', (err) => {
      failure ??= err.message;
      this.log.debug(`terminal: ${err.message}`);
    });
    socket.on('close', (code, reason) => {
      if (this.ended || this.socket !== socket) return;
      this.ended = true;
      const rest = this.decoder.decode();
      if (rest) this.output.fire(rest);
      this.pendingInput = [];
      this.closed.fire({ code, reason: reason.toString(), error: failure, refusal, opened: this.opened });
    });
  }

  private control(frame: Buffer): void {
    let msg: { type?: unknown; id?: unknown; offset?: unknown };
    try {
      msg = JSON.parse(frame.toString('utf8')) as typeof msg;
    } catch {
      return;
    }
    if (msg?.type !== 'terminal' || typeof msg.id !== 'string' || !Number.isSafeInteger(msg.offset)) return;
    this.shellId = msg.id;
    this.position = msg.offset as number;
    // Output the service no longer kept (the shell wrote more than it keeps while detached) is gone.
    if (this.position > this.shown) this.shown = this.position;
    this.shell.fire(msg.id);
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  input(data: string): void {
    const bytes = Buffer.from(data, 'utf8');
    if (this.open) this.send(bytes);
    else if (this.socket && !this.ended) this.pendingInput.push(bytes);
  }

  /** Bytes to the shell, in frames the service takes (ws queues them in order while the network is slower). */
  private send(bytes: Buffer): void {
    for (let at = 0; at < bytes.length; at += INPUT_FRAME) {
      this.socket!.send(bytes.subarray(at, at + INPUT_FRAME), { binary: true });
    }
  }

  resize(size: Dimensions): void {
    this.pendingSize = size;
    if (this.open) this.socket!.send(JSON.stringify({ type: 'resize', cols: size.columns, rows: size.rows }));
  }

  close(): void {
    this.ended = true;
    // The user closed the terminal: the service hangs the shell up rather than keep it for a reattach.
    if (this.open) this.socket!.send(JSON.stringify({ type: 'close' }));
    this.socket?.close(1000, 'closed by the user');
    this.socket = undefined;
  }

  dispose(): void {
    this.close();
    this.output.dispose();
    this.closed.dispose();
    this.shell.dispose();
  }
}
