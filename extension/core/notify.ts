import * as vscode from 'vscode';
import { ApiError, errorMessage } from '../api/errors';

const SHOW_OUTPUT = 'Show Output';

/** Error notifications carry the server's own message and a way to the log. */
export class Notifier {
  constructor(private readonly output: vscode.LogOutputChannel) {}

  /** "CrawlHub: <what> failed: <server message>" with "Show Output"; cancellations stay quiet. */
  error(what: string, err: unknown, ...actions: string[]): Thenable<string | undefined> {
    if (err instanceof ApiError && err.cancelled) return Promise.resolve(undefined);
    const message = errorMessage(err);
    this.output.error(`${what} failed: ${message}`);
    return vscode.window.showErrorMessage(`CrawlHub: ${what} failed: ${message}`, ...actions, SHOW_OUTPUT).then((choice) => {
      if (choice === SHOW_OUTPUT) {
        this.output.show(true);
        return undefined;
      }
      return choice;
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
