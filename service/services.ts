import { fromSetting, type Config } from './config';
import { initOrm, type Orm } from './db/orm';
import { takeServingLock, type ServingLock } from './db/serving-lock';
import { EventHub } from './events/hub';
import { ApiSockets } from './events/socket';
import { Metrics } from './http/metrics';
import { unavailable } from './http/errors';
import type { Logger } from './logger';
import { DockerRuntime } from './runtime/docker';
import { ServiceSecret } from './secret';
import { SessionService } from './sessions/service';
import { WorkspaceWatcher } from './sessions/watcher';
import { SpiderService } from './spiders/service';
import { BlobStore } from './storage/blobs';
import { SyncService } from './sync/save';
import { UserService } from './auth/users';
import type { LaunchTarget } from './proxy';
import { CodeSession, LIVE_STATUSES } from './sessions/entities';

/** Everything the HTTP app and the background jobs share; `close()` releases it all. */
export interface Services {
  config: Config;
  logger: Logger;
  orm: Orm;
  blobs: BlobStore;
  users: UserService;
  spiders: SpiderService;
  metrics: Metrics;
  docker: DockerRuntime;
  secret: ServiceSecret;
  events: EventHub;
  sync: SyncService;
  sessions: SessionService;
  watcher: WorkspaceWatcher;
  sockets: ApiSockets;
  /** The browser IDE's URL with a one-time ticket; set once the proxy is wired in. */
  launchUrl(target: LaunchTarget, opts?: { port?: number }): string;
  close(): Promise<void>;
}

/** Opens the database the configuration names; a failure is a ConfigError naming DATABASE_URL (or the data dir it is in). */
export function openDatabase(config: Config): Promise<Orm> {
  const [variable, value] = config.DATABASE_URL ? ['DATABASE_URL', config.DATABASE_URL] : ['CRAWLHUB_DATA_DIR', config.databaseUrl];
  return fromSetting(variable, value, 'open the database', () => initOrm(config.databaseUrl));
}

export async function createServices(config: Config, logger: Logger): Promise<Services> {
  const orm = await openDatabase(config);
  let blobs: BlobStore;
  let secret: ServiceSecret;
  let serving: ServingLock | undefined;
  try {
    serving = await takeServingLock(orm, config.databaseUrl, config.DATABASE_URL ? 'DATABASE_URL' : 'CRAWLHUB_DATA_DIR');
    // Plain `fs` keeps the files in the data dir: a folder that cannot be made there is that setting's.
    const [scheme, query = ''] = config.CRAWLHUB_STORAGE.split('?', 2);
    const inDataDir = scheme === 'fs' && !new URLSearchParams(query).has('root');
    blobs = await fromSetting(
      inDataDir ? 'CRAWLHUB_DATA_DIR' : 'CRAWLHUB_STORAGE',
      inDataDir ? config.dataDir : config.CRAWLHUB_STORAGE,
      'open the file storage',
      () => BlobStore.fromConfig(config.CRAWLHUB_STORAGE, config.dataDir),
    );
    secret = await fromSetting('CRAWLHUB_DATA_DIR', config.dataDir, "keep the service's secret key in", () =>
      ServiceSecret.loadOrCreate(config.dataDir),
    );
  } catch (err) {
    await serving?.release().catch(() => undefined);
    await orm.close().catch(() => undefined);
    throw err;
  }
  const users = new UserService();
  const metrics = new Metrics();
  const spiders = new SpiderService(
    blobs,
    {
      maxFileBytes: config.CRAWLHUB_MAX_FILE_SIZE,
      maxSpiderBytes: config.CRAWLHUB_MAX_SPIDER_SIZE,
      maxSpiderFiles: config.CRAWLHUB_MAX_SPIDER_FILES,
    },
    {
      liveSessionUsers: async (em, spiderId) => {
        const held = await em.find(CodeSession, { spiderId, $or: [{ status: { $in: [...LIVE_STATUSES] } }, { savePending: true }] });
        return [...new Set(held.map((s) => s.userId))];
      },
    },
  );
  const docker = new DockerRuntime(logger, config.CRAWLHUB_DOCKER_TIMEOUT);
  const events = new EventHub();
  const sync = new SyncService(
    spiders,
    {
      ignore: config.CRAWLHUB_SYNC_IGNORE,
      timeoutMs: config.CRAWLHUB_SYNC_TIMEOUT,
      limits: {
        maxEntries: config.CRAWLHUB_MAX_SPIDER_FILES * 2 + 1000,
        maxFileBytes: config.CRAWLHUB_MAX_FILE_SIZE,
        maxTotalBytes: config.CRAWLHUB_MAX_SPIDER_SIZE,
        maxHeaderBytes: 64 * 1024,
        // Ignored folders are passed over unread, up to what a workspace can hold (the save's
        // deadline bounds a workspace without a size limit).
        maxRawBytes:
          config.CRAWLHUB_WORKSPACE_SIZE > 0 ? 2 * Math.max(config.CRAWLHUB_MAX_SPIDER_SIZE, config.CRAWLHUB_WORKSPACE_SIZE) : Infinity,
      },
    },
    logger,
    metrics,
  );
  const sessions = new SessionService({ config, orm, docker, spiders, sync, events, secret, logger, metrics });
  const watcher = new WorkspaceWatcher(events, logger, config.CRAWLHUB_SYNC_IGNORE);
  const sockets = new ApiSockets({
    orm,
    users,
    sessions,
    events,
    watcher,
    docker,
    logger,
    publicOrigin: () => new URL(config.publicUrl).origin,
  });
  return {
    config,
    logger,
    orm,
    blobs,
    users,
    spiders,
    metrics,
    docker,
    secret,
    events,
    sync,
    sessions,
    watcher,
    sockets,
    launchUrl() {
      throw unavailable('The browser IDE proxy starts with the server; try again in a moment.');
    },
    async close() {
      await sessions.shutdown();
      await sockets.close();
      watcher.stopAll();
      await serving.release().catch(() => undefined);
      await orm.close();
    },
  };
}
