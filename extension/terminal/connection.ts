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
}

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
 * span two frames).
 */
export class TerminalConnection {
  private readonly output = new Emitter<string>();
  private readonly closed = new Emitter<TerminalClose>();
  readonly onOutput = this.output.event;
  readonly onClose = this.closed.event;
  private socket: WebSocket | undefined;
  private readonly decoder = new TextDecoder('utf-8');
  private pendingSize: Dimensions | undefined;
  /** Keystrokes typed before the socket opened, sent once it does. */
  private pendingInput: string[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(private readonly log: Log) {}

  connect(target: TerminalTarget): void {
    const socket = new WebSocket(target.url, { headers: target.headers, handshakeTimeout: 20_000, followRedirects: false });
    this.socket = socket;
    socket.binaryType = 'nodebuffer';
    let failure: string | undefined;
    let refusal: SocketRefusal | undefined;
    socket.on('open', () => {
      if (this.pendingSize) this.resize(this.pendingSize);
      for (const data of this.pendingInput) socket.send(Buffer.from(data, 'utf8'), { binary: true });
      this.pendingInput = [];
      this.pendingBytes = 0;
    });
    socket.on('message', (data, isBinary) => {
      const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) this.output.fire(this.decoder.decode(chunk, { stream: true }));
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
      if (this.ended) return;
      this.ended = true;
      const rest = this.decoder.decode();
      if (rest) this.output.fire(rest);
      this.closed.fire({ code, reason: reason.toString(), error: failure, refusal });
    });
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  input(data: string): void {
    if (this.open) {
      this.socket!.send(Buffer.from(data, 'utf8'), { binary: true });
    } else if (this.socket && !this.ended && this.pendingBytes + data.length <= 64 * 1024) {
      this.pendingInput.push(data);
      this.pendingBytes += data.length;
    }
  }

  resize(size: Dimensions): void {
    this.pendingSize = size;
    if (this.open) this.socket!.send(JSON.stringify({ type: 'resize', cols: size.columns, rows: size.rows }));
  }

  close(): void {
    this.ended = true;
    this.socket?.close(1000, 'closed by the user');
    this.socket = undefined;
  }

  dispose(): void {
    this.close();
    this.output.dispose();
    this.closed.dispose();
  }
}
