// Opt-in stubs for the few window, workspace and command calls that the save and heartbeat
// controllers make around their logic (progress, messages, context keys, open documents). They
// record what they were asked, and a test scripts the answers; nothing here renders anything (the
// UI itself is tested in e2e.test.ts against a real workbench). Import this file before the modules
// under test: those see only what the stand-in has when they load.
import { vscodeStandIn } from './vscode';

export interface Shown {
  kind: 'info' | 'warning' | 'error';
  message: string;
  items: unknown[];
}

/** What the stubs were asked, and how they answer. */
export const stubs = {
  shown: [] as Shown[],
  /** A message answers with the first item it offers that is listed here. */
  answers: [] as string[],
  /** vscode.workspace.textDocuments */
  textDocuments: [] as unknown[],
  commands: [] as unknown[][],
  /** What vscode.window.showQuickPick was asked to show (it picks nothing). */
  quickPicks: [] as { items: unknown[]; options: Record<string, unknown> }[],
  focused: true,
  /** What vscode.window.setStatusBarMessage was asked to show, and whether its Disposable was disposed. */
  statusMessages: [] as { text: string; timeout: unknown; disposed: boolean }[],
  reset(): void {
    this.shown = [];
    this.answers = [];
    this.textDocuments = [];
    this.commands = [];
    this.quickPicks = [];
    this.focused = true;
    this.statusMessages = [];
  },
};

const noEvent = () => ({ dispose() {} });
/** Listeners of the editor events the controllers follow, fired by a test through `fire`. */
const listeners = new Map<string, Set<(e: unknown) => void>>();
const event =
  (name: string) =>
  (listener: (e: unknown) => void): { dispose(): void } => {
    if (!listeners.has(name)) listeners.set(name, new Set());
    listeners.get(name)!.add(listener);
    return { dispose: () => void listeners.get(name)!.delete(listener) };
  };

/** Fires vscode.workspace.onDidChangeTextDocument or vscode.window.onDidChangeTextEditorSelection for who listens now. */
export function fire(name: 'onDidChangeTextDocument' | 'onDidChangeTextEditorSelection', e: unknown): void {
  for (const listener of [...(listeners.get(name) ?? [])]) listener(e);
}
const message =
  (kind: Shown['kind']) =>
  async (text: string, ...items: unknown[]) => {
    stubs.shown.push({ kind, message: text, items });
    return items.find((i): i is string => typeof i === 'string' && stubs.answers.includes(i));
  };
const token = { isCancellationRequested: false, onCancellationRequested: noEvent };

Object.assign(vscodeStandIn, {
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  window: {
    withProgress: (_options: unknown, task: (progress: unknown, token: unknown) => unknown) => task({ report() {} }, token),
    showInformationMessage: message('info'),
    showWarningMessage: message('warning'),
    showErrorMessage: message('error'),
    showQuickPick: async (items: unknown[] | Promise<unknown[]>, options: Record<string, unknown> = {}) => {
      stubs.quickPicks.push({ items: await items, options });
      return undefined;
    },
    setStatusBarMessage: (text: string, timeout?: unknown) => {
      const shown = { text, timeout, disposed: false };
      stubs.statusMessages.push(shown);
      return { dispose: () => void (shown.disposed = true) };
    },
    onDidChangeTextEditorSelection: event('onDidChangeTextEditorSelection'),
    get state() {
      return { focused: stubs.focused };
    },
  },
  workspace: {
    get textDocuments() {
      return stubs.textDocuments;
    },
    onDidChangeTextDocument: event('onDidChangeTextDocument'),
    onDidChangeConfiguration: noEvent,
    getConfiguration: () => ({ get: () => undefined }),
  },
  commands: {
    executeCommand: async (...args: unknown[]) => {
      stubs.commands.push(args);
      return undefined;
    },
  },
});
