import { randomBytes } from 'node:crypto';

interface Ticket {
  sessionId: string;
  userId: string;
  expiresAt: number;
}

/**
 * One-time launch tickets: random, single use, short-lived, kept in memory only (a restart voids
 * the few that are in flight; the user clicks Open again). The map is bounded in size and swept,
 * so a caller minting tickets in a loop cannot grow it without limit.
 */
export class TicketBook {
  private readonly tickets = new Map<string, Ticket>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly maxTickets = 10_000,
  ) {}

  issue(sessionId: string, userId: string): string {
    const ticket = randomBytes(24).toString('base64url');
    if (this.tickets.size >= this.maxTickets) {
      this.sweep();
      // Still full of live tickets: the oldest goes first (a Map iterates in insertion order).
      for (const key of this.tickets.keys()) {
        if (this.tickets.size < this.maxTickets) break;
        this.tickets.delete(key);
      }
    }
    this.tickets.set(ticket, { sessionId, userId, expiresAt: this.now() + this.ttlMs });
    return ticket;
  }

  /** The user a ticket admits to `sessionId`, or null. A ticket is spent by this call whatever the outcome. */
  redeem(ticket: string, sessionId: string): string | null {
    const entry = this.tickets.get(ticket);
    if (!entry) return null;
    this.tickets.delete(ticket);
    return entry.sessionId === sessionId && entry.expiresAt >= this.now() ? entry.userId : null;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.tickets) if (entry.expiresAt < now) this.tickets.delete(key);
  }

  clear(): void {
    this.tickets.clear();
  }
}
