import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { Metrics } from '../../service/http/metrics';
import { createLogger } from '../../service/logger';
import { createProxy, type Proxy, type ProxyOptions, type ProxySession, type ProxySessions, type ProxyTokens } from '../../service/proxy';

/** What the sessions service would hold, in memory, with every touch recorded. */
export class FakeSessions implements ProxySessions {
  readonly sessions = new Map<string, ProxySession>();
  readonly touches: string[] = [];
  readonly secrets = new Map<string, string>();

  add(s: ProxySession, secret = randomBytes(16).toString('hex')): ProxySession {
    this.sessions.set(s.id, s);
    this.secrets.set(s.id, secret);
    return s;
  }
  find(id: string): ProxySession | null {
    return this.sessions.get(id) ?? null;
  }
  touch(id: string): void {
    this.touches.push(id);
  }
  upstreamSecret(id: string): string {
    return this.secrets.get(id) ?? 'none';
  }
}

/** The API tokens launches are asked with: all stand but those revoked here. */
export class FakeTokens implements ProxyTokens {
  readonly revoked = new Set<string>();
  /** Questions asked. */
  asked = 0;
  /** The database is away: every question fails. */
  failing = false;
  isLive(tokenId: string): Promise<boolean> {
    this.asked++;
    return this.failing ? Promise.reject(new Error('the database is away')) : Promise.resolve(!this.revoked.has(tokenId));
  }
}

/** The token a launch is asked with when a test does not name one. */
export const TOKEN = '70ce0000-0000-4000-8000-000000000001';

export interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  body?: string;
  /** The proxy's end of the upstream connection. */
  remotePort?: number;
}

/**
 * The stand-in container: answers every request with what it received, echoes request bodies,
 * streams for as long as the client reads, dies mid-response on request, and echoes WebSocket
 * messages after first sending the handshake's headers.
 */
/** What `/ws-flood` sends: 48 MiB, well beyond what the kernel's socket buffers on the way can hold. */
export const FLOOD_FRAMES = 768;
export const FLOOD_FRAME_BYTES = 64 * 1024;

export interface Echo {
  port: number;
  /** Responses the client abandoned (their upstream request was closed early). */
  abandoned: number;
  /** Bytes the newest `/ws-flood` socket still holds unsent (what the proxy has not taken yet). */
  floodBuffered: number;
  /** The request URLs of the WebSockets whose container side has closed, in the order they closed. */
  wsClosed: readonly string[];
  /** Every request URL that reached the container (WebSocket handshakes too), in order. */
  urls: readonly string[];
  close(): Promise<void>;
}

export async function startEcho(): Promise<Echo> {
  const state = {
    abandoned: 0,
    flood: null as WebSocket | null,
    wsClosed: [] as string[],
    urls: [] as string[],
    silent: new Set<Duplex>(),
  };
  const server = http.createServer((req, res) => {
    state.urls.push(req.url!);
    const received = (body?: string): Received => ({
      method: req.method!,
      url: req.url!,
      rawHeaders: req.rawHeaders,
      body,
      remotePort: req.socket.remotePort,
    });
    if (req.url === '/stream') {
      // Writes until the client goes away, for at most 10 s.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 120);
      const started = Date.now();
      const timer = setInterval(() => {
        if (Date.now() - started > 10_000) {
          clearInterval(timer);
          res.end();
          return;
        }
        res.write(chunk);
      }, 5);
      res.on('close', () => {
        clearInterval(timer);
        if (!res.writableFinished) state.abandoned++;
      });
      return;
    }
    if (req.url === '/die') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    if (req.url === '/big') {
      // 8 MiB handed to the socket at once: the proxy has to hold it back for a slow browser.
      const body = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
      return;
    }
    if (req.url === '/early-hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('final');
      return;
    }
    if (req.url === '/close-after') {
      // Answers, then closes the kept-alive connection behind the proxy's back.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok', () => req.socket.end());
      return;
    }
    if (req.url === '/not-modified' || req.url === '/no-content') {
      // Bodiless answers that still name a length (a 304's is the representation's, RFC 9110 §8.6).
      res.writeHead(req.url === '/no-content' ? 204 : 304, { etag: '"v1"', 'content-length': '1234' });
      res.end();
      return;
    }
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/elsewhere?x=1' });
      res.end();
      return;
    }
    if (req.url!.startsWith('/origin-wide')) {
      // Headers that act on a whole origin; Service-Worker-Allowed as the query says.
      const swa = new URL(req.url!, 'http://x').searchParams.get('swa') ?? '/';
      res.writeHead(200, [
        'Service-Worker-Allowed',
        swa,
        'Clear-Site-Data',
        '"cookies", "storage"',
        'NEL',
        '{"report_to":"x","max_age":86400}',
        'Report-To',
        '{"group":"x","max_age":86400,"endpoints":[{"url":"https://evil.example/r"}]}',
        'Reporting-Endpoints',
        'x="https://evil.example/r"',
        'Alt-Svc',
        'h2=":8443"',
        'Strict-Transport-Security',
        'max-age=31536000; includeSubDomains',
        'X-Kept',
        'yes',
      ]);
      res.end('ok');
      return;
    }
    if (req.url === '/set-cookie') {
      res.writeHead(200, [
        'Set-Cookie',
        'pref=dark; Path=/; Domain=example.com; HttpOnly',
        'Set-Cookie',
        'crawlhub_ide=planted; Path=/',
        'Set-Cookie',
        'code-server-session=x; Path=/',
        // Nameless cookies: a browser sends each back as its value alone, `crawlhub_ide_user=planted`.
        'Set-Cookie',
        '=crawlhub_ide_user=planted',
        'Set-Cookie',
        ' = crawlhub_ide=planted; Path=/',
      ]);
      res.end('ok');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? Buffer.concat(chunks).toString() : undefined;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received(body)));
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  wss.on('headers', (headers, req) => {
    // A 101 that also says what only the service may say for its host, and plants cookies.
    if (req.url === '/ws-headers')
      headers.push(
        'Strict-Transport-Security: max-age=31536000; includeSubDomains',
        'Alt-Svc: h2=":8443"',
        'Clear-Site-Data: "cookies"',
        'Set-Cookie: crawlhub_ide=planted; Path=/',
        'Set-Cookie: pref=dark; Path=/',
        'X-Kept: yes',
      );
  });
  server.on('upgrade', (req, socket, head) => {
    state.urls.push(req.url!);
    if (req.url === '/ws-silent') {
      // Takes the handshake and never answers it; goes when the proxy's side does.
      state.silent.add(socket);
      socket.on('error', () => undefined);
      socket.once('end', () => socket.destroy());
      socket.once('close', () => {
        state.silent.delete(socket);
        state.wsClosed.push(req.url!);
      });
      return;
    }
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nrefused');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once('close', () => state.wsClosed.push(req.url!));
      ws.send(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders }));
      // The container vanishing mid-conversation: the first message kills the connection.
      if (req.url === '/ws-die') ws.once('message', () => socket.destroy());
      if (req.url === '/ws-flood') {
        // "flood": FLOOD_FRAMES numbered frames at once, then a clean close behind them.
        state.flood = ws;
        ws.once('message', () => {
          for (let i = 0; i < FLOOD_FRAMES; i++) ws.send(Buffer.alloc(FLOOD_FRAME_BYTES, i % 256));
          ws.close(1000, 'flood done');
        });
        return;
      }
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get abandoned() {
      return state.abandoned;
    },
    get floodBuffered() {
      return state.flood?.bufferedAmount ?? 0;
    },
    get wsClosed() {
      return state.wsClosed;
    },
    get urls() {
      return state.urls;
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      for (const s of state.silent) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ProxyServer {
  proxy: Proxy;
  url: string;
  port: number;
  metrics: Metrics;
  /** Everything the proxy logged. */
  logs: () => string;
  /** Requests the proxy passed on to "Koa". */
  passedOn: string[];
  /** Requests Node's HTTP server parsed (those the fast lane relayed are not among them). */
  nodeRequests: { count: number };
  close(): Promise<void>;
}

/** The proxy inside a plain http.Server configured like main.ts's, with a stand-in for Koa behind it. */
export async function startProxyServer(sessions: ProxySessions, options: Partial<ProxyOptions> = {}): Promise<ProxyServer> {
  const chunks: string[] = [];
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    }),
  );
  const metrics = new Metrics();
  const passedOn: string[] = [];
  // The public URL names the port, so the proxy is built once the server listens.
  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, maxHeaderSize: 64 * 1024 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const proxy = createProxy(sessions, {
    publicUrl: url,
    codeDomain: '',
    trustedOrigins: [],
    secureCookies: 'auto',
    secretKey: randomBytes(32),
    logger,
    metrics,
    tokens: new FakeTokens(),
    ...options,
  });
  // As main.ts: the fast lane reads the connections first (PROXY_FAST_LANE=off runs these tests without it).
  if (process.env.PROXY_FAST_LANE !== 'off') proxy.install(server);
  const nodeRequests = { count: 0 };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    nodeRequests.count++;
    if (proxy.handleRequest(req, res)) return;
    passedOn.push(req.url!);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('koa');
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!proxy.handleUpgrade(req, socket, head)) socket.destroy();
  });
  return {
    proxy,
    url,
    port,
    metrics,
    logs: () => chunks.join(''),
    passedOn,
    nodeRequests,
    async close() {
      proxy.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One request with exactly the headers given (fetch would add and forbid some). */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string | string[]> | string[]; body?: string | Buffer; path?: string } = {},
): Promise<Reply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: opts.path ?? u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

/** Sends raw bytes and returns whatever comes back before the server closes or `ms` pass. */
export function rawExchange(port: number, bytes: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', done);
    socket.on('error', done);
    socket.write(bytes);
  });
}

/** The `name=value` of a Set-Cookie header, and the whole header. */
export function cookieFrom(reply: Reply, name = 'crawlhub_ide'): { pair: string; header: string } | null {
  const all = reply.headers['set-cookie'] ?? [];
  const header = all.find((h) => h.startsWith(`${name}=`));
  return header ? { pair: header.split(';')[0], header } : null;
}

/** Launches the session for its user and trades the ticket: the browser's cookie pair. */
export async function signIn(p: ProxyServer, session: { id: string; userId: string; tokenId?: string }): Promise<string> {
  const reply = await request(p.proxy.launchUrl({ tokenId: TOKEN, ...session }));
  const cookie = cookieFrom(reply);
  if (reply.status !== 302 || !cookie) throw new Error(`sign-in failed: ${reply.status} ${reply.body}`);
  // In path mode the browser is bound to its user too (a cookie of its own).
  const browser = cookieFrom(reply, 'crawlhub_ide_user');
  return browser ? `${cookie.pair}; ${browser.pair}` : cookie.pair;
}

/** Opens a WebSocket and resolves with it and its first message, or rejects with the HTTP status of a refusal. */
export function openWs(url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; first: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    ws.once('message', (data) => resolve({ ws, first: JSON.parse((data as Buffer).toString()) }));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

/** The value of a header the echo server received (the last one wins), or undefined. */
export function receivedHeader(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}

/** Waits for `check` to hold, polling for at most `ms`. */
export async function eventually(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The value of `promise`, or a failure naming `what` when it takes more than `ms`. */
export async function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
