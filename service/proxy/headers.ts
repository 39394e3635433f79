import { confineSetCookie, splitCookieHeader } from './cookie';

/** Added to every response the proxy sends: no page may frame the IDE (clickjacking). */
export const FRAME_POLICY = "frame-ancestors 'none'";
/**
 * …except the documents the workbench itself puts in iframes (webviews such as the Markdown
 * preview, and the web-worker extension host), which it loads from its own origin: those may be
 * framed by that origin only. The browser says which requests are for frames (Sec-Fetch-Dest), and
 * a page elsewhere cannot use that to frame anything, since 'self' still refuses it.
 */
export const FRAME_POLICY_SELF = "frame-ancestors 'self'";

/**
 * Request headers that never travel to a container: hop-by-hop ones (RFC 9110 §7.6.1), the
 * client's credentials for the service, and anything a client could use to lie about where it
 * is (the proxy writes its own). The cookie header is rebuilt, not dropped.
 */
const DROP_REQUEST = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'expect',
  'authorization',
  'proxy-authorization',
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
]);

/** Response headers that are hop-by-hop: Node frames the response to the browser itself. */
const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  // How the browser reaches the service's host is the service's to say, not a container's: another
  // endpoint for the whole host (Alt-Svc), or HTTPS-only for it and its subdomains (HSTS).
  'alt-svc',
  'strict-transport-security',
]);
/**
 * In path mode every session shares the service's origin: headers that act on the whole origin are
 * the service's alone. Clear-Site-Data would wipe every session's cookies and storage; NEL and the
 * Reporting API would send reports of the origin's requests (launch URLs with their tickets) to
 * wherever the container says.
 */
const DROP_RESPONSE_SHARED_ORIGIN = new Set(['clear-site-data', 'nel', 'report-to', 'reporting-endpoints']);

export interface Forwarding {
  /** Host (and port) the browser used for the IDE: the public URL's, or the session's subdomain. */
  host: string;
  proto: 'http' | 'https';
  /** `code-server-session=<secret>`. */
  upstreamCookie: string;
}

/** `::ffff:1.2.3.4` is how an IPv4 client shows on a dual-stack socket. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return 'unknown';
  return remote.startsWith('::ffff:') && remote.indexOf('.') !== -1 ? remote.slice(7) : remote;
}

/** One pass over a request's raw headers: what the admission check needs, and the headers that may go on. */
export interface ScannedRequest {
  /** Flat [name, value, …], Host first, without the dropped headers and without cookies. */
  headers: string[];
  /** Cookie pairs that may go to the container. */
  cookies: string[];
  /** Every value of the IDE cookie the browser sent. */
  ideCookies: string[];
  /** Every value of the browser's user cookie (path mode). */
  browserCookies: string[];
  origin: string | undefined;
  /** Index of the Origin value in `headers`, or -1. */
  originAt: number;
  hasBody: boolean;
  upgrade: string | undefined;
  /** The browser loads this into an iframe (Sec-Fetch-Dest). */
  forFrame: boolean;
  /**
   * By the browser's Fetch Metadata, a request another site's page made for something other than
   * opening a page in its own tab or window: a subresource, a fetch, a frame (a sibling session's
   * host is the same site, and SameSite cookies go with its requests).
   */
  fromOtherSite: boolean;
  /** A Transfer-Encoding other than `chunked` alone: the proxy does not pass codings on (501). */
  unsupportedCoding: boolean;
}

/**
 * Most distinct headers a request may name in Connection: browsers name none or one. The scan runs
 * before authentication, so what it costs must not grow with what a client sends.
 */
const MAX_CONNECTION_NAMES = 32;

/** Null for a request to refuse: its Connection header names more than MAX_CONNECTION_NAMES headers. */
export function scanRequest(raw: string[]): ScannedRequest | null {
  let headers: string[] = ['Host', ''];
  const cookies: string[] = [];
  const ideCookies: string[] = [];
  const browserCookies: string[] = [];
  let origin: string | undefined;
  let originAt = -1;
  let hasBody = false;
  let upgrade: string | undefined;
  let forFrame = false;
  let site: string | undefined;
  let mode: string | undefined;
  let dest: string | undefined;
  let unsupportedCoding = false;
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    switch (name) {
      case 'cookie':
        splitCookieHeader(value, ideCookies, cookies, browserCookies);
        continue;
      case 'connection':
        // Headers the client names in Connection are hop-by-hop too.
        for (const token of value.split(',')) {
          const t = token.trim().toLowerCase();
          if (!t || t === 'keep-alive' || t === 'close' || t === 'upgrade') continue;
          (named ??= new Set()).add(t);
          if (named.size > MAX_CONNECTION_NAMES) return null;
        }
        continue;
      case 'upgrade':
        upgrade = value;
        continue;
      case 'origin':
        // Two Origin headers are no browser's: neither can be trusted, so neither is allowed.
        origin = origin === undefined ? value : 'null';
        originAt = headers.length + 1;
        break;
      case 'content-length':
        if (value !== '0') hasBody = true;
        break;
      case 'transfer-encoding':
        // Framing is per hop: the proxy streams the body and frames it for the container itself.
        // Node has taken the chunks apart; any other coding would reach the container unannounced.
        hasBody = true;
        if (value.trim().toLowerCase() !== 'chunked') unsupportedCoding = true;
        continue;
      case 'sec-fetch-dest':
        dest = value;
        forFrame = value === 'iframe' || value === 'frame';
        break;
      case 'sec-fetch-site':
        site = value;
        break;
      case 'sec-fetch-mode':
        mode = value;
        break;
      default:
        if (DROP_REQUEST.has(name) || name.startsWith('x-forwarded-') || name.startsWith('x-original-')) continue;
    }
    headers.push(raw[i], value);
  }
  if (named) {
    const kept: string[] = ['Host', ''];
    let keptOriginAt = -1;
    for (let i = 2; i < headers.length; i += 2) {
      if (named.has(headers[i].toLowerCase())) continue;
      if (i + 1 === originAt) keptOriginAt = kept.length + 1;
      kept.push(headers[i], headers[i + 1]);
    }
    headers = kept;
    originAt = keptOriginAt;
  }
  const fromOtherSite = (site === 'same-site' || site === 'cross-site') && !(mode === 'navigate' && dest === 'document');
  return { headers, cookies, ideCookies, browserCookies, origin, originAt, hasBody, upgrade, forFrame, fromOtherSite, unsupportedCoding };
}

/**
 * Completes the headers for the container (as a flat list, which http.request takes without
 * building an object): Host, code-server's cookie next to the browser's other cookies, the
 * forwarding headers written by the service (the client's were dropped), and for a WebSocket
 * the handshake's Connection/Upgrade. `originOverride` is set when the Origin is a configured
 * trusted one: code-server compares Origin with the host, so it is shown the session's own.
 */
export function upstreamHeaders(
  scan: ScannedRequest,
  clientIp: string,
  fwd: Forwarding,
  upgrade: boolean,
  originOverride: string | null,
): string[] {
  const out = scan.headers;
  out[1] = fwd.host;
  if (originOverride !== null && scan.originAt !== -1) out[scan.originAt] = originOverride;
  out.push('Cookie', scan.cookies.length ? `${scan.cookies.join('; ')}; ${fwd.upstreamCookie}` : fwd.upstreamCookie);
  out.push('X-Forwarded-For', clientIp, 'X-Forwarded-Proto', fwd.proto, 'X-Forwarded-Host', fwd.host);
  // RFC 7239. No host= here: code-server would read a quoted host="name:port" with its quotes and
  // then refuse every WebSocket; it takes the host from X-Forwarded-Host instead.
  out.push('Forwarded', `for=${clientIp.indexOf(':') === -1 ? clientIp : `"[${clientIp}]"`};proto=${fwd.proto}`);
  if (upgrade) out.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
  return out;
}

/**
 * The container's response headers for the browser, flat: hop-by-hop ones dropped, cookies and
 * redirects kept inside the session's prefix, the framing policy added.
 */
export function browserResponseHeaders(
  raw: string[],
  prefix: string,
  upstreamOrigin: string,
  publicOrigin: string,
  framePolicy: string = FRAME_POLICY,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (DROP_RESPONSE.has(lower)) continue;
    if (prefix && DROP_RESPONSE_SHARED_ORIGIN.has(lower)) continue;
    if (lower === 'service-worker-allowed' && prefix) {
      // A service worker scoped wider than the session would see every request of the origin,
      // other sessions' launch URLs (and their tickets) among them.
      out.push(name, confineScope(raw[i + 1], prefix));
      continue;
    }
    if (lower === 'set-cookie') {
      const value = confineSetCookie(raw[i + 1], prefix);
      if (value !== null) out.push(name, value);
      continue;
    }
    if (lower === 'location' && prefix) {
      out.push(name, relocate(raw[i + 1], prefix, upstreamOrigin, publicOrigin));
      continue;
    }
    out.push(name, raw[i + 1]);
  }
  out.push('Content-Security-Policy', framePolicy);
  return out;
}

/**
 * The container's 101 to a WebSocket handshake, as the lines of the browser's: the handshake's own
 * headers (Connection, Upgrade, Sec-WebSocket-*) kept, and otherwise what any of its answers loses
 * (browsers take cookies, HSTS and Alt-Svc from a 101 too).
 */
export function upgradeResponseLines(raw: string[], prefix: string): string {
  let lines = '';
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    let value: string | null = raw[i + 1];
    if (lower === 'set-cookie') value = confineSetCookie(value, prefix);
    else if (lower === 'connection' || lower === 'upgrade') value = raw[i + 1];
    else if (DROP_RESPONSE.has(lower) || (prefix && DROP_RESPONSE_SHARED_ORIGIN.has(lower))) value = null;
    if (value !== null) lines += `${raw[i]}: ${value}\r\n`;
  }
  return lines;
}

/**
 * A Service-Worker-Allowed path from the container (which believes it serves from `/`) moved under
 * the session's prefix; whatever would reach outside it is the prefix itself.
 */
function confineScope(value: string, prefix: string): string {
  let path: string;
  try {
    // A relative scope is resolved against the script's URL by the browser: inside the prefix either way.
    path = value.startsWith('/') && !value.startsWith('//') ? prefix + value : new URL(value, `http://x${prefix}/`).pathname;
    path = new URL(path, 'http://x').pathname;
  } catch {
    return `${prefix}/`;
  }
  return path.startsWith(`${prefix}/`) ? path : `${prefix}/`;
}

/** A redirect from the container, which believes it serves from `/`, moved under the session's prefix. */
function relocate(location: string, prefix: string, upstreamOrigin: string, publicOrigin: string): string {
  if (location.charCodeAt(0) === 47 /* / */ && location.charCodeAt(1) !== 47) return prefix + location;
  for (const origin of [publicOrigin, upstreamOrigin]) {
    if (location.startsWith(origin) && location.charCodeAt(origin.length) === 47) {
      const rest = location.slice(origin.length);
      return publicOrigin + (rest.startsWith(`${prefix}/`) ? rest : prefix + rest);
    }
  }
  return location;
}
