import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN_PREFIX = 'chub_';
/** Characters of a token kept in clear to tell tokens apart in lists: "chub_" and 7 more. */
export const VISIBLE_PREFIX_LENGTH = 12;

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function visiblePrefix(token: string): string {
  return token.slice(0, VISIBLE_PREFIX_LENGTH);
}

/** A well-formed token: the prefix and 43 base64url characters. Anything else is refused before any lookup. */
export function looksLikeToken(text: string): boolean {
  return /^chub_[A-Za-z0-9_-]{43}$/.test(text);
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
