import { Migration } from '@mikro-orm/migrations';

/**
 * The first schema: users, tokens, spiders and their files, code sessions with their events,
 * base manifests and saves. Written out per platform (generated once from the entities; a test
 * checks that the entities and the migrated schema agree).
 */
export class Migration0001Initial extends Migration {
  override up(): void {
    const postgres = /^postgres(ql)?:/.test(this.config.get('clientUrl') ?? '');
    for (const sql of postgres ? POSTGRES : SQLITE) this.addSql(sql);
  }
}

/** Exported for the test that checks them against the entities. */
export const SQLITE = [
  `create table "api_tokens" ("id" text not null, "user_id" text not null, "label" text not null default '', "prefix" text not null, "hash" text not null, "created_at" datetime not null, "last_used_at" datetime null, "revoked_at" datetime null, primary key ("id"))`,
  `create index "api_tokens_user_id_index" on "api_tokens" ("user_id")`,
  `create unique index "api_tokens_hash_unique" on "api_tokens" ("hash")`,
  `create table "code_sessions" ("id" text not null, "spider_id" text not null, "user_id" text not null, "container_id" text null, "port" integer null, "status" text check ("status" in ('pending', 'starting', 'ready', 'syncing', 'stopped', 'failed')) not null default 'pending', "status_reason" text not null default '', "access_token_hash" text not null, "last_active_at" datetime not null, "expires_at" datetime not null, "created_at" datetime not null, "updated_at" datetime not null, "stopped_at" datetime null, "save_pending" integer not null default false, "last_error" text null, "last_saved_at" datetime null, primary key ("id"))`,
  `create index "code_sessions_user_id_spider_id_index" on "code_sessions" ("user_id", "spider_id")`,
  `create index "code_sessions_status_index" on "code_sessions" ("status")`,
  `create unique index code_sessions_live_spider_unique on code_sessions (user_id, spider_id) where status in ('pending', 'starting', 'ready', 'syncing')`,
  `create unique index code_sessions_live_port_unique on code_sessions (port) where port is not null and status in ('pending', 'starting', 'ready', 'syncing')`,
  `create table "session_base_files" ("session_id" text not null, "path" text not null, "sha256" text not null, primary key ("session_id", "path"))`,
  `create table "session_events" ("id" integer not null primary key autoincrement, "session_id" text not null, "status" text check ("status" in ('pending', 'starting', 'ready', 'syncing', 'stopped', 'failed')) not null, "reason" text not null default '', "at" datetime not null)`,
  `create index "session_events_session_id_index" on "session_events" ("session_id")`,
  `create table "spiders" ("id" text not null, "owner_id" text not null, "name" text not null, "description" text not null default '', "created_at" datetime not null, "updated_at" datetime not null, primary key ("id"))`,
  `create index "spiders_owner_id_index" on "spiders" ("owner_id")`,
  `create unique index "spiders_owner_id_name_unique" on "spiders" ("owner_id", "name")`,
  `create table "spider_files" ("id" text not null, "spider_id" text not null, "path" text not null, "size" bigint not null, "sha256" text not null, "storage_key" text not null, "updated_at" datetime not null, primary key ("id"))`,
  `create index "spider_files_spider_id_index" on "spider_files" ("spider_id")`,
  `create unique index "spider_files_spider_id_path_unique" on "spider_files" ("spider_id", "path")`,
  `create table "sync_records" ("id" text not null, "session_id" text not null, "spider_id" text not null, "user_id" text not null, "trigger" text check ("trigger" in ('manual', 'close', 'idle', 'max_age', 'retry', 'orphan', 'shutdown')) not null, "ok" integer not null, "added" integer not null default 0, "modified" integer not null default 0, "deleted" integer not null default 0, "unchanged" integer not null default 0, "skipped" integer not null default 0, "conflicts" integer not null default 0, "bytes" bigint not null default 0, "error" text null, "started_at" datetime not null, "finished_at" datetime not null, primary key ("id"))`,
  `create index "sync_records_session_id_index" on "sync_records" ("session_id")`,
  `create index "sync_records_spider_id_index" on "sync_records" ("spider_id")`,
  `create table "users" ("id" text not null, "name" text not null, "is_admin" integer not null default false, "created_at" datetime not null, primary key ("id"))`,
  `create unique index "users_name_unique" on "users" ("name")`,
];

export const POSTGRES = [
  `create table "api_tokens" ("id" varchar(36) not null, "user_id" varchar(36) not null, "label" varchar(100) not null default '', "prefix" varchar(16) not null, "hash" varchar(64) not null, "created_at" timestamptz not null, "last_used_at" timestamptz null, "revoked_at" timestamptz null, constraint "api_tokens_pkey" primary key ("id"))`,
  `create index "api_tokens_user_id_index" on "api_tokens" ("user_id")`,
  `alter table "api_tokens" add constraint "api_tokens_hash_unique" unique ("hash")`,
  `create table "code_sessions" ("id" varchar(36) not null, "spider_id" varchar(36) not null, "user_id" varchar(36) not null, "container_id" varchar(100) null, "port" int null, "status" text check ("status" in ('pending', 'starting', 'ready', 'syncing', 'stopped', 'failed')) not null default 'pending', "status_reason" text not null default '', "access_token_hash" varchar(64) not null, "last_active_at" timestamptz not null, "expires_at" timestamptz not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "stopped_at" timestamptz null, "save_pending" boolean not null default false, "last_error" text null, "last_saved_at" timestamptz null, constraint "code_sessions_pkey" primary key ("id"))`,
  `create index "code_sessions_user_id_spider_id_index" on "code_sessions" ("user_id", "spider_id")`,
  `create index "code_sessions_status_index" on "code_sessions" ("status")`,
  `create unique index code_sessions_live_spider_unique on code_sessions (user_id, spider_id) where status in ('pending', 'starting', 'ready', 'syncing')`,
  `create unique index code_sessions_live_port_unique on code_sessions (port) where port is not null and status in ('pending', 'starting', 'ready', 'syncing')`,
  `create table "session_base_files" ("session_id" varchar(36) not null, "path" varchar(1024) not null, "sha256" varchar(64) not null, constraint "session_base_files_pkey" primary key ("session_id", "path"))`,
  `create table "session_events" ("id" serial primary key, "session_id" varchar(36) not null, "status" text check ("status" in ('pending', 'starting', 'ready', 'syncing', 'stopped', 'failed')) not null, "reason" text not null default '', "at" timestamptz not null)`,
  `create index "session_events_session_id_index" on "session_events" ("session_id")`,
  `create table "spiders" ("id" varchar(36) not null, "owner_id" varchar(36) not null, "name" varchar(100) not null, "description" text not null default '', "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "spiders_pkey" primary key ("id"))`,
  `create index "spiders_owner_id_index" on "spiders" ("owner_id")`,
  `alter table "spiders" add constraint "spiders_owner_id_name_unique" unique ("owner_id", "name")`,
  `create table "spider_files" ("id" varchar(36) not null, "spider_id" varchar(36) not null, "path" varchar(1024) not null, "size" bigint not null, "sha256" varchar(64) not null, "storage_key" varchar(200) not null, "updated_at" timestamptz not null, constraint "spider_files_pkey" primary key ("id"))`,
  `create index "spider_files_spider_id_index" on "spider_files" ("spider_id")`,
  `alter table "spider_files" add constraint "spider_files_spider_id_path_unique" unique ("spider_id", "path")`,
  `create table "sync_records" ("id" varchar(36) not null, "session_id" varchar(36) not null, "spider_id" varchar(36) not null, "user_id" varchar(36) not null, "trigger" text check ("trigger" in ('manual', 'close', 'idle', 'max_age', 'retry', 'orphan', 'shutdown')) not null, "ok" boolean not null, "added" int not null default 0, "modified" int not null default 0, "deleted" int not null default 0, "unchanged" int not null default 0, "skipped" int not null default 0, "conflicts" int not null default 0, "bytes" bigint not null default 0, "error" text null, "started_at" timestamptz not null, "finished_at" timestamptz not null, constraint "sync_records_pkey" primary key ("id"))`,
  `create index "sync_records_session_id_index" on "sync_records" ("session_id")`,
  `create index "sync_records_spider_id_index" on "sync_records" ("spider_id")`,
  `create table "users" ("id" varchar(36) not null, "name" varchar(64) not null, "is_admin" boolean not null default false, "created_at" timestamptz not null, constraint "users_pkey" primary key ("id"))`,
  `alter table "users" add constraint "users_name_unique" unique ("name")`,
];
