import type { IncomingMessage } from 'node:http';

/** More than the service's error body ever is; a proxy's HTML page is cut here. */
const MAX_REFUSAL_BODY = 16 * 1024;

/** An HTTP answer instead of a WebSocket upgrade: the status, and the service's own error when that is what came. */
export interface SocketRefusal {
  status: number;
  /** The service's `{"error":{"code","message"}}`; absent for anything else (a proxy's page, an empty body). */
  error?: { code: string; message: string };
}

/** Reads the refused upgrade's answer (the events socket and the terminal both get the service's reason this way). */
export function readRefusal(res: IncomingMessage): Promise<SocketRefusal> {
  const status = res.statusCode ?? 0;
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REFUSAL_BODY) parts.push(chunk);
    });
    const done = () => resolve({ status, error: serviceError(Buffer.concat(parts).toString('utf8')) });
    res.on('end', done);
    // Cut short (a handshake timeout, a reset): what came is all there is.
    res.on('close', done);
    res.on('error', done);
  });
}

function serviceError(text: string): SocketRefusal['error'] {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = body.error ?? {};
    return typeof code === 'string' && typeof message === 'string' ? { code, message } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A 426 (`upgrade_required`) reaches the extension only when something between it and the server
 * dropped the `Upgrade: websocket` it sent: the service answers 426 to a plain GET of its sockets.
 */
export const UPGRADE_DROPPED = 'a proxy between VS Code and the server does not pass WebSocket upgrades (HTTP 426)';
