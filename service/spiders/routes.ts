import { z } from 'zod';
import { notModified, type Preconditions } from '../http/preconditions';
import { readBytes, requestBody, route, type AppContext, type RouteDef } from '../http/route';
import type { Spider } from './entities';
import type { SpiderService } from './service';

const SpiderId = z.object({ id: z.string().describe('spider id') });
const FilePath = z.object({ id: z.string(), path: z.string().default('').describe('file path inside the spider, "/"-separated') });
const SpiderInput = z.strictObject({
  name: z.string().min(1).max(100),
  description: z
    .string()
    .max(10_000)
    // eslint-disable-next-line no-control-regex
    .refine((d) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(d), 'control characters (NUL and the like) are not allowed')
    // Half of a UTF-16 surrogate pair ("\ud800" in JSON) is no character: a database would store it as U+FFFD.
    .refine(
      (d) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(d),
      'unpaired UTF-16 surrogates are not text',
    )
    .optional(),
});
const SpiderPatch = SpiderInput.partial().refine((v) => v.name !== undefined || v.description !== undefined, 'give name or description');

export const SpiderView = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  ownerId: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const FileView = z.object({ path: z.string(), size: z.number(), sha256: z.string(), updatedAt: z.string() });

export const spiderView = (s: Spider) => ({
  id: s.id,
  name: s.name,
  description: s.description,
  ownerId: s.ownerId,
  createdAt: s.createdAt.toISOString(),
  updatedAt: s.updatedAt.toISOString(),
});

/** If-Match and If-None-Match, as a change of a file honours them (its ETag is its sha256, as a GET gives it). */
const preconditions = (ctx: AppContext): Preconditions => ({
  ifMatch: ctx.get('if-match') || undefined,
  ifNoneMatch: ctx.get('if-none-match') || undefined,
});

const filePathParam = (params: { path?: string | string[] }) => (Array.isArray(params.path) ? params.path.join('/') : (params.path ?? ''));

export function spiderRoutes(spiders: SpiderService): RouteDef[] {
  const maxFile = spiders.limits.maxFileBytes;
  return [
    route({
      method: 'post',
      path: '/api/spiders',
      tag: 'spiders',
      summary: 'Create a spider',
      body: SpiderInput,
      responses: { 201: { description: 'created', schema: SpiderView }, 409: 'a spider of yours has that name' },
      async handler(ctx, { body }) {
        ctx.status = 201;
        return spiderView(await spiders.create(ctx.state.em, ctx.state.user, body));
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders',
      tag: 'spiders',
      summary: 'List your spiders (an admin: all)',
      responses: { 200: { description: 'spiders', schema: z.array(SpiderView) } },
      async handler(ctx) {
        return (await spiders.list(ctx.state.em, ctx.state.user)).map(spiderView);
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders/:id',
      tag: 'spiders',
      summary: 'Get a spider',
      params: SpiderId,
      responses: { 200: { description: 'the spider', schema: SpiderView }, 404: 'no such spider of yours' },
      async handler(ctx, { params }) {
        return spiderView(await spiders.get(ctx.state.em, ctx.state.user, params.id));
      },
    }),
    route({
      method: 'patch',
      path: '/api/spiders/:id',
      tag: 'spiders',
      summary: 'Rename a spider or change its description',
      params: SpiderId,
      body: SpiderPatch,
      responses: { 200: { description: 'the spider', schema: SpiderView }, 404: 'no such spider', 409: 'name taken' },
      async handler(ctx, { params, body }) {
        return spiderView(await spiders.update(ctx.state.em, ctx.state.user, params.id, body));
      },
    }),
    route({
      method: 'delete',
      path: '/api/spiders/:id',
      tag: 'spiders',
      summary: 'Delete a spider and its files',
      params: SpiderId,
      responses: { 204: 'deleted', 404: 'no such spider', 409: 'a code session is open' },
      async handler(ctx, { params }) {
        await spiders.remove(ctx.state.em, ctx.state.user, params.id);
        ctx.status = 204;
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders/:id/files',
      tag: 'files',
      summary: "List a spider's files",
      params: SpiderId,
      responses: { 200: { description: 'files', schema: z.array(FileView) } },
      async handler(ctx, { params }) {
        return (await spiders.listFiles(ctx.state.em, ctx.state.user, params.id)).map((f) => ({
          ...f,
          updatedAt: f.updatedAt.toISOString(),
        }));
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders/:id/files/{*path}',
      tag: 'files',
      summary: "Download a file's bytes",
      params: FilePath,
      responses: {
        200: { description: 'the raw bytes', contentType: 'application/octet-stream' },
        304: 'the client has this version (If-None-Match or If-Modified-Since)',
        400: 'invalid path',
        404: 'no such file',
      },
      async handler(ctx, { params }) {
        const { file, data } = await spiders.readFile(ctx.state.em, ctx.state.user, params.id, filePathParam(params));
        ctx.set('ETag', `"${file.sha256}"`);
        ctx.set('Last-Modified', file.updatedAt.toUTCString());
        ctx.type = 'application/octet-stream';
        // The client has this version (If-None-Match, or If-Modified-Since without it): 304, no bytes.
        const since = { ifNoneMatch: ctx.get('if-none-match') || undefined, ifModifiedSince: ctx.get('if-modified-since') || undefined };
        if (notModified(since, { etag: file.sha256, modified: file.updatedAt })) {
          ctx.status = 304;
          return undefined;
        }
        return data;
      },
    }),
    route({
      method: 'put',
      path: '/api/spiders/:id/files/{*path}',
      tag: 'files',
      summary: 'Create or replace a file with the raw request body',
      params: FilePath,
      rawBody: { contentType: 'application/octet-stream', description: 'the file bytes' },
      responses: {
        200: { description: 'stored', schema: FileView.pick({ path: true, size: true, sha256: true }) },
        400: 'invalid path',
        409: 'path is a folder',
        412: 'If-Match or If-None-Match does not hold (the file changed, exists, or is missing)',
        413: 'too large',
      },
      async handler(ctx, { params }) {
        // Look the spider up first, so that a stranger's upload is refused before it is read.
        await spiders.get(ctx.state.em, ctx.state.user, params.id);
        const data = await readBytes(ctx, maxFile);
        const info = await spiders.writeFile(ctx.state.em, ctx.state.user, params.id, filePathParam(params), data, preconditions(ctx));
        return { path: info.path, size: info.size, sha256: info.sha256 };
      },
    }),
    route({
      method: 'delete',
      path: '/api/spiders/:id/files/{*path}',
      tag: 'files',
      summary: 'Delete a file',
      params: FilePath,
      responses: { 204: 'deleted', 400: 'invalid path', 404: 'no such file', 412: 'If-Match does not hold (the file changed)' },
      async handler(ctx, { params }) {
        await spiders.deleteFile(ctx.state.em, ctx.state.user, params.id, filePathParam(params), preconditions(ctx));
        ctx.status = 204;
      },
    }),
    route({
      method: 'post',
      path: '/api/spiders/:id/archive',
      tag: 'files',
      summary: 'Import a tar or .tar.gz of files, all or nothing (?replace=1: the spider becomes exactly the archive)',
      params: SpiderId,
      query: z.object({ replace: z.enum(['0', '1', 'true', 'false']).optional() }),
      rawBody: { contentType: 'application/x-tar', description: 'a tar, optionally gzip-compressed' },
      responses: {
        200: { description: 'imported', schema: z.object({ files: z.number(), bytes: z.number() }) },
        400: 'malformed or refused entry',
        413: 'over a limit',
      },
      async handler(ctx, { params, query }) {
        await spiders.get(ctx.state.em, ctx.state.user, params.id);
        return spiders.importArchive(ctx.state.em, ctx.state.user, params.id, requestBody(ctx), {
          replace: query.replace === '1' || query.replace === 'true',
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders/:id/archive',
      tag: 'files',
      summary: 'Download the spider as a tar',
      params: SpiderId,
      responses: { 200: { description: 'a tar stream', contentType: 'application/x-tar' } },
      async handler(ctx, { params }) {
        const spider = await spiders.get(ctx.state.em, ctx.state.user, params.id);
        ctx.type = 'application/x-tar';
        ctx.attachment(`${spider.name}.tar`);
        return spiders.exportArchive(ctx.state.em, spider.id);
      },
    }),
  ];
}
