import * as vscode from 'vscode';
import { ApiError, errorMessage, isTokenRefused, TOKEN_REFUSED } from '../api/errors';
import { Commands } from '../commands/ids';
import { focusCommand, Views } from '../views/ids';
import { SIGN_IN_AGAIN, type SignInPrompt } from './signInPrompt';

const SHOW_OUTPUT = 'Show Output';
const SIGN_IN = 'Sign In';
const SHOW_SESSIONS = 'Show Sessions';

/** Error notifications carry the server's own message and a way to the log, and a way out where there is one. */
export class Notifier {
  constructor(
    private readonly output: vscode.LogOutputChannel,
    /** Told when an error says the token was refused, so that the refusal is not announced twice. */
    private readonly signIn?: Pick<SignInPrompt, 'toldByCommand'>,
  ) {}

  /**
   * "CrawlHub: <what> failed: <server message>" with "Show Output"; cancellations stay quiet. A
   * refused token offers "Sign In Again" (and is the one word about it: see SignInPrompt); the
   * server's `session_limit` offers the Sessions view, where the sessions to close are.
   */
  error(what: string, err: unknown, ...actions: string[]): Thenable<string | undefined> {
    if (err instanceof ApiError && err.cancelled) return Promise.resolve(undefined);
    let message = errorMessage(err);
    this.output.error(`${what} failed: ${message}`);
    const own: string[] = [];
    if (isTokenRefused(err)) {
      message = `${TOKEN_REFUSED}. Sign in again.`;
      own.push(SIGN_IN_AGAIN);
      this.signIn?.toldByCommand();
    } else if (err instanceof ApiError && err.code === 'signed_out') {
      own.push(SIGN_IN);
    } else if (err instanceof ApiError && err.code === 'session_limit') {
      own.push(SHOW_SESSIONS);
    }
    return vscode.window.showErrorMessage(`CrawlHub: ${what} failed: ${message}`, ...own, ...actions, SHOW_OUTPUT).then((choice) => {
      if (choice === SHOW_OUTPUT) this.output.show(true);
      else if (choice === SIGN_IN_AGAIN || choice === SIGN_IN) void vscode.commands.executeCommand(Commands.signIn);
      else if (choice === SHOW_SESSIONS) void vscode.commands.executeCommand(focusCommand(Views.sessions));
      else return choice;
      return undefined;
    });
  }

  info(message: string, ...actions: string[]): Thenable<string | undefined> {
    this.output.info(message);
    return vscode.window.showInformationMessage(`CrawlHub: ${message}`, ...actions);
  }

  warn(message: string, ...actions: string[]): Thenable<string | undefined> {
    this.output.warn(message);
    return vscode.window.showWarningMessage(`CrawlHub: ${message}`, ...actions);
  }

  showOutput(): void {
    this.output.show(true);
  }
}

/** An AbortSignal that follows a VS Code cancellation token. */
export function abortOn(token: vscode.CancellationToken): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const sub = token.onCancellationRequested(() => controller.abort());
  if (token.isCancellationRequested) controller.abort();
  return { signal: controller.signal, dispose: () => void sub.dispose() };
}
