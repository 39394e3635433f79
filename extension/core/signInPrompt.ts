import * as vscode from 'vscode';
import { Commands } from '../commands/ids';
import type { Log } from './log';

export const SIGN_IN_AGAIN = 'Sign In Again';

/**
 * The one notification that the server no longer takes the stored token. Once the token is revoked
 * every call is answered 401 — each file the explorer reads, each heartbeat, the terminal, the
 * events socket — so it is told once, and again only after the user signed in (or out) anew.
 *
 * A command the user ran says it in its own error (Notifier.error, with the same action): the
 * warning waits a moment for that, so one refusal never makes two notifications.
 */
export class SignInPrompt implements vscode.Disposable {
  private told = false;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Log,
    /** The server's origin, for the message. */
    private readonly server: () => string | undefined,
    private readonly settleMs = 1000,
  ) {}

  /** A call was answered 401. */
  refused(): void {
    if (this.told || this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.show();
    }, this.settleMs);
  }

  /** A command's error told the user of the refusal, with the way to sign in: nothing more to say. */
  toldByCommand(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.told = true;
  }

  /** The credentials changed (signed in again, or out): the next refusal is news. */
  reset(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.told = false;
  }

  private show(): void {
    if (this.told) return;
    this.told = true;
    const message = `${this.server() ?? 'The server'} no longer accepts the stored API token (it was revoked or has expired). Sign in again to go on working with your spiders and sessions.`;
    this.log.warn(message);
    void vscode.window.showWarningMessage(`CrawlHub: ${message}`, SIGN_IN_AGAIN).then((choice) => {
      if (choice === SIGN_IN_AGAIN) void vscode.commands.executeCommand(Commands.signIn);
    });
  }

  dispose(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
  }
}
