import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';
import type { ForwardOutcome, Upstream } from './forward';
import { browserResponseHeaders } from './headers';
import { PAGES, pageHead, type Page } from './pages';

/**
 * The fast lane: the common case of the browser IDE — a GET or HEAD without a body, admitted — read
 * and relayed on the raw sockets, without Node's HTTP server and client objects in between. A small
 * request costs the proxy less than half the CPU it costs through them, and its latency falls from
 * about 1.3–1.8× a direct connection to about 0.9× (`npm run bench`).
 *
 * It is narrow on purpose: a connection's request head is read here only when it is a strict,
 * plain HTTP/1.1 GET or HEAD (no body, no Upgrade, no Expect, one Host, nothing Node's parser might
 * read otherwise), and it is relayed only when the proxy admits it. Everything else — the API,
 * uploads, WebSockets, launch tickets, every refusal and every request the lane's reader is not sure
 * of — is handed, from its first byte, to Node's HTTP server on the same connection, which answers
 * it exactly as it would without the lane; such a connection stays with Node from then on. The
 * container's answer, which is untrusted, is read by Node's own parser (llhttp, as its HTTP client
 * does) and its headers pass the same rewrite and the same checks as through the server.
 */

/** A request head the lane read: what admission needs. */
export interface LaneRequest {
  method: 'GET' | 'HEAD';
  url: string;
  host: string;
  /** Flat [name, value, …], as Node's rawHeaders. */
  rawHeaders: string[];
  remoteAddress: string | undefined;
  /** `Connection: close`: the connection ends after the answer. */
  close: boolean;
}

export interface LaneDecision {
  upstream: Upstream;
  sessionId: string;
  tokenId: string;
}

export interface LaneHooks {
  /** The proxy's admission: a decision to relay, or null for Node's server to handle the request. */
  decide(req: LaneRequest, next: (decision: LaneDecision | null) => void): void;
  /** A relayed request's outcome (metrics). */
  done(outcome: ForwardOutcome): void;
  /** A connection relays for this session and token from now on (closed when either ends). */
  hold(tokenId: string, sessionId: string, socket: net.Socket): void;
  /** Browser traffic for the idle timer. */
  seen(sessionId: string): void;
  upstreamError(err: Error, upstream: string, path: string): void;
  /** The clock for the head timeout (tests move it). */
  now(): number;
}

interface ParserBinding {
  new (): Parser;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnMessageBegin?: number;
}
interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [callback: number]: unknown;
}

/**
 * Node's llhttp binding, which its HTTP server and client parse with. It is not a documented API,
 * so the lane switches itself off (everything goes through Node's server) if it is not as expected.
 */
function loadParser(): ParserBinding | null {
  try {
    const { HTTPParser } = createRequire(__filename)('_http_common') as { HTTPParser: ParserBinding };
    const probe = new HTTPParser();
    probe.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    let status = 0;
    let body = '';
    let complete = false;
    probe[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, _h: string[], _m: number, _u: string, code: number) => {
      status = code;
      return 0;
    };
    probe[HTTPParser.kOnBody] = (b: Buffer) => void (body += b.toString());
    probe[HTTPParser.kOnMessageComplete] = () => void (complete = true);
    probe.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    probe.close();
    return status === 200 && body === 'ok' && complete ? HTTPParser : null;
  } catch {
    return null;
  }
}

const MAX_HEAD = 16 * 1024;
const MAX_HEADERS = 100;
/** As Node's server here: a head must arrive within a minute, an idle kept-alive connection lasts 65 s. */
const HEAD_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_MS = 65_000;
const KEEP_ALIVE_LINES = `Connection: keep-alive\r\nKeep-Alive: timeout=${KEEP_ALIVE_MS / 1000}\r\n`;
const RESPONSE_HEADERS_TIMEOUT_MS = 60_000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value as llhttp's strict mode takes it: visible characters, spaces, tabs, obs-text. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** An origin-form target of visible ASCII. */
const TARGET = /^\/[\x21-\x7e]*$/;
/** Headers whose presence sends a request to Node's server: bodies, upgrades, expectations (and a Connection other than keep-alive or close). */
const HANDED_OFF = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
const CRLF2 = Buffer.from('\r\n\r\n');

export class FastLane {
  private readonly parser = loadParser();
  private readonly pool = this.parser ? new UpstreamPool(this.parser) : null;
  private readonly connections = new Set<LaneConnection>();
  private closed = false;

  constructor(
    private readonly hooks: LaneHooks,
    private readonly publicOrigin: string,
  ) {}

  /** Whether the lane can run on this Node (else every connection goes to Node's server). */
  get enabled(): boolean {
    return this.parser !== null && !this.closed;
  }

  /**
   * Puts the lane in front of an HTTP server: its connections are read here first, and handed to
   * the server's own connection handling for anything the lane does not relay.
   */
  install(server: http.Server): void {
    const listeners = server.listeners('connection') as ((socket: net.Socket) => void)[];
    const node = listeners[0];
    if (!node || !this.parser) return;
    server.removeListener('connection', node);
    server.prependListener('connection', (socket: net.Socket) => {
      if (!this.enabled) return node.call(server, socket);
      const conn = new LaneConnection(socket, this.pool!, this.hooks, this.publicOrigin, (pending) => {
        this.connections.delete(conn);
        handOff(server, node, socket, pending);
      });
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
    });
  }

  /** Ends the lane's connections (the service is stopping); new ones go to Node's server. */
  close(): void {
    this.closed = true;
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    this.pool?.close();
  }
}

/** Node's server takes the connection over, with the bytes the lane read and did not consume in front. */
function handOff(server: http.Server, node: (socket: net.Socket) => void, socket: net.Socket, pending: Buffer): void {
  socket.pause();
  if (pending.length) socket.unshift(pending);
  node.call(server, socket);
  socket.resume();
}

type State = 'head' | 'deciding' | 'relaying' | 'gone';

class LaneConnection {
  private state: State = 'head';
  /** Bytes read from the browser and not yet consumed. */
  private buf: Buffer = Buffer.alloc(0);
  private headStartedAt = 0;
  /** The container connection of the answer in flight. */
  private upstream: UpstreamConnection | null = null;
  private held = '';
  /** The browser has sent its last byte: answer what it asked, then close. */
  private ended = false;
  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onTimeout = () => this.destroy();
  private readonly onGone = () => this.destroy();
  private readonly onEnd = () => {
    this.ended = true;
    // As Node's server does: a browser that stops sending while its request is out has given up on it.
    if (this.state === 'head') this.finishOrNext();
    else this.destroy();
  };
  private readonly onDrain = () => this.upstream?.socket.resume();

  constructor(
    readonly socket: net.Socket,
    private readonly pool: UpstreamPool,
    private readonly hooks: LaneHooks,
    private readonly publicOrigin: string,
    private readonly giveUp: (pending: Buffer) => void,
  ) {
    socket.setNoDelay(true);
    socket.setTimeout(KEEP_ALIVE_MS);
    for (const [event, listener] of this.listeners()) socket.on(event, listener);
  }

  /** What the lane listens to on the browser's socket (all of it let go when Node's server takes over). */
  private listeners(): [string, (chunk: Buffer) => void][] {
    return [
      ['data', this.onData],
      ['timeout', this.onTimeout],
      ['error', this.onGone],
      ['close', this.onGone],
      ['end', this.onEnd],
      ['drain', this.onDrain],
    ];
  }

  /** Ends the connection; an answer in flight is counted as `outcome`. */
  destroy(outcome: ForwardOutcome = 'client_closed'): void {
    if (this.state === 'gone') return;
    if (this.state === 'relaying') this.hooks.done(outcome);
    this.state = 'gone';
    this.upstream?.destroy();
    this.upstream = null;
    this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.state === 'head') this.next();
    // Pipelined requests wait for the answer in flight; a client that sends on regardless is paused.
    else if (this.buf.length > MAX_HEAD) this.socket.pause();
  }

  /** Reads the next request head from the buffer, if it is complete. */
  private next(): void {
    const buf = this.buf;
    if (buf.length === 0) {
      this.headStartedAt = 0;
      return;
    }
    const now = this.hooks.now();
    if (this.headStartedAt === 0) this.headStartedAt = now;
    else if (now - this.headStartedAt > HEAD_TIMEOUT_MS) return this.destroy();
    // Anything but GET or HEAD goes to Node's server as soon as that is clear.
    if (!startsLikeGetOrHead(buf)) return this.release();
    const end = buf.indexOf(CRLF2);
    if (end === -1) {
      if (buf.length > MAX_HEAD) this.release();
      return;
    }
    if (end > MAX_HEAD) return this.release();
    const req = parseHead(buf.toString('latin1', 0, end), this.socket.remoteAddress);
    if (req === null) return this.release();
    const headLength = end + 4;
    this.state = 'deciding';
    this.socket.setTimeout(0);
    let answered = false;
    try {
      this.hooks.decide(req, (decision) => {
        if (answered || this.state !== 'deciding') return;
        answered = true;
        if (decision === null) return this.release();
        this.relay(req, decision, headLength);
      });
    } catch {
      // Not decided: Node's server answers (a 500 of the proxy's, as for any request); decided and
      // then failed to relay: the connection is cut rather than left waiting.
      if (!answered) this.release();
      else if ((this.state as State) === 'relaying') this.destroy('bad_gateway');
    }
  }

  /** Node's server takes this request (still whole in the buffer) and the connection. */
  private release(): void {
    if (this.state === 'gone') return;
    this.state = 'gone';
    const s = this.socket;
    s.setTimeout(0);
    for (const [event, listener] of this.listeners()) s.off(event, listener);
    this.upstream?.destroy();
    this.upstream = null;
    const pending = this.buf;
    this.buf = Buffer.alloc(0);
    this.giveUp(pending);
  }

  private relay(req: LaneRequest, d: LaneDecision, headLength: number): void {
    const up = d.upstream;
    const holder = `${d.tokenId} ${d.sessionId}`;
    if (holder !== this.held) {
      this.held = holder;
      this.hooks.hold(d.tokenId, d.sessionId, this.socket);
    }
    this.hooks.seen(d.sessionId);
    if (req.close) {
      // Nothing after this request is read.
      this.ended = true;
      this.buf = this.buf.subarray(0, headLength);
    }
    this.state = 'relaying';
    this.buf = this.buf.subarray(headLength);
    // A head pipelined behind this one is timed from when it is read, not from this one's start.
    this.headStartedAt = 0;
    let lines = `${req.method} ${up.path} HTTP/1.1\r\n`;
    for (let i = 0; i < up.headers.length; i += 2) lines += `${up.headers[i]}: ${up.headers[i + 1]}\r\n`;
    lines += 'Connection: keep-alive\r\n\r\n';
    const exchange: Exchange = { method: req.method, request: lines, upstream: up, origin: `http://${up.host}:${up.port}` };
    const { conn, reused } = this.pool.take(up.host, up.port);
    this.send(exchange, conn, reused);
  }

  private send(ex: Exchange, up: UpstreamConnection, reused: boolean): void {
    this.upstream = up;
    up.start(ex, this.publicOrigin, {
      sink: this.socket,
      head: (status, reason, headers) => {
        let out = `HTTP/1.1 ${status} ${reason}\r\n`;
        for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
        // As Node's server says it: some clients (Node's own, after a HEAD) keep a connection only when told.
        out += this.ended ? 'Connection: close\r\n' : KEEP_ALIVE_LINES;
        // Heads are bytes: values were read one character per byte (latin1), and go out the same way.
        this.socket.write(`${out}\r\n`, 'latin1');
      },
      body: (chunk) => {
        if (!this.socket.write(chunk) && !up.batching) up.socket.pause();
      },
      complete: () => {
        this.hooks.done('proxied');
        if (this.upstream === up) this.upstream = null;
        this.pool.give(up);
        if (this.state !== 'relaying') return;
        this.answered();
      },
      failedBeforeAnswer: (err, silent) => {
        if (this.upstream === up) this.upstream = null;
        if (this.state !== 'relaying') return;
        if (reused && silent) {
          // A kept-alive connection the container closed as it was reused: once more on a new one.
          this.send(ex, this.pool.fresh(ex.upstream.host, ex.upstream.port), false);
          return;
        }
        this.hooks.upstreamError(err, up.key, ex.upstream.path);
        this.hooks.done('bad_gateway');
        this.page(PAGES.badGateway, ex.method);
      },
      failedMidAnswer: () => {
        if (this.upstream === up) this.upstream = null;
        // The container went away mid-stream (or its answer broke the rules): so does the browser's response.
        this.destroy('bad_gateway');
      },
    });
  }

  /** One of the proxy's pages, then the connection goes on. */
  private page(p: Page, method: string): void {
    const headers = pageHead(p);
    let out = `HTTP/1.1 ${p.status} ${p.reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
    out += this.ended ? 'Connection: close\r\n' : KEEP_ALIVE_LINES;
    this.socket.write(`${out}\r\n`, 'latin1');
    if (method !== 'HEAD') this.socket.write(p.body);
    this.answered();
  }

  /** The answer is out: the next request, if any. */
  private answered(): void {
    this.state = 'head';
    this.socket.setTimeout(KEEP_ALIVE_MS);
    if (this.socket.isPaused()) this.socket.resume();
    this.finishOrNext();
  }

  private finishOrNext(): void {
    if (this.ended && this.buf.indexOf(CRLF2) === -1) {
      // Nothing more will come: close once the answers are out.
      this.state = 'gone';
      this.upstream?.destroy();
      this.upstream = null;
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 10_000).unref();
      return;
    }
    this.next();
  }
}

interface Exchange {
  method: 'GET' | 'HEAD';
  request: string;
  upstream: Upstream;
  origin: string;
}

interface ExchangeEvents {
  /** The browser's socket: writes made while one read from the container is parsed go out together. */
  sink: net.Socket;
  head(status: number, reason: string, headers: string[]): void;
  body(chunk: Buffer): void;
  complete(): void;
  /** `silent`: the connection closed before a byte of the answer came (not a timeout, not a broken answer). */
  failedBeforeAnswer(err: Error, silent: boolean): void;
  failedMidAnswer(): void;
}

/** Most idle connections kept per container, and how long one stays idle (as the undici pool's). */
const IDLE_PER_UPSTREAM = 32;
const IDLE_MS = 10_000;

/** Kept-alive connections to the containers, shared by all browser connections. */
class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>();

  constructor(private readonly binding: ParserBinding) {}

  /** An idle connection to host:port if there is one (reused), else a new one. */
  take(host: string, port: number): { conn: UpstreamConnection; reused: boolean } {
    const key = `${host}:${port}`;
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const conn = list.pop()!;
      conn.socket.setTimeout(0);
      if (conn.reusable) return { conn, reused: true };
      conn.destroy();
    }
    return { conn: this.fresh(host, port), reused: false };
  }

  fresh(host: string, port: number): UpstreamConnection {
    return new UpstreamConnection(`${host}:${port}`, host, port, this.binding, (c) => this.remove(c));
  }

  /** Back to the pool after an answer, if the container keeps it alive. */
  give(conn: UpstreamConnection): void {
    if (!conn.reusable) return conn.destroy();
    let list = this.idle.get(conn.key);
    if (list === undefined) this.idle.set(conn.key, (list = []));
    if (list.length >= IDLE_PER_UPSTREAM) return conn.destroy();
    list.push(conn);
    conn.socket.setTimeout(IDLE_MS);
  }

  private remove(conn: UpstreamConnection): void {
    const list = this.idle.get(conn.key);
    if (list === undefined) return;
    const at = list.indexOf(conn);
    if (at !== -1) list.splice(at, 1);
    if (list.length === 0) this.idle.delete(conn.key);
  }

  close(): void {
    for (const list of this.idle.values()) for (const conn of list) conn.destroy();
    this.idle.clear();
  }
}

/** One kept-alive connection to a container, read by llhttp; one exchange at a time. */
class UpstreamConnection {
  readonly socket: net.Socket;
  private readonly parser: Parser;
  private events: ExchangeEvents | null = null;
  private answered = false;
  private chunked = false;
  private keepAlive = true;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private extraHeaders: string[] = [];
  private current: { ex: Exchange; publicOrigin: string } | null = null;
  /** Writes to the browser are being gathered (corked): a full buffer then is no reason to pause. */
  batching = false;
  /**
   * Bytes left of a body with a Content-Length, relayed as they come without passing through the
   * parser (which was shown only the head); -1 when the parser reads the body (chunked, or to the end).
   */
  private bodyLeft = -1;
  /** The parser was given exactly one head (up to its blank line), so the body is not in its hands. */
  private headCut = false;
  /** The end of the last read while in a head: a blank line may straddle two reads. */
  private headTail: Buffer = Buffer.alloc(0);
  /** A read is being taken apart: an answer it completes is passed on once the rest of it has been seen. */
  private reading = false;
  private finished: ExchangeEvents | null = null;
  /** A byte of the current answer has come. */
  private heard = false;
  private readonly onRead: (d: Buffer) => void;

  constructor(
    readonly key: string,
    host: string,
    port: number,
    binding: ParserBinding,
    onClose: (conn: UpstreamConnection) => void,
  ) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {
        // While a long body streams, a fresh large buffer per read, passed on as it is (fewer reads
        // and writes); otherwise one shared buffer, whose few bytes are copied out before the next read.
        buffer: () => (this.bodyLeft > SMALL_READ ? Buffer.allocUnsafe(Math.min(this.bodyLeft, LARGE_READ)) : scratch),
        callback: (n: number, buf: Uint8Array) => {
          this.onRead(buf === scratch ? Buffer.from(scratch.subarray(0, n)) : (buf as Buffer).subarray(0, n));
          return !this.socket.isPaused();
        },
      },
    });
    // Idle in the pool too long.
    this.socket.on('timeout', () => this.destroy());
    const parser = (this.parser = new binding());
    parser.initialize(binding.RESPONSE, {}, 64 * 1024, 0);
    this.onRead = (d: Buffer) => {
      // The read that holds the head: the head and what follows of the body go out in one write.
      // Later reads are written as they come (corking them would only hold bytes back).
      if (this.events) this.heard = true;
      const sink = this.answered ? undefined : this.events?.sink;
      if (sink) {
        this.batching = true;
        sink.cork();
      }
      this.reading = true;
      let err: Error | null;
      try {
        err = this.read(d);
      } finally {
        this.reading = false;
      }
      if (sink) {
        this.batching = false;
        sink.uncork();
        // What the browser has not taken yet waits for its drain before more is read.
        if (sink.writableLength > 0 && this.events) this.socket.pause();
      }
      if (err) this.fail(err);
      // Only now may the connection take the next request: bytes behind the answer have ended it.
      const done = this.finished;
      this.finished = null;
      done?.complete();
    };
    this.socket.on('end', () => {
      // A body that runs to the end of the connection is complete now.
      if (this.answered && this.events) {
        const r = parser.finish();
        if (r instanceof Error) return this.fail(r);
      }
      if (this.events) this.fail(new Error('the container closed the connection'));
      this.destroy();
    });
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => {
      if (this.events) this.fail(new Error('the container closed the connection'));
      this.closed = true;
      this.clearTimer();
      parser.close();
      onClose(this);
    });
    parser[binding.kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.extraHeaders.push(h);
    };
    parser[binding.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined,
      _method: number,
      _url: string,
      status: number,
      reason: string,
      upgrade: boolean,
      keepAlive: boolean,
    ) => this.headers(headers ?? this.takeExtra(), status, reason, upgrade, keepAlive);
    parser[binding.kOnBody] = (chunk: Buffer) => {
      const ev = this.events;
      if (!ev || !this.answered) return;
      if (!this.chunked) return ev.body(chunk);
      ev.body(Buffer.from(`${chunk.length.toString(16)}\r\n`));
      ev.body(chunk);
      ev.body(CRLF);
    };
    if (binding.kOnMessageBegin !== undefined)
      parser[binding.kOnMessageBegin] = () => {
        // Bytes of an answer nobody asked for (yet): the connection is not reused.
        if (!this.events) this.keepAlive = false;
      };
    parser[binding.kOnMessageComplete] = () => {
      // Trailers (flushed as headers here) are not passed on, nor left for the next answer.
      this.extraHeaders = [];
      const ev = this.events;
      // An interim 1xx; or a head whose body (Content-Length) is relayed around the parser.
      if (!ev || !this.answered || this.bodyLeft > 0) return;
      if (this.chunked) ev.body(LAST_CHUNK);
      this.complete();
    };
  }

  /** One read from the container: heads and chunked bodies to the parser, a Content-Length body around it. */
  private read(d: Buffer): Error | null {
    while (d.length > 0) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, d.length);
        this.bodyLeft -= n;
        const ev = this.events!;
        ev.body(n === d.length ? d : d.subarray(0, n));
        d = d.subarray(n);
        if (this.bodyLeft === 0) this.complete();
        continue;
      }
      if (this.answered || !this.events) {
        // A body the parser frames; or bytes nobody asked for, which the parser refuses or which end the connection.
        const r = this.parser.execute(d);
        return r instanceof Error ? r : null;
      }
      const end = headEnd(this.headTail, d);
      if (end === -1) {
        this.headTail = d.length >= 3 ? d.subarray(d.length - 3) : Buffer.concat([this.headTail, d]).subarray(-3);
        const r = this.parser.execute(d);
        return r instanceof Error ? r : null;
      }
      this.headTail = Buffer.alloc(0);
      this.headCut = true;
      const r = this.parser.execute(d.subarray(0, end));
      this.headCut = false;
      if (r instanceof Error) return r;
      d = d.subarray(end);
    }
    return null;
  }

  private complete(): void {
    const ev = this.events;
    this.bodyLeft = -1;
    this.events = null;
    this.answered = false;
    this.clearTimer();
    if (this.reading) this.finished = ev;
    else ev?.complete();
  }

  get reusable(): boolean {
    return this.keepAlive && !this.closed && !this.socket.destroyed;
  }

  start(ex: Exchange, publicOrigin: string, events: ExchangeEvents): void {
    this.events = events;
    this.answered = false;
    this.heard = false;
    // Paused by the last answer's browser, whose drain no longer concerns it.
    if (this.socket.isPaused()) this.socket.resume();
    this.current = { ex, publicOrigin };
    this.timer = setTimeout(() => {
      this.timer = null;
      const ev = this.events;
      if (!ev || this.answered) return;
      this.events = null;
      this.destroy();
      ev.failedBeforeAnswer(new Error('the container did not answer in time'), false);
    }, RESPONSE_HEADERS_TIMEOUT_MS);
    this.timer.unref?.();
    this.socket.write(ex.request, 'latin1');
  }

  private takeExtra(): string[] {
    const h = this.extraHeaders;
    this.extraHeaders = [];
    return h;
  }

  private headers(raw: string[], status: number, reason: string, upgrade: boolean, keepAlive: boolean): number {
    const ev = this.events;
    const cur = this.current;
    if (!ev || !cur) {
      // An answer nobody asked for: the container is not speaking HTTP as it should.
      this.destroy();
      return -1;
    }
    const { ex, publicOrigin } = cur;
    // Interim answers (100, 103) are not passed on; the final one follows.
    if (status < 200 && status !== 101) return 1;
    if (status === 101 || upgrade) {
      this.fail(new Error('the container switched protocols on a plain request'));
      return -1;
    }
    this.keepAlive = keepAlive;
    const noBody = ex.method === 'HEAD' || status === 204 || status === 304;
    let length = false;
    let coded = false;
    let contentLength = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      if (name === 'content-length') {
        length = true;
        // llhttp has refused a malformed or repeated one.
        contentLength = Number(raw[i + 1]);
      } else if (name === 'transfer-encoding') coded = true;
    }
    let out: string[];
    try {
      out = browserResponseHeaders(raw, ex.upstream.prefix, ex.origin, publicOrigin, ex.upstream.framePolicy);
      if (!noBody && (coded || !length)) {
        // Framed for the browser as the body arrives (llhttp has taken the container's framing apart).
        if (length) out = withoutHeader(out, 'content-length');
        out.push('Transfer-Encoding', 'chunked');
        this.chunked = true;
      } else this.chunked = false;
      for (let i = 0; i < out.length; i += 2) {
        http.validateHeaderName(out[i]);
        http.validateHeaderValue(out[i], out[i + 1]);
      }
      if (!FIELD_VALUE.test(reason)) throw new Error('invalid reason phrase');
    } catch (err) {
      // A header Node would not write (the container is the user's to break).
      this.fail(err as Error);
      return -1;
    }
    this.answered = true;
    this.clearTimer();
    ev.head(status, reason, out);
    if (noBody) return 1;
    if (this.headCut && !this.chunked && Number.isSafeInteger(contentLength) && contentLength > 0) {
      // The parser skips the body, which read() relays as it comes.
      this.bodyLeft = contentLength;
      return 1;
    }
    return 0;
  }

  private fail(err: Error): void {
    const ev = this.events;
    this.events = null;
    this.clearTimer();
    this.destroy();
    if (!ev) return;
    if (this.answered) ev.failedMidAnswer();
    else ev.failedBeforeAnswer(err, !this.heard);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  destroy(): void {
    this.keepAlive = false;
    this.socket.destroy();
  }
}

const CRLF = Buffer.from('\r\n');
/** Read sizes from a container: as Node's own, and up to this while a long body streams (fewer reads and writes). */
const SMALL_READ = 64 * 1024;
const LARGE_READ = 256 * 1024;
/** Reads land here one at a time (each is copied out in its callback), as Node's own reads do in C++. */
const scratch = Buffer.allocUnsafe(SMALL_READ);
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Where the head ends in `d` (just past its blank line), given the end of the previous read; -1 if not in it. */
function headEnd(tail: Buffer, d: Buffer): number {
  if (tail.length > 0) {
    const joined = Buffer.concat([tail, d.subarray(0, 3)]);
    const at = joined.indexOf(CRLF2);
    if (at !== -1) return at + 4 - tail.length;
  }
  const at = d.indexOf(CRLF2);
  return at === -1 ? -1 : at + 4;
}

function withoutHeader(list: string[], lower: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) if (list[i].toLowerCase() !== lower) out.push(list[i], list[i + 1]);
  return out;
}

const GET = Buffer.from('GET /');
const HEAD = Buffer.from('HEAD /');

/** Whether the bytes so far may still be the start of `GET /` or `HEAD /`. */
function startsLikeGetOrHead(buf: Buffer): boolean {
  const n = Math.min(buf.length, 6);
  return buf.compare(GET, 0, Math.min(n, 5), 0, Math.min(n, 5)) === 0 || buf.compare(HEAD, 0, n, 0, n) === 0;
}

/**
 * A request head the lane relays, or null for Node's server to read instead: anything outside
 * a strict HTTP/1.1 GET or HEAD with a path target, token header names, plain field values, one
 * Host, and no header that changes framing or the connection.
 */
export function parseHead(head: string, remoteAddress: string | undefined): LaneRequest | null {
  const lines = head.split('\r\n');
  const first = lines[0];
  const sp1 = first.indexOf(' ');
  const sp2 = first.lastIndexOf(' ');
  if (sp1 === -1 || sp2 === sp1 || first.slice(sp2 + 1) !== 'HTTP/1.1') return null;
  const method = first.slice(0, sp1);
  if (method !== 'GET' && method !== 'HEAD') return null;
  const url = first.slice(sp1 + 1, sp2);
  if (!TARGET.test(url)) return null;
  if (lines.length - 1 > MAX_HEADERS) return null;
  const rawHeaders: string[] = [];
  let host: string | null = null;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return null;
    const lower = name.toLowerCase();
    if (HANDED_OFF.has(lower)) return null;
    if (lower === 'connection') {
      const v = value.toLowerCase();
      if (v === 'close') close = true;
      else if (v !== 'keep-alive') return null;
    }
    if (lower === 'host') {
      if (host !== null) return null;
      host = value;
    }
    rawHeaders.push(name, value);
  }
  if (host === null) return null;
  return { method, url, host, rawHeaders, remoteAddress, close };
}
