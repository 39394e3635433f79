import type { CrawlHubClient } from '../api/client';
import { ApiError, errorMessage } from '../api/errors';
import { isKept, isLive, type Me, type Session, type Spider } from '../api/types';
import { Emitter } from '../core/emitter';
import { silentLog, type Log } from '../core/log';

export type Connection =
  | { kind: 'signedOut' }
  | { kind: 'loading'; server: string }
  | { kind: 'online'; server: string; me: Me }
  /** `rejected`: the server answered but refused the token (401). */
  | { kind: 'unreachable'; server: string; message: string; rejected: boolean };

/**
 * What the extension knows about the server: the user, their spiders and sessions. Loaded in full
 * on sign-in, refresh and every (re)connect of the events socket, and kept current in between by
 * the socket's `session` events, so nothing polls.
 */
export class CrawlHubState {
  private readonly changed = new Emitter<void>();
  readonly onDidChange = this.changed.event;
  private spiderMap = new Map<string, Spider>();
  private sessionMap = new Map<string, Session>();
  private conn: Connection = { kind: 'signedOut' };
  private connectionKnown = false;
  private loading: Promise<void> | undefined;
  private again = false;
  private lastLoadedAt = 0;
  /** Sessions that events brought while a load's requests ran: newer than its answer may be. */
  private duringLoad: Session[] | undefined;

  constructor(
    private readonly client: () => Promise<CrawlHubClient | undefined>,
    private readonly log: Log = silentLog,
    private readonly now: () => number = Date.now,
  ) {}

  get connection(): Connection {
    return this.conn;
  }

  get me(): Me | undefined {
    return this.conn.kind === 'online' ? this.conn.me : undefined;
  }

  /** When the last full load finished (ms since the epoch; 0: never). */
  get loadedAt(): number {
    return this.lastLoadedAt;
  }

  /** Loads everything again; calls made while a load runs share one more load after it. */
  refresh(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          await this.load();
        } while (this.again);
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  private async load(): Promise<void> {
    const client = await this.client();
    if (!client) {
      this.spiderMap.clear();
      this.sessionMap.clear();
      this.setConnection({ kind: 'signedOut' });
      return;
    }
    const server = client.origin;
    if (this.conn.kind !== 'online' || this.conn.server !== server) this.setConnection({ kind: 'loading', server });
    this.duringLoad = [];
    try {
      const [me, spiders, sessions] = await Promise.all([client.me(), client.spiders(), client.sessions()]);
      this.spiderMap = new Map(spiders.map((s) => [s.id, s]));
      this.sessionMap = new Map(sessions.filter((s) => s.user_id === me.id).map((s) => [s.session_id, s]));
      // The list may have been read before a change that an event already brought: the event wins.
      for (const s of this.duringLoad) {
        if (s.user_id !== me.id) continue;
        this.sessionMap.set(s.session_id, s);
        if (!this.spiderMap.has(s.spider_id)) this.spiderMap.set(s.spider_id, { id: s.spider_id, name: s.spider_name });
      }
      this.lastLoadedAt = this.now();
      this.setConnection({ kind: 'online', server, me });
    } catch (err) {
      this.log.warn(`loading spiders and sessions failed: ${errorMessage(err)}`);
      if (err instanceof ApiError && err.status === 401) this.markRejected();
      else this.setConnection({ kind: 'unreachable', server, rejected: false, message: errorMessage(err) });
    } finally {
      this.duringLoad = undefined;
    }
  }

  /** The server refused the token (a 401 to any call): sign in again. */
  markRejected(): void {
    if (this.conn.kind === 'signedOut' || (this.conn.kind === 'unreachable' && this.conn.rejected)) return;
    this.markUnreachable(`${this.conn.server} refused the stored token; sign in again.`, true);
  }

  /** Marks the server unreachable without a request (the events socket was refused, say). */
  markUnreachable(message: string, rejected: boolean): void {
    if (this.conn.kind === 'signedOut') return;
    this.setConnection({ kind: 'unreachable', server: this.conn.server, message, rejected });
  }

  /**
   * Whether `connection` was ever set: before the first load has read the stored token, "signedOut"
   * is only the starting value (the Save to Server button must not say "sign in" meanwhile).
   */
  get known(): boolean {
    return this.connectionKnown;
  }

  private setConnection(conn: Connection): void {
    this.conn = conn;
    this.connectionKnown = true;
    this.changed.fire();
  }

  /** A session as the server now has it (from an event or an answer). Other users' sessions (an admin sees them) are left out. */
  upsertSession(session: Session): void {
    const me = this.me;
    if (me && session.user_id !== me.id) return;
    this.duringLoad?.push(session);
    this.sessionMap.set(session.session_id, session);
    if (!this.spiderMap.has(session.spider_id)) {
      this.spiderMap.set(session.spider_id, { id: session.spider_id, name: session.spider_name });
    }
    this.changed.fire();
  }

  spiders(): Spider[] {
    return [...this.spiderMap.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  spider(id: string): Spider | undefined {
    return this.spiderMap.get(id);
  }

  session(id: string): Session | undefined {
    return this.sessionMap.get(id);
  }

  /** The spider's live session, else its kept one (the one the server acts on), else its newest one. */
  sessionForSpider(spiderId: string): Session | undefined {
    const mine = [...this.sessionMap.values()].filter((s) => s.spider_id === spiderId);
    const newest = (list: Session[]) => list.reduce<Session | undefined>((a, b) => (!a || b.created_at > a.created_at ? b : a), undefined);
    return newest(mine.filter(isLive)) ?? newest(mine.filter(isKept)) ?? newest(mine);
  }

  /** My live sessions, newest first. */
  liveSessions(): Session[] {
    return this.sessionsWhere(isLive);
  }

  /** My live sessions and kept ones, newest first: every session that has a container, and counts toward my limit. */
  liveOrKeptSessions(): Session[] {
    return this.sessionsWhere((s) => isLive(s) || isKept(s));
  }

  private sessionsWhere(test: (s: Session) => boolean): Session[] {
    return [...this.sessionMap.values()].filter(test).sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  dispose(): void {
    this.changed.dispose();
  }
}
