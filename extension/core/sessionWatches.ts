import type { EventsSocket } from '../api/events';

/**
 * Which sessions the events socket watches (asks `files` events of): the window's folders and
 * whatever the file system provider is asked to watch (an editor of another session's file).
 * Watches the server refused are asked again later (after a reconnect, or when the session is
 * ready); watches nothing wants any longer are ended.
 */
export class SessionWatches {
  constructor(
    private readonly socket: Pick<EventsSocket, 'watch' | 'unwatch' | 'forget' | 'watching'>,
    private readonly wanted: () => Iterable<string>,
  ) {}

  /** Watches every wanted session, and no other. */
  sync(): void {
    const wanted = new Set(this.wanted());
    for (const id of wanted) this.socket.watch(id);
    for (const id of [...this.socket.watching]) if (!wanted.has(id)) this.socket.unwatch(id);
  }

  /** The server answered a watch with an error: not watched; the next sync() or ready() asks again. */
  refused(sessionId: string): void {
    this.socket.forget(sessionId);
  }

  /**
   * The session is ready (again): a wanted watch is asked again — one the server refused before,
   * and one it ended when the session stopped (a kept session that resumed).
   */
  ready(sessionId: string): void {
    if (![...this.wanted()].includes(sessionId)) return;
    this.socket.forget(sessionId);
    this.socket.watch(sessionId);
  }
}
