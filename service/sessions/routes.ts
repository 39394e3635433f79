import { z } from 'zod';
import { badRequest, conflict } from '../http/errors';
import { readBytes, route, type AppContext, type RouteDef } from '../http/route';
import type { Logger } from '../logger';
import type { LaunchTarget } from '../proxy';
import { normalizePath } from '../spiders/paths';
import { Spider } from '../spiders/entities';
import type { SessionService } from './service';
import { CODE_SERVER_PORT } from './workspace';

const SpiderId = z.object({ id: z.string() });
const SessionId = z.object({ id: z.string() });
const flag = z.enum(['0', '1', 'true', 'false']).optional();
const on = (v: string | undefined) => v === '1' || v === 'true';

const SessionView = z.object({
  session_id: z.string(),
  spider_id: z.string(),
  spider_name: z.string(),
  user_id: z.string(),
  status: z.enum(['pending', 'starting', 'ready', 'syncing', 'stopped', 'failed']),
  status_reason: z.string(),
  url: z.string(),
  created_at: z.string(),
  last_active_at: z.string(),
  idle_deadline: z.string(),
  expires_at: z.string(),
  last_saved_at: z.string().nullable(),
  save_pending: z.boolean(),
  last_error: z.string().nullable(),
});
const SaveResultView = z.object({
  added: z.array(z.string()),
  modified: z.array(z.string()),
  deleted: z.array(z.string()),
  unchanged: z.number(),
  skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  conflicts: z.array(z.object({ path: z.string(), reason: z.string() })),
  bytes: z.number(),
  dry_run: z.boolean(),
  saved_at: z.string().nullable(),
});
const FsPath = z.object({ path: z.string().max(4096).default('') });
const LinkTarget = z
  .enum(['file', 'directory', 'other'])
  .nullable()
  .optional()
  .describe(
    'only for a symlink: what it leads to, following it inside or outside /workspace; null when it leads nowhere the container user can reach (dangling, a loop, a folder they may not enter)',
  );
const StatView = z.object({
  type: z.enum(['file', 'directory', 'symlink', 'other']),
  target: LinkTarget,
  real_path: z
    .string()
    .optional()
    .describe(
      'only for a symlink that leads to something inside /workspace: its path there, every link on the way followed. size, mtime and ctime of a link that leads somewhere are those of what it leads to',
    ),
  size: z.number(),
  mtime: z.number(),
  ctime: z.number(),
});
/** A link's `target`; nothing for anything else. */
const targetOf = (e: { type: string; target?: z.infer<typeof LinkTarget> }) =>
  e.type === 'symlink' && e.target !== undefined ? { target: e.target } : {};

/** A workspace path: "" is /workspace itself; anything else follows the spider path rules. */
/**
 * A path inside /workspace for the editor's file operations, by the path rules but as given, byte
 * for byte: the container's file system tells a name macOS wrote in Unicode NFD form from its NFC
 * twin, and the folder listing gives names as they are there.
 */
const fsPath = (p: string) => (p === '' || p === '/' || p === '.' ? '' : normalizePath(p, { exact: true }));

/** Save to Server's options and answers, by spider or by session. */
const SyncQuery = z.object({ dry_run: flag, overwrite: flag });
const SYNC_RESPONSES = {
  200: { description: 'what was (or would be) saved', schema: SaveResultView },
  409: 'not ready',
  413: 'over a limit',
  422: 'the workspace breaks a cap',
};

export interface SessionRouteDeps {
  sessions: SessionService;
  maxFileBytes: number;
  /** The browser IDE's URL with a one-time ticket (from the proxy). */
  launchUrl: (target: LaunchTarget, opts?: { port?: number }) => string;
  logger: Logger;
}

export function sessionRoutes({ sessions, maxFileBytes, launchUrl, logger }: SessionRouteDeps): RouteDef[] {
  const view = (ctx: AppContext, s: Parameters<SessionService['view']>[1]) => sessions.view(ctx.state.em, s);
  return [
    route({
      method: 'post',
      path: '/api/spiders/:id/code-session',
      tag: 'sessions',
      summary: 'Open a code session for the spider, or return the live one (?wait=1: answer once ready or failed)',
      params: SpiderId,
      query: z.object({ wait: flag }),
      responses: {
        201: { description: 'created', schema: SessionView },
        200: { description: 'the live session', schema: SessionView },
        503: 'ports exhausted, Docker or the image missing',
      },
      async handler(ctx, { params, query }) {
        const { session, created } = await sessions.open(ctx.state.em, ctx.state.user, params.id, { wait: on(query.wait) });
        ctx.status = created ? 201 : 200;
        return view(ctx, session);
      },
    }),
    route({
      method: 'get',
      path: '/api/spiders/:id/code-session',
      tag: 'sessions',
      summary: "The spider's live (or last) code session",
      params: SpiderId,
      responses: { 200: { description: 'the session', schema: SessionView }, 404: 'no session' },
      async handler(ctx, { params }) {
        return view(ctx, await sessions.current(ctx.state.em, ctx.state.user, params.id));
      },
    }),
    route({
      method: 'delete',
      path: '/api/spiders/:id/code-session',
      tag: 'sessions',
      summary: 'Save to Server, then stop and remove the container (?discard=1: without saving)',
      params: SpiderId,
      query: z.object({ discard: flag }),
      responses: {
        200: { description: 'closed', schema: z.object({ session: SessionView, save: SaveResultView.nullable() }) },
        409: 'the save failed or found conflicts; the session is kept',
      },
      async handler(ctx, { params, query }) {
        const { session, save } = await sessions.close(ctx.state.em, ctx.state.user, params.id, { discard: on(query.discard) });
        return { session: await view(ctx, session), save };
      },
    }),
    route({
      method: 'delete',
      path: '/api/sessions/:id',
      tag: 'sessions',
      summary:
        "Close a session by its id (yours; an admin: anyone's): Save to Server, then stop and remove the container (?discard=1: without saving)",
      params: SessionId,
      query: z.object({ discard: flag }),
      responses: {
        200: { description: 'closed', schema: z.object({ session: SessionView, save: SaveResultView.nullable() }) },
        404: 'no such session (or another user’s)',
        409: 'the save failed or found conflicts; the session is kept',
      },
      async handler(ctx, { params, query }) {
        const { session, save } = await sessions.closeById(ctx.state.em, ctx.state.user, params.id, { discard: on(query.discard) });
        return { session: await view(ctx, session), save };
      },
    }),
    route({
      method: 'post',
      path: '/api/spiders/:id/code-session/sync',
      tag: 'sessions',
      summary: 'Save to Server (?dry_run=1: plan only; ?overwrite=1: replace files that changed on the server)',
      params: SpiderId,
      query: SyncQuery,
      responses: SYNC_RESPONSES,
      async handler(ctx, { params, query }) {
        return sessions.sync(ctx.state.em, ctx.state.user, params.id, { dryRun: on(query.dry_run), overwrite: on(query.overwrite) });
      },
    }),
    route({
      method: 'post',
      path: '/api/sessions/:id/sync',
      tag: 'sessions',
      summary:
        'Save to Server of a session by its id (yours; an admin: anyone’s); a stopped session answers 409 instead of saving a newer one of its spider',
      params: SessionId,
      query: SyncQuery,
      responses: { ...SYNC_RESPONSES, 404: 'no such session (or another user’s)' },
      async handler(ctx, { params, query }) {
        return sessions.syncById(ctx.state.em, ctx.state.user, params.id, { dryRun: on(query.dry_run), overwrite: on(query.overwrite) });
      },
    }),
    route({
      method: 'post',
      path: '/api/sessions/:id/heartbeat',
      tag: 'sessions',
      summary: 'Mark activity of a session by its id: moves its idle deadline; a stopped session answers 409',
      params: SessionId,
      responses: { 200: { description: 'the session', schema: SessionView }, 404: 'no such session (or another user’s)', 409: 'not live' },
      async handler(ctx, { params }) {
        return view(ctx, await sessions.heartbeatById(ctx.state.em, ctx.state.user, params.id));
      },
    }),
    route({
      method: 'post',
      path: '/api/spiders/:id/code-session/heartbeat',
      tag: 'sessions',
      summary: 'Mark activity: moves the idle deadline',
      params: SpiderId,
      responses: { 200: { description: 'the session', schema: SessionView } },
      async handler(ctx, { params }) {
        return view(ctx, await sessions.heartbeat(ctx.state.em, ctx.state.user, params.id));
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions',
      tag: 'sessions',
      summary: 'Your sessions, newest first (an admin: all)',
      responses: { 200: { description: 'sessions', schema: z.array(SessionView) } },
      async handler(ctx) {
        const rows = await sessions.list(ctx.state.em, ctx.state.user);
        const names = new Map(
          (await ctx.state.em.find(Spider, { id: { $in: [...new Set(rows.map((s) => s.spiderId))] } })).map((sp) => [sp.id, sp.name]),
        );
        return Promise.all(rows.map((s) => sessions.view(ctx.state.em, s, names.get(s.spiderId) ?? '')));
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions/:id',
      tag: 'sessions',
      summary: 'One session',
      params: SessionId,
      responses: { 200: { description: 'the session', schema: SessionView }, 404: 'no such session of yours' },
      async handler(ctx, { params }) {
        return view(ctx, await sessions.get(ctx.state.em, ctx.state.user, params.id));
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions/:id/history',
      tag: 'sessions',
      summary: "The session's status changes and saves, oldest first",
      params: SessionId,
      responses: {
        200: {
          description: 'the history',
          schema: z.object({
            statuses: z.array(z.object({ status: z.string(), reason: z.string(), at: z.string() })),
            saves: z.array(
              z.object({
                trigger: z.string(),
                ok: z.boolean(),
                added: z.number(),
                modified: z.number(),
                deleted: z.number(),
                conflicts: z.number(),
                bytes: z.number(),
                error: z.string().nullable(),
                at: z.string(),
              }),
            ),
          }),
        },
      },
      async handler(ctx, { params }) {
        const session = await sessions.get(ctx.state.em, ctx.state.user, params.id);
        return sessions.history(ctx.state.em, session.id);
      },
    }),
    route({
      method: 'post',
      path: '/api/sessions/:id/launch',
      tag: 'sessions',
      summary: 'The browser IDE URL with a one-time ticket (single use, 60 s); with a port, the URL of that port in the session',
      params: SessionId,
      body: z.strictObject({
        port: z
          .number()
          .int()
          .min(1)
          .max(65535)
          .refine((p) => p !== CODE_SERVER_PORT, `port ${CODE_SERVER_PORT} is code-server itself: launch without a port`)
          .optional()
          .describe('a port a server listens on inside the container: the URL opens it through code-server’s /proxy/<port>/'),
      }),
      responses: { 200: { description: 'the URL', schema: z.object({ url: z.string() }) }, 409: 'the session is not live' },
      async handler(ctx, { params, body }) {
        const session = await sessions.get(ctx.state.em, ctx.state.user, params.id);
        if (!['pending', 'starting', 'ready', 'syncing'].includes(session.status))
          throw conflict(`The session is ${session.status}; open a new one.`, 'session_not_live');
        ctx.set('Cache-Control', 'no-store');
        // An admin, who may already reach any session's files and terminal, opens its IDE too: the
        // ticket admits the browser for this one session, in its owner's name — so the log says who asked.
        if (session.userId !== ctx.state.user.id)
          logger.info(
            { sessionId: session.id, owner: session.userId, admin: ctx.state.user.id },
            "an admin opened another user's browser IDE",
          );
        // The IDE it opens ends with the token that asked (a revoked token closes it within a minute).
        return { url: launchUrl({ id: session.id, userId: session.userId, tokenId: ctx.state.tokenId }, { port: body.port }) };
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions/:id/fs/stat',
      tag: 'workspace',
      summary: 'Stat a path inside /workspace',
      params: SessionId,
      query: FsPath,
      responses: { 200: { description: 'the entry', schema: StatView }, 404: 'no such file' },
      async handler(ctx, { params, query }) {
        const { workspace } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id);
        const e = await workspace.stat(fsPath(query.path));
        const real = e.realPath !== undefined ? { real_path: e.realPath } : {};
        return { type: e.type, ...targetOf(e), ...real, size: e.size, mtime: e.mtimeMs, ctime: e.ctimeMs };
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions/:id/fs/dir',
      tag: 'workspace',
      summary: 'List a folder inside /workspace (or the folder a symlink leads to)',
      params: SessionId,
      query: FsPath,
      responses: {
        200: {
          description: 'entries',
          schema: z.array(z.object({ name: z.string(), type: StatView.shape.type, target: StatView.shape.target })),
        },
        400: 'not a folder (nor a symlink to one)',
      },
      async handler(ctx, { params, query }) {
        const { workspace } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id);
        const entries = await workspace.list(fsPath(query.path));
        return entries.map((e) => ({ name: (e.onDisk ?? e.path).split('/').at(-1)!, type: e.type, ...targetOf(e) }));
      },
    }),
    route({
      method: 'get',
      path: '/api/sessions/:id/fs/file',
      tag: 'workspace',
      summary: 'Read a file inside /workspace',
      params: SessionId,
      query: FsPath,
      responses: { 200: { description: 'raw bytes', contentType: 'application/octet-stream' }, 404: 'no such file' },
      async handler(ctx, { params, query }) {
        const { workspace } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id);
        const data = await workspace.read(fsPath(query.path), maxFileBytes);
        ctx.type = 'application/octet-stream';
        return data;
      },
    }),
    route({
      method: 'put',
      path: '/api/sessions/:id/fs/file',
      tag: 'workspace',
      summary: 'Write a file inside /workspace (?create=1 to create, ?overwrite=1 to replace)',
      params: SessionId,
      query: FsPath.extend({ create: flag, overwrite: flag }),
      rawBody: { contentType: 'application/octet-stream', description: 'the file bytes' },
      responses: { 204: 'written', 404: 'missing without create', 409: 'exists without overwrite', 413: 'too large' },
      async handler(ctx, { params, query }) {
        const { workspace, session } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id, { change: true });
        const path = fsPath(query.path);
        if (path === '') throw badRequest('Give the path of a file.', 'invalid_path');
        const data = await readBytes(ctx, maxFileBytes);
        // (The body is read first: a stop waits for the change in the container, not for a slow upload.)
        await sessions.change(session.id, () => workspace.write(path, data, { create: on(query.create), overwrite: on(query.overwrite) }));
        sessions.touch(session.id);
        ctx.status = 204;
      },
    }),
    route({
      method: 'post',
      path: '/api/sessions/:id/fs/mkdir',
      tag: 'workspace',
      summary: 'Create a folder (and its parents) inside /workspace',
      params: SessionId,
      query: FsPath,
      responses: { 204: 'created' },
      async handler(ctx, { params, query }) {
        const { workspace, session } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id, { change: true });
        const path = fsPath(query.path);
        if (path === '') throw badRequest('Give the path of a folder.', 'invalid_path');
        await sessions.change(session.id, () => workspace.mkdir(path));
        ctx.status = 204;
      },
    }),
    route({
      method: 'delete',
      path: '/api/sessions/:id/fs',
      tag: 'workspace',
      summary: 'Delete a file or folder inside /workspace (?recursive=1 for a folder with contents)',
      params: SessionId,
      query: FsPath.extend({ recursive: flag }),
      responses: { 204: 'deleted', 404: 'no such file', 409: 'folder not empty' },
      async handler(ctx, { params, query }) {
        const { workspace, session } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id, { change: true });
        const path = fsPath(query.path);
        if (path === '') throw badRequest('The workspace itself cannot be deleted.', 'invalid_path');
        await sessions.change(session.id, () => workspace.remove(path, on(query.recursive)));
        ctx.status = 204;
      },
    }),
    route({
      method: 'post',
      path: '/api/sessions/:id/fs/rename',
      tag: 'workspace',
      summary: 'Rename inside /workspace',
      params: SessionId,
      body: z.strictObject({ from: z.string().max(4096), to: z.string().max(4096), overwrite: z.boolean().optional() }),
      responses: { 204: 'renamed', 404: 'no such file', 409: 'target exists' },
      async handler(ctx, { params, body }) {
        const { workspace, session } = await sessions.workspace(ctx.state.em, ctx.state.user, params.id, { change: true });
        const from = fsPath(body.from);
        const to = fsPath(body.to);
        if (from === '' || to === '') throw badRequest('Give the paths of files or folders.', 'invalid_path');
        await sessions.change(session.id, () => workspace.rename(from, to, Boolean(body.overwrite)));
        ctx.status = 204;
      },
    }),
  ];
}
