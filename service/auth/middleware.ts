import type { Next } from 'koa';
import type { Orm } from '../db/orm';
import { forbidden, unauthorized } from '../http/errors';
import type { AppContext } from '../http/route';
import type { UserService } from './users';

/** The bearer token from an Authorization header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1] : null;
}

export function authenticate(orm: Orm, users: UserService) {
  return async (ctx: AppContext, next: Next) => {
    const token = bearerToken(ctx.get('authorization'));
    if (!token) throw unauthorized();
    const em = orm.em.fork();
    const found = await users.identify(em, token);
    if (!found) throw unauthorized('The API token is unknown or was revoked.');
    ctx.state.user = found.user;
    ctx.state.tokenId = found.tokenId;
    ctx.state.em = em;
    await next();
  };
}

export function requireAdmin(ctx: AppContext): void {
  if (!ctx.state.user.isAdmin) throw forbidden('Only an admin may do this.');
}
