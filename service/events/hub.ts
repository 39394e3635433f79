import type { SaveResult } from '../sync/save';

export interface SessionView {
  session_id: string;
  spider_id: string;
  spider_name: string;
  user_id: string;
  status: string;
  status_reason: string;
  url: string;
  created_at: string;
  last_active_at: string;
  idle_deadline: string;
  expires_at: string;
  last_saved_at: string | null;
  save_pending: boolean;
  last_error: string | null;
}

export type ServiceEvent =
  | { type: 'session'; session: SessionView }
  | {
      type: 'sync';
      session_id: string;
      spider_id: string;
      trigger: string;
      result: SaveResult | null;
      error: { code: string; message: string } | null;
    }
  | { type: 'warning'; session_id: string; spider_id: string; reason: 'idle' | 'max_age'; stops_at: string; minutes: number }
  /** A process in the session was killed for memory; the session goes on. `memory_limit` in bytes. */
  | { type: 'oom'; session_id: string; spider_id: string; memory_limit: number }
  /** `overflow`: too many changes to list (`changes` is empty): everything in the session may have changed. */
  | { type: 'files'; session_id: string; changes: { path: string; kind: 'created' | 'changed' | 'deleted' }[]; overflow?: boolean };

type Listener = (event: ServiceEvent) => void;

/** In-process fan-out of events to each user's connections (and every admin's). */
export class EventHub {
  private readonly listeners = new Map<Listener, { userId: string; isAdmin: boolean }>();

  subscribe(user: { id: string; isAdmin: boolean }, listener: Listener): () => void {
    this.listeners.set(listener, { userId: user.id, isAdmin: user.isAdmin });
    return () => this.listeners.delete(listener);
  }

  /** Sends to the owner of the thing and to every admin; the socket decides which file events its client watches. */
  publish(ownerId: string, event: ServiceEvent): void {
    for (const [listener, who] of this.listeners) {
      if (who.userId !== ownerId && !who.isAdmin) continue;
      try {
        listener(event);
      } catch {
        // a broken connection must not stop the others
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
