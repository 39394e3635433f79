import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import type { Log } from '../core/log';
import { TerminalConnection, type Dimensions } from './connection';

const red = (s: string) => `\x1b[31m${s}\x1b[0m`;
const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;

export interface SessionTerminalOptions {
  client: CrawlHubClient;
  sessionId: string;
  spiderName: string;
  log: Log;
  /** The user typed: counts as activity for the heartbeat. */
  onInput(): void;
}

/** A shell in the session's container, as a VS Code terminal. */
export class SessionPseudoterminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  private readonly connection: TerminalConnection;
  private finished = false;

  constructor(private readonly opts: SessionTerminalOptions) {
    this.connection = new TerminalConnection(opts.log);
    this.connection.onOutput((text) => this.writeEmitter.fire(text));
    this.connection.onClose(({ code, reason, error }) => {
      if (code === 1000) {
        this.finish(0);
        return;
      }
      // Leave the reason on screen; the next key closes the terminal.
      this.finished = true;
      this.writeEmitter.fire(
        `\r\n${red(`The terminal connection ended: ${error ?? (reason || `code ${code}`)}`)}\r\n${dim('Press any key to close.')}`,
      );
    });
  }

  open(initial: vscode.TerminalDimensions | undefined): void {
    const size: Dimensions = { columns: initial?.columns ?? 80, rows: initial?.rows ?? 24 };
    this.writeEmitter.fire(dim(`Connecting to the ${this.opts.spiderName} session…\r\n`));
    try {
      const url = this.opts.client.socketUrl(`/api/sessions/${encodeURIComponent(this.opts.sessionId)}/terminal`, {
        cols: size.columns,
        rows: size.rows,
      });
      this.connection.resize(size);
      this.connection.connect({ url, headers: this.opts.client.authorize(url) });
    } catch (err) {
      this.finished = true;
      this.writeEmitter.fire(red(`${(err as Error).message}\r\n`));
    }
  }

  handleInput(data: string): void {
    if (this.finished) {
      this.finish(undefined);
      return;
    }
    this.connection.input(data);
    this.opts.onInput();
  }

  setDimensions(size: vscode.TerminalDimensions): void {
    this.connection.resize({ columns: size.columns, rows: size.rows });
  }

  close(): void {
    this.connection.dispose();
    this.writeEmitter.dispose();
    this.closeEmitter.dispose();
  }

  private finish(code: number | undefined): void {
    this.finished = true;
    this.closeEmitter.fire(code);
  }
}
