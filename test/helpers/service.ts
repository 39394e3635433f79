import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../service/config';
import { createLogger } from '../../service/logger';
import { serve, type RunningService } from '../../service/main';

/** The databases the API suites run against: SQLite always, PostgreSQL when TEST_POSTGRES_URL names a server. */
export function databases(): ('sqlite' | 'postgres')[] {
  return process.env.TEST_POSTGRES_URL ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** A fresh PostgreSQL database on the test server, dropped by the returned function. */
async function freshPostgres(): Promise<{ url: string; drop(): Promise<void> }> {
  const { Client } = (await import('pg')) as unknown as typeof import('pg');
  const admin = new URL(process.env.TEST_POSTGRES_URL!);
  const name = `crawlhub_test_${randomBytes(6).toString('hex')}`;
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  // A linguistic collation, as many production clusters have (initdb in an en_US.UTF-8 locale): "a.py"
  // sorts before "B.py" there, after it in byte order. The service's answers must not depend on it.
  await client.query(`create database ${name} template template0 locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'`);
  await client.end();
  const url = new URL(admin.toString());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export interface TestService extends RunningService {
  config: Config;
  dataDir: string;
  adminToken: string;
  /** Everything the service logged, as written. */
  logs: () => string;
  /** fetch against the service with a token. */
  api(token: string | null, method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Creates a user through the CLI's code path and returns its token. */
  newUser(name: string, admin?: boolean): Promise<{ id: string; token: string; tokenId: string }>;
  close(): Promise<void>;
}

export async function startTestService(
  opts: { db?: 'sqlite' | 'postgres'; env?: Record<string, string>; dataDir?: string } = {},
): Promise<TestService> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-test-'));
  const pg = opts.db === 'postgres' ? await freshPostgres() : null;
  const config = loadConfig({
    CRAWLHUB_DATA_DIR: dataDir,
    CRAWLHUB_PORT: '0',
    CRAWLHUB_LOG_LEVEL: 'debug',
    CRAWLHUB_INSTANCE: `t${randomBytes(4).toString('hex')}`,
    // Suites keep many sessions of one user open; the per-user limit has a test of its own.
    CRAWLHUB_MAX_USER_SESSIONS: '100',
    // The image this checkout builds (test/run.mjs names it), not whatever `:latest` is on this host.
    ...(process.env.CRAWLHUB_IMAGE ? { CRAWLHUB_IMAGE: process.env.CRAWLHUB_IMAGE } : {}),
    ...(pg ? { DATABASE_URL: pg.url } : {}),
    ...opts.env,
  });
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('debug', sink);
  const printed: string[] = [];
  const running = await serve(config, { logger, print: (l) => printed.push(l) });
  const adminToken = fs.existsSync(path.join(dataDir, 'admin.token'))
    ? fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim()
    : '';
  const api: TestService['api'] = (token, method, urlPath, body, headers = {}) => {
    const isBytes = body instanceof Uint8Array || typeof body === 'string';
    return fetch(running.url + urlPath, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined && !isBytes ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : isBytes ? (body as BodyInit) : JSON.stringify(body),
    });
  };
  return {
    ...running,
    config,
    dataDir,
    adminToken,
    logs: () => chunks.join(''),
    api,
    async newUser(name, admin = false) {
      const em = running.services.orm.em.fork();
      const user = await running.services.users.createUser(em, name, admin);
      const { token, info } = await running.services.users.createToken(em, user, 'test');
      return { id: user.id, token, tokenId: info.id };
    },
    async close() {
      await running.stop();
      await pg?.drop();
      if (!opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function json<T = any>(res: Response): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`expected JSON, got ${res.status}: ${text.slice(0, 300)}`);
  }
}

/** The Cookie header a fresh browser holds after a launch URL's 302 (the IDE cookie and, in path mode, its user binding). */
export function browserCookies(redirect: Response): string {
  return redirect.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
}
