/**
 * Which sessions the user worked in since the last heartbeat. Activity counts only while the window
 * is focused (an unattended window must not keep a container alive); each tick takes the set.
 */
export class ActivityTracker {
  private active = new Set<string>();

  /** The user did something in a session's file or terminal. */
  note(sessionId: string, windowFocused: boolean): void {
    if (windowFocused) this.active.add(sessionId);
  }

  /** The sessions to send a heartbeat for now; starts the next interval empty. */
  take(): string[] {
    const ids = [...this.active];
    this.active = new Set();
    return ids;
  }

  /** Whether the user worked in the session since the last heartbeat; takes it out of the set (one is sent now). */
  takeOne(sessionId: string): boolean {
    return this.active.delete(sessionId);
  }
}
