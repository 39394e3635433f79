import { Migration } from '@mikro-orm/migrations';

/** Files may share a pack: each file row records where its bytes start in its storage object. */
export class Migration0002Packs extends Migration {
  override up(): void {
    this.addSql(SQL);
  }
}

/** The same statement on SQLite and PostgreSQL; exported for the schema test. */
export const SQL = `alter table "spider_files" add column "storage_offset" bigint not null default 0`;
