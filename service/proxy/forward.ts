import http from 'node:http';
import type net from 'node:net';
import type stream from 'node:stream';
import { confineSetCookie } from './cookie';
import { browserResponseHeaders } from './headers';
import { PAGES, refuseUpgrade, sendPage } from './pages';

/** What the admission check decided to send where. */
export interface Upstream {
  port: number;
  /** Path and query for the container. */
  path: string;
  headers: string[];
  /** `/code-server/<id>` in path mode, `` otherwise: for the container's cookies and redirects. */
  prefix: string;
  hasBody: boolean;
  /** The Content-Security-Policy frame-ancestors directive for the response. */
  framePolicy: string;
}

export type ForwardOutcome = 'proxied' | 'bad_gateway' | 'client_closed';

/** A container that accepts the connection but never answers gets a 502 after this long. */
const RESPONSE_HEADERS_TIMEOUT_MS = 60_000;

/**
 * The streaming half of the proxy, on bare node:http. http-proxy-3 (what configurable-http-proxy
 * is built on) was the candidate library; it appends to a client's X-Forwarded-* instead of
 * replacing them, cannot drop single cookies, and its per-request pass pipeline and object
 * header copies cost more than this does. Here headers go through as flat [name, value] lists,
 * bodies are piped with backpressure (nothing is buffered whole), upstream connections are kept
 * alive in one Agent, and a side that goes away takes the other with it.
 */
export class Forwarder {
  readonly agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 10_000, maxFreeSockets: 64, scheduling: 'lifo' });
  /** Upgraded socket pairs, so that close() can end them. */
  private readonly tunnels = new Set<stream.Duplex>();

  constructor(
    private readonly publicOrigin: string,
    private readonly onUpstreamError: (err: Error, port: number, path: string) => void,
  ) {}

  web(req: http.IncomingMessage, res: http.ServerResponse, up: Upstream, done: (outcome: ForwardOutcome) => void): void {
    // A request without a body (most of them) needs no pipe: the upstream request ends at once.
    const hasBody = up.hasBody;
    let proxyReq: http.ClientRequest;
    let responded = false;
    let finished = false;
    const finish = (outcome: ForwardOutcome) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(outcome);
    };
    const timer = setTimeout(() => proxyReq.destroy(new Error('no response from the container')), RESPONSE_HEADERS_TIMEOUT_MS);

    const attempt = (retry: boolean) => {
      try {
        proxyReq = http.request({
          host: '127.0.0.1',
          port: up.port,
          method: req.method,
          path: up.path,
          headers: up.headers,
          agent: this.agent,
        });
      } catch {
        // Node's client refuses some targets its server parser let through (e.g. raw non-ASCII).
        finish('bad_gateway');
        sendPage(req, res, PAGES.badRequest);
        return;
      }
      proxyReq.on('response', (proxyRes) => {
        responded = true;
        clearTimeout(timer);
        const status = proxyRes.statusCode ?? 502;
        let headers: string[];
        try {
          headers = browserResponseHeaders(
            proxyRes.rawHeaders,
            up.prefix,
            `http://127.0.0.1:${up.port}`,
            this.publicOrigin,
            up.framePolicy,
          );
          res.writeHead(status, headers);
        } catch (err) {
          // A header Node will not write (the container is the user's to break).
          proxyRes.destroy();
          this.onUpstreamError(err as Error, up.port, up.path);
          finish('bad_gateway');
          sendPage(req, res, PAGES.badGateway);
          return;
        }
        proxyRes.on('error', () => res.destroy());
        proxyRes.on('aborted', () => res.destroy());
        proxyRes.on('end', () => finish('proxied'));
        proxyRes.pipe(res);
      });
      proxyReq.on('error', (err: NodeJS.ErrnoException) => {
        if (responded || res.destroyed || finished) return;
        // A kept-alive socket the container closed just as it was reused: safe to try once more.
        if (retry && proxyReq.reusedSocket && !hasBody && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          attempt(false);
          return;
        }
        this.onUpstreamError(err, up.port, up.path);
        finish('bad_gateway');
        sendPage(req, res, PAGES.badGateway);
      });
      if (hasBody) req.pipe(proxyReq);
      else proxyReq.end();
    };

    // The browser went away mid-stream: the container's side goes too (its socket is not reused).
    res.on('close', () => {
      if (!res.writableFinished) {
        proxyReq.destroy();
        finish('client_closed');
      }
    });
    req.on('error', () => proxyReq.destroy());
    attempt(true);
  }

  ws(
    req: http.IncomingMessage,
    socket: stream.Duplex,
    head: Buffer,
    up: Upstream,
    onTraffic: () => void,
    done: (outcome: ForwardOutcome) => void,
  ): void {
    let upgraded = false;
    const proxyReq = http.request({
      host: '127.0.0.1',
      port: up.port,
      method: 'GET',
      path: up.path,
      headers: up.headers,
      agent: this.agent,
    });
    const clientGone = () => {
      if (!upgraded) {
        proxyReq.destroy();
        done('client_closed');
      }
    };
    socket.on('close', clientGone);
    socket.on('error', () => socket.destroy());

    proxyReq.on('upgrade', (proxyRes, proxySocket, proxyHead) => {
      upgraded = true;
      socket.off('close', clientGone);
      if (socket.destroyed) {
        proxySocket.destroy();
        done('client_closed');
        return;
      }
      let response = 'HTTP/1.1 101 Switching Protocols\r\n';
      const raw = proxyRes.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const value = raw[i].toLowerCase() === 'set-cookie' ? confineSetCookie(raw[i + 1], up.prefix) : raw[i + 1];
        if (value !== null) response += `${raw[i]}: ${value}\r\n`;
      }
      socket.write(`${response}\r\n`);
      if (proxyHead.length) socket.write(proxyHead);
      if (head.length) proxySocket.write(head);
      this.tunnel(socket, proxySocket, onTraffic);
      done('proxied');
    });

    // The container answered the handshake with a plain response (a refusal): relay it, then close.
    proxyReq.on('response', (proxyRes) => {
      let response = `HTTP/1.1 ${proxyRes.statusCode} ${proxyRes.statusMessage}\r\n`;
      const raw = browserResponseHeaders(proxyRes.rawHeaders, up.prefix, `http://127.0.0.1:${up.port}`, this.publicOrigin);
      for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() !== 'content-length') response += `${raw[i]}: ${raw[i + 1]}\r\n`;
      socket.write(`${response}Connection: close\r\n\r\n`);
      proxyRes.on('error', () => socket.destroy());
      proxyRes.pipe(socket);
      done('proxied');
    });

    proxyReq.on('error', (err) => {
      if (upgraded) return;
      this.onUpstreamError(err, up.port, up.path);
      done('bad_gateway');
      refuseUpgrade(socket, PAGES.badGateway);
    });
    proxyReq.end();
  }

  /** Bytes both ways with backpressure; either side closing or failing ends the other. */
  private tunnel(client: stream.Duplex, upstream: net.Socket, onTraffic: () => void): void {
    for (const s of [client, upstream] as net.Socket[]) {
      s.setNoDelay?.(true);
      s.setTimeout?.(0);
      s.setKeepAlive?.(true, 30_000);
    }
    this.tunnels.add(client);
    this.tunnels.add(upstream);
    let closed = false;
    const end = (other: stream.Duplex, failed: boolean) => {
      if (closed) return;
      closed = true;
      this.tunnels.delete(client);
      this.tunnels.delete(upstream);
      // A clean close lets queued frames (the WebSocket close frame, say) drain first.
      const sock = other as net.Socket;
      if (failed || typeof sock.destroySoon !== 'function') {
        other.destroy();
        return;
      }
      sock.destroySoon();
      // …but a peer that stops reading does not keep it open.
      setTimeout(() => sock.destroy(), 10_000).unref();
    };
    client.on('error', () => end(upstream, true));
    upstream.on('error', () => end(client, true));
    client.on('close', () => end(upstream, false));
    upstream.on('close', () => end(client, false));
    client.on('data', onTraffic);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  close(): void {
    for (const s of this.tunnels) s.destroy();
    this.tunnels.clear();
    this.agent.destroy();
  }
}
