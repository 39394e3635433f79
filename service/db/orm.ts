import { MikroORM as SqliteOrm, defineConfig as defineSqlite } from '@mikro-orm/sqlite';
import { MikroORM as PostgresOrm, defineConfig as definePostgres } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { EntityManager, MikroORM, Options } from '@mikro-orm/core';
import fs from 'node:fs';
import path from 'node:path';
import { ApiToken, User } from '../auth/entities';
import { Spider, SpiderFile } from '../spiders/entities';
import { CodeSession, SessionBaseFile, SessionEvent, SyncRecord } from '../sessions/entities';
import { migrations } from './migrations';

export const ENTITIES = [User, ApiToken, Spider, SpiderFile, CodeSession, SessionEvent, SessionBaseFile, SyncRecord];

export type Orm = MikroORM;
export type Em = EntityManager;

export function isPostgres(databaseUrl: string): boolean {
  return /^postgres(ql)?:\/\//.test(databaseUrl);
}

/** Opens the database named by DATABASE_URL and applies pending migrations. */
export async function initOrm(databaseUrl: string, opts: { migrate?: boolean } = {}): Promise<Orm> {
  const common: Partial<Options> = {
    entities: ENTITIES,
    extensions: [Migrator],
    discovery: { disableDynamicFileAccess: true, requireEntitiesArray: true },
    migrations: {
      migrationsList: migrations,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
      tableName: 'crawlhub_migrations',
    },
    debug: false,
    allowGlobalContext: false,
    forceUtcTimezone: true,
  };
  let orm: Orm;
  if (isPostgres(databaseUrl)) {
    orm = await PostgresOrm.init(definePostgres({ ...common, clientUrl: databaseUrl, pool: { min: 0, max: 10 } } as never));
  } else {
    const file = databaseUrl.replace(/^sqlite:(\/\/)?/, '');
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    orm = await SqliteOrm.init(
      defineSqlite({
        ...common,
        dbName: file,
        pool: {
          // Concurrent writers wait for the lock instead of failing at once.
          afterCreate: (
            conn: { run(sql: string, cb: (err: Error | null) => void): void },
            done: (err: Error | null, conn: unknown) => void,
          ) => {
            // WAL with synchronous=NORMAL: never corrupt, and a commit costs no fsync of its own.
            conn.run('PRAGMA journal_mode = WAL', () =>
              conn.run('PRAGMA synchronous = NORMAL', () =>
                conn.run('PRAGMA busy_timeout = 10000', () => conn.run('PRAGMA foreign_keys = ON', (err) => done(err, conn))),
              ),
            );
          },
        },
      } as never),
    );
  }
  if (opts.migrate !== false) await orm.getMigrator().up();
  return orm;
}
