import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createApp } from './app';
import { ConfigError, localUrl, redactCredentials, type Config } from './config';
import { createLogger, type Logger } from './logger';
import { answerIgnoringUpgrade } from './http/upgrade';
import { createServices, type Services } from './services';
import { createProxy, type Proxy } from './proxy';

/** How long a stop waits for requests in flight (a container orchestrator's grace period is often 30 s). */
const DRAIN_MS = 25_000;

export interface RunningService {
  services: Services;
  server: http.Server;
  url: string;
  /** Finishes requests and saves in flight, closes the database; session containers keep running. */
  stop(): Promise<void>;
}

/** Reads nothing but its arguments: opens the services, bootstraps the admin, listens. */
export async function serve(
  config: Config,
  /** signals: SIGTERM and SIGINT stop the service (`handleSignals`), from before the start-up reconcile on. */
  opts: { logger?: Logger; print?: (line: string) => void; signals?: boolean } = {},
): Promise<RunningService> {
  const logger = opts.logger ?? createLogger(config.CRAWLHUB_LOG_LEVEL);
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const services = await createServices(config, logger);
  const admin = await services.users.bootstrapAdmin(services.orm.em.fork(), config.dataDir);
  if (admin) {
    print(`Created the admin user. Its API token (shown once, also saved to ${admin.file}):`);
    print(admin.token);
  }
  const app = createApp(services);
  const koa = app.callback();
  // The browser IDE proxy takes its requests before Koa sees them: it streams, Koa would buffer.
  let proxy: Proxy | null = null;
  // A request (headers and body) must arrive within 10 minutes: a client trickling bytes cannot hold
  // a connection for ever. Responses (downloads, the IDE's long polls) are not limited by it.
  // Requests being answered, so that a stop lets them finish (an upload, an import, a save).
  const inFlight = new Set<http.ServerResponse>();
  let drained: (() => void) | null = null;
  let draining = false;
  const server = http.createServer({ requestTimeout: 600_000, headersTimeout: 60_000, maxHeaderSize: 64 * 1024 }, (req, res) => {
    if (draining) {
      // A request on a kept-alive connection after the stop began: turned away whole, not cut in its body.
      res.shouldKeepAlive = false;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: 'The service is stopping; try again in a moment.' } }));
      return;
    }
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
    if (!proxy?.handleRequest(req, res)) void koa(req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    if (proxy?.handleUpgrade(req, socket, head)) return;
    if (!services.sockets.handleUpgrade(req, socket, head)) answerIgnoringUpgrade(req, socket as Socket, (r, res) => void koa(r, res));
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      void services.close().catch(() => undefined);
      const at = `${config.CRAWLHUB_HOST}:${config.CRAWLHUB_PORT}`;
      if (err.code === 'EADDRINUSE')
        reject(new ConfigError('CRAWLHUB_PORT', `${at} is already in use (is CrawlHub Code running already?); pick another port`));
      else if (err.code === 'EACCES') reject(new ConfigError('CRAWLHUB_PORT', `listening on ${at} is not allowed for this user`));
      else if (err.code === 'EADDRNOTAVAIL')
        reject(new ConfigError('CRAWLHUB_HOST', `${config.CRAWLHUB_HOST} is no address of this machine`));
      else reject(err);
    });
    server.listen(config.CRAWLHUB_PORT, config.CRAWLHUB_HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.CRAWLHUB_HOST.includes(':') ? `[${config.CRAWLHUB_HOST}]` : config.CRAWLHUB_HOST;
  const url = `http://${host}:${port}`;
  // With port 0 (tests) the real port is known only now; session URLs and origin checks use it.
  if (!config.CRAWLHUB_PUBLIC_URL) config.publicUrl = localUrl(config.CRAWLHUB_HOST, port);
  logger.info({ url, dataDir: config.dataDir, db: redactCredentials(config.databaseUrl) }, 'CrawlHub Code is listening');
  proxy = createProxy(services.sessions, {
    publicUrl: config.publicUrl,
    codeDomain: config.CRAWLHUB_CODE_DOMAIN,
    trustedOrigins: config.CRAWLHUB_TRUSTED_ORIGINS,
    secureCookies: config.CRAWLHUB_SECURE_COOKIES as 'auto' | 'true' | 'false',
    secretKey: services.secret.key,
    logger,
    metrics: services.metrics,
    cookieMaxAgeMs: config.CRAWLHUB_MAX_SESSION_AGE,
    tokens: { isLive: (tokenId) => services.users.isTokenLive(services.orm.em.fork(), tokenId) },
  });
  proxy.install(server);
  const ide = proxy;
  services.launchUrl = (session, opts) => ide.launchUrl(session, opts);
  let stopping: Promise<void> | undefined;
  const running: RunningService = {
    services,
    server,
    url,
    stop() {
      stopping ??= (async () => {
        // The browser IDE's connections end first: they are long polls and WebSockets, not work.
        proxy?.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // No new connections; requests in flight are answered (with `Connection: close`) before the
        // database closes under them.
        draining = true;
        for (const res of inFlight) res.shouldKeepAlive = false;
        if (inFlight.size > 0)
          await new Promise<void>((resolve) => {
            drained = resolve;
            setTimeout(resolve, DRAIN_MS).unref();
          });
        await services.close();
        server.closeAllConnections();
        await closed;
      })();
      return stopping;
    },
  };
  // Signals are taken from here on: a stop during the start-up reconcile waits for the row it is on.
  if (opts.signals) handleSignals(running, logger);
  await services.sessions.startBackground();
  return running;
}

/** SIGTERM and SIGINT stop gracefully; a second signal exits at once. */
export function handleSignals(running: RunningService, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(1);
    signalled = true;
    logger.info({ signal }, 'stopping: finishing requests and saves in flight; session containers keep running');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
