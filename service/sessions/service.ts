import formatBytes from 'bytes';
import type { User } from '../auth/entities';
import type { Config } from '../config';
import type { Em, Orm } from '../db/orm';
import type { EventHub, SessionView } from '../events/hub';
import { AppError, conflict, notFound, unavailable } from '../http/errors';
import type { Metrics } from '../http/metrics';
import { KeyedLock } from '../keyed-lock';
import type { Logger } from '../logger';
import { DockerError, DockerTimeoutError, LABEL, type DockerRuntime } from '../runtime/docker';
import { sessionBaseUrl, topology } from '../proxy/routing';
import { ServiceSecret } from '../secret';
import { Spider } from '../spiders/entities';
import type { SpiderService } from '../spiders/service';
import type { SaveResult, SyncService } from '../sync/save';
import { CodeSession, LIVE_STATUSES, SessionEvent, SyncRecord, type SessionStatus, type SyncTrigger } from './entities';
import { portIsFree, Spawner } from './spawner';
import { CONTAINER_UID, type Workspace } from './workspace';

/** What the proxy and the sweeper need of a live session, kept in memory. */
export interface LiveSession {
  id: string;
  userId: string;
  spiderId: string;
  status: SessionStatus;
  port: number | null;
  containerId: string | null;
  /** code-server on the container's network address, when the proxy can reach it there. */
  direct: { host: string; port: number } | null;
}

export interface SessionDeps {
  config: Config;
  orm: Orm;
  docker: DockerRuntime;
  spiders: SpiderService;
  sync: SyncService;
  events: EventHub;
  secret: ServiceSecret;
  logger: Logger;
  metrics: Metrics;
}

const ACTIVITY_PERSIST_MS = 30_000;
/** Users whose sessions the sweep works on at once. */
const SWEEP_USERS_AT_ONCE = 4;
/** A crawl that keeps running out of memory is reported at most this often per session. */
const OOM_NOTICE_INTERVAL_MS = 60_000;

const isLive = (s: SessionStatus) => LIVE_STATUSES.includes(s);
/**
 * What a session's user may read of a failure (its status reason, last error, the sync event):
 * the service's own words and the engine's about the container; anything else (the database,
 * storage, a bug) may name the server's paths and hosts, and is only logged.
 */
function told(err: unknown): string {
  return err instanceof AppError || err instanceof DockerError ? err.message : 'an internal error (the service log has the details)';
}

/** The reason a kept container's session shows while it is started again for its user. */
const RESUMING = 'resuming the kept container';

/**
 * Code sessions: one hardened code-server container per user and spider. Owns the session rows,
 * their containers (through the Spawner), Save to Server (through SyncService), the idle and
 * age limits, and recovery after a restart.
 */
export class SessionService {
  private readonly live = new Map<string, LiveSession>();
  /** Learnt each time a container (re)starts or is adopted: its address changes with each start. */
  private readonly directs = new Map<string, { host: string; port: number } | null>();
  readonly spawner: Spawner;
  private readonly openLock = new KeyedLock();
  private readonly sessionLock = new KeyedLock();
  private readonly portLock = new KeyedLock();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly warned = new Map<string, string>();
  /** When each session last heard that a process in it ran out of memory. */
  private readonly oomNoticed = new Map<string, number>();
  /**
   * Kept sessions whose retried save found only conflicts: those wait for their user (the same
   * conflicts come back each time), so they are retried ever more rarely — twice the wait each
   * time, up to 6 hours — instead of having their container started every sweep.
   */
  private readonly conflictBackoff = new Map<string, { waitMs: number; at: number }>();
  /** Sessions whose files are being saved to stop them (Close, idle, age): their files take no changes. */
  private readonly stopping = new Set<string>();
  /** File changes under way per session, and who waits for them to end (a stop). */
  private readonly changes = new Map<string, { count: number; settled: (() => void)[] }>();
  private readonly lastPersistedActivity = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Whether the start-up reconcile ran, and whether engine events are coming in: the sweep retries either. */
  private reconciled = false;
  /** Sessions the reconcile failed on (the engine or the database failing for a moment): the sweep tries them again. */
  private readonly reconcileAgain = new Set<string>();
  /** Orphaned containers the reconcile could not save or remove: the sweep tries them again. */
  private readonly orphansAgain = new Set<string>();
  private watching = false;
  /** Whether live sessions' containers must be asked after: events may have been missed since the reconcile. */
  private recheckDue = false;
  private connecting: Promise<void> | null = null;

  constructor(private readonly d: SessionDeps) {
    this.spawner = new Spawner(d.docker, d.config, d.secret, d.logger);
  }

  workspaceOf(containerId: string): Workspace {
    return this.spawner.workspaceOf(containerId);
  }

  private get cfg() {
    return this.d.config;
  }

  // ---- views -----------------------------------------------------------------------------------

  /** The browser IDE's address, as the proxy serves it (the public URL is final only once the service listens). */
  sessionUrl(id: string): string {
    return sessionBaseUrl(topology(this.cfg.publicUrl, this.cfg.CRAWLHUB_CODE_DOMAIN), id);
  }

  async view(em: Em, s: CodeSession, spiderName?: string): Promise<SessionView> {
    const name = spiderName ?? (await em.findOne(Spider, { id: s.spiderId }))?.name ?? '';
    return {
      session_id: s.id,
      spider_id: s.spiderId,
      spider_name: name,
      user_id: s.userId,
      status: s.status,
      status_reason: s.statusReason,
      url: this.sessionUrl(s.id),
      created_at: s.createdAt.toISOString(),
      last_active_at: s.lastActiveAt.toISOString(),
      idle_deadline: new Date(s.lastActiveAt.getTime() + this.cfg.CRAWLHUB_IDLE_TIMEOUT).toISOString(),
      expires_at: s.expiresAt.toISOString(),
      last_saved_at: s.lastSavedAt?.toISOString() ?? null,
      save_pending: s.savePending,
      last_error: s.lastError ?? null,
    };
  }

  // ---- the API's operations --------------------------------------------------------------------

  /** Creates the session or returns the live one (resuming a kept container). 20 concurrent calls make one container. */
  async open(em: Em, user: User, spiderId: string, opts: { wait: boolean }): Promise<{ session: CodeSession; created: boolean }> {
    const spider = await this.d.spiders.get(em, user, spiderId);
    const result = await this.openLock.run(`${user.id}:${spider.id}`, async () => {
      const find = () =>
        em.findOne(
          CodeSession,
          { userId: user.id, spiderId: spider.id, $or: [{ status: { $in: [...LIVE_STATUSES] } }, { savePending: true }] },
          { orderBy: { createdAt: 'desc' }, refresh: true },
        );
      let existing = await find();
      if (existing && this.stopping.has(existing.id)) {
        // A stop under way (Close, idle, age) ends first, under the session's lock: what it leaves —
        // stopped, kept after a failed save, or still live — is what this open goes on from. Handed
        // back as it is, the session would stop under its user right after it was "opened".
        await this.sessionLock.run(existing.id, () => Promise.resolve());
        existing = await find();
      }
      if (existing && isLive(existing.status)) return { session: existing, created: false };
      if (existing?.savePending) {
        const claimed = await this.claimKept(em, existing.id);
        if (claimed) return { session: claimed, created: false };
        // The sweep's retried save got there first and ended it: a new session, as if none were kept.
      }
      await this.spawner.checkEngine();
      // Under the spider's lock, as its deletion checks for sessions: a spider deleted since it was
      // looked up above gets no session (its saves would write files of a spider that is gone).
      const session = await this.d.spiders.lock.run(spider.id, async () => {
        if ((await em.count(Spider, { id: spider.id })) === 0) throw notFound('Spider');
        return this.createRow(em, user, spider.id);
      });
      this.track(session);
      const startup: Promise<void> = this.startContainer(session.id).finally(() => this.forgetStart(session.id, startup));
      this.starting.set(session.id, startup);
      return { session, created: true };
    });
    if (opts.wait) await this.starting.get(result.session.id);
    return { session: await this.reload(em, result.session.id), created: result.created };
  }

  /** A new session's row, pending, on a free port: within the user's limit. */
  private createRow(em: Em, user: User, spiderId: string): Promise<CodeSession> {
    return this.portLock.run('ports', async () => {
      // One user cannot take the whole port pool (and the machine) from everyone else.
      const max = this.cfg.CRAWLHUB_MAX_USER_SESSIONS;
      const open = await em.count(CodeSession, {
        userId: user.id,
        $or: [{ status: { $in: [...LIVE_STATUSES] } }, { savePending: true }],
      });
      if (open >= max)
        throw new AppError(
          429,
          'session_limit',
          `You have ${open} code sessions open or kept (at most ${max} are allowed): close one, then open this one.`,
        );
      const port = await this.allocatePort(em);
      const now = new Date();
      const row = em.create(CodeSession, {
        spiderId,
        userId: user.id,
        port,
        status: 'pending',
        statusReason: 'requested',
        accessTokenHash: '',
        lastActiveAt: now,
        expiresAt: new Date(now.getTime() + this.cfg.CRAWLHUB_MAX_SESSION_AGE),
      });
      row.accessTokenHash = ServiceSecret.hash(this.d.secret.codeServerSecret(row.id));
      await em.flush();
      em.create(SessionEvent, { sessionId: row.id, status: 'pending', reason: 'requested' });
      await em.flush();
      return row;
    });
  }

  /**
   * The caller's own live session for a spider, else their most recent one — an admin's too, as
   * `open` makes it: another user's session is reached by its id, never by the spider's.
   */
  async current(em: Em, user: User, spiderId: string): Promise<CodeSession> {
    const spider = await this.d.spiders.get(em, user, spiderId);
    const rows = await em.find(CodeSession, { spiderId: spider.id, userId: user.id }, { orderBy: { createdAt: 'desc' }, limit: 20 });
    const session = rows.find((s) => isLive(s.status) || s.savePending) ?? rows[0];
    if (!session) throw new AppError(404, 'no_session', 'This spider has no code session; open one with POST.');
    return session;
  }

  async get(em: Em, user: User, sessionId: string): Promise<CodeSession> {
    const session = /^[0-9a-f-]{36}$/.test(sessionId) ? await em.findOne(CodeSession, { id: sessionId }) : null;
    if (!session || (!user.isAdmin && session.userId !== user.id)) throw notFound('Session');
    return session;
  }

  /** Every status change with its reason and time, and every save. */
  async history(em: Em, sessionId: string) {
    const [statuses, saves] = await Promise.all([
      em.find(SessionEvent, { sessionId }, { orderBy: { id: 'asc' } }),
      em.find(SyncRecord, { sessionId }, { orderBy: { finishedAt: 'asc' } }),
    ]);
    return {
      statuses: statuses.map((e) => ({ status: e.status, reason: e.reason, at: e.at.toISOString() })),
      saves: saves.map((r) => ({
        trigger: r.trigger,
        ok: r.ok,
        added: r.added,
        modified: r.modified,
        deleted: r.deleted,
        conflicts: r.conflicts,
        bytes: r.bytes,
        error: r.error ?? null,
        at: r.finishedAt.toISOString(),
      })),
    };
  }

  list(em: Em, user: User): Promise<CodeSession[]> {
    return em.find(CodeSession, user.isAdmin ? {} : { userId: user.id }, { orderBy: { createdAt: 'desc' }, limit: 500 });
  }

  async heartbeat(em: Em, user: User, spiderId: string): Promise<CodeSession> {
    return this.beat(em, await this.current(em, user, spiderId));
  }

  /** `heartbeat` of a session named by its id: a stopped one answers 409, never moving a newer session of its spider. */
  async heartbeatById(em: Em, user: User, sessionId: string): Promise<CodeSession> {
    return this.beat(em, await this.get(em, user, sessionId));
  }

  private async beat(em: Em, found: CodeSession): Promise<CodeSession> {
    // Only while it is live, in one statement: a stop that ended since the session was read is not
    // answered (and announced) as a live session with a row that says otherwise.
    const now = new Date();
    const beat = await em.nativeUpdate(CodeSession, { id: found.id, status: { $in: [...LIVE_STATUSES] } }, { lastActiveAt: now });
    const session = await this.reload(em, found.id);
    if (beat === 0 || !isLive(session.status)) throw conflict(`The session is ${session.status}; open a new one.`, 'session_not_live');
    this.lastPersistedActivity.set(session.id, now.getTime());
    this.warned.delete(session.id);
    // Announced unless it stopped meanwhile (its stop's own announcement is the last word then).
    const view = await this.view(em, session);
    if (this.live.has(session.id)) this.d.events.publish(session.userId, { type: 'session', session: view });
    return session;
  }

  /** Save to Server on demand. */
  async sync(em: Em, user: User, spiderId: string, opts: { dryRun: boolean; overwrite: boolean }): Promise<SaveResult> {
    return this.syncSession(em, await this.current(em, user, spiderId), opts);
  }

  /**
   * `sync` of a session named by its id (its user's; an admin's: anyone's, saved to its spider as its
   * user's would be): a stopped one answers 409, never saving a newer session of its spider instead.
   */
  async syncById(em: Em, user: User, sessionId: string, opts: { dryRun: boolean; overwrite: boolean }): Promise<SaveResult> {
    return this.syncSession(em, await this.get(em, user, sessionId), opts);
  }

  private async syncSession(em: Em, session: CodeSession, opts: { dryRun: boolean; overwrite: boolean }): Promise<SaveResult> {
    return this.sessionLock.run(session.id, async () => {
      const fresh = await this.reload(em, session.id);
      if (fresh.status !== 'ready' && !(fresh.savePending && fresh.containerId))
        throw conflict(`The session is ${fresh.status}; it can be saved once it is ready.`, 'session_not_ready');
      return this.runSave(em, fresh, 'manual', opts);
    });
  }

  /** Saves, then destroys. A failed save keeps the container and answers 409; conflicts keep the session open. */
  async close(
    em: Em,
    user: User,
    spiderId: string,
    opts: { discard: boolean },
  ): Promise<{ session: CodeSession; save: SaveResult | null }> {
    return this.closeSession(em, await this.current(em, user, spiderId), opts);
  }

  /**
   * `close` of a session named by its id: its user's, or any user's for an admin (a session in the
   * way of a spider's deletion, one its user left behind). Its save goes to its spider, as its user's would.
   */
  async closeById(
    em: Em,
    user: User,
    sessionId: string,
    opts: { discard: boolean },
  ): Promise<{ session: CodeSession; save: SaveResult | null }> {
    return this.closeSession(em, await this.get(em, user, sessionId), opts);
  }

  private async closeSession(
    em: Em,
    session: CodeSession,
    opts: { discard: boolean },
  ): Promise<{ session: CodeSession; save: SaveResult | null }> {
    return this.sessionLock.run(session.id, async () => {
      // A start or resume in flight finishes first: a resume is registered under this lock when it is
      // claimed, and neither takes the lock, so the wait sees every one and cannot deadlock.
      await this.starting.get(session.id)?.catch(() => undefined);
      let s = await this.reload(em, session.id);
      // A session whose start has not claimed it yet (it is about to): stopped only if still so, in
      // one statement; else the start won, and it is waited for like any other.
      if (s.status === 'pending' && (await em.nativeUpdate(CodeSession, { id: s.id, status: 'pending' }, { status: 'stopped' })) === 0) {
        await this.starting.get(session.id)?.catch(() => undefined);
        s = await this.reload(em, session.id);
      } else if (s.status === 'pending') {
        s = await this.reload(em, session.id);
        await this.destroy(em, s, opts.discard ? 'closed without saving' : 'closed');
        return { session: s, save: null };
      }
      if (!isLive(s.status) && !s.savePending) return { session: s, save: null };
      if (opts.discard || !s.containerId || s.status === 'pending' || s.status === 'starting') {
        await this.destroy(em, s, opts.discard ? 'closed without saving' : 'closed');
        return { session: s, save: null };
      }
      const save = await this.stopWithSave(em, s, 'close');
      if (!save) throw conflict(s.lastError ?? 'Saving failed; the container is kept.', 'save_failed');
      if (save.conflicts.length > 0) {
        throw conflict(
          `Saving found ${save.conflicts.length} conflict(s): a stored file changed since this session pulled it. Save with overwrite, or close with discard.`,
          'conflicts',
          save.conflicts,
        );
      }
      return { session: s, save };
    });
  }

  /**
   * The workspace of a session the user may use, for the editor's file operations and the terminal.
   * Changes are refused while the session is saved to be stopped: they would land after the save
   * read the files, and go with the container.
   */
  async workspace(
    em: Em,
    user: User,
    sessionId: string,
    opts: { change?: boolean } = {},
  ): Promise<{ session: CodeSession; workspace: Workspace }> {
    const session = await this.get(em, user, sessionId);
    if (!(session.status === 'ready' || session.status === 'syncing') || !session.containerId) {
      throw conflict(`The session is ${session.status}; its files are reachable once it is ready.`, 'session_not_ready');
    }
    if (opts.change && this.stopping.has(session.id)) throw stoppingConflict();
    return { session, workspace: this.workspaceOf(session.containerId) };
  }

  /**
   * Runs a change to a session's files (the editor's write, mkdir, delete, rename) unless the
   * session is being saved to stop; a stop waits for the changes under way before its save reads
   * the files, so a change is either refused or in the save — never answered and then lost.
   */
  async change<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    if (this.stopping.has(sessionId)) throw stoppingConflict();
    let under = this.changes.get(sessionId);
    if (!under) this.changes.set(sessionId, (under = { count: 0, settled: [] }));
    under.count++;
    try {
      return await fn();
    } finally {
      if (--under.count === 0) {
        this.changes.delete(sessionId);
        for (const settled of under.settled) settled();
      }
    }
  }

  private changesSettled(sessionId: string): Promise<void> {
    const under = this.changes.get(sessionId);
    return under ? new Promise((resolve) => under.settled.push(resolve)) : Promise.resolve();
  }

  // ---- for the proxy ---------------------------------------------------------------------------

  find(sessionId: string): LiveSession | null {
    return this.live.get(sessionId) ?? null;
  }

  /** Activity seen by the proxy or the events: moves the idle deadline, written at most every 30 s. */
  touch(sessionId: string): void {
    const now = Date.now();
    if (now - (this.lastPersistedActivity.get(sessionId) ?? 0) < ACTIVITY_PERSIST_MS) return;
    this.lastPersistedActivity.set(sessionId, now);
    this.warned.delete(sessionId);
    void this.d.orm.em
      .fork()
      .nativeUpdate(CodeSession, { id: sessionId, status: { $in: [...LIVE_STATUSES] } }, { lastActiveAt: new Date(now) })
      .catch((err: unknown) => this.d.logger.warn({ err, session: sessionId }, 'could not record activity'));
  }

  upstreamSecret(sessionId: string): string {
    return this.d.secret.codeServerSecret(sessionId);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /** Reconciles with the engine, then watches container events and sweeps on a timer. */
  async startBackground(): Promise<void> {
    await this.connectEngine();
    this.sweepTimer = setInterval(() => this.logged('the sweep', this.sweep()), this.cfg.CRAWLHUB_SWEEP_INTERVAL);
    this.sweepTimer.unref();
  }

  /**
   * Work started by an event or a timer has no caller to report to: what fails (the database gone
   * for a moment, say) is logged, and the next event or sweep tries again.
   */
  private logged(what: string, work: Promise<void>): void {
    void work.catch((err: unknown) => this.d.logger.error({ err }, `${what} failed`));
  }

  /**
   * The start-up reconcile and the engine's event stream, each until it works: an engine that was
   * down when the service started (a host reboot), or restarted under it, is picked up by the next
   * sweep. Events missed while the stream was down are made up for by asking after each live session.
   */
  private connectEngine(): Promise<void> {
    // One at a time: sweeps may overlap while the engine is slow.
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connectOnce(): Promise<void> {
    if (!this.reconciled) {
      try {
        await this.reconcile();
        this.reconciled = true;
      } catch (err) {
        this.d.logger.warn({ err }, 'reconcile skipped: Docker is not reachable; the next sweep tries again');
        return;
      }
    } else {
      // Events between the reconcile (or the stream that ended) and this subscription went unheard.
      if (!this.watching) this.recheckDue = true;
      if (this.reconcileAgain.size > 0 || this.orphansAgain.size > 0)
        await this.reconcile().catch((err: unknown) =>
          this.d.logger.warn({ err }, 'could not reconcile the sessions left over; the next sweep tries again'),
        );
    }
    if (!this.watching && !this.closed) {
      this.watching = await this.spawner.watch({
        gone: (sessionId, containerId, action, exitCode, oom) =>
          this.logged('handling a stopped container', this.onContainerGone(sessionId, containerId, action, exitCode, oom)),
        outOfMemory: (sessionId, containerId) => this.logged('reporting an out-of-memory kill', this.onOutOfMemory(sessionId, containerId)),
        ended: () => {
          this.watching = false;
          if (!this.closed) this.d.logger.warn('the Docker event stream ended; the next sweep subscribes again');
        },
      });
    }
    if (this.watching && this.recheckDue) {
      try {
        await this.recheckContainers();
        this.recheckDue = false;
      } catch (err) {
        this.d.logger.warn({ err }, 'could not check the sessions’ containers; the next sweep tries again');
      }
    }
  }

  /** After a gap in the engine's events: each live session's container, asked after directly. */
  private async recheckContainers(): Promise<void> {
    for (const s of [...this.live.values()]) {
      if ((s.status !== 'ready' && s.status !== 'syncing') || !s.containerId) continue;
      const state = await this.spawner.inspect(s.containerId);
      if (!state) await this.onContainerGone(s.id, s.containerId, 'destroy');
      else if (!state.running) await this.onContainerGone(s.id, s.containerId, 'die', String(state.exitCode ?? '?'), state.oomKilled);
    }
  }

  /** SIGTERM: no new work; saves in flight finish; containers keep running for the next start to adopt. */
  async shutdown(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);

    // A reconcile under way (a stop signalled during start-up) ends after the row it is on.
    await this.connecting?.catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([...this.starting.values()]);
    await this.spawner.close();
  }

  /** Idle and over-age sessions are saved, then destroyed; failed saves are retried; stop warnings go out. */
  async sweep(now = Date.now()): Promise<void> {
    if (this.closed) return;
    const leftOver = this.reconcileAgain.size > 0 || this.orphansAgain.size > 0;
    if (!this.reconciled || !this.watching || this.recheckDue || leftOver) await this.connectEngine();
    if (!this.reconciled) return;
    const rows = await this.d.orm.em.fork().find(CodeSession, { $or: [{ status: { $in: ['ready'] } }, { savePending: true }] });
    // One user's sessions one after another, users side by side (a few at once): a container that
    // makes every engine call wait out its time limit (its user's doing) delays its own user's
    // stops, not everyone's.
    const byUser = new Map<string, CodeSession[]>();
    for (const s of rows) {
      const group = byUser.get(s.userId);
      if (group) group.push(s);
      else byUser.set(s.userId, [s]);
    }
    const queue = [...byUser.values()];
    const worker = async () => {
      for (let group = queue.shift(); group; group = queue.shift()) {
        const em = this.d.orm.em.fork();
        for (const s of group) {
          if (this.closed) return;
          await this.sweepOne(em, s, now);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SWEEP_USERS_AT_ONCE, queue.length) }, worker));
    if (this.closed) return;
    this.updateGauge();
  }

  /** The sweep's work on one session: a retried save, an idle or age stop, or a warning. */
  private async sweepOne(em: Em, s: CodeSession, now: number): Promise<void> {
    try {
      if (s.savePending) {
        if (now < (this.conflictBackoff.get(s.id)?.at ?? 0)) return;
        await this.finishBeforeShutdown(this.sessionLock.run(s.id, () => this.retrySave(em, s.id)));
        return;
      }
      await this.pollBrowserActivity(em, s);
      const idleAt = s.lastActiveAt.getTime() + this.cfg.CRAWLHUB_IDLE_TIMEOUT;
      const ageAt = s.expiresAt.getTime();
      if (now >= ageAt || now >= idleAt) {
        await this.finishBeforeShutdown(
          this.sessionLock.run(s.id, async () => {
            // A stop (SIGTERM) that began while the sweep asked after this session waits only for
            // the work it saw under way: this one is the next start's, as the sweep's remaining sessions are.
            if (this.closed) return;
            // Decided again on the row as it is now: a heartbeat, a save or a resume may have come in
            // while the sweep worked through the sessions before this one.
            const fresh = await this.reload(em, s.id);
            const at = Math.max(now, Date.now());
            const freshAgeAt = fresh.expiresAt.getTime();
            if (fresh.status !== 'ready' || (at < freshAgeAt && at < fresh.lastActiveAt.getTime() + this.cfg.CRAWLHUB_IDLE_TIMEOUT)) return;
            if (at >= freshAgeAt) await this.stopWithSave(em, fresh, 'max_age');
            // Its user may come back while it saves (a heartbeat, the browser IDE): then it goes on.
            else await this.stopWithSave(em, fresh, 'idle', (frozen) => this.stillIdle(em, fresh, frozen));
          }),
        );
        return;
      }
      this.warn(s, idleAt, ageAt, now);
    } catch (err) {
      this.d.logger.error({ err, session: s.id }, 'sweep failed for a session');
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private track(s: CodeSession): void {
    if (isLive(s.status)) {
      this.live.set(s.id, {
        id: s.id,
        userId: s.userId,
        spiderId: s.spiderId,
        status: s.status,
        port: s.port ?? null,
        containerId: s.containerId ?? null,
        direct: this.directs.get(s.id) ?? null,
      });
    } else {
      this.live.delete(s.id);
      this.directs.delete(s.id);
      this.warned.delete(s.id);
      this.lastPersistedActivity.delete(s.id);
    }
    this.updateGauge();
  }

  /** A start or resume that ended: unless a newer one took its place meanwhile. */
  private forgetStart(sessionId: string, startup: Promise<void>): void {
    if (this.starting.get(sessionId) === startup) this.starting.delete(sessionId);
  }

  /** Work that SIGTERM waits for (saves). */
  private finishBeforeShutdown<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  private updateGauge(): void {
    const counts: Record<string, number> = { pending: 0, starting: 0, ready: 0, syncing: 0 };
    for (const s of this.live.values()) counts[s.status] = (counts[s.status] ?? 0) + 1;
    for (const [status, n] of Object.entries(counts)) this.d.metrics.sessions.set({ status }, n);
  }

  private async reload(em: Em, id: string): Promise<CodeSession> {
    return em.findOneOrFail(CodeSession, { id }, { refresh: true });
  }

  private async transition(em: Em, s: CodeSession, status: SessionStatus, reason: string, patch: Partial<CodeSession> = {}): Promise<void> {
    Object.assign(s, patch, { status, statusReason: reason });
    if (status === 'stopped' || status === 'failed') s.stoppedAt ??= new Date();
    em.create(SessionEvent, { sessionId: s.id, status, reason });
    await em.flush();
    // Ended, nothing kept to save or resume: its base (a row per file it was given) has no more use.
    if ((status === 'stopped' || status === 'failed') && !s.savePending) await this.d.sync.forgetBase(em, s.id);
    this.track(s);
    this.d.logger.info({ session: s.id, status, reason }, 'session status');
    await this.publish(em, s);
  }

  private async publish(em: Em, s: CodeSession): Promise<void> {
    this.d.events.publish(s.userId, { type: 'session', session: await this.view(em, s) });
  }

  /** The lowest free port of the pool: not held by a live session or a kept container. Call under portLock. */
  private async allocatePort(em: Em, avoid: Set<number> = new Set()): Promise<number> {
    const held = await em.find(
      CodeSession,
      { port: { $ne: null }, $or: [{ status: { $in: [...LIVE_STATUSES] } }, { savePending: true }] },
      { fields: ['port'] },
    );
    const used = new Set([...held.map((s) => s.port), ...avoid]);
    const { first, last } = this.cfg.CRAWLHUB_PORT_RANGE;
    // A port some other program (or another service on this engine) listens on is skipped too.
    for (let port = first; port <= last; port++) if (!used.has(port) && (await portIsFree(port))) return port;
    throw unavailable(
      `All ${last - first + 1} session ports (${first}-${last}) are in use; close a session or try again later.`,
      'port_pool_exhausted',
    );
  }

  /** pending → starting → ready, or failed with the container removed and the port freed. */
  private async startContainer(sessionId: string): Promise<void> {
    const em = this.d.orm.em.fork();
    // Claimed in one statement: a Close in the moment between the row and this start (which it
    // could not wait for) has stopped it, and there is nothing to start any more.
    const claimed = await em.nativeUpdate(CodeSession, { id: sessionId, status: 'pending' }, { status: 'starting' });
    const s = await this.reload(em, sessionId);
    if (claimed === 0) return this.track(s);
    try {
      await this.transition(em, s, 'starting', 'creating the container');
      const { containerId } = await this.spawner.start(s, s.port!, {
        created: async (id) => {
          s.containerId = id;
          await em.flush();
          this.track(s);
        },
        // Another program holds the port: take the next one.
        reallocate: (avoid) =>
          this.portLock.run('ports', async () => {
            s.port = await this.allocatePort(em, avoid);
            await em.flush();
            return s.port;
          }),
      });
      // The stat keys of the pulled files are taken before anyone can edit them (nothing reaches the
      // workspace before the session is ready), while code-server is still starting.
      const workspace = this.workspaceOf(containerId);
      const pulling = this.pull(em, s).then(() => this.d.sync.primeCache(this.d.orm.em.fork(), s.id, workspace));
      try {
        await Promise.all([pulling, this.spawner.waitHealthy(containerId, s.port!)]);
        this.directs.set(s.id, await this.spawner.networkAddress(containerId));
      } catch (err) {
        await pulling.catch(() => undefined); // nothing of this start may outlive it
        throw err;
      }
      // The idle clock starts when the user can first act, not when the container was asked for.
      await this.transition(em, s, 'ready', 'code-server answers', { lastActiveAt: new Date() });
    } catch (err) {
      const reason = err instanceof AppError || err instanceof DockerTimeoutError ? err.message : `could not start: ${told(err)}`;
      this.d.logger.error({ err, session: s.id }, 'session failed to start');
      if (s.containerId) await this.spawner.remove(s.containerId).catch(() => undefined);
      // Nothing of a start that failed is kept (the engine's "died" event may have said otherwise).
      await this.transition(em, s, 'failed', reason, { lastError: reason, savePending: false }).catch(() => undefined);
    }
  }

  /** The spider's files into /workspace as one uncompressed tar, and the base they form. */
  private async pull(em: Em, s: CodeSession): Promise<void> {
    await this.d.spiders.lock.run(s.spiderId, async () => {
      const files = await this.d.spiders.files(em, s.spiderId);
      const tar = await this.d.spiders.exportArchive(em, s.spiderId, { uid: CONTAINER_UID, gid: CONTAINER_UID });
      try {
        await this.workspaceOf(s.containerId!).push(tar);
      } finally {
        // A copy that failed leaves the stream unread: ended here, it lets go of the files it holds.
        tar.destroy();
      }
      await this.d.sync.recordBase(em, s.id, files);
    });
  }

  /** Saves with the status shown as syncing; results and failures are announced. */
  private async runSave(
    em: Em,
    s: CodeSession,
    trigger: SyncTrigger,
    opts: { dryRun?: boolean; overwrite?: boolean } = {},
  ): Promise<SaveResult> {
    const state = s.containerId ? await this.spawner.inspect(s.containerId) : null;
    if (!state) throw new AppError(410, 'container_gone', 'The session container no longer exists; the last save is what the server has.');
    const wasReady = s.status === 'ready';
    if (wasReady && !opts.dryRun) await this.transition(em, s, 'syncing', `saving (${trigger})`);
    try {
      const result = await this.finishBeforeShutdown(
        this.d.sync.save(em, s, this.workspaceOf(s.containerId!), {
          dryRun: Boolean(opts.dryRun),
          overwrite: Boolean(opts.overwrite),
          trigger,
          containerRunning: state.running,
        }),
      );
      if (!opts.dryRun) {
        s.lastSavedAt = result.saved_at ? new Date(result.saved_at) : s.lastSavedAt;
        if (wasReady) await this.transition(em, s, 'ready', `saved (${trigger})`, { lastError: null });
        else await em.flush();
        this.d.events.publish(s.userId, { type: 'sync', session_id: s.id, spider_id: s.spiderId, trigger, result, error: null });
      }
      return result;
    } catch (err) {
      // A dry run (the editor's count of changes) answers its caller alone, failed or not: the event
      // is about saves, and a dry run's failure read as one would say "Last save failed" wrongly.
      if (opts.dryRun) throw err;
      if (!(err instanceof AppError)) this.d.logger.error({ err, session: s.id, trigger }, 'save failed');
      const e = err instanceof AppError ? err : new AppError(500, 'internal', `Saving failed: ${told(err)}.`);
      if (wasReady) await this.transition(em, s, 'ready', `save failed (${trigger})`, { lastError: e.message }).catch(() => undefined);
      this.d.events.publish(s.userId, {
        type: 'sync',
        session_id: s.id,
        spider_id: s.spiderId,
        trigger,
        result: null,
        error: { code: e.code, message: e.message },
      });
      throw err;
    }
  }

  /**
   * The "sync before destroy" rule: save, and destroy only when everything was saved. A failed
   * save or unresolved conflicts stop the container but keep it (and its port) for a retry or a resume.
   */
  private async stopWithSave(
    em: Em,
    s: CodeSession,
    trigger: SyncTrigger,
    stillDue?: (frozen: boolean) => Promise<boolean>,
  ): Promise<SaveResult | null> {
    this.stopping.add(s.id);
    try {
      // Changes answered before this point land in the save (each is bounded by the engine's timeouts).
      await this.changesSettled(s.id);
      return await this.saveThenStop(em, s, trigger, stillDue);
    } finally {
      this.stopping.delete(s.id);
    }
  }

  /**
   * An idle session's stop, asked again once its save is done: activity since the stop was decided
   * (a heartbeat, the browser IDE through the proxy or code-server's own heartbeat) calls it off —
   * what its user does in the browser IDE meanwhile would go with the container. A frozen code-server
   * cannot answer (nor hear the browser): the proxy's record of the browser's traffic stands for it.
   */
  private async stillIdle(em: Em, s: CodeSession, frozen: boolean): Promise<boolean> {
    if (!frozen) await this.pollBrowserActivity(em, s);
    const fresh = await this.reload(em, s.id);
    return fresh.status === 'ready' && Date.now() >= fresh.lastActiveAt.getTime() + this.cfg.CRAWLHUB_IDLE_TIMEOUT;
  }

  /**
   * Every process of its user (code-server, terminals, what runs in them) is frozen from before the
   * save reads the files until the container goes: what the browser IDE or a crawl would write
   * after the read would go with it. A stop that does not go ahead (a failed save, conflicts, its
   * user back) thaws them first; a container that cannot be frozen is kept, as a failed save keeps it.
   */
  private async saveThenStop(
    em: Em,
    s: CodeSession,
    trigger: SyncTrigger,
    stillDue?: (frozen: boolean) => Promise<boolean>,
  ): Promise<SaveResult | null> {
    let result: SaveResult | null = null;
    let failure: string | null = null;
    // The workspace to thaw, once a freeze was tried (it may have half worked); a stopped container cannot change.
    let frozen: Workspace | null = null;
    try {
      if (s.containerId && (await this.spawner.inspect(s.containerId))?.running) {
        frozen = this.workspaceOf(s.containerId);
        await frozen.freeze();
      }
    } catch (err) {
      failure = `its processes could not be paused for the save (${told(err)})`;
    }
    const thaw = async (): Promise<boolean> => {
      const workspace = frozen;
      frozen = null;
      return !workspace || (await this.thaw(s, workspace));
    };
    try {
      if (failure === null) {
        try {
          result = await this.runSave(em, s, trigger);
          if (result.conflicts.length > 0 && trigger !== 'close')
            failure = `${result.conflicts.length} conflict(s) with files changed on the server`;
        } catch (err) {
          failure = told(err);
        }
      }
      // A close's conflicts leave the session open, to be resolved.
      const conflicted = failure === null && result!.conflicts.length > 0;
      if (failure === null && !conflicted && (!stillDue || (await stillDue(frozen !== null)))) {
        await this.destroy(em, s, `stopped after saving (${trigger})`, { frozen: frozen !== null });
        frozen = null;
        return result;
      }
      if (failure === null) {
        // It stays open (conflicts, its user back) and runs on; one that cannot is kept for a retry.
        if (await thaw()) {
          if (!conflicted) await this.transition(em, s, 'ready', `in use again: the ${trigger} stop was called off after its save`);
          return result;
        }
        failure = 'its processes could not be resumed after the save';
      }
      // Its processes end as a stop ends them (SIGTERM, then the grace period), not killed frozen.
      await thaw();
      await this.keep(em, s, `save failed (${trigger}): ${failure}; the container is kept and the save will be retried`, failure);
      return null;
    } finally {
      // A step that failed (the engine, the database): the session is not left frozen.
      await thaw();
    }
  }

  /** Lets a container's frozen processes run on; false (and logged) when it could not. */
  private async thaw(s: CodeSession, workspace: Workspace, opts: { ifFrozen?: boolean } = {}): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await workspace.thaw(opts);
        return true;
      } catch (err) {
        this.d.logger.warn({ err, session: s.id, attempt }, "could not resume a session's processes after its save");
      }
    }
    return false;
  }

  private async keep(em: Em, s: CodeSession, reason: string, error: string): Promise<void> {
    if (s.containerId) {
      await this.spawner
        .stopKeeping(s.containerId)
        .catch((err: unknown) => this.d.logger.warn({ err, session: s.id }, 'could not stop a kept container'));
    }
    await this.transition(em, s, 'failed', reason, { savePending: true, lastError: error });
  }

  private async destroy(em: Em, s: CodeSession, reason: string, opts: { frozen?: boolean } = {}): Promise<void> {
    if (s.containerId) await this.spawner.stopAndRemove(s.containerId, opts);
    this.d.sync.forget(s.id);
    this.conflictBackoff.delete(s.id);
    await this.transition(em, s, 'stopped', reason, { savePending: false });
  }

  /**
   * Takes a kept container back for its user, under the session's lock as the sweep's retried save
   * runs: the row turns `starting` (no retry picks it up after that) and the container restarts in
   * the background. Null when a retry got there first and ended the session.
   */
  private async claimKept(em: Em, sessionId: string): Promise<CodeSession | null> {
    const row = await this.sessionLock.run(sessionId, async () => {
      const s = await this.reload(em, sessionId);
      if (!s.savePending || isLive(s.status)) return isLive(s.status) ? s : null;
      await this.transition(em, s, 'starting', RESUMING, { savePending: false });
      this.conflictBackoff.delete(s.id);
      this.resume(s.id);
      return s;
    });
    return row;
  }

  private resume(sessionId: string): void {
    const startup = (async () => {
      const em = this.d.orm.em.fork();
      const row = await this.reload(em, sessionId);
      try {
        if (!row.containerId || !(await this.spawner.inspect(row.containerId)))
          throw new AppError(410, 'container_gone', 'the kept container is gone');
        await this.spawner.restart(row.containerId);
        await this.spawner.waitHealthy(row.containerId, row.port!);
        this.directs.set(row.id, await this.spawner.networkAddress(row.containerId));
        // A fresh start for its user: the idle clock and the age limit count from now.
        const now = new Date();
        await this.transition(em, row, 'ready', 'resumed', {
          lastActiveAt: now,
          expiresAt: new Date(now.getTime() + this.cfg.CRAWLHUB_MAX_SESSION_AGE),
        });
      } catch (err) {
        // Removed behind the service (before the restart, or while it came up: then the failure is only
        // "exited"): nothing is kept, whatever the failure said — the engine is asked.
        const gone =
          (err instanceof AppError && err.code === 'container_gone') ||
          (typeof row.containerId === 'string' && (await this.spawner.inspect(row.containerId).catch(() => undefined)) === null);
        if (!(err instanceof AppError)) this.d.logger.error({ err, session: sessionId }, 'resuming a kept container failed');
        const reason = gone ? 'the kept container is gone; the last save is intact' : told(err);
        await this.transition(em, row, 'failed', `could not resume: ${reason}`, {
          savePending: !gone && Boolean(row.containerId),
          lastError: told(err),
        });
      }
    })()
      .catch((err: unknown) => this.d.logger.error({ err, session: sessionId }, 'resuming a kept container failed'))
      .finally(() => this.forgetStart(sessionId, startup));
    this.starting.set(sessionId, startup);
  }

  /** A kept container: start it if needed (exec works only on a running one), save, destroy. */
  private async retrySave(em: Em, id: string): Promise<void> {
    const s = await this.reload(em, id);
    if (!s.savePending) return;
    const state = s.containerId ? await this.spawner.inspect(s.containerId) : null;
    if (!state) {
      await this.transition(em, s, 'failed', 'the kept container is gone; the last save is intact', { savePending: false });
      return;
    }
    if (!state.running) {
      try {
        await this.spawner.restart(s.containerId!);
      } catch (err) {
        this.d.logger.warn({ err, session: s.id }, 'could not start a kept container; saving from its archive');
      }
    }
    try {
      const result = await this.runSave(em, s, 'retry');
      if (result.conflicts.length > 0) {
        await this.keep(
          em,
          s,
          `${result.conflicts.length} conflict(s) with files changed on the server; open the session to resolve them`,
          'conflicts',
        );
        this.backOff(s.id);
        return;
      }
      this.conflictBackoff.delete(s.id);
      await this.destroy(em, s, 'stopped after a retried save');
    } catch (err) {
      // Over a cap (a file or the whole workspace too big, too many files): only its user can mend
      // that, so it is retried ever more rarely, as conflicts are, not restarted and read every sweep.
      if (err instanceof AppError && (err.status === 413 || err.status === 422)) this.backOff(s.id);
      else this.conflictBackoff.delete(s.id);
      await this.keep(em, s, `save failed again: ${told(err)}; it will be retried`, told(err));
    }
  }

  /** The next retry of a kept session's save waits twice as long as the last (at most 6 hours). */
  private backOff(sessionId: string): void {
    const waitMs = Math.min(2 * (this.conflictBackoff.get(sessionId)?.waitMs ?? this.cfg.CRAWLHUB_SWEEP_INTERVAL / 2), 6 * 3_600_000);
    this.conflictBackoff.set(sessionId, { waitMs, at: Date.now() + waitMs });
  }

  /** code-server's /healthz lastHeartbeat is browser activity: validated, never in the future. */
  private async pollBrowserActivity(em: Em, s: CodeSession): Promise<void> {
    if (!s.port) return;
    const beat = await this.spawner.browserHeartbeat(s.port);
    if (beat <= s.lastActiveAt.getTime()) return;
    // Only forwards: a heartbeat that came in since the sweep read the row may be newer still.
    await em.nativeUpdate(CodeSession, { id: s.id, lastActiveAt: { $lt: new Date(beat) } }, { lastActiveAt: new Date(beat) });
    await this.reload(em, s.id);
    this.warned.delete(s.id);
    await this.publish(em, s);
  }

  private warn(s: CodeSession, idleAt: number, ageAt: number, now: number): void {
    const window = this.cfg.CRAWLHUB_STOP_WARNING;
    if (window <= 0) return;
    const [reason, at] = ageAt <= idleAt ? (['max_age', ageAt] as const) : (['idle', idleAt] as const);
    if (at - now > window) return;
    const key = `${reason}:${at}`;
    if (this.warned.get(s.id) === key) return;
    this.warned.set(s.id, key);
    this.d.events.publish(s.userId, {
      type: 'warning',
      session_id: s.id,
      spider_id: s.spiderId,
      reason,
      stops_at: new Date(at).toISOString(),
      minutes: Math.max(0, Math.ceil((at - now) / 60_000)),
    });
  }

  /**
   * The kernel killed a process in a session's container for memory (a crawl, a language server)
   * and the container goes on: the user hears of it, at most once a minute per session, since
   * "Killed" in a terminal says nothing about why.
   */
  private async onOutOfMemory(sessionId: string, containerId: string): Promise<void> {
    const now = Date.now();
    const last = this.oomNoticed.get(sessionId);
    if (last !== undefined && now - last < OOM_NOTICE_INTERVAL_MS) return;
    const s = await this.d.orm.em.fork().findOne(CodeSession, { id: sessionId });
    if (!s || s.containerId !== containerId || !isLive(s.status)) return;
    for (const [id, at] of this.oomNoticed) if (now - at >= OOM_NOTICE_INTERVAL_MS) this.oomNoticed.delete(id);
    this.oomNoticed.set(sessionId, now);
    const memoryLimit = this.cfg.CRAWLHUB_SESSION_MEMORY;
    this.d.logger.warn({ sessionId, memoryLimit }, 'a process in the session ran out of memory and was killed');
    this.d.events.publish(s.userId, { type: 'oom', session_id: s.id, spider_id: s.spiderId, memory_limit: memoryLimit });
  }

  private async onContainerGone(
    sessionId: string,
    containerId: string,
    action: 'die' | 'destroy',
    exitCode?: string,
    outOfMemory = false,
  ): Promise<void> {
    await this.sessionLock.run(sessionId, async () => {
      const em = this.d.orm.em.fork();
      const s = await em.findOne(CodeSession, { id: sessionId });
      if (!s || s.containerId !== containerId || !(isLive(s.status) || s.savePending)) return;
      if (action === 'destroy') {
        await this.transition(em, s, 'failed', 'the container was removed outside the service; the last save is intact', {
          lastError: 'container removed',
          savePending: false,
        });
      } else if (s.status === 'ready' || s.status === 'syncing') {
        // (A start or resume in flight notices by itself, and decides what is kept.)
        await this.transition(
          em,
          s,
          'failed',
          outOfMemory
            ? `the container ran out of memory (${formatBytes(this.cfg.CRAWLHUB_SESSION_MEMORY, { unitSeparator: ' ' })}) and stopped; it is kept and its files will be saved`
            : `the container stopped unexpectedly (exit code ${exitCode ?? '?'}); it is kept and its files will be saved`,
          {
            savePending: true,
            lastError: 'container stopped',
          },
        );
      }
    });
  }

  /**
   * At start: containers with our labels are matched to rows. Live rows adopt their running
   * container; rows whose container is gone are marked; containers without a live row are saved
   * (when their spider still exists) and removed.
   */
  async reconcile(): Promise<void> {
    const em = this.d.orm.em.fork();
    const containers = await this.spawner.listOwn();
    const byId = new Map(containers.map((c) => [c.id, c]));
    // A later pass (from the sweep) takes up only the sessions an earlier one could not handle.
    const again = this.reconciled;
    const rows = again
      ? await em.find(CodeSession, { id: { $in: [...this.reconcileAgain] } })
      : await em.find(CodeSession, { $or: [{ status: { $in: [...LIVE_STATUSES] } }, { savePending: true }] });
    const claimed = new Set<string>();
    for (const row of rows) {
      // Stopping: what is left is the next start's (a row half-handled is handled again then).
      if (this.closed) return;
      // Its container is no orphan, whatever becomes of the row here.
      if (row.containerId) claimed.add(row.containerId);
      // Under the session's lock and on the row as it is now: the API may be serving already (and
      // when the engine was down at start, this runs from a sweep later on).
      try {
        await this.sessionLock.run(row.id, async () => {
          const s = await this.reload(em, row.id);
          if (!isLive(s.status) && !s.savePending) return;
          const c = s.containerId ? byId.get(s.containerId) : undefined;
          if (c) claimed.add(c.id);
          // A session this process started or adopted already (the engine came back after the start).
          if (this.starting.has(s.id) || this.live.has(s.id)) return;
          await this.reconcileRow(em, s, c);
        });
        this.reconcileAgain.delete(row.id);
      } catch (err) {
        // One session the engine or the database fails on holds up no other, nor the sweep
        // (idle and age stops, retried saves) for everyone: the sweep tries it again.
        this.reconcileAgain.add(row.id);
        this.d.logger.error({ err, session: row.id }, 'could not reconcile a session; the next sweep tries again');
      }
    }
    for (const c of containers) {
      if (this.closed) return;
      // A later pass cleans only the orphans an earlier one failed on (their rows never turn live again).
      if (claimed.has(c.id) || (again && !this.orphansAgain.has(c.id))) continue;
      try {
        await this.cleanOrphan(em, c.id, c.labels, c.state === 'running');
        this.orphansAgain.delete(c.id);
      } catch (err) {
        this.orphansAgain.add(c.id);
        this.d.logger.error({ err, container: c.id.slice(0, 12) }, 'could not clean up an orphaned container; the next sweep tries again');
      }
    }
    // Those gone meanwhile need nothing more.
    for (const id of this.orphansAgain) if (!byId.has(id)) this.orphansAgain.delete(id);
  }

  private async reconcileRow(em: Em, s: CodeSession, c: { id: string; state: string } | undefined): Promise<void> {
    if (!c) {
      await this.transition(em, s, 'failed', 'the container was gone when the service restarted; the last save is intact', {
        savePending: false,
        lastError: 'container gone',
      });
    } else if (s.savePending) {
      this.track(s); // kept for a retry: the sweeper handles it
    } else if (s.status === 'starting' && s.statusReason === RESUMING) {
      // A kept container its user was getting back: still the only copy of their unsaved work.
      await this.transition(
        em,
        s,
        'failed',
        'the service restarted while the kept container was resuming; it is kept and its files will be saved',
        {
          savePending: true,
          lastError: 'interrupted resume',
        },
      );
    } else if (s.status === 'pending' || s.status === 'starting') {
      await this.spawner.remove(c.id);
      await this.transition(em, s, 'failed', 'the service restarted while the session was starting; open it again', {
        lastError: 'interrupted start',
      });
    } else if (c.state !== 'running') {
      await this.transition(em, s, 'failed', 'the container stopped while the service was down; it is kept and its files will be saved', {
        savePending: true,
        lastError: 'container stopped',
      });
    } else {
      // A stop the restart cut short (between its freeze and the container's removal) would leave
      // its processes frozen, code-server too: they run on (one without a freeze's mark is left as it is).
      await this.thaw(s, this.workspaceOf(c.id), { ifFrozen: true });
      // No stat keys are assumed for an adopted container: its first save reads every file.
      this.directs.set(s.id, await this.spawner.networkAddress(c.id));
      await this.transition(
        em,
        s,
        'ready',
        s.status === 'syncing'
          ? 'adopted after a restart (the interrupted save left the stored files as they were)'
          : 'adopted after a restart',
      );
    }
  }

  private async cleanOrphan(em: Em, containerId: string, labels: Record<string, string>, running: boolean): Promise<void> {
    const sessionId = labels[LABEL.session];
    const row = sessionId ? await em.findOne(CodeSession, { id: sessionId }) : null;
    const spider = labels[LABEL.spider] ? await em.findOne(Spider, { id: labels[LABEL.spider] }) : null;
    // A session that ended (saved, or closed with discard=1) stopped its container before it said
    // so; the removal after that is what a crash can cut short. Such a container has nothing left to
    // save, and saving it would bring back what its user chose to throw away. A running one under a
    // stopped row is no state the service leaves: it is saved, as a container without a row is.
    const ended = row !== null && row.status === 'stopped' && !row.savePending && !running;
    // A live session that has not recorded its container yet is a start in flight, not an orphan.
    if (row !== null && isLive(row.status) && !row.containerId) return;
    if (spider && sessionId && labels[LABEL.user] && !ended) {
      // Without a row there is no base: only files the server lacks are added, the rest are conflicts and left alone.
      const session = row ?? ({ id: sessionId, spiderId: spider.id, userId: labels[LABEL.user] } as CodeSession);
      try {
        const result = await this.d.sync.save(em, session, this.workspaceOf(containerId), {
          dryRun: false,
          overwrite: false,
          trigger: 'orphan',
          containerRunning: running,
        });
        this.d.logger.info({ session: session.id, conflicts: result.conflicts.length }, 'saved an orphaned container');
      } catch (err) {
        // Its spider was deleted meanwhile (the save stored nothing): its files have nowhere to go, as
        // when the spider is gone before the save. Its owner deleted it: the container goes too.
        if ((await em.fork().count(Spider, { id: spider.id })) > 0) {
          this.d.logger.error({ err, container: containerId.slice(0, 12) }, 'could not save an orphaned container; keeping it');
          return;
        }
        this.d.logger.warn({ container: containerId.slice(0, 12), session: sessionId }, 'the spider of an orphaned container was deleted');
      }
    }
    await this.spawner.remove(containerId);
    this.d.logger.info({ container: containerId.slice(0, 12), session: sessionId }, 'removed an orphaned container');
  }
}

function stoppingConflict() {
  return conflict(
    'The session is being saved and stopped: a change now would be lost with its container. Keep it in a local file and open the session again.',
    'session_stopping',
  );
}
