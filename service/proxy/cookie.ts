import { createHmac, timingSafeEqual } from 'node:crypto';

/** The browser cookie that admits a user to one session's IDE. */
export const IDE_COOKIE = 'crawlhub_ide';
/**
 * In path mode, the CrawlHub user a browser uses the IDE as (signed like the IDE cookie, for every
 * session's path): a launch link of one user's session is refused in a browser bound to another.
 */
export const BROWSER_COOKIE = 'crawlhub_ide_user';
/** What the browser cookie's MAC covers in place of a session id (session ids are UUIDs). */
export const BROWSER_SCOPE = '\0browser';
/** The cookie code-server itself checks; the proxy sets it towards the container and never lets a browser's through. */
export const UPSTREAM_COOKIE = 'code-server-session';

/** What a valid IDE cookie says. */
export interface IdeAdmission {
  userId: string;
  /** The API token that asked for the launch ('' in the browser binding): the IDE ends with it. */
  tokenId: string;
  expiresAt: number;
}

/** encodeURIComponent leaves dots alone; the value's fields are separated by them. */
const field = (s: string) => encodeURIComponent(s).replace(/\./g, '%2E');

/**
 * Stateless, tamper-proof admission to one session: `<expiry base36>.<token id>.<user id>.<HMAC>`
 * where the HMAC covers the session id, the token id, the user id and the expiry. The session id
 * is not in the value: it comes from the URL, so a cookie presented for any other session fails
 * the MAC. Checking costs one HMAC and no I/O (whether the token still stands is the proxy's
 * cached question).
 */
export class IdeCookieSigner {
  private readonly key: Buffer;

  constructor(secretKey: Buffer) {
    // A key of its own, so that no MAC this class shows a browser could ever equal another use of
    // the service key (such as the code-server secrets derived from it). v2: the token id joined
    // the value, and cookies of the old form fail their MAC.
    this.key = createHmac('sha256', secretKey).update('crawlhub:proxy-cookie:v2').digest();
  }

  sign(sessionId: string, userId: string, expiresAt: number, tokenId = ''): string {
    const exp = Math.floor(expiresAt).toString(36);
    const token = field(tokenId);
    const user = field(userId);
    return `${exp}.${token}.${user}.${this.mac(sessionId, token, user, exp)}`;
  }

  /** Whom the cookie admits to `sessionId`, with which token and until when; null when it is malformed, forged, for another session or expired. */
  verify(value: string, sessionId: string, now: number): IdeAdmission | null {
    if (value.length > 512) return null;
    const a = value.indexOf('.');
    const b = a <= 0 ? -1 : value.indexOf('.', a + 1);
    const c = value.lastIndexOf('.');
    if (b === -1 || c <= b + 1 || c === value.length - 1) return null;
    const exp = value.slice(0, a);
    const token = value.slice(a + 1, b);
    const user = value.slice(b + 1, c);
    const expiresAt = parseInt(exp, 36);
    if (!(expiresAt > now)) return null;
    const given = Buffer.from(value.slice(c + 1));
    const expected = Buffer.from(this.mac(sessionId, token, user, exp));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      return { userId: decodeURIComponent(user), tokenId: decodeURIComponent(token), expiresAt };
    } catch {
      return null;
    }
  }

  private mac(sessionId: string, token: string, user: string, exp: string): string {
    return createHmac('sha256', this.key).update(`${sessionId}\n${token}\n${user}\n${exp}`).digest('base64url');
  }
}

/** Cookie names that belong to the service (or to code-server's auth) and never travel to a container. */
export function isServiceCookie(name: string): boolean {
  return (
    name.startsWith('crawlhub') ||
    name.startsWith('__Host-crawlhub') ||
    name.startsWith('__Secure-crawlhub') ||
    name.startsWith(UPSTREAM_COOKIE)
  );
}

/**
 * Splits one Cookie header value: collects every value of the IDE cookie (a sibling subdomain
 * may have planted a decoy of the same name, so each is tried) and keeps the pairs that may go
 * upstream.
 */
export function splitCookieHeader(header: string, ideValues: string[], upstream: string[], browserValues: string[] = []): void {
  let start = 0;
  const end = header.length;
  while (start < end) {
    let semi = header.indexOf(';', start);
    if (semi === -1) semi = end;
    const pair = header.slice(start, semi).trim();
    start = semi + 1;
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq).trim();
    if (name === IDE_COOKIE) ideValues.push(eq === -1 ? '' : pair.slice(eq + 1).trim());
    else if (name === BROWSER_COOKIE) browserValues.push(eq === -1 ? '' : pair.slice(eq + 1).trim());
    else if (!isServiceCookie(name)) upstream.push(pair);
  }
}

/**
 * Keeps a container's Set-Cookie inside what that session may touch: no Domain (a host-only
 * cookie), the Path moved under the session's prefix in path mode, and nothing named like the
 * service's own cookies. Returns null to drop the header.
 */
export function confineSetCookie(header: string, pathPrefix: string): string | null {
  const parts = header.split(';');
  let pair = parts[0].trim();
  // A nameless cookie (`=name=value`) goes back to the server as its value alone: `name=value`.
  if (pair.charCodeAt(0) === 61 /* = */) pair = pair.slice(1).trim();
  const eq = pair.indexOf('=');
  const name = (eq === -1 ? pair : pair.slice(0, eq)).trim();
  if (isServiceCookie(name)) return null;
  const out = [parts[0]];
  for (let i = 1; i < parts.length; i++) {
    const attr = parts[i].trim();
    const at = attr.indexOf('=');
    const key = (at === -1 ? attr : attr.slice(0, at)).trim().toLowerCase();
    if (key === 'domain') continue;
    if (pathPrefix && key === 'path') {
      const value = at === -1 ? '' : attr.slice(at + 1).trim();
      out.push(` Path=${pathPrefix}${value.startsWith('/') ? value : '/'}`);
      continue;
    }
    if (attr !== '') out.push(` ${attr}`);
  }
  return out.join(';');
}
