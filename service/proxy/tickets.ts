import { randomBytes } from 'node:crypto';

interface Ticket {
  sessionId: string;
  userId: string;
  /** The API token that asked for it. */
  tokenId: string;
  expiresAt: number;
}

/**
 * One-time launch tickets: random, single use, short-lived, kept in memory only (a restart voids
 * the few that are in flight; the user clicks Open again). Each user holds at most `maxPerUser`
 * live tickets (a new one voids that user's oldest), so one user minting tickets in a loop voids
 * only their own; the whole map is bounded and swept too.
 */
export class TicketBook {
  private readonly tickets = new Map<string, Ticket>();
  /** Each user's tickets, oldest first (spent ones are dropped when the list is next used). */
  private readonly byUser = new Map<string, string[]>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly maxTickets = 10_000,
    private readonly maxPerUser = 20,
  ) {}

  issue(sessionId: string, userId: string, tokenId: string): string {
    const ticket = randomBytes(24).toString('base64url');
    const mine = (this.byUser.get(userId) ?? []).filter((t) => this.tickets.has(t));
    while (mine.length >= this.maxPerUser) this.tickets.delete(mine.shift()!);
    mine.push(ticket);
    this.byUser.set(userId, mine);
    if (this.tickets.size >= this.maxTickets) {
      this.sweep();
      // Still full of live tickets: the oldest goes first (a Map iterates in insertion order).
      for (const key of this.tickets.keys()) {
        if (this.tickets.size < this.maxTickets) break;
        this.tickets.delete(key);
      }
    }
    this.tickets.set(ticket, { sessionId, userId, tokenId, expiresAt: this.now() + this.ttlMs });
    return ticket;
  }

  /** The user a ticket admits to `sessionId` (and the token that asked), or null. A ticket is spent by this call whatever the outcome. */
  redeem(ticket: string, sessionId: string): { userId: string; tokenId: string } | null {
    const entry = this.tickets.get(ticket);
    if (!entry) return null;
    this.tickets.delete(ticket);
    return entry.sessionId === sessionId && entry.expiresAt >= this.now() ? { userId: entry.userId, tokenId: entry.tokenId } : null;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.tickets) if (entry.expiresAt < now) this.tickets.delete(key);
    for (const [user, list] of this.byUser) {
      const live = list.filter((t) => this.tickets.has(t));
      if (live.length === 0) this.byUser.delete(user);
      else this.byUser.set(user, live);
    }
  }

  clear(): void {
    this.tickets.clear();
    this.byUser.clear();
  }
}
