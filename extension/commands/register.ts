import * as vscode from 'vscode';
import type { Notifier } from '../core/notify';
import type { CrawlHubState } from '../state/store';
import { signIn, signOut, type AuthDeps } from './auth';
import { Commands, type CommandId } from './ids';
import {
  closeSession,
  copyUrl,
  openInBrowser,
  openInEditor,
  openPort,
  openTerminal,
  previewSave,
  saveToServer,
  type SessionDeps,
} from './sessions';

export type CommandDeps = AuthDeps &
  SessionDeps & {
    state: CrawlHubState;
    notify: Notifier;
    /** Reloads everything and reconnects the events socket (also the "Retry" of the welcome view). */
    refresh(): Promise<void>;
  };

/** Registers every command of `Commands`: the Record type makes a missing handler a compile error. */
export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const handlers: Record<CommandId, (arg?: unknown) => unknown> = {
    // A server URL only from the extension itself ("Sign In to <server>"); menus pass tree nodes.
    [Commands.signIn]: (arg) => signIn(deps, typeof arg === 'string' ? arg : undefined),
    [Commands.signOut]: () => signOut(deps),
    [Commands.refresh]: () => deps.refresh(),
    [Commands.openInEditor]: (arg) => openInEditor(deps, arg),
    [Commands.openInBrowser]: (arg) => openInBrowser(deps, arg),
    [Commands.openPort]: (arg) => openPort(deps, arg),
    [Commands.save]: (arg) => saveToServer(deps, arg),
    [Commands.previewSave]: (arg) => previewSave(deps, arg),
    [Commands.closeSession]: (arg) => closeSession(deps, arg),
    [Commands.openTerminal]: (arg) => openTerminal(deps, arg),
    [Commands.copyUrl]: (arg) => copyUrl(deps, arg),
    [Commands.showOutput]: () => deps.notify.showOutput(),
  };
  return (Object.entries(handlers) as [CommandId, (arg?: unknown) => unknown][]).map(([id, run]) =>
    vscode.commands.registerCommand(id, async (arg?: unknown) => {
      try {
        await run(arg);
      } catch (err) {
        void deps.notify.error(`The command ${id}`, err);
      }
    }),
  );
}
