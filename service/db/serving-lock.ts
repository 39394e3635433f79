import sqlite3 from 'sqlite3';
import type { Knex } from '@mikro-orm/knex';
import { ConfigError } from '../config';
import { isPostgres, type Orm } from './orm';

/**
 * One service per database. Its spider and session locks live in its own memory: a second service on
 * the same database would not see them, and could, for one, collect a blob that the other's save is
 * about to point a file at. Held for the service's life and released by the operating system or the
 * database when its process dies (an advisory lock of its PostgreSQL connection; a SQLite exclusive
 * lock on a file beside the database), so a crashed service never locks its successor out. The CLI's
 * user and token commands do not take it: they run beside the service.
 */
export interface ServingLock {
  release(): Promise<void>;
}

/** "crawlhub" as a 64-bit key: the advisory lock's name in the database. */
const ADVISORY_KEY = '7166469039574742370';

const taken = (variable: string, where: string) =>
  new ConfigError(
    variable,
    `another CrawlHub service is serving from ${where}; run one service per database (a second one would not see the first's locks), or stop the other first`,
  );

export async function takeServingLock(orm: Orm, databaseUrl: string, variable: string): Promise<ServingLock> {
  return isPostgres(databaseUrl) ? postgresLock(orm, variable) : sqliteLock(databaseUrl.replace(/^sqlite:(\/\/)?/, ''), variable);
}

async function postgresLock(orm: Orm, variable: string): Promise<ServingLock> {
  // A connection of its own, out of the pool for the service's life: the lock is that session's.
  const knex = (orm.em.getConnection() as unknown as { getKnex(): Knex }).getKnex();
  const client = knex.client as { acquireConnection(): Promise<unknown>; releaseConnection(conn: unknown): Promise<void> };
  const conn = await client.acquireConnection();
  let got = false;
  try {
    const res = (await knex.raw('select pg_try_advisory_lock(?::bigint) as got', [ADVISORY_KEY]).connection(conn)) as {
      rows: { got: boolean }[];
    };
    got = res.rows[0]?.got === true;
  } finally {
    if (!got) await client.releaseConnection(conn);
  }
  if (!got) throw taken(variable, 'this database');
  return {
    async release() {
      await knex
        .raw('select pg_advisory_unlock(?::bigint)', [ADVISORY_KEY])
        .connection(conn)
        .catch(() => undefined);
      await client.releaseConnection(conn);
    },
  };
}

async function sqliteLock(file: string, variable: string): Promise<ServingLock> {
  if (file === ':memory:') return { release: async () => undefined };
  const lockFile = `${file}.serving`;
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened: sqlite3.Database = new sqlite3.Database(lockFile, (err) => (err ? reject(err) : resolve(opened)));
  });
  const run = (sql: string) => new Promise<void>((resolve, reject) => db.run(sql, (err) => (err ? reject(err) : resolve())));
  const close = () => new Promise<void>((resolve) => db.close(() => resolve()));
  try {
    // Exclusive from the first write on, and held until the connection closes (busy: at once, no wait).
    await run('PRAGMA locking_mode = EXCLUSIVE');
    await run('BEGIN EXCLUSIVE');
  } catch (err) {
    await close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw taken(variable, file);
    throw err;
  }
  return { release: close };
}
