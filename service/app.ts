import Router from '@koa/router';
import Koa from 'koa';
import { z } from 'zod';
import { authenticate, requireAdmin } from './auth/middleware';
import { errorMiddleware } from './http/errors';
import { mount, openApiDocument, route, type RouteDef } from './http/route';
import { pathOnly } from './logger';
import type { Services } from './services';
import { spiderRoutes } from './spiders/routes';
import { sessionRoutes } from './sessions/routes';

export const VERSION = '0.1.0';

const MeView = z.object({ id: z.string(), name: z.string(), isAdmin: z.boolean() });

export interface Health {
  status: 'ok' | 'degraded';
  db: 'ok' | 'error';
  storage: 'ok' | 'error';
  docker: { reachable: boolean; error?: string; workspaceLimit?: boolean };
}

export async function checkHealth(services: Services): Promise<Health> {
  const [db, storage] = await Promise.all([
    services.orm.em
      .fork()
      .getConnection()
      .execute('select 1')
      .then(() => 'ok' as const)
      .catch(() => 'error' as const),
    services.blobs
      .check()
      .then(() => 'ok' as const)
      .catch(() => 'error' as const),
  ]);
  let docker: Health['docker'];
  try {
    const info = await services.docker.info();
    // (No engine version: unauthenticated, it would tell anyone which engine's flaws to try.)
    docker = { reachable: true, workspaceLimit: info.storageLimit || services.config.CRAWLHUB_WORKSPACE_SIZE === 0 };
  } catch (err) {
    // (Unauthenticated: the engine's own message may name its socket or address; the log has it.)
    services.logger.warn({ err }, 'healthz: Docker is not reachable');
    docker = { reachable: false, error: 'the Docker engine does not answer' };
  }
  return { status: db === 'ok' && storage === 'ok' ? 'ok' : 'degraded', db, storage, docker };
}

function coreRoutes(services: Services, all: () => RouteDef[]): RouteDef[] {
  return [
    route({
      method: 'get',
      path: '/healthz',
      tag: 'service',
      summary: 'Health of the database, storage and Docker engine (no token needed)',
      public: true,
      responses: { 200: 'healthy', 503: 'database or storage unavailable' },
      async handler(ctx) {
        const health = await checkHealth(services);
        ctx.status = health.status === 'ok' ? 200 : 503;
        return health;
      },
    }),
    // The two WebSockets, asked for without an upgrade: say what they are (they are answered on the
    // server's upgrade event, which a plain GET never reaches).
    ...['/api/events', '/api/sessions/:id/terminal'].map((path) =>
      route({
        method: 'get',
        path,
        tag: 'service',
        summary: 'A WebSocket (see the README): a plain GET answers 426',
        public: true,
        responses: { 426: 'a WebSocket handshake is required' },
        handler(ctx) {
          ctx.status = 426;
          ctx.set('Upgrade', 'websocket');
          ctx.set('Connection', 'Upgrade');
          return Promise.resolve({
            error: { code: 'upgrade_required', message: 'This is a WebSocket: connect with "Upgrade: websocket".' },
          });
        },
      }),
    ),
    route({
      method: 'get',
      path: '/metrics',
      tag: 'service',
      summary: 'Prometheus metrics (an admin token is needed when CRAWLHUB_METRICS_PUBLIC=false)',
      public: services.config.CRAWLHUB_METRICS_PUBLIC,
      responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } },
      async handler(ctx) {
        if (!services.config.CRAWLHUB_METRICS_PUBLIC) requireAdmin(ctx);
        ctx.type = services.metrics.registry.contentType;
        return services.metrics.registry.metrics();
      },
    }),
    route({
      method: 'get',
      path: '/openapi.json',
      tag: 'service',
      summary: 'This API described as OpenAPI 3.1',
      public: true,
      responses: { 200: 'the document' },
      handler: () =>
        Promise.resolve(openApiDocument(all(), { title: 'CrawlHub Code', version: VERSION, serverUrl: services.config.publicUrl })),
    }),
    route({
      method: 'get',
      path: '/api/me',
      tag: 'users',
      summary: 'The user the token belongs to',
      responses: { 200: { description: 'you', schema: MeView }, 401: 'no or bad token' },
      handler: (ctx) => Promise.resolve({ id: ctx.state.user.id, name: ctx.state.user.name, isAdmin: ctx.state.user.isAdmin }),
    }),
  ];
}

/** Builds the Koa app without listening: main.ts serves it, tests drive `app.callback()`. */
export function createApp(services: Services): Koa {
  const app = new Koa({ proxy: false });
  const router = new Router();
  const routes: RouteDef[] = [];
  routes.push(
    ...coreRoutes(services, () => routes),
    ...spiderRoutes(services.spiders),
    ...sessionRoutes({
      sessions: services.sessions,
      maxFileBytes: services.config.CRAWLHUB_MAX_FILE_SIZE,
      launchUrl: (s, opts) => services.launchUrl(s, opts),
      logger: services.logger,
    }),
  );
  mount(router, routes, { jsonLimit: services.config.CRAWLHUB_MAX_JSON_BODY, authenticate: authenticate(services.orm, services.users) });

  app.on('error', (err: Error, ctx?: Koa.Context) => {
    services.logger.error({ err, method: ctx?.method, path: pathOnly(ctx?.url) }, 'request failed');
  });
  app.use(services.metrics.middleware());
  app.use(async (ctx, next) => {
    const started = performance.now();
    await next();
    services.logger.debug(
      { method: ctx.method, path: pathOnly(ctx.url), status: ctx.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  });
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', "frame-ancestors 'none'");
    await next();
  });
  app.use(errorMiddleware);
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  return app;
}
