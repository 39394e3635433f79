import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { EventsSocket } from '../api/events';
import { Credentials } from '../auth/credentials';
import { registerCommands } from '../commands/register';
import { readySession, type SessionDeps } from '../commands/sessions';
import { Targets } from '../commands/targets';
import { SessionFileSystemProvider } from '../fs/provider';
import { SCHEME, sessionUri } from '../fs/uris';
import { HeartbeatController } from '../heartbeat/heartbeat';
import { StopWarnings } from '../heartbeat/warnings';
import { PendingCounter } from '../save/pendingCounter';
import { SaveController } from '../save/saveController';
import { SERVER_SCHEME, ServerDocumentProvider } from '../save/serverDocuments';
import { SaveTracker } from '../save/tracker';
import { unsavedEditorsOf } from '../save/unsavedEditors';
import { SaveButton } from '../statusBar/saveButton';
import { CrawlHubState } from '../state/store';
import { refreshWhileVisible } from '../views/refreshWhileVisible';
import { sessionsViewMessage, spidersViewMessage } from '../views/presentation';
import { SessionsTreeProvider } from '../views/sessionsTree';
import { SpidersTreeProvider } from '../views/spidersTree';
import { Views } from '../views/ids';
import { FolderServers, ForeignFolderNotice, foreignMessage, removeSessionFolder } from '../workspace/folderServers';
import { WindowSessions } from '../workspace/windowSessions';
import { Commands } from '../commands/ids';
import { ContextKeys } from './contextKeys';
import { LiveUpdatesNotice } from './liveUpdates';
import { ServerEventRouter } from './serverEvents';
import { SessionWatches } from './sessionWatches';
import { setContext } from './setContext';
import { reopenPlan, StoppedSessions, stoppedNotice } from './stoppedSessions';
import { Notifier } from './notify';
import { SignInPrompt } from './signInPrompt';
import { countPendingChanges, setServerUrlSetting } from './settings';

const COUNTDOWN_REDRAW_MS = 30_000;

/**
 * Builds every part of the extension and wires them together; owns all of it. activate() only
 * creates this and hands it to context.subscriptions.
 */
export class CrawlHubExtension implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private client: CrawlHubClient | undefined;
  private readonly stopped = new StoppedSessions();

  constructor(context: vscode.ExtensionContext) {
    const own = <T extends vscode.Disposable>(d: T): T => {
      this.disposables.push(d);
      return d;
    };

    // ---- the core: log, credentials, state, the events socket -----------------------------------
    const log = own(vscode.window.createOutputChannel('CrawlHub', { log: true }));
    const credentials = own(new Credentials(context.secrets, log));
    // A revoked token fails every call: said once (or by the command that met it), until the next sign-in.
    const signInPrompt = own(new SignInPrompt(log, () => credentials.serverOrigin()));
    const notify = new Notifier(log, signInPrompt);
    const clientFn = () => credentials.client();
    const state = own(new CrawlHubState(clientFn, log));
    const windowSessions = own(new WindowSessions());
    // Which server (and account) each crawlhub folder belongs to; the client is the events socket's.
    const folderServers = own(new FolderServers(context.globalState, () => this.client));
    const foreignNotice = new ForeignFolderNotice({
      warn: (message, ...actions) => notify.warn(message, ...actions),
      hasToken: (origin) => credentials.hasToken(origin),
      switchTo: (server) => setServerUrlSetting(server),
      signIn: (server) => void vscode.commands.executeCommand(Commands.signIn, server),
      removeFolder: removeSessionFolder,
      isFolder: (id) => windowSessions.folders().includes(id),
    });
    own(folderServers.onForeign((f) => void foreignNotice.show(f)));
    const events = own(
      new EventsSocket({
        log,
        target: () => {
          const client = this.client;
          if (!client) return undefined;
          const url = client.socketUrl('/api/events');
          return { url, headers: client.authorize(url) };
        },
      }),
    );

    // ---- files: crawlhub:// and the stored side of diffs ------------------------------------------
    // The window's own folders stay watched even when no editor watches them; a folder of another
    // server or account is not named to this one.
    const watches = new SessionWatches(events, () =>
      [...windowSessions.folders(), ...fs.watchedSessions].filter((id) => !folderServers.elsewhere(id)),
    );
    const fs = own(
      new SessionFileSystemProvider({
        client: clientFn,
        watchSession: () => watches.sync(),
        unwatchSession: () => watches.sync(),
        foreignFolder: async (id, client) => {
          const foreign = await folderServers.check(id, client);
          return foreign && foreignMessage(foreign);
        },
        folderServer: (id) => folderServers.get(id)?.server,
      }),
    );
    own(folderServers.onDidIdentify(() => watches.sync()));
    own(vscode.workspace.registerFileSystemProvider(SCHEME, fs, { isCaseSensitive: true }));
    own(vscode.workspace.registerTextDocumentContentProvider(SERVER_SCHEME, new ServerDocumentProvider(clientFn)));

    // ---- saving, heartbeat, warnings ----------------------------------------------------------------
    const tracker = own(new SaveTracker());
    const saves = new SaveController(clientFn, state, tracker, notify, log, fs, this.stopped);
    const heartbeat = own(new HeartbeatController(clientFn, state, log));
    const counter = own(new PendingCounter(clientFn, tracker, (id) => state.session(id), countPendingChanges, log));

    // ---- views and the status bar ---------------------------------------------------------------------
    const spidersTree = own(new SpidersTreeProvider(state));
    const spidersView = own(vscode.window.createTreeView(Views.spiders, { treeDataProvider: spidersTree }));
    const sessionsTree = own(new SessionsTreeProvider(state));
    const sessionsView = own(vscode.window.createTreeView(Views.sessions, { treeDataProvider: sessionsTree }));
    own(refreshWhileVisible(sessionsView, COUNTDOWN_REDRAW_MS, () => sessionsTree.refresh()));
    const saveButton = own(new SaveButton(state, tracker, windowSessions));
    const showViewMessages = () => {
      spidersView.message = spidersViewMessage(state.connection, events.outage);
      sessionsView.message = sessionsViewMessage(state.connection, events.outage);
    };
    const warnings = own(
      new StopWarnings(state, heartbeat, saves, notify, (id) => windowSessions.has(id) || spidersView.visible || sessionsView.visible),
    );

    // ---- commands ---------------------------------------------------------------------------------------
    const terminals = new Set<vscode.Terminal>();
    own(vscode.window.onDidCloseTerminal((t) => terminals.delete(t)));
    own({ dispose: () => terminals.forEach((t) => t.dispose()) });
    const sessionDeps: SessionDeps = {
      client: clientFn,
      state,
      targets: new Targets(state, windowSessions),
      window: windowSessions,
      folders: folderServers,
      saves,
      heartbeat,
      notify,
      log,
      trackTerminal: (t) => terminals.add(t),
    };
    const connect = async () => {
      this.client = await credentials.client();
      // Before the socket (re)opens and re-sends its watches: none of another server's or account's sessions.
      watches.sync();
      if (this.client) events.start();
      else events.stop();
      await state.refresh();
    };
    for (const d of registerCommands({ ...sessionDeps, credentials, refresh: connect })) own(d);

    // ---- live updates ---------------------------------------------------------------------------------
    const router = new ServerEventRouter({
      state,
      fs,
      tracker,
      counter,
      warnings,
      windowSessions,
      log,
      watched: () => events.watching,
      watches,
      documents: () => vscode.workspace.textDocuments,
    });
    own(events.onEvent((event) => router.handle(event)));
    own(
      events.onState((s) => {
        if (s.kind !== 'closed') return;
        // Only a 401 is about the token; the service's 403 (forbidden_origin) is about where this connects from.
        if (s.status === 401) {
          state.markRejected();
          signInPrompt.refused();
        } else if (s.status === 403)
          void notify.warn(
            `Live updates refused: ${s.message ?? 'HTTP 403'} — stop warnings and file changes from the container will not arrive.`,
          );
      }),
    );
    // Any other failure retries for ever, unseen but for the log: say so where the user looks, until a `hello`.
    const liveUpdatesNotice = new LiveUpdatesNotice(notify, () => windowSessions.folders().length > 0);
    own(
      events.onOutage((outage) => {
        saveButton.showLiveUpdatesOutage(outage?.reason);
        showViewMessages();
        liveUpdatesNotice.update(outage);
      }),
    );
    own(
      credentials.onDidChange(() => {
        signInPrompt.reset();
        const wereForeign = foreignNotice.reset();
        void connect().then(() => {
          // Another server or account: the folders list again (their own files, or why not), and the
          // editors of folders that were foreign read what they could not before.
          fs.refreshSessions(windowSessions.folders(), []);
          fs.refreshSessions(wereForeign, vscode.workspace.textDocuments);
        });
      }),
    );
    // Any call answered 401 (the token was revoked while the socket stays open): the same as a reload's 401.
    own(
      credentials.onUnauthorized(() => {
        state.markRejected();
        events.stop();
        signInPrompt.refused();
      }),
    );
    own(heartbeat.onDidChangeProblem(({ sessionId, message }) => saveButton.showHeartbeatProblem(sessionId, message)));
    own(
      fs.onDidWrite((id) => {
        heartbeat.note(id);
        counter.schedule(id);
      }),
    );
    own(windowSessions.onDidChange(() => watches.sync()));
    watches.sync();
    own(
      state.onDidChange(() => {
        const conn = state.connection;
        setContext(ContextKeys.signedIn, conn.kind !== 'signedOut');
        setContext(ContextKeys.unreachable, conn.kind === 'unreachable');
        setContext(ContextKeys.loaded, conn.kind === 'online');
        showViewMessages();
        if (conn.kind === 'online') {
          // Folders opened before their server was recorded: the ones this server lists are its.
          const client = this.client;
          if (client?.origin === conn.server)
            void folderServers.adopt(
              windowSessions.folders().filter((id) => state.session(id)),
              client,
              conn.me,
            );
          this.checkWindowSessions(state, windowSessions, sessionDeps);
        }
      }),
    );
    setContext(ContextKeys.signedIn, false);

    void connect().then(() => {
      if (state.connection.kind === 'signedOut' && windowSessions.folders().length > 0) {
        void notify.info("Sign in to reach the files of this window's session.", 'Sign In').then((choice) => {
          if (choice) void vscode.commands.executeCommand(Commands.signIn);
        });
      }
    });
  }

  /** A session this window shows that has stopped: say so once, and offer a new one. */
  private checkWindowSessions(state: CrawlHubState, windowSessions: WindowSessions, deps: SessionDeps): void {
    for (const session of this.stopped.toAnnounce(windowSessions.folders(), (id) => state.session(id))) {
      const id = session.session_id;
      const notice = stoppedNotice(session, unsavedEditorsOf(id, vscode.workspace.textDocuments));
      void vscode.window.showWarningMessage(notice.message, notice.action).then(async (choice) => {
        if (!choice) return;
        try {
          const fresh = await readySession(deps, state.spider(session.spider_id) ?? { id: session.spider_id, name: session.spider_name });
          if (!fresh) return;
          const client = await deps.client();
          if (client) await deps.folders.remember(fresh.session_id, client);
          const plan = reopenPlan(vscode.workspace.workspaceFolders ?? [], id, fresh.session_id);
          if (plan.kind === 'openFolder')
            await vscode.commands.executeCommand('vscode.openFolder', sessionUri(fresh.session_id), { forceReuseWindow: true });
          else if (plan.kind === 'replaceFolder')
            vscode.workspace.updateWorkspaceFolders(plan.index, 1, { uri: sessionUri(fresh.session_id), name: session.spider_name });
          // Resumed: the same folder lists again what it could not reach while the container was stopped.
          else void vscode.commands.executeCommand('workbench.files.action.refreshFilesExplorer');
        } catch (err) {
          void deps.notify.error(`Opening a new session of ${session.spider_name}`, err);
        }
      });
    }
  }

  dispose(): void {
    for (const d of this.disposables.reverse()) {
      try {
        d.dispose();
      } catch {
        // keep disposing the rest
      }
    }
    this.disposables.length = 0;
  }
}
