import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { ApiError } from '../api/errors';
import type { Session, Spider } from '../api/types';
import type { HeartbeatController } from '../heartbeat/heartbeat';
import { abortOn, type Notifier } from '../core/notify';
import { sessionUri } from '../fs/uris';
import type { SaveController } from '../save/saveController';
import type { CrawlHubState } from '../state/store';
import { SessionPseudoterminal, stoppedSession } from '../terminal/pty';
import type { FolderServers } from '../workspace/folderServers';
import type { WindowSessions } from '../workspace/windowSessions';
import type { Targets } from './targets';
import { portProblem } from './ports';

export interface SessionDeps {
  client: () => Promise<CrawlHubClient | undefined>;
  state: CrawlHubState;
  targets: Targets;
  window: WindowSessions;
  /** Which server each crawlhub folder belongs to: recorded before a session's folder opens. */
  folders: Pick<FolderServers, 'remember'>;
  saves: SaveController;
  heartbeat: HeartbeatController;
  notify: Notifier;
  log: vscode.LogOutputChannel;
  /** Terminals are disposed with the extension. */
  trackTerminal(terminal: vscode.Terminal): void;
}

async function requireClient(deps: SessionDeps): Promise<CrawlHubClient> {
  const client = await deps.client();
  if (!client) throw new ApiError(401, 'signed_out', 'Sign in to CrawlHub first.');
  return client;
}

/** The spider's ready session: the live one, or a new one (with progress; waiting can be cancelled). */
export async function readySession(deps: SessionDeps, spider: Spider): Promise<Session | undefined> {
  const known = deps.state.sessionForSpider(spider.id);
  if (known?.status === 'ready') return known;
  const client = await requireClient(deps);
  const session = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Opening a session for ${spider.name}`, cancellable: true },
    async (progress, token) => {
      progress.report({ message: 'starting its container…' });
      const abort = abortOn(token);
      try {
        return await client.openSession(spider.id, { wait: true, signal: abort.signal });
      } catch (err) {
        if (err instanceof ApiError && err.cancelled) {
          void deps.notify.info(`Stopped waiting; the session of ${spider.name} keeps starting on the server.`);
          return undefined;
        }
        throw err;
      } finally {
        abort.dispose();
      }
    },
  );
  if (!session) return undefined;
  deps.state.upsertSession(session);
  if (session.status !== 'ready' && session.status !== 'syncing') {
    throw new ApiError(0, 'session_failed', `The session is ${session.status}: ${session.last_error ?? session.status_reason}`);
  }
  return session;
}

/** Opens the session's /workspace as a workspace folder (crawlhub://<session_id>/). */
export async function openInEditor(deps: SessionDeps, arg: unknown): Promise<void> {
  const spider = await deps.targets.spider(arg, 'Open Session in Editor');
  if (!spider) return;
  try {
    const session = await readySession(deps, spider);
    if (!session) return;
    // The URI names only the session: where it lives is recorded (and outlives a reload) before it opens.
    await deps.folders.remember(session.session_id, await requireClient(deps));
    const uri = sessionUri(session.session_id);
    const folders = vscode.workspace.workspaceFolders ?? [];
    if (folders.some((f) => f.uri.toString() === uri.toString())) {
      await vscode.commands.executeCommand('workbench.view.explorer');
      return;
    }
    if (folders.length === 0) {
      // An empty window becomes the session's window (it reloads; the extension starts again there).
      await vscode.commands.executeCommand('vscode.openFolder', uri, { forceNewWindow: false });
      return;
    }
    const choice = await vscode.window.showQuickPick(
      [
        { label: '$(empty-window) Open in a New Window', value: 'new' as const },
        { label: '$(root-folder) Add to This Window', description: 'as another workspace folder', value: 'add' as const },
        { label: '$(window) Replace This Window', value: 'replace' as const },
      ],
      { title: `Open ${spider.name}`, placeHolder: 'Where should the session open?' },
    );
    if (!choice) return;
    if (choice.value === 'add') vscode.workspace.updateWorkspaceFolders(folders.length, 0, { uri, name: spider.name });
    else await vscode.commands.executeCommand('vscode.openFolder', uri, { forceNewWindow: choice.value === 'new' });
  } catch (err) {
    void deps.notify.error(`Opening ${spider.name}`, err);
  }
}

/** The browser IDE through a one-time launch URL. */
export async function openInBrowser(deps: SessionDeps, arg: unknown): Promise<void> {
  const spider = await deps.targets.spider(arg, 'Open Session in Browser');
  if (!spider) return;
  try {
    const session = await readySession(deps, spider);
    if (!session) return;
    await openLaunchUrl(deps, await (await requireClient(deps)).launch(session.session_id));
  } catch (err) {
    void deps.notify.error(`Opening ${spider.name} in the browser`, err);
  }
}

/** Hands a one-time launch URL to the browser. */
async function openLaunchUrl(deps: SessionDeps, url: string): Promise<void> {
  const opened = await vscode.env.openExternal(vscode.Uri.parse(url, true));
  if (!opened) void deps.notify.warn(`The browser did not open. The link works once, for 60 seconds.`);
}

/** The port typed last, offered again: a crawler's dashboard or a dev server usually keeps its port. */
let lastPort = '';

/**
 * A server the user runs in the session (a crawl's web UI, a dev server, a report) in the browser,
 * through code-server's own port forwarding behind the session's cookie, as Codespaces and Coder
 * forward a workspace's ports.
 */
export async function openPort(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Open a Port in Browser');
  if (!session) return;
  const typed = await vscode.window.showInputBox({
    title: `Open a port of the ${session.spider_name} session`,
    prompt: 'The port a server listens on inside the session (on 127.0.0.1 or 0.0.0.0)',
    placeHolder: '8000',
    value: lastPort,
    validateInput: portProblem,
  });
  if (typed === undefined) return;
  const port = Number(typed.trim());
  lastPort = String(port);
  try {
    await openLaunchUrl(deps, await (await requireClient(deps)).launch(session.session_id, { port }));
  } catch (err) {
    void deps.notify.error(`Opening port ${port} of ${session.spider_name}`, err);
  }
}

export async function copyUrl(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Copy Session URL');
  if (!session) return;
  await vscode.env.clipboard.writeText(session.url);
  vscode.window.setStatusBarMessage(`$(copy) Copied the address of the ${session.spider_name} session`, 4000);
}

export async function saveToServer(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Save to Server', { orKept: true });
  if (session) await deps.saves.save(session);
}

export async function previewSave(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Preview Save');
  if (session) await deps.saves.preview(session);
}

export async function closeSession(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Close Session', { orKept: true });
  if (session) await deps.saves.close(session);
}

/** A shell in the session's container. */
export async function openTerminal(deps: SessionDeps, arg: unknown): Promise<void> {
  const session = await deps.targets.liveSession(arg, 'Open Terminal');
  if (!session) return;
  try {
    const client = await requireClient(deps);
    const pty = new SessionPseudoterminal({
      client,
      sessionId: session.session_id,
      spiderName: session.spider_name,
      log: deps.log,
      onInput: () => deps.heartbeat.note(session.session_id),
      sessionStopped: () => stoppedSession(deps.state, session.session_id),
    });
    const terminal = vscode.window.createTerminal({
      name: `CrawlHub: ${session.spider_name}`,
      pty,
      iconPath: new vscode.ThemeIcon('terminal-linux'),
    });
    deps.trackTerminal(terminal);
    terminal.show();
  } catch (err) {
    void deps.notify.error(`Opening a terminal in ${session.spider_name}`, err);
  }
}
