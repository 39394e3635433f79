import fs from 'node:fs';
import path from 'node:path';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Em } from '../db/orm';
import { AppError, badRequest, conflict, notFound } from '../http/errors';
import { ApiToken, User } from './entities';
import { hashToken, looksLikeToken, newToken, visiblePrefix } from './tokens';

export const USER_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export interface TokenInfo {
  id: string;
  prefix: string;
  label: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const LAST_USED_RESOLUTION_MS = 60_000;

/** Users and their API tokens. Only a token's hash and a short visible prefix are stored. */
export class UserService {
  async createUser(em: Em, name: string, isAdmin = false): Promise<User> {
    if (!USER_NAME.test(name))
      throw badRequest('A user name is 1-64 lower-case letters, digits, "_", "." or "-", starting with a letter or digit.', 'invalid_name');
    const duplicate = () => conflict(`A user named "${name}" already exists.`, 'duplicate_name');
    if (await em.findOne(User, { name })) throw duplicate();
    const user = em.create(User, { name, isAdmin });
    try {
      await em.flush();
    } catch (err) {
      // Added by someone else (another CLI run, another replica) since the check: the same conflict.
      if (err instanceof UniqueConstraintViolationException) throw duplicate();
      throw err;
    }
    return user;
  }

  async findUser(em: Em, name: string): Promise<User> {
    const user = await em.findOne(User, { name });
    if (!user) throw notFound(`User "${name}"`);
    return user;
  }

  /** Creates a token and returns it in clear: the only time it is ever seen. */
  async createToken(em: Em, user: User, label = ''): Promise<{ token: string; info: TokenInfo }> {
    const token = newToken();
    const row = em.create(ApiToken, { userId: user.id, label: label.slice(0, 100), prefix: visiblePrefix(token), hash: hashToken(token) });
    await em.flush();
    return { token, info: toInfo(row) };
  }

  async listTokens(em: Em, user: User): Promise<TokenInfo[]> {
    const rows = await em.find(ApiToken, { userId: user.id }, { orderBy: { createdAt: 'asc' } });
    return rows.map(toInfo);
  }

  /**
   * Revokes by id, by visible prefix (as `token list` shows it: a trailing "…" or "..." is dropped),
   * or by the whole token (found by its hash, so a leaked token can be revoked by pasting it).
   */
  async revokeToken(em: Em, idOrPrefix: string): Promise<TokenInfo> {
    const given = idOrPrefix
      .trim()
      .replace(/(…|\.\.\.)$/, '')
      .trimEnd();
    const whole = looksLikeToken(given);
    // A whole token is never repeated back: only its visible prefix.
    const shown = whole ? `${visiblePrefix(given)}…` : given;
    const rows =
      given === '' ? [] : await em.find(ApiToken, whole ? { hash: hashToken(given) } : { $or: [{ id: given }, { prefix: given }] });
    if (rows.length === 0) throw notFound(`Token "${shown}"`);
    if (rows.length > 1) throw conflict(`"${shown}" names more than one token; use its id.`, 'ambiguous_token');
    rows[0].revokedAt ??= new Date();
    await em.flush();
    return toInfo(rows[0]);
  }

  /** The user a bearer token belongs to, or null for an unknown, malformed or revoked token. */
  async authenticate(em: Em, token: string): Promise<User | null> {
    return (await this.identify(em, token))?.user ?? null;
  }

  /** The user a bearer token belongs to and the token's id (what it opened carries it), or null. */
  async identify(em: Em, token: string): Promise<{ user: User; tokenId: string } | null> {
    if (!looksLikeToken(token)) return null;
    const row = await em.findOne(ApiToken, { hash: hashToken(token) });
    if (!row || row.revokedAt) return null;
    const user = await em.findOne(User, { id: row.userId });
    if (!user) return null;
    const now = Date.now();
    if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      row.lastUsedAt = new Date(now);
      await em.flush();
    }
    return { user, tokenId: row.id };
  }

  /** Whether the token with this id still admits its user (not revoked); for what it opened. */
  async isTokenLive(em: Em, tokenId: string): Promise<boolean> {
    const row = await em.findOne(ApiToken, { id: tokenId });
    return row !== null && !row.revokedAt;
  }

  /**
   * On an empty database: creates the "admin" user and a token, written once to
   * <data dir>/admin.token with mode 0600. Returns the token, or null when users already exist.
   */
  async bootstrapAdmin(em: Em, dataDir: string): Promise<{ token: string; file: string } | null> {
    if ((await em.count(User, {})) > 0) return null;
    let admin: User;
    try {
      admin = await this.createUser(em, 'admin', true);
    } catch (err) {
      // Another replica on the same empty database created it first: users exist now.
      if (err instanceof AppError && err.code === 'duplicate_name') return null;
      throw err;
    }
    const { token } = await this.createToken(em, admin, 'bootstrap');
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'admin.token');
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    return { token, file };
  }
}

function toInfo(row: ApiToken): TokenInfo {
  return {
    id: row.id,
    prefix: row.prefix,
    label: row.label,
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt ?? null,
    revokedAt: row.revokedAt ?? null,
  };
}
