import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { POSTGRES, SQLITE } from '../../service/db/migrations/0001-initial';
import { SQL as PACKS_SQL } from '../../service/db/migrations/0002-packs';

const PACKS_COLUMN = '"storage_offset" bigint not null default 0';
import { databases, startTestService, type TestService } from '../helpers/service';

for (const db of databases()) {
  describe(`database on ${db}`, () => {
    it('the migrations produce exactly the schema the entities describe', async () => {
      const svc = await startTestService({ db });
      try {
        // What the entities would create, statement by statement, against what the migration ran.
        const fromEntities = (await svc.services.orm.getSchemaGenerator().getCreateSchemaSQL({ wrap: false }))
          .split(';\n')
          .map((s) => s.trim().replace(/;$/, '').replaceAll('`', '"'))
          .filter(Boolean)
          .sort();
        // Later migrations alter what 0001 created: fold them into its statements.
        const migrated = [...(db === 'postgres' ? POSTGRES : SQLITE)]
          .map((sql) => (sql.startsWith('create table "spider_files"') ? sql.replace(/("storage_key" [^,]+)/, `$1, ${PACKS_COLUMN}`) : sql))
          .sort();
        assert.match(PACKS_SQL, new RegExp(`add column ${PACKS_COLUMN.replace(/[()]/g, '\\$&')}$`));
        assert.deepEqual(migrated, fromEntities);
        // MikroORM's SQLite diff rebuilds every table with a check constraint, so only PostgreSQL's is exact.
        if (db === 'postgres') {
          const diff = await svc.services.orm.getSchemaGenerator().getUpdateSchemaSQL({ wrap: false });
          assert.equal(diff.trim(), '', `the migrated database differs from the entities:\n${diff}`);
        }
      } finally {
        await svc.close();
      }
    });

    it('the live-session indexes refuse a second live session of a user and spider, and a second user of a port', async () => {
      const svc = await startTestService({ db });
      try {
        const conn = svc.services.orm.em.fork().getConnection();
        const now = new Date().toISOString();
        const insert = (id: string, spider: string, port: number, status: string) =>
          conn.execute(
            `insert into code_sessions (id, spider_id, user_id, port, status, status_reason, access_token_hash, last_active_at, expires_at, created_at, updated_at, save_pending) values (?, ?, 'u1', ?, ?, '', 'h', ?, ?, ?, ?, ?)`,
            [id, spider, port, status, now, now, now, now, false],
          );
        await insert('s1', 'sp1', 10001, 'ready');
        await assert.rejects(insert('s2', 'sp1', 10002, 'starting'));
        await assert.rejects(insert('s3', 'sp2', 10001, 'pending'));
        await insert('s4', 'sp1', 10001, 'stopped');
        await insert('s5', 'sp2', 10003, 'ready');
      } finally {
        await svc.close();
      }
    });
  });
}

describe('first start', () => {
  it('creates the admin user once and writes its token with mode 0600', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-boot-'));
    let first: TestService | undefined;
    let second: TestService | undefined;
    try {
      first = await startTestService({ dataDir });
      const token = first.adminToken;
      assert.match(token, /^chub_/);
      assert.equal(fs.statSync(path.join(dataDir, 'admin.token')).mode & 0o777, 0o600);
      const me = await (await first.api(token, 'GET', '/api/me')).json();
      assert.deepEqual([me.name, me.isAdmin], ['admin', true]);
      const closing = first;
      first = undefined;
      await closing.close();
      second = await startTestService({ dataDir });
      assert.equal(second.adminToken, token, 'a second start must not make another admin');
    } finally {
      // Whatever failed, no service is left listening and the data directory goes.
      await first?.close();
      await second?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
