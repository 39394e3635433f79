import http from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type net from 'node:net';
import type stream from 'node:stream';
import { browserResponseHeaders, upgradeResponseLines } from './headers';
import { PAGES, refuseUpgrade, sendPage } from './pages';

/** What the admission check decided to send where. */
export interface Upstream {
  host: string;
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
/** Requests that may go out again when a kept-alive connection turns out closed before any answer. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** What undici calls a connection that closed under a request. */
const CLOSED_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * The streaming half of the proxy. Requests go to the container through undici (the client behind
 * Node's fetch), whose parser and connection pool cost about a fifth less CPU per request than
 * node:http's client; WebSocket handshakes go through node:http, which hands over the socket.
 * http-proxy-3 (what configurable-http-proxy is built on) was the candidate library; it appends to
 * a client's X-Forwarded-* instead of replacing them, cannot drop single cookies, and its
 * per-request pass pipeline costs more than this does. Headers go through as flat [name, value]
 * lists, bodies are streamed with backpressure both ways (nothing is buffered whole), upstream
 * connections are kept alive, and a side that goes away takes the other with it.
 */
export class Forwarder {
  private readonly dispatcher = new Agent({
    keepAliveTimeout: 10_000,
    headersTimeout: RESPONSE_HEADERS_TIMEOUT_MS,
    // A response may stream for as long as the browser reads it (downloads, long polls).
    bodyTimeout: 0,
  });
  /** For WebSocket handshakes. */
  private readonly agent = new http.Agent({ keepAlive: false });
  /** Upgraded socket pairs, so that close() can end them. */
  private readonly tunnels = new Set<stream.Duplex>();

  constructor(
    private readonly publicOrigin: string,
    private readonly onUpstreamError: (err: Error, upstream: string, path: string) => void,
  ) {}

  web(req: http.IncomingMessage, res: http.ServerResponse, up: Upstream, done: (outcome: ForwardOutcome) => void): void {
    const method = req.method ?? 'GET';
    const origin = `http://${up.host}:${up.port}`;
    let finished = false;
    const finish = (outcome: ForwardOutcome) => {
      if (finished) return;
      finished = true;
      done(outcome);
    };
    const failed = (err: Error) => {
      this.onUpstreamError(err, `${up.host}:${up.port}`, up.path);
      finish('bad_gateway');
      sendPage(req, res, PAGES.badGateway);
    };
    let abort: ((reason?: Error) => void) | null = null;

    const attempt = (retry: boolean) => {
      let responded = false;
      const handler: Dispatcher.DispatchHandler = {
        onConnect: (abortRequest) => {
          abort = abortRequest;
          if (res.destroyed) abortRequest(new Error('the browser went away'));
        },
        onHeaders: (status, rawHeaders, resume) => {
          // 1xx interim answers (103 Early Hints) are not passed on; the final one follows.
          if (status < 200) return true;
          responded = true;
          const raw = new Array<string>(rawHeaders.length);
          for (let i = 0; i < rawHeaders.length; i++) raw[i] = rawHeaders[i].toString('latin1');
          try {
            res.writeHead(status, browserResponseHeaders(raw, up.prefix, origin, this.publicOrigin, up.framePolicy));
          } catch (err) {
            // A header Node will not write (the container is the user's to break).
            abort?.(err as Error);
            failed(err as Error);
            return false;
          }
          res.on('drain', () => resume());
          return true;
        },
        onData: (chunk) => res.write(chunk),
        onComplete: () => {
          res.end();
          finish('proxied');
        },
        onError: (err: Error & { code?: string }) => {
          if (finished || res.destroyed) return;
          if (responded) {
            if (err.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' && (res.statusCode === 304 || res.statusCode === 204)) {
              // undici holds a 304's Content-Length (the representation's, RFC 9110 §8.6) against
              // its body, which no 304 or 204 has: the answer is complete.
              res.end();
              finish('proxied');
              return;
            }
            // The container went away mid-stream: so does the browser's response.
            res.destroy();
            finish('bad_gateway');
            return;
          }
          // A kept-alive connection the container closed just as it was reused: safe to try once more.
          if (retry && !up.hasBody && RETRYABLE.has(method) && err.code !== undefined && CLOSED_CONNECTION.has(err.code)) {
            attempt(false);
            return;
          }
          if (err.code === 'UND_ERR_INVALID_ARG') {
            // A target or header value Node's server let through but no HTTP client may send on.
            finish('bad_gateway');
            sendPage(req, res, PAGES.badRequest);
            return;
          }
          failed(err);
        },
      };
      try {
        this.dispatcher.dispatch({ origin, method, path: up.path, headers: up.headers, body: up.hasBody ? req : null }, handler);
      } catch (err) {
        handler.onError!(err as Error);
      }
    };

    // The browser went away mid-stream: the container's side goes too (its connection is not reused).
    res.on('close', () => {
      if (!res.writableFinished) {
        abort?.(new Error('the browser went away'));
        finish('client_closed');
      }
    });
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
    // Gone while its admission was looked up: no 'close' or 'end' would come again to end the container's side.
    if (socket.destroyed || socket.readableEnded) {
      socket.destroy();
      done('client_closed');
      return;
    }
    let upgraded = false;
    const proxyReq = http.request({
      host: up.host,
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
    // Until the 101 the browser has nothing to send, so its end (a tab closed mid-handshake) means it
    // is gone: the server's sockets stay half-open after an end, and a handshake the container never
    // answers would otherwise hold both connections for good.
    const clientEnded = () => socket.destroy();
    socket.on('close', clientGone);
    socket.on('end', clientEnded);
    socket.on('error', () => socket.destroy());

    proxyReq.on('upgrade', (proxyRes, proxySocket, proxyHead) => {
      upgraded = true;
      socket.off('close', clientGone);
      socket.off('end', clientEnded);
      if (socket.destroyed) {
        proxySocket.destroy();
        done('client_closed');
        return;
      }
      socket.write(`HTTP/1.1 101 Switching Protocols\r\n${upgradeResponseLines(proxyRes.rawHeaders, up.prefix)}\r\n`);
      if (proxyHead.length) socket.write(proxyHead);
      if (head.length) proxySocket.write(head);
      this.tunnel(socket, proxySocket, onTraffic);
      done('proxied');
    });

    // The container answered the handshake with a plain response (a refusal): relay it, then close.
    proxyReq.on('response', (proxyRes) => {
      let response = `HTTP/1.1 ${proxyRes.statusCode} ${proxyRes.statusMessage}\r\n`;
      const raw = browserResponseHeaders(proxyRes.rawHeaders, up.prefix, `http://${up.host}:${up.port}`, this.publicOrigin);
      for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() !== 'content-length') response += `${raw[i]}: ${raw[i + 1]}\r\n`;
      socket.write(`${response}Connection: close\r\n\r\n`);
      proxyRes.on('error', () => socket.destroy());
      proxyRes.pipe(socket);
      done('proxied');
    });

    proxyReq.on('error', (err) => {
      if (upgraded) return;
      this.onUpstreamError(err, `${up.host}:${up.port}`, up.path);
      done('bad_gateway');
      refuseUpgrade(socket, PAGES.badGateway);
    });
    proxyReq.end();
  }

  /**
   * Bytes both ways with backpressure; either side closing or failing ends the other. One 'data'
   * listener per direction does what pipe() does (write, pause when the other side is full, resume
   * on its drain, pass an end on) and counts the browser's traffic in the same call: one callback
   * per frame instead of two, which shows in the WebSocket round trip.
   */
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
    client.on('data', (chunk: Buffer) => {
      onTraffic();
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  }

  close(): void {
    for (const s of this.tunnels) s.destroy();
    this.tunnels.clear();
    this.agent.destroy();
    void this.dispatcher.destroy().catch(() => undefined);
  }
}
