import * as z from 'zod/mini';

// The server's JSON, checked where it enters the extension (README "API" and "Code sessions").
// Statuses stay plain strings: a newer server may add one, and the views treat unknown ones as "none".

export const Me = z.object({ id: z.string(), name: z.string(), isAdmin: z.boolean() });
export type Me = z.infer<typeof Me>;

export const Spider = z.object({
  id: z.string(),
  name: z.string(),
  description: z.optional(z.string()),
  ownerId: z.optional(z.string()),
  updatedAt: z.optional(z.string()),
});
export type Spider = z.infer<typeof Spider>;

export const Session = z.object({
  session_id: z.string(),
  spider_id: z.string(),
  spider_name: z.string(),
  user_id: z.string(),
  status: z.string(),
  status_reason: z.string(),
  url: z.string(),
  created_at: z.string(),
  last_active_at: z.string(),
  idle_deadline: z.string(),
  expires_at: z.string(),
  last_saved_at: z.nullable(z.string()),
  save_pending: z.boolean(),
  last_error: z.nullable(z.string()),
});
export type Session = z.infer<typeof Session>;

/** Statuses in which a session has (or is about to have) a container. */
export const LIVE_STATUSES: readonly string[] = ['pending', 'starting', 'ready', 'syncing'];
export const isLive = (s: Pick<Session, 'status'>): boolean => LIVE_STATUSES.includes(s.status);
/**
 * A kept session: its save failed, so the server stopped its container but kept it (and its port)
 * until a retried save succeeds. It counts toward the user's session limit; Save to Server and
 * Close Session work on it (the server reads the stopped container's archive), opening it resumes it.
 */
export const isKept = (s: Partial<Pick<Session, 'status' | 'save_pending'>>): boolean =>
  s.save_pending === true && s.status !== undefined && !isLive({ status: s.status });

const PathReason = z.object({ path: z.string(), reason: z.string() });

export const SaveResult = z.object({
  added: z.array(z.string()),
  modified: z.array(z.string()),
  deleted: z.array(z.string()),
  unchanged: z.number(),
  skipped: z.array(PathReason),
  conflicts: z.array(PathReason),
  bytes: z.number(),
  dry_run: z.boolean(),
  saved_at: z.nullable(z.string()),
});
export type SaveResult = z.infer<typeof SaveResult>;

export const CloseResult = z.object({ session: Session, save: z.nullable(SaveResult) });
export type CloseResult = z.infer<typeof CloseResult>;

/** A link's: what it leads to ("file", "directory", "other"; null: nothing). A server from before it sends none. */
const LinkTarget = z.optional(z.nullable(z.string()));

export const FileStat = z.object({
  type: z.string(),
  target: LinkTarget,
  /** A link's: the path in /workspace it leads to (a link to a file, its size and times are that file's); none outside it. */
  real_path: z.optional(z.string()),
  size: z.number(),
  mtime: z.number(),
  ctime: z.number(),
});
export type FileStat = z.infer<typeof FileStat>;

export const DirEntry = z.object({ name: z.string(), type: z.string(), target: LinkTarget });
export type DirEntry = z.infer<typeof DirEntry>;

export const LaunchResult = z.object({ url: z.string() });

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.optional(z.unknown()) }),
});

// ---- /api/events -----------------------------------------------------------------------------

const ErrorInfo = z.object({ code: z.string(), message: z.string() });

export const ServerEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), user: Me }),
  z.object({ type: z.literal('session'), session: Session }),
  z.object({
    type: z.literal('sync'),
    session_id: z.string(),
    spider_id: z.string(),
    trigger: z.string(),
    result: z.nullable(SaveResult),
    error: z.nullable(ErrorInfo),
  }),
  z.object({
    type: z.literal('warning'),
    session_id: z.string(),
    spider_id: z.string(),
    reason: z.string(),
    stops_at: z.string(),
    minutes: z.number(),
  }),
  z.object({ type: z.literal('oom'), session_id: z.string(), spider_id: z.string(), memory_limit: z.number() }),
  z.object({
    type: z.literal('files'),
    session_id: z.string(),
    changes: z.array(z.object({ path: z.string(), kind: z.enum(['created', 'changed', 'deleted']) })),
    /** Too many changes to list: everything in the session may have changed. */
    overflow: z.optional(z.boolean()),
  }),
  z.object({ type: z.literal('error'), session_id: z.optional(z.string()), error: ErrorInfo }),
]);
export type ServerEvent = z.infer<typeof ServerEvent>;
export type FilesEvent = Extract<ServerEvent, { type: 'files' }>;
export type WarningEvent = Extract<ServerEvent, { type: 'warning' }>;
export type OomEvent = Extract<ServerEvent, { type: 'oom' }>;
export type SyncEvent = Extract<ServerEvent, { type: 'sync' }>;
