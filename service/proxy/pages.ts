import type http from 'node:http';
import type stream from 'node:stream';
import { FRAME_POLICY } from './headers';

/** The proxy's own answers, built once: what the browser shows instead of the IDE. */
export interface Page {
  status: number;
  reason: string;
  body: Buffer;
  /** Seconds after which the page reloads itself (and Retry-After), or 0. */
  refresh: number;
}

function page(status: number, reason: string, title: string, text: string, refresh = 0): Page {
  const meta = refresh ? `<meta http-equiv="refresh" content="${refresh}">` : '';
  const html =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">${meta}` +
    `<title>${title} · CrawlHub Code</title><style>body{font:16px/1.5 system-ui,sans-serif;margin:15vh auto;max-width:34em;padding:0 1em;color:#333}` +
    `h1{font-size:1.4em}</style></head><body><h1>${title}</h1><p>${text}</p></body></html>\n`;
  return { status, reason, body: Buffer.from(html), refresh };
}

export const PAGES = {
  starting: page(503, 'Service Unavailable', 'Starting your session…', 'The code session is starting. This page reloads by itself.', 2),
  gone: page(404, 'Not Found', 'No such session', 'This code session does not exist or has stopped. Start it again from CrawlHub.'),
  forbidden: page(403, 'Forbidden', 'Not signed in', 'Open this session from CrawlHub (the Open in Browser button) to sign in to it.'),
  ticket: page(
    403,
    'Forbidden',
    'This link has expired',
    'Sign-in links work once and for one minute. Open the session again from CrawlHub.',
  ),
  revoked: page(
    403,
    'Forbidden',
    'Signed out',
    'The API token this session was opened with has been revoked. Open the session again from CrawlHub.',
  ),
  origin: page(403, 'Forbidden', 'Forbidden', 'This request came from a page that may not use this session.'),
  otherUser: page(
    403,
    'Forbidden',
    'This browser uses CrawlHub as someone else',
    'This link opens a session of another CrawlHub user than the one this browser opened sessions as. Open it in a private window or another browser profile.',
  ),
  badGateway: page(
    502,
    'Bad Gateway',
    'The session is not answering',
    'Its container did not answer. This page tries again in a few seconds.',
    5,
  ),
  badRequest: page(400, 'Bad Request', 'Bad request', 'The address of this request is not valid.'),
  notImplemented: page(501, 'Not Implemented', 'Not implemented', 'This request uses a transfer coding the service does not pass on.'),
  error: page(500, 'Internal Server Error', 'Something went wrong', 'The service could not handle this request.'),
} satisfies Record<string, Page>;

const CSP = `default-src 'none'; style-src 'unsafe-inline'; ${FRAME_POLICY}`;

/** The headers of one of the proxy's pages, flat. */
export function pageHead(p: Page): string[] {
  const headers: string[] = [
    'Content-Type',
    'text/html; charset=utf-8',
    'Content-Length',
    String(p.body.length),
    'Cache-Control',
    'no-store',
    'Content-Security-Policy',
    CSP,
    'X-Content-Type-Options',
    'nosniff',
  ];
  if (p.refresh) headers.push('Retry-After', String(p.refresh));
  return headers;
}

export function sendPage(req: http.IncomingMessage, res: http.ServerResponse, p: Page): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(p.status, pageHead(p));
  res.end(req.method === 'HEAD' ? undefined : p.body);
}

/** Redirects; `setCookies` when trading a ticket for the IDE cookie. */
export function sendRedirect(res: http.ServerResponse, location: string, setCookies: string[] = []): void {
  const headers: string[] = [
    'Location',
    location,
    'Content-Length',
    '0',
    'Cache-Control',
    'no-store',
    'Referrer-Policy',
    'no-referrer',
    'Content-Security-Policy',
    FRAME_POLICY,
  ];
  for (const cookie of setCookies) headers.push('Set-Cookie', cookie);
  res.writeHead(302, headers);
  res.end();
}

/** The same answers on a socket whose upgrade is refused: a short text, then the connection closes. */
export function refuseUpgrade(socket: stream.Duplex, p: Page): void {
  if (socket.destroyed) return;
  const text = `${p.reason}\n`;
  socket.end(
    `HTTP/1.1 ${p.status} ${p.reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nCache-Control: no-store\r\nContent-Security-Policy: ${FRAME_POLICY}\r\n\r\n${text}`,
  );
  // A client that never reads must not keep the socket open.
  setTimeout(() => socket.destroy(), 5_000).unref();
}
