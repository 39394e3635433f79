import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A loopback HTTP server whose answers a test scripts; it records every request. */
export async function scriptedServer(
  answer: (req: Seen, res: http.ServerResponse) => void,
): Promise<{ url: string; seen: Seen[]; server: http.Server; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts) };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export const sampleSession = (over: Record<string, unknown> = {}) => ({
  session_id: '11111111-1111-1111-1111-111111111111',
  spider_id: 'sp1',
  spider_name: 'books',
  user_id: 'u1',
  status: 'ready',
  status_reason: 'code-server answers',
  url: 'http://127.0.0.1:1/code-server/11111111-1111-1111-1111-111111111111/',
  created_at: '2026-01-01T10:00:00.000Z',
  last_active_at: '2026-01-01T10:00:00.000Z',
  idle_deadline: '2026-01-01T10:30:00.000Z',
  expires_at: '2026-01-01T14:00:00.000Z',
  last_saved_at: null,
  save_pending: false,
  last_error: null,
  ...over,
});

export const sampleSave = (over: Record<string, unknown> = {}) => ({
  added: [],
  modified: [],
  deleted: [],
  unchanged: 0,
  skipped: [],
  conflicts: [],
  bytes: 0,
  dry_run: false,
  saved_at: null,
  ...over,
});
