import * as z from 'zod/mini';
import { silentLog, type Log } from '../core/log';
import { ApiError } from './errors';
import {
  CloseResult,
  DirEntry,
  FileStat,
  LaunchResult,
  Me,
  SaveResult,
  Session,
  Spider,
  type CloseResult as CloseResultT,
  type DirEntry as DirEntryT,
  type FileStat as FileStatT,
  type Me as MeT,
  type SaveResult as SaveResultT,
  type Session as SessionT,
  type Spider as SpiderT,
} from './types';

export interface ClientOptions {
  /** The server's base URL as the user gave it, e.g. https://crawlhub.example.com */
  serverUrl: string;
  token: string;
  log?: Log;
  /** For tests. */
  fetch?: typeof fetch;
  /** Limit on ordinary calls; long operations (start, save, close) pass their own signal instead. */
  timeoutMs?: number;
  /** Any call answered 401: the server no longer takes the token (revoked, say); sign in again. */
  onUnauthorized?: (err: ApiError) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
}

type Query = Record<string, string | number | boolean | undefined>;

interface RequestOptions extends CallOptions {
  query?: Query;
  json?: unknown;
  bytes?: Uint8Array;
  /** No default timeout: the call may legitimately take minutes (starting a container, a big save). */
  long?: boolean;
  /** More time than the default on top, for a body that takes a while to send. */
  extraMs?: number;
  /** A download's limit on silence, in place of the limit on the whole call (see `bytes`). */
  idle?: Inactivity;
}

const LONG_LIMIT_MS = 15 * 60_000;
/**
 * The slowest upload a file write is given time for (bytes per second): a file near the service's
 * size limit (25 MB by default) takes minutes on a slow uplink, far beyond an ordinary call's limit.
 */
const MIN_UPLOAD_RATE = 64 * 1024;

/**
 * Aborts once nothing happened for `ms`; each `poke` (a byte arrived) starts the wait again. The
 * limit of a download, which may take minutes in all on a slow link but must not stall.
 */
class Inactivity {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** It gave up: the abort was this silence, not the caller's cancel. */
  fired = false;

  constructor(readonly ms: number) {
    this.poke();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  poke(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new DOMException(`Nothing arrived for ${this.ms} ms.`, 'TimeoutError'));
    }, this.ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** Parses and normalises a server URL typed by a person; throws a readable Error when it is not one. */
export function parseServerUrl(input: string): URL {
  const trimmed = input.trim();
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`);
  } catch {
    throw new Error(`"${input}" is not a URL.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('The server URL must start with https:// or http://.');
  if (url.username || url.password) throw new Error('Put the token in the token box, not in the URL.');
  url.search = '';
  url.hash = '';
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** Encodes a "/"-separated relative path segment by segment, for `/files/<path>`. */
export const encodePath = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

/**
 * The CrawlHub API over fetch. The token goes only to the configured server's origin: every URL is
 * built from the base and checked before the header is attached, and redirects are not followed
 * (a redirect would otherwise carry the request, token included, somewhere else).
 */
export class CrawlHubClient {
  readonly base: URL;
  private readonly token: string;
  private readonly log: Log;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly onUnauthorized: ((err: ApiError) => void) | undefined;

  constructor(opts: ClientOptions) {
    this.base = parseServerUrl(opts.serverUrl);
    this.token = opts.token;
    this.log = opts.log ?? silentLog;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.onUnauthorized = opts.onUnauthorized;
  }

  get origin(): string {
    return this.base.origin;
  }

  /** An absolute URL for an API path on this server. */
  url(path: string, query: Query = {}): URL {
    const url = new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base.origin);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== false) url.searchParams.set(k, v === true ? '1' : String(v));
    return url;
  }

  /** The WebSocket URL for an API path (ws: for http:, wss: for https:). */
  socketUrl(path: string, query: Query = {}): URL {
    const url = this.url(path, query);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url;
  }

  /**
   * The Authorization header for `url`, or an error when the URL is not on the configured server.
   * Every request (HTTP and WebSocket) goes through here.
   */
  authorize(url: URL | string): Record<string, string> {
    const target = typeof url === 'string' ? new URL(url) : url;
    const httpOrigin = `${target.protocol.replace(/^ws/, 'http')}//${target.host}`;
    if (httpOrigin !== this.base.origin) {
      throw new ApiError(
        0,
        'foreign_origin',
        `Refusing to send the CrawlHub token to ${target.origin}: it belongs to ${this.base.origin}.`,
      );
    }
    return { authorization: `Bearer ${this.token}` };
  }

  /**
   * A 401 that came some other way than a call of this client (the terminal's refused upgrade): told
   * to onUnauthorized like any call's, so the whole extension learns the token is gone.
   */
  unauthorized(err: ApiError): void {
    this.onUnauthorized?.(err);
  }

  // ---- account and spiders -----------------------------------------------------------------------

  me(opts?: CallOptions): Promise<MeT> {
    return this.json('GET', '/api/me', Me, opts);
  }

  spiders(opts?: CallOptions): Promise<SpiderT[]> {
    return this.json('GET', '/api/spiders', z.array(Spider), opts);
  }

  /** A stored file of the spider (what Save to Server would overwrite). */
  spiderFile(spiderId: string, path: string, opts?: CallOptions): Promise<Uint8Array> {
    return this.bytes('GET', `/api/spiders/${encodeURIComponent(spiderId)}/files/${encodePath(path)}`, path, opts);
  }

  // ---- sessions ------------------------------------------------------------------------------------

  sessions(opts?: CallOptions): Promise<SessionT[]> {
    return this.json('GET', '/api/sessions', z.array(Session), opts);
  }

  session(sessionId: string, opts?: CallOptions): Promise<SessionT> {
    return this.json('GET', `/api/sessions/${encodeURIComponent(sessionId)}`, Session, opts);
  }

  /** Creates the spider's session or returns the live one; with `wait`, answers once it is ready or failed. */
  openSession(spiderId: string, opts: CallOptions & { wait?: boolean } = {}): Promise<SessionT> {
    return this.json('POST', `/api/spiders/${encodeURIComponent(spiderId)}/code-session`, Session, {
      ...opts,
      query: { wait: opts.wait },
      long: true,
    });
  }

  /**
   * Saves, then stops the container; `discard` skips the save. By the session's id, as are sync and
   * heartbeat: a window whose session stopped meanwhile never acts on a newer session of its spider.
   */
  closeSession(sessionId: string, opts: CallOptions & { discard?: boolean } = {}): Promise<CloseResultT> {
    return this.json('DELETE', `/api/sessions/${encodeURIComponent(sessionId)}`, CloseResult, {
      ...opts,
      query: { discard: opts.discard },
      long: true,
    });
  }

  /** Save to Server; `dryRun` only plans, `overwrite` replaces stored files that changed since the pull. */
  sync(sessionId: string, opts: CallOptions & { dryRun?: boolean; overwrite?: boolean } = {}): Promise<SaveResultT> {
    return this.json('POST', `/api/sessions/${encodeURIComponent(sessionId)}/sync`, SaveResult, {
      ...opts,
      query: { dry_run: opts.dryRun, overwrite: opts.overwrite },
      long: true,
    });
  }

  heartbeat(sessionId: string, opts?: CallOptions): Promise<SessionT> {
    return this.json('POST', `/api/sessions/${encodeURIComponent(sessionId)}/heartbeat`, Session, opts);
  }

  /** The browser IDE's address with a one-time ticket; with a port, that port of the session (code-server's forwarding). */
  async launch(sessionId: string, opts: CallOptions & { port?: number } = {}): Promise<string> {
    const { port, ...rest } = opts;
    const path = `/api/sessions/${encodeURIComponent(sessionId)}/launch`;
    return (await this.json('POST', path, LaunchResult, { ...rest, json: port === undefined ? undefined : { port } })).url;
  }

  // ---- the session's /workspace ------------------------------------------------------------------

  private fsPath(sessionId: string, op: string): string {
    return `/api/sessions/${encodeURIComponent(sessionId)}/${op}`;
  }

  stat(sessionId: string, path: string, opts?: CallOptions): Promise<FileStatT> {
    return this.json('GET', this.fsPath(sessionId, 'fs/stat'), FileStat, { ...opts, query: { path } });
  }

  readDirectory(sessionId: string, path: string, opts?: CallOptions): Promise<DirEntryT[]> {
    return this.json('GET', this.fsPath(sessionId, 'fs/dir'), z.array(DirEntry), { ...opts, query: { path } });
  }

  readFile(sessionId: string, path: string, opts?: CallOptions): Promise<Uint8Array> {
    return this.bytes('GET', this.fsPath(sessionId, 'fs/file'), path, { ...opts, query: { path } });
  }

  async writeFile(sessionId: string, path: string, data: Uint8Array, flags: { create: boolean; overwrite: boolean }): Promise<void> {
    await this.send('PUT', this.fsPath(sessionId, 'fs/file'), {
      query: { path, ...flags },
      bytes: data,
      extraMs: Math.ceil((data.byteLength / MIN_UPLOAD_RATE) * 1000),
    });
  }

  async createDirectory(sessionId: string, path: string): Promise<void> {
    await this.send('POST', this.fsPath(sessionId, 'fs/mkdir'), { query: { path } });
  }

  async delete(sessionId: string, path: string, opts: { recursive: boolean }): Promise<void> {
    await this.send('DELETE', this.fsPath(sessionId, 'fs'), { query: { path, recursive: opts.recursive } });
  }

  async rename(sessionId: string, from: string, to: string, opts: { overwrite: boolean }): Promise<void> {
    await this.send('POST', this.fsPath(sessionId, 'fs/rename'), { json: { from, to, overwrite: opts.overwrite } });
  }

  // ---- plumbing ------------------------------------------------------------------------------------

  private async json<T>(method: string, path: string, schema: z.ZodMiniType<T>, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = await res.text().catch((err: unknown) => {
      throw this.failed(method, this.url(path, opts.query), err, opts.signal);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'bad_response', `${method} ${path} answered something that is not JSON.`);
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      this.log.warn(`${method} ${path}: unexpected answer`, checked.error.issues);
      throw new ApiError(res.status, 'bad_response', `${method} ${path} answered in an unexpected shape; is this a CrawlHub server?`);
    }
    return checked.data;
  }

  /**
   * A file's bytes. A big file over a slow link takes far longer than an ordinary call's limit, so
   * the limit is on silence instead: the headers must come within it, and then each next chunk.
   */
  private async bytes(method: string, path: string, what: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    const idle = new Inactivity(this.timeoutMs);
    try {
      const res = await this.send(method, path, { ...opts, idle });
      if (!res.body) return new Uint8Array();
      const chunks: Uint8Array[] = [];
      let size = 0;
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          idle.poke();
          chunks.push(value);
          size += value.byteLength;
        }
      } catch (err) {
        if (!idle.fired || opts.signal?.aborted) throw this.failed(method, this.url(path, opts.query), err, opts.signal);
        const stalled = new ApiError(0, 'timeout', `${this.origin} stopped sending ${what}: nothing arrived for ${idle.ms / 1000} s.`);
        this.log.warn(`${method} ${path}: ${stalled.message}`);
        throw stalled;
      }
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, at);
        at += chunk.byteLength;
      }
      return bytes;
    } finally {
      idle.stop();
    }
  }

  /** A request, or the reading of its answer, that failed without an answer of the server's. */
  private failed(method: string, url: URL, err: unknown, signal: AbortSignal | undefined): ApiError {
    const failure = ApiError.fromFetchFailure(err, url, signal);
    if (!failure.cancelled) this.log.warn(`${method} ${url.pathname} failed: ${failure.message}`);
    return failure;
  }

  private async send(method: string, path: string, opts: RequestOptions): Promise<Response> {
    const url = this.url(path, opts.query);
    const headers: Record<string, string> = { ...this.authorize(url), accept: 'application/json' };
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.bytes) {
      headers['content-type'] = 'application/octet-stream';
      body = opts.bytes as Uint8Array<ArrayBuffer>; // never backed by a SharedArrayBuffer here
    }
    const limit = opts.idle?.signal ?? AbortSignal.timeout(opts.long ? LONG_LIMIT_MS : this.timeoutMs + (opts.extraMs ?? 0));
    const signal = opts.signal ? AbortSignal.any([opts.signal, limit]) : limit;
    const started = Date.now();
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal, redirect: 'manual' });
    } catch (err) {
      throw this.failed(method, url, err, opts.signal);
    }
    this.log.debug(`${method} ${url.pathname}${url.search} → ${res.status} (${Date.now() - started} ms)`);
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location') ?? '';
      throw new ApiError(
        res.status,
        'redirected',
        `The server redirected to ${location || 'another address'}; use that address as the server URL.`,
      );
    }
    if (!res.ok) {
      const err = await ApiError.fromResponse(res);
      // VS Code probes many paths that do not exist (.vscode/settings.json…): a 404 is an answer, not a problem.
      const line = `${method} ${url.pathname} → ${res.status} ${err.code}: ${err.message}`;
      if (res.status === 404) this.log.debug(line);
      else this.log.warn(line);
      if (res.status === 401) this.unauthorized(err);
      throw err;
    }
    return res;
  }
}
