import type { Config } from './config';
import { initOrm, type Orm } from './db/orm';
import { Metrics } from './http/metrics';
import type { Logger } from './logger';
import { SpiderService } from './spiders/service';
import { BlobStore } from './storage/blobs';
import { UserService } from './auth/users';

/** Everything the HTTP app and the background jobs share; `close()` releases it all. */
export interface Services {
  config: Config;
  logger: Logger;
  orm: Orm;
  blobs: BlobStore;
  users: UserService;
  spiders: SpiderService;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function createServices(config: Config, logger: Logger): Promise<Services> {
  const orm = await initOrm(config.databaseUrl);
  const blobs = BlobStore.fromConfig(config.CRAWLHUB_STORAGE, config.dataDir);
  const users = new UserService();
  const spiders = new SpiderService(blobs, {
    maxFileBytes: config.CRAWLHUB_MAX_FILE_SIZE,
    maxSpiderBytes: config.CRAWLHUB_MAX_SPIDER_SIZE,
    maxSpiderFiles: config.CRAWLHUB_MAX_SPIDER_FILES,
  });
  const metrics = new Metrics();
  return {
    config,
    logger,
    orm,
    blobs,
    users,
    spiders,
    metrics,
    async close() {
      await orm.close();
    },
  };
}
