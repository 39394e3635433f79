import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';

export const SESSION_STATUSES = ['pending', 'starting', 'ready', 'syncing', 'stopped', 'failed'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];
/** Statuses in which a session holds a container and a port. */
export const LIVE_STATUSES: readonly SessionStatus[] = ['pending', 'starting', 'ready', 'syncing'];

/** The design note's crawlhub_code_sessions, plus what recovery and failed saves need. */
export const CodeSession = defineEntity({
  name: 'CodeSession',
  tableName: 'code_sessions',
  indexes: [
    { properties: ['userId', 'spiderId'] },
    { properties: ['status'] },
    // At most one live session per user and spider, and one live session per port: the database
    // settles races that the in-process locks do not see (a second service instance, say).
    {
      name: 'code_sessions_live_spider_unique',
      expression: `create unique index code_sessions_live_spider_unique on code_sessions (user_id, spider_id) where status in ('pending', 'starting', 'ready', 'syncing')`,
    },
    {
      name: 'code_sessions_live_port_unique',
      expression: `create unique index code_sessions_live_port_unique on code_sessions (port) where port is not null and status in ('pending', 'starting', 'ready', 'syncing')`,
    },
  ],
  properties: {
    id: p
      .string()
      .primary()
      .length(36)
      .onCreate(() => randomUUID()),
    spiderId: p.string().length(36),
    userId: p.string().length(36),
    containerId: p.string().length(100).nullable(),
    port: p.integer().nullable(),
    status: p.enum([...SESSION_STATUSES]).default('pending'),
    statusReason: p.text().default(''),
    accessTokenHash: p.string().length(64),
    lastActiveAt: p.datetime(),
    expiresAt: p.datetime(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
    stoppedAt: p.datetime().nullable(),
    /** Set when a save failed: the container is kept until a retry succeeds. */
    savePending: p.boolean().default(false),
    lastError: p.text().nullable(),
    lastSavedAt: p.datetime().nullable(),
  },
});
export type CodeSession = InferEntity<typeof CodeSession>;

/** Every status change with its reason and time. */
export const SessionEvent = defineEntity({
  name: 'SessionEvent',
  tableName: 'session_events',
  properties: {
    id: p.integer().primary().autoincrement(),
    sessionId: p.string().length(36).index(),
    status: p.enum([...SESSION_STATUSES]),
    reason: p.text().default(''),
    at: p.datetime().onCreate(() => new Date()),
  },
});
export type SessionEvent = InferEntity<typeof SessionEvent>;

/** What the session's container held of each file when it was last pulled or saved: the base of a three-way save. */
export const SessionBaseFile = defineEntity({
  name: 'SessionBaseFile',
  tableName: 'session_base_files',
  properties: {
    sessionId: p.string().length(36).primary(),
    path: p.string().length(1024).primary(),
    sha256: p.string().length(64),
  },
});
export type SessionBaseFile = InferEntity<typeof SessionBaseFile>;

export const SYNC_TRIGGERS = ['manual', 'close', 'idle', 'max_age', 'retry', 'orphan', 'shutdown'] as const;
export type SyncTrigger = (typeof SYNC_TRIGGERS)[number];

/** One save of a session's workspace to the server. */
export const SyncRecord = defineEntity({
  name: 'SyncRecord',
  tableName: 'sync_records',
  properties: {
    id: p
      .string()
      .primary()
      .length(36)
      .onCreate(() => randomUUID()),
    sessionId: p.string().length(36).index(),
    spiderId: p.string().length(36).index(),
    userId: p.string().length(36),
    trigger: p.enum([...SYNC_TRIGGERS]),
    ok: p.boolean(),
    added: p.integer().default(0),
    modified: p.integer().default(0),
    deleted: p.integer().default(0),
    unchanged: p.integer().default(0),
    skipped: p.integer().default(0),
    conflicts: p.integer().default(0),
    bytes: p.bigint('number').default(0),
    error: p.text().nullable(),
    startedAt: p.datetime(),
    finishedAt: p.datetime().onCreate(() => new Date()),
  },
});
export type SyncRecord = InferEntity<typeof SyncRecord>;
