import bodyParser from '@koa/bodyparser';
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import type { User } from '../auth/entities';
import type { Em } from '../db/orm';
import getRawBody from 'raw-body';
import { pipeline, type Readable, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { AppError, tooLarge } from './errors';

export interface AppState {
  user: User;
  /** The id of the API token the request came with (what it opens, such as a browser IDE, ends with it). */
  tokenId: string;
  em: Em;
}
export type AppContext = Context & { state: AppState };

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Response = string | { description: string; schema?: z.ZodType; contentType?: string };

export interface RouteDef<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  /** Reachable without a token. */
  public?: boolean;
  params?: P;
  query?: Q;
  /** A JSON body, validated. */
  body?: B;
  /** A raw body (bytes, a tar) that the handler streams itself. */
  rawBody?: { contentType: string; description: string };
  responses: Record<number, Response>;
  handler(ctx: AppContext, input: { params: z.infer<P>; query: z.infer<Q>; body: z.infer<B> }): Promise<unknown>;
}

/** Keeps each route's types while collecting them in one list. */
export const route = <P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(def: RouteDef<P, Q, B>): RouteDef => def;

export interface RouteOptions {
  jsonLimit: number;
  authenticate: (ctx: AppContext, next: Next) => Promise<void>;
}

/** Registers the routes: auth, zod validation of params, query and body at the edge, then the handler. */
export function mount(router: Router, routes: RouteDef[], opts: RouteOptions): void {
  const json = bodyParser({ enableTypes: ['json'], jsonLimit: opts.jsonLimit, encoding: 'utf-8' });
  for (const def of routes) {
    const stack: ((ctx: AppContext, next: Next) => Promise<void>)[] = [];
    if (!def.public) stack.push(opts.authenticate);
    if (def.body) {
      stack.push(async (ctx, next) => {
        // (A chunked body has no length, but a body all the same.)
        if ((ctx.request.length || ctx.get('transfer-encoding')) && !ctx.is('application/json'))
          throw new AppError(415, 'unsupported_media_type', 'Send the body as application/json.');
        await (json as unknown as (ctx: AppContext, next: Next) => Promise<void>)(ctx, next);
      });
    }
    stack.push(async (ctx) => {
      const input = {
        params: (def.params ? def.params.parse(ctx.params) : ctx.params) as unknown,
        query: def.query ? def.query.parse(ctx.query) : ctx.query,
        body: def.body ? def.body.parse((ctx.request as { body?: unknown }).body ?? {}) : undefined,
      };
      const result = await def.handler(ctx, input);
      if (result !== undefined) ctx.body = result;
      else if (ctx.body === undefined && ctx.status === 404) ctx.status = 204;
    });
    (router[def.method] as (path: string, ...mw: unknown[]) => Router).call(router, def.path, ...stack);
  }
}

/** The OpenAPI 3.1 document, built from the same definitions that serve the requests. */
export function openApiDocument(routes: RouteDef[], info: { title: string; version: string; serverUrl: string }): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const def of routes) {
    const path = def.path.replace(/\{\*(\w+)\}/g, '{$1}').replace(/:(\w+)/g, '{$1}');
    const parameters: object[] = [];
    for (const [where, schema] of [
      ['path', def.params],
      ['query', def.query],
    ] as const) {
      if (!schema) continue;
      const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, object>;
        required?: string[];
      };
      for (const [name, prop] of Object.entries(json.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: prop });
      }
    }
    const op: Record<string, unknown> = {
      summary: def.summary,
      tags: [def.tag],
      parameters,
      security: def.public ? [] : [{ bearer: [] }],
      responses: Object.fromEntries(
        Object.entries(def.responses).map(([status, r]) => {
          const resp = typeof r === 'string' ? { description: r } : r;
          const content = resp.schema
            ? {
                [resp.contentType ?? 'application/json']: { schema: z.toJSONSchema(resp.schema, { io: 'output', unrepresentable: 'any' }) },
              }
            : resp.contentType
              ? { [resp.contentType]: {} }
              : undefined;
          return [status, { description: resp.description, ...(content ? { content } : {}) }];
        }),
      ),
    };
    if (def.body)
      op.requestBody = {
        required: true,
        content: { 'application/json': { schema: z.toJSONSchema(def.body, { io: 'input', unrepresentable: 'any' }) } },
      };
    if (def.rawBody) op.requestBody = { required: true, description: def.rawBody.description, content: { [def.rawBody.contentType]: {} } };
    (paths[path] ??= {})[def.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: info.title, version: info.version },
    servers: [{ url: info.serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token from `crawlhub token add <user>`.' } },
      schemas: {
        Error: {
          type: 'object',
          properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } },
        },
      },
    },
    paths,
  };
}

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * The request body as sent before its Content-Encoding (gzip, deflate or br, as the JSON routes take
 * them), so that a raw body is stored as what it stands for, never as its compressed bytes. Another
 * encoding is a 415.
 */
export function requestBody(ctx: AppContext): Readable {
  const encoding = (ctx.get('content-encoding') || 'identity').trim().toLowerCase();
  if (encoding === 'identity') return ctx.req;
  const decoder = DECODERS[encoding];
  if (!decoder)
    throw new AppError(415, 'unsupported_media_type', `The Content-Encoding ${JSON.stringify(encoding.slice(0, 50))} is not supported.`);
  // A broken stream (Z_DATA_ERROR) reaches the reader of the decoded body, as the client's error (a 400), and
  // is handled here even when that reader has stopped reading already, or has not begun yet (an import
  // waiting for its spider's lock while the body arrives cut short): never an unhandled 'error' event,
  // which would end the process. The pipeline alone does not catch it: past the end of the input (Z_BUF_ERROR),
  // the decoder errs after the pipeline has finished.
  const decoded = pipeline(ctx.req, decoder(), () => undefined);
  decoded.on('error', () => undefined);
  return decoded;
}

/** The request body as bytes, refused with 413 past `limit` (before reading it all when Content-Length says so). */
export async function readBytes(ctx: AppContext, limit: number): Promise<Buffer> {
  try {
    const body = requestBody(ctx);
    // Content-Length is the length of the encoded body: only an unencoded one can be checked against it.
    return await getRawBody(body, { limit, length: body === ctx.req ? ctx.get('content-length') || undefined : undefined });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') throw tooLarge(`A file may hold at most ${limit} bytes.`);
    throw err;
  }
}
