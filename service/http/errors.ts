import http from 'node:http';
import type { Context, Next } from 'koa';
import { ZodError } from 'zod';

/** An error with an HTTP status and a stable machine-readable code, shown to the client. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (message: string, code = 'bad_request', details?: unknown) => new AppError(400, code, message, details);
export const unauthorized = (message = 'A valid API token is required: send "Authorization: Bearer <token>".') =>
  new AppError(401, 'unauthorized', message);
export const forbidden = (message: string) => new AppError(403, 'forbidden', message);
export const notFound = (what: string) => new AppError(404, 'not_found', `${what} was not found.`);
export const conflict = (message: string, code = 'conflict', details?: unknown) => new AppError(409, code, message, details);
export const tooLarge = (message: string) => new AppError(413, 'too_large', message);
export const unavailable = (message: string, code = 'unavailable') => new AppError(503, code, message);

/** Maps any thrown value to the status and body the client sees. */
export function toHttpError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) {
    const issue = err.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return new AppError(400, 'invalid_request', `${where}${issue?.message ?? 'invalid request'}`, err.issues);
  }
  const e = err as { status?: number; statusCode?: number; expose?: boolean; type?: string; message?: string };
  const status = e?.status ?? e?.statusCode;
  if (status === 413 || e?.type === 'entity.too.large') return new AppError(413, 'too_large', 'The request body is larger than allowed.');
  if (e?.type === 'entity.parse.failed' || (err instanceof SyntaxError && status === 400))
    return new AppError(400, 'invalid_json', 'The request body is not valid JSON.');
  // A body whose gzip or deflate encoding is broken (zlib's codes): the client's error.
  if (typeof (err as { code?: unknown })?.code === 'string' && /^Z_(DATA|BUF)_ERROR$/.test((err as { code: string }).code))
    return new AppError(400, 'invalid_request', 'The request body is not valid for its Content-Encoding.');
  if (e?.type === 'encoding.unsupported' || status === 415)
    return new AppError(415, 'unsupported_media_type', e.message ?? 'Unsupported content type.');
  if (typeof status === 'number' && status >= 400 && status < 500 && e.expose)
    return new AppError(status, 'bad_request', e.message ?? 'Bad request.');
  return new AppError(500, 'internal', 'Something went wrong on the server. It has been logged.');
}

/**
 * The error a status set without a body stands for: no route (404), or the router's 405 and 501
 * (it sets those and their Allow header, but would leave the body to Koa's plain text).
 */
function statusError(ctx: Context): AppError {
  switch (ctx.status) {
    case 404:
      return notFound(`${ctx.method} ${ctx.path}`);
    case 405:
      return new AppError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${ctx.response.get('Allow')}.`);
    case 501:
      return new AppError(501, 'not_implemented', `The method ${ctx.method} is not implemented by this service.`);
    default: {
      const reason = http.STATUS_CODES[ctx.status] ?? 'Error';
      return new AppError(ctx.status, reason.toLowerCase().replace(/[^a-z0-9]+/g, '_'), `${reason}.`);
    }
  }
}

/** First middleware: errors become `{"error":{"code","message"}}`; server errors are still emitted for logging. */
export async function errorMiddleware(ctx: Context, next: Next): Promise<void> {
  let appError: AppError;
  try {
    await next();
    if (ctx.status < 400 || ctx.body != null) return;
    appError = statusError(ctx);
  } catch (err) {
    appError = toHttpError(err);
    if (appError.status >= 500) ctx.app.emit('error', err, ctx);
  }
  ctx.status = appError.status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    error: {
      code: appError.code,
      message: appError.message,
      ...(appError.details !== undefined && appError.status < 500 ? { details: appError.details } : {}),
    },
  };
}
