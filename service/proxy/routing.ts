import type http from 'node:http';

export const PATH_PREFIX = '/code-server/';
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
// `..` as a path segment, raw or percent-encoded, between slashes or backslashes (which some
// servers take as slashes): refused rather than handed to the container.
const DOT_DOT_SEGMENT = /(?:^|[/\\]|%2f|%5c)(?:\.|%2e){2}(?:[/\\?]|%2f|%5c|$)/i;

/** Where a request goes, decided from its URL (path mode) or Host (subdomain mode) alone. */
export type Route =
  | {
      kind: 'session';
      sessionId: string;
      /** Path and query for the container: the prefix stripped. */
      upstreamPath: string;
      /** `/code-server/<id>` in path mode, `` in subdomain mode. */
      prefix: string;
    }
  | { kind: 'redirect'; location: string }
  | { kind: 'invalid'; status: 400 | 404; reason: string };

export interface Topology {
  /** `http` or `https`: what the browser used to reach the service (from the public URL). */
  proto: 'http' | 'https';
  /** The service's own origin, from the public URL. */
  publicOrigin: string;
  /** Subdomain mode: the code domain's host name (lower case, no port). */
  codeHost: string | null;
  /** Subdomain mode: `:port` kept from the public URL (or given with the code domain), or ``. */
  codePort: string;
}

export function topology(publicUrl: string, codeDomain: string): Topology {
  const url = new URL(publicUrl);
  const proto = url.protocol === 'https:' ? 'https' : 'http';
  if (!codeDomain) return { proto, publicOrigin: url.origin, codeHost: null, codePort: '' };
  const colon = codeDomain.lastIndexOf(':');
  const hasPort = colon !== -1 && /^\d+$/.test(codeDomain.slice(colon + 1));
  const codeHost = (hasPort ? codeDomain.slice(0, colon) : codeDomain).toLowerCase().replace(/\.$/, '');
  const codePort = hasPort ? `:${codeDomain.slice(colon + 1)}` : url.port ? `:${url.port}` : '';
  return { proto, publicOrigin: url.origin, codeHost, codePort };
}

/** The origin the session's IDE is served from: its own subdomain, or the service's origin. */
export function sessionOrigin(t: Topology, sessionId: string): string {
  return t.codeHost ? `${t.proto}://${sessionId.toLowerCase()}.${t.codeHost}${t.codePort}` : t.publicOrigin;
}

/** The base URL of a session's IDE, with a trailing slash. */
export function sessionBaseUrl(t: Topology, sessionId: string): string {
  return t.codeHost ? `${sessionOrigin(t, sessionId)}/` : `${t.publicOrigin}${PATH_PREFIX}${sessionId}/`;
}

/** Null when the request is not the proxy's (Koa gets it). */
export function route(t: Topology, req: http.IncomingMessage): Route | null {
  return routeTarget(t, req.url ?? '', req.headers.host);
}

/** The same, from a request's target and Host. */
export function routeTarget(t: Topology, url: string, host: string | undefined): Route | null {
  if (t.codeHost) {
    const sessionId = sessionFromHost(t.codeHost, host);
    if (sessionId === null) return null;
    if (sessionId === '') return { kind: 'invalid', status: 404, reason: 'no such session host' };
    if (url.charCodeAt(0) !== 47 /* / */) return { kind: 'invalid', status: 400, reason: 'request target is not a path' };
    if (hasDotDot(url)) return { kind: 'invalid', status: 400, reason: 'dot segment in path' };
    return { kind: 'session', sessionId, upstreamPath: url, prefix: '' };
  }
  if (!url.startsWith(PATH_PREFIX)) {
    // An absolute-form target (`GET http://host/code-server/…`) is never what a browser sends.
    if (url.charCodeAt(0) !== 47 && url.includes(PATH_PREFIX))
      return { kind: 'invalid', status: 400, reason: 'absolute-form request target' };
    return null;
  }
  let end = PATH_PREFIX.length;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */) break;
    end++;
  }
  const sessionId = url.slice(PATH_PREFIX.length, end);
  if (!SESSION_ID.test(sessionId)) return { kind: 'invalid', status: 404, reason: 'not a session id' };
  const prefix = url.slice(0, end);
  // Relative URLs in code-server's pages need the trailing slash.
  if (end === url.length || url.charCodeAt(end) === 63) return { kind: 'redirect', location: `${prefix}/${url.slice(end)}` };
  const upstreamPath = url.slice(end);
  if (hasDotDot(upstreamPath)) return { kind: 'invalid', status: 400, reason: 'dot segment in path' };
  return { kind: 'session', sessionId, upstreamPath, prefix };
}

/** The session id of `<id>.<codeHost>[:port]`; `` for another name under the code domain; null for any other host. */
function sessionFromHost(codeHost: string, host: string | undefined): string | null {
  if (!host) return null;
  let name = host.toLowerCase();
  const colon = name.lastIndexOf(':');
  if (colon !== -1 && name.indexOf(']') === -1) name = name.slice(0, colon);
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length <= codeHost.length + 1 || !name.endsWith(codeHost) || name.charCodeAt(name.length - codeHost.length - 1) !== 46) {
    return null;
  }
  const label = name.slice(0, name.length - codeHost.length - 1);
  return SESSION_ID.test(label) ? label : '';
}

function hasDotDot(pathAndQuery: string): boolean {
  // Cheap test first: most paths have neither `..` nor `%2e`.
  if (pathAndQuery.indexOf('..') === -1 && pathAndQuery.indexOf('%') === -1) return false;
  const q = pathAndQuery.indexOf('?');
  return DOT_DOT_SEGMENT.test(q === -1 ? pathAndQuery : pathAndQuery.slice(0, q));
}

/**
 * The one-time ticket in a query string, and the same path and query without it. The rest of the
 * query is kept byte for byte.
 */
export function takeTicket(pathAndQuery: string): { ticket: string; rest: string } | null {
  const q = pathAndQuery.indexOf('?');
  if (q === -1 || pathAndQuery.indexOf('ticket=', q) === -1) return null;
  const params = pathAndQuery.slice(q + 1).split('&');
  let ticket: string | null = null;
  const kept: string[] = [];
  for (const param of params) {
    if (param.startsWith('ticket=')) ticket ??= param.slice(7);
    else if (param !== '') kept.push(param);
  }
  if (ticket === null) return null;
  const path = pathAndQuery.slice(0, q);
  return { ticket, rest: kept.length ? `${path}?${kept.join('&')}` : path };
}
