import type http from 'node:http';
import type stream from 'node:stream';
import { FastLane, type LaneDecision, type LaneRequest } from './lane';
import type { Metrics } from '../http/metrics';
import { pathOnly, type Logger } from '../logger';
import { ActivityThrottle } from './activity';
import { BROWSER_COOKIE, BROWSER_SCOPE, IDE_COOKIE, IdeCookieSigner, UPSTREAM_COOKIE, type IdeAdmission } from './cookie';
import { Forwarder, type ForwardOutcome, type Upstream } from './forward';
import { clientAddress, FRAME_POLICY, FRAME_POLICY_SELF, scanRequest, upstreamHeaders, type ScannedRequest } from './headers';
import { PAGES, refuseUpgrade, sendPage, sendRedirect, type Page } from './pages';
import { PATH_PREFIX, route, routeTarget, sessionBaseUrl, sessionOrigin, takeTicket, topology, type Route } from './routing';
import { TicketBook } from './tickets';
import { TokenLiveness } from './tokens';

export interface ProxySession {
  id: string;
  userId: string;
  status: 'pending' | 'starting' | 'ready' | 'syncing' | 'stopped' | 'failed';
  port: number | null;
  /**
   * Where the container's code-server listens when the service can reach it directly (its address
   * on the sessions' bridge network, port 8080): one hop less than Docker's port proxy. Without it,
   * 127.0.0.1:<port>.
   */
  direct?: { host: string; port: number } | null;
}

export interface ProxySessions {
  /** The session, or null when unknown. Called on every request: the lead keeps it in memory, so it is cheap. */
  find(sessionId: string): ProxySession | null | Promise<ProxySession | null>;
  /** Browser activity through the proxy; throttled here (at most once per 30 s per session), not per byte. */
  touch(sessionId: string): void;
  /** The value code-server in that container accepts as its `code-server-session` cookie. */
  upstreamSecret(sessionId: string): string;
}

/** The session a launch URL opens, and the API token that asked for it. */
export interface LaunchTarget {
  id: string;
  userId: string;
  tokenId: string;
}

/** The API tokens launches were asked with. */
export interface ProxyTokens {
  /** Whether the token still stands (not revoked). */
  isLive(tokenId: string): Promise<boolean>;
}

export interface ProxyOptions {
  publicUrl: string;
  /** `` for path mode; `code.example.com` to serve each session at `<id>.code.example.com`. */
  codeDomain: string;
  trustedOrigins: string[];
  secureCookies: 'auto' | 'true' | 'false';
  /** 32 bytes, the service's HMAC key. */
  secretKey: Buffer;
  logger: Logger;
  metrics: Metrics;
  /** How long the IDE cookie admits its user (while the session lives). Default 24 h. */
  cookieMaxAgeMs?: number;
  tokens: ProxyTokens;
  /**
   * How often the token behind an IDE is asked about again (default 30 s, as for the API's own
   * sockets): a revoked token's IDE pages are refused and its WebSockets closed within this. An
   * ended session's open connections are closed at the same checks.
   */
  tokenRecheckMs?: number;
  /** Tests move time. */
  now?: () => number;
  /** Relay admitted GETs and HEADs on the raw sockets (see lane.ts); default true. */
  fastLane?: boolean;
}

export interface Proxy {
  /**
   * The URL that opens the session's browser IDE, with a one-time ticket (single use, valid 60 s) for
   * this user; with a port, the URL of a server on that port inside the container instead, through
   * code-server's own port forwarding (`/proxy/<port>/`).
   */
  launchUrl(target: LaunchTarget, opts?: { port?: number }): string;
  /** Handles the request if it is the proxy's (`/code-server/<id>/…`, or a `<id>.<codeDomain>` host); false otherwise. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  handleUpgrade(req: http.IncomingMessage, socket: stream.Duplex, head: Buffer): boolean;
  /**
   * Reads the server's connections first, relaying admitted GETs and HEADs itself (the fast lane);
   * the server still gets every other request, and handleRequest/handleUpgrade still see them.
   */
  install(server: http.Server): void;
  close(): void;
}

export const TICKET_TTL_MS = 60_000;
export const ACTIVITY_WINDOW_MS = 30_000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

type Kind = 'http' | 'ws';
type Refusal = 'forbidden' | 'other_user' | 'revoked' | 'ticket' | 'origin' | 'gone' | 'starting' | 'bad_request' | 'error';
/** How long a browser stays bound to the CrawlHub user it opened sessions as (path mode). */
const BROWSER_BINDING_MS = 30 * 24 * 3_600_000;
type Admitted = { host: string; port: number; originOverride: string | null };
/** What a revoked token's connections are: WebSockets and HTTP responses. */
type Closable = { destroyed: boolean; destroy(): void; once(event: 'close', listener: () => void): unknown };
/** The most values of one of the service's cookies a request has checked by HMAC (known good ones are looked up). */
const MAX_COOKIE_VALUES = 4;

/**
 * The authenticated reverse proxy to each session's code-server. Every request and upgrade is
 * admitted by a signed cookie for a live session of the cookie's user (no I/O), the WebSocket's
 * Origin, and the session's state; then it is streamed to the container (its network address, else
 * 127.0.0.1:<published port>) with the service's own forwarding headers and code-server's cookie
 * in place of the browser's credentials.
 */
export function createProxy(sessions: ProxySessions, opts: ProxyOptions): Proxy {
  const now = opts.now ?? Date.now;
  const topo = topology(opts.publicUrl, opts.codeDomain);
  const publicHost = new URL(opts.publicUrl).host;
  const trusted = new Set(opts.trustedOrigins.map((o) => o.toLowerCase().replace(/\/$/, '')));
  const secure = opts.secureCookies === 'true' || (opts.secureCookies === 'auto' && topo.proto === 'https');
  const cookieMaxAgeMs = opts.cookieMaxAgeMs ?? 24 * 3_600_000;
  const signer = new IdeCookieSigner(opts.secretKey);
  const tickets = new TicketBook(TICKET_TTL_MS, now);
  const log = opts.logger.child({ component: 'proxy' });
  const activity = new ActivityThrottle(
    (id) => sessions.touch(id),
    ACTIVITY_WINDOW_MS,
    now,
    (err, sessionId) => log.warn({ err, sessionId }, 'touch failed'),
  );
  const upstreamError = (err: Error, upstream: string, path: string) =>
    log.warn(
      { err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, upstream, path: pathOnly(path) },
      'container did not answer',
    );
  const forwarder = new Forwarder(topo.publicOrigin, upstreamError);
  // `code-server-session=<secret>` per session: the secret is an HMAC, worth computing once.
  const upstreamCookies = new Map<string, string>();
  const verified = new Map<string, IdeAdmission>();
  const sweeper = setInterval(() => tickets.sweep(), TICKET_TTL_MS);
  sweeper.unref();
  const tokenRecheckMs = opts.tokenRecheckMs ?? 30_000;
  const tokens = new TokenLiveness((id) => opts.tokens.isLive(id), tokenRecheckMs, now);
  /**
   * Each token's open IDE WebSockets and HTTP responses (streams, downloads), with the session each
   * goes to: a revoked token's are ended at the next check, and so are those of a session that has
   * ended (stopped, failed or gone), even while its container lingers.
   */
  const socketsByToken = new Map<string, Map<Closable, string>>();
  const rechecker = setInterval(() => {
    for (const tokenId of socketsByToken.keys())
      tokens.refresh(tokenId).then(
        (live) => {
          if (live) return;
          const open = socketsByToken.get(tokenId);
          socketsByToken.delete(tokenId);
          if (open?.size) log.info({ tokenId, connections: open.size }, 'IDE connections closed: their API token was revoked');
          for (const socket of open?.keys() ?? []) socket.destroy();
        },
        (err: unknown) => log.warn({ err, tokenId }, 'could not check an IDE’s API token again'),
      );
    closeEndedSessions();
  }, tokenRecheckMs);
  rechecker.unref();

  function closeEndedSessions(): void {
    const bySession = new Map<string, Closable[]>();
    for (const open of socketsByToken.values())
      for (const [socket, sessionId] of open) {
        let list = bySession.get(sessionId);
        if (!list) bySession.set(sessionId, (list = []));
        list.push(socket);
      }
    for (const [sessionId, open] of bySession) {
      const check = (session: ProxySession | null) => {
        if (session && session.status !== 'stopped' && session.status !== 'failed') return;
        log.info({ sessionId, connections: open.length }, 'IDE connections closed: their session has ended');
        for (const socket of open) socket.destroy();
      };
      const failed = (err: unknown) => log.warn({ err, sessionId }, 'could not check an IDE’s session again');
      try {
        const found = sessions.find(sessionId);
        if (isPromise(found)) found.then(check, failed);
        else check(found);
      } catch (err) {
        failed(err);
      }
    }
  }

  function holdSocket(tokenId: string, sessionId: string, socket: Closable): void {
    if (socket.destroyed) return;
    let open = socketsByToken.get(tokenId);
    if (!open) socketsByToken.set(tokenId, (open = new Map<Closable, string>()));
    open.set(socket, sessionId);
    socket.once('close', () => {
      open.delete(socket);
      if (open.size === 0 && socketsByToken.get(tokenId) === open) socketsByToken.delete(tokenId);
    });
  }

  // Label children bound once: prom-client would otherwise hash the labels on every request.
  const counters = new Map<string, { inc(): void }>();
  const count = (kind: Kind, outcome: Refusal | ForwardOutcome | 'redirect' | 'ticket_redeemed') => {
    const key = `${kind}:${outcome}`;
    let counter = counters.get(key);
    if (!counter) counters.set(key, (counter = opts.metrics.proxyRequests.labels({ kind, outcome })));
    counter.inc();
  };

  function upstreamCookie(sessionId: string): string {
    let value = upstreamCookies.get(sessionId);
    if (value === undefined) {
      if (upstreamCookies.size >= 4096) upstreamCookies.clear();
      value = `${UPSTREAM_COOKIE}=${sessions.upstreamSecret(sessionId)}`;
      upstreamCookies.set(sessionId, value);
    }
    return value;
  }

  /**
   * Path mode: every session is served from the service's one origin, so a page in one session
   * can reach the others this browser is signed in to. A browser is therefore bound to one CrawlHub
   * user (a signed cookie for all of /code-server/): a launch link of another user's session — sent
   * to someone to plant a page of one's own in their browser — is refused there, and so is every
   * request whose IDE cookie names another user than the browser's. Null: not bound yet.
   */
  function browserUser(scan: ScannedRequest): { userId: string | null; mixed: boolean } {
    let userId: string | null = null;
    let mixed = false;
    const t = now();
    let tries = 0;
    for (const value of scan.browserCookies) {
      const key = `${BROWSER_SCOPE} ${value}`;
      let known = verified.get(key);
      if (known === undefined || known.expiresAt <= t) {
        // Values verified before cost a lookup; at most a few others cost an HMAC each.
        if (++tries > MAX_COOKIE_VALUES) continue;
        const valid = signer.verify(value, BROWSER_SCOPE, t);
        if (valid === null) continue;
        if (verified.size >= 10_000) verified.clear();
        verified.set(key, (known = valid));
      }
      if (userId !== null && userId !== known.userId) mixed = true;
      userId = known.userId;
    }
    return { userId, mixed };
  }

  function browserCookie(userId: string): string {
    const value = signer.sign(BROWSER_SCOPE, userId, now() + BROWSER_BINDING_MS);
    return (
      `${BROWSER_COOKIE}=${value}; Path=${PATH_PREFIX}; Max-Age=${Math.floor(BROWSER_BINDING_MS / 1000)}; HttpOnly; SameSite=Lax` +
      (secure ? '; Secure' : '')
    );
  }

  function originAllowed(origin: string, own: string): boolean {
    return origin === own || origin.toLowerCase() === own || trusted.has(origin.toLowerCase());
  }

  /**
   * What a valid IDE cookie for this session says (its user and token), or null. Each value is
   * tried (a decoy may shadow the real one). A cookie that verified once for a session is
   * remembered with its expiry, so a page load's hundred requests cost one HMAC; forged values are
   * never remembered.
   */
  function cookieAdmission(scan: ScannedRequest, sessionId: string): IdeAdmission | null {
    const t = now();
    // A value verified before costs a lookup, wherever it is among decoys; of the others, only the
    // first few are checked (each costs an HMAC: a header of a thousand decoys would cost the event
    // loop milliseconds). Decoys planted to crowd a fresh cookie out could only be three: a sibling
    // host reaches this host's `/` with a cookie for the code domain and one for its parent domain.
    let tries = 0;
    for (const value of scan.ideCookies) {
      const key = `${sessionId} ${value}`;
      const known = verified.get(key);
      if (known !== undefined && known.expiresAt > t) return known;
      if (++tries > MAX_COOKIE_VALUES) continue;
      const valid = signer.verify(value, sessionId, t);
      if (valid !== null) {
        if (verified.size >= 10_000) verified.clear();
        verified.set(key, valid);
        return valid;
      }
    }
    return null;
  }

  /**
   * Decides whether a request may reach the container. Synchronous whenever `sessions.find` is,
   * so the common path allocates no promise.
   */
  function admit(
    kind: Kind,
    method: string,
    r: Extract<Route, { kind: 'session' }>,
    scan: ScannedRequest,
    next: (result: Admitted | Page, refusal?: Refusal, tokenId?: string) => void,
  ): void {
    const own = sessionOrigin(topo, r.sessionId);
    let originOverride: string | null = null;
    if (scan.origin !== undefined || kind === 'ws') {
      // Browsers always send Origin on a WebSocket handshake; a state-changing request from another
      // site is refused too (SameSite=Lax already keeps the cookie off most of them).
      const allowed = scan.origin !== undefined && originAllowed(scan.origin, own);
      if (!allowed && (kind === 'ws' || !SAFE_METHODS.has(method))) return next(PAGES.origin, 'origin');
      if (allowed && scan.origin !== own) originOverride = own;
    }
    const admission = cookieAdmission(scan, r.sessionId);
    if (admission === null) return next(PAGES.forbidden, 'forbidden');
    const { userId, tokenId } = admission;
    if (!topo.codeHost) {
      const browser = browserUser(scan);
      if (browser.userId === null) return next(PAGES.forbidden, 'forbidden');
      if (browser.mixed || browser.userId !== userId) return next(PAGES.otherUser, 'other_user');
    }
    const decide = (session: ProxySession | null) => {
      if (!session || session.status === 'stopped' || session.status === 'failed') {
        upstreamCookies.delete(r.sessionId);
        return next(PAGES.gone, 'gone');
      }
      if (session.userId !== userId) return next(PAGES.forbidden, 'forbidden');
      if (session.status === 'pending' || session.status === 'starting') return next(PAGES.starting, 'starting');
      if (session.port === null) return next(PAGES.starting, 'starting');
      const to = session.direct ?? { host: '127.0.0.1', port: session.port };
      next({ host: to.host, port: to.port, originOverride }, undefined, tokenId);
    };
    const failed = (err: unknown) => {
      log.error({ err, sessionId: r.sessionId }, 'session or token lookup failed');
      next(PAGES.error, 'error');
    };
    const lookUp = (live: boolean) => {
      if (!live) return next(PAGES.revoked, 'revoked');
      const found = sessions.find(r.sessionId);
      if (isPromise(found)) found.then(decide).catch(failed);
      else decide(found);
    };
    const live = tokens.state(tokenId);
    if (isPromise(live)) live.then(lookUp).catch(failed);
    else lookUp(live);
  }

  function upstream(
    remoteAddress: string | undefined,
    r: Extract<Route, { kind: 'session' }>,
    scan: ScannedRequest,
    a: Admitted,
    ws: boolean,
  ): Upstream {
    const host = topo.codeHost ? `${r.sessionId}.${topo.codeHost}${topo.codePort}` : publicHost;
    const fwd = { host, proto: topo.proto, upstreamCookie: upstreamCookie(r.sessionId) };
    return {
      host: a.host,
      port: a.port,
      path: r.upstreamPath,
      headers: upstreamHeaders(scan, clientAddress(remoteAddress), fwd, ws, a.originOverride),
      prefix: r.prefix,
      hasBody: scan.hasBody,
      framePolicy: scan.forFrame ? FRAME_POLICY_SELF : FRAME_POLICY,
    };
  }

  /** Trades a launch ticket for the IDE cookie, then sends the browser to the same URL without it. */
  function redeemTicket(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Extract<Route, { kind: 'session' }>,
    scan: ScannedRequest,
  ): boolean {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const found = takeTicket(r.upstreamPath);
    if (!found) return false;
    // `//evil.example/?ticket=…` on a session host must not become a redirect off-site.
    const location = r.prefix + found.rest.replace(/^[/\\]+/, '/');
    const redeemed = tickets.redeem(found.ticket, r.sessionId);
    const userId = redeemed?.userId ?? null;
    const browser = userId !== null && !topo.codeHost ? browserUser(scan) : null;
    if (userId !== null && browser !== null && (browser.mixed || (browser.userId !== null && browser.userId !== userId))) {
      count('http', 'other_user');
      log.warn(
        { sessionId: r.sessionId, userId, browserUser: browser.userId },
        'launch ticket refused: the browser is bound to another user',
      );
      sendPage(req, res, PAGES.otherUser);
    } else if (userId !== null) {
      const value = signer.sign(r.sessionId, userId, now() + cookieMaxAgeMs, redeemed!.tokenId);
      const cookie =
        `${IDE_COOKIE}=${value}; Path=${r.prefix}/; Max-Age=${Math.floor(cookieMaxAgeMs / 1000)}; HttpOnly; SameSite=Lax` +
        (secure ? '; Secure' : '');
      count('http', 'ticket_redeemed');
      log.info({ sessionId: r.sessionId, userId }, 'launch ticket redeemed');
      sendRedirect(res, location, topo.codeHost ? [cookie] : [cookie, browserCookie(userId)]);
    } else if (cookieAdmission(scan, r.sessionId) !== null) {
      // A spent ticket in a reloaded or bookmarked URL: the cookie already admits this browser.
      count('http', 'redirect');
      sendRedirect(res, location);
    } else {
      count('http', 'ticket');
      log.info(
        { sessionId: r.sessionId, path: pathOnly(req.url) },
        'launch ticket refused: unknown, spent, expired or for another session',
      );
      sendPage(req, res, PAGES.ticket);
    }
    return true;
  }

  function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const r = route(topo, req);
    if (r === null) return false;
    try {
      if (r.kind === 'redirect') {
        count('http', 'redirect');
        sendRedirect(res, r.location);
        return true;
      }
      if (r.kind === 'invalid') {
        count('http', 'bad_request');
        log.debug({ path: pathOnly(req.url), reason: r.reason }, 'proxy request refused');
        sendPage(req, res, r.status === 404 ? PAGES.gone : PAGES.badRequest);
        return true;
      }
      const scan = scanRequest(req.rawHeaders);
      if (scan === null || scan.unsupportedCoding) {
        count('http', 'bad_request');
        sendPage(req, res, scan === null ? PAGES.badRequest : PAGES.notImplemented);
        return true;
      }
      // Another site's page (in subdomain mode: another session's, which may be anyone's) may open
      // the IDE in a tab, but not load, fetch or frame it with the user's cookies (blind requests),
      // nor trade a ticket in the background; a trusted origin's own requests go on.
      if (scan.fromOtherSite && !(scan.origin !== undefined && originAllowed(scan.origin, sessionOrigin(topo, r.sessionId)))) {
        count('http', 'origin');
        log.debug({ sessionId: r.sessionId, path: pathOnly(req.url) }, 'proxy request refused: made by another site');
        sendPage(req, res, PAGES.origin);
        return true;
      }
      if (redeemTicket(req, res, r, scan)) return true;
      const method = req.method ?? 'GET';
      admit('http', method, r, scan, (result, refusal, tokenId) => {
        if (refusal) {
          count('http', refusal);
          if (refusal !== 'starting') log.debug({ sessionId: r.sessionId, path: pathOnly(req.url), refusal }, 'proxy request refused');
          sendPage(req, res, result as Page);
          return;
        }
        const a = result as Admitted;
        holdSocket(tokenId!, r.sessionId, res);
        activity.seen(r.sessionId);
        forwarder.web(req, res, upstream(req.socket.remoteAddress, r, scan, a, false), (outcome) => count('http', outcome));
      });
    } catch (err) {
      log.error({ err, path: pathOnly(req.url) }, 'proxy request failed');
      if (!res.headersSent) sendPage(req, res, PAGES.error);
      else res.destroy();
    }
    return true;
  }

  /**
   * The fast lane's question: relay this GET or HEAD, or leave it to handleRequest (null) — which
   * answers everything but an admitted request (refusals, tickets, redirects, bad requests) itself.
   */
  function decideLane(req: LaneRequest, next: (decision: LaneDecision | null) => void): void {
    const r = routeTarget(topo, req.url, req.host);
    if (r === null || r.kind !== 'session' || takeTicket(r.upstreamPath) !== null) return next(null);
    const scan = scanRequest(req.rawHeaders);
    if (scan === null || scan.unsupportedCoding || scan.hasBody || scan.upgrade !== undefined || scan.fromOtherSite) return next(null);
    admit('http', req.method, r, scan, (result, refusal, tokenId) => {
      if (refusal) return next(null);
      next({ upstream: upstream(req.remoteAddress, r, scan, result as Admitted, false), sessionId: r.sessionId, tokenId: tokenId! });
    });
  }

  const lane =
    opts.fastLane === false
      ? null
      : new FastLane(
          {
            decide: decideLane,
            done: (outcome) => count('http', outcome),
            hold: holdSocket,
            seen: (sessionId) => activity.seen(sessionId),
            upstreamError,
            now,
          },
          topo.publicOrigin,
        );

  if (lane && !lane.enabled) log.warn('the proxy’s fast lane is off: this Node’s HTTP parser binding is not as expected');

  function handleUpgrade(req: http.IncomingMessage, socket: stream.Duplex, head: Buffer): boolean {
    const r = route(topo, req);
    if (r === null) return false;
    // A client that resets mid-handshake must not take the service down.
    socket.on('error', () => socket.destroy());
    try {
      if (r.kind !== 'session') {
        count('ws', 'bad_request');
        refuseUpgrade(socket, r.kind === 'invalid' && r.status === 404 ? PAGES.gone : PAGES.badRequest);
        return true;
      }
      const scan = scanRequest(req.rawHeaders);
      if (scan === null || req.method !== 'GET' || scan.upgrade?.toLowerCase() !== 'websocket') {
        count('ws', 'bad_request');
        refuseUpgrade(socket, PAGES.badRequest);
        return true;
      }
      admit('ws', 'GET', r, scan, (result, refusal, tokenId) => {
        if (refusal) {
          count('ws', refusal);
          if (refusal !== 'starting') log.info({ sessionId: r.sessionId, path: pathOnly(req.url), refusal }, 'proxy upgrade refused');
          refuseUpgrade(socket, result as Page);
          return;
        }
        const sessionId = r.sessionId;
        activity.seen(sessionId);
        forwarder.ws(
          req,
          socket,
          head,
          upstream(req.socket.remoteAddress, r, scan, result as Admitted, true),
          () => activity.seen(sessionId),
          (outcome) => {
            if (outcome === 'proxied') holdSocket(tokenId!, sessionId, socket);
            count('ws', outcome);
          },
        );
      });
    } catch (err) {
      log.error({ err, path: pathOnly(req.url) }, 'proxy upgrade failed');
      refuseUpgrade(socket, PAGES.error);
    }
    return true;
  }

  return {
    launchUrl(session, { port } = {}) {
      const ticket = tickets.issue(session.id, session.userId, session.tokenId);
      const base = sessionBaseUrl(topo, session.id);
      return port === undefined ? `${base}?folder=/workspace&ticket=${ticket}` : `${base}proxy/${port}/?ticket=${ticket}`;
    },
    handleRequest,
    handleUpgrade,
    install(server) {
      lane?.install(server);
    },
    close() {
      lane?.close();
      clearInterval(sweeper);
      clearInterval(rechecker);
      tokens.clear();
      socketsByToken.clear();
      tickets.clear();
      activity.clear();
      upstreamCookies.clear();
      verified.clear();
      forwarder.close();
    },
  };
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return v !== null && typeof (v as Promise<T>).then === 'function';
}
