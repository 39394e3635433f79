/** What the vscode-free modules need of the output channel (a vscode.LogOutputChannel fits). */
export interface Log {
  trace(message: string, ...args: unknown[]): void;
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string | Error, ...args: unknown[]): void;
}

export const silentLog: Log = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
