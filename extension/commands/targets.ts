import * as vscode from 'vscode';
import { isKept, isLive, type Session, type Spider } from '../api/types';
import { isSessionUri } from '../fs/uris';
import type { CrawlHubState } from '../state/store';
import { isCrawlHubNode } from '../views/nodes';
import { STATE_LABEL, sessionDescription, spiderState } from '../views/presentation';
import type { WindowSessions } from '../workspace/windowSessions';

/**
 * Commands run from a tree item (a node), from the status bar (a crawlhub: URI) or from the
 * palette (nothing: the window's session, else a pick). These turn that argument into a target.
 */
export class Targets {
  constructor(
    private readonly state: CrawlHubState,
    private readonly window: WindowSessions,
  ) {}

  /** The spider a command is about; asks when the argument does not say. */
  async spider(arg: unknown, title: string): Promise<Spider | undefined> {
    if (isCrawlHubNode(arg)) {
      if (arg.kind === 'spider') return arg.spider;
      return this.state.spider(arg.session.spider_id) ?? { id: arg.session.spider_id, name: arg.session.spider_name };
    }
    const fromUri = this.sessionFromUri(arg);
    if (fromUri) return this.state.spider(fromUri.spider_id) ?? { id: fromUri.spider_id, name: fromUri.spider_name };
    return this.pickSpider(title);
  }

  /**
   * A live session a command is about: the node's, the URI's, the window's, else a pick among mine.
   * With `orKept`, a kept one too (Save to Server and Close Session: the server saves a kept
   * container's files from its archive); other commands need a running container.
   */
  async liveSession(arg: unknown, title: string, opts: { orKept?: boolean } = {}): Promise<Session | undefined> {
    const usable = (s: Session) => isLive(s) || (opts.orKept === true && isKept(s));
    if (isCrawlHubNode(arg)) {
      const session =
        arg.kind === 'session' ? (this.state.session(arg.session.session_id) ?? arg.session) : this.state.sessionForSpider(arg.spider.id);
      if (session && usable(session)) return session;
      void vscode.window.showInformationMessage(
        session && isKept(session)
          ? keptMessage(session)
          : `CrawlHub: ${arg.kind === 'spider' ? arg.spider.name : arg.session.spider_name} has no open session.`,
      );
      return undefined;
    }
    // The URI's (a status-bar click) or the window's session is the one meant: when it has stopped,
    // acting on the only live session of another spider instead would save or close the wrong one.
    const current = this.window.current();
    const meant = this.sessionFromUri(arg) ?? (current ? this.state.session(current) : undefined);
    if (meant) {
      if (usable(meant)) return meant;
      void vscode.window.showInformationMessage(
        isKept(meant) ? keptMessage(meant) : `CrawlHub: The session of ${meant.spider_name} is ${meant.status}; open a new one.`,
      );
      return undefined;
    }
    return this.pickSession(title, opts.orKept ? this.state.liveOrKeptSessions() : this.state.liveSessions());
  }

  private sessionFromUri(arg: unknown): Session | undefined {
    if (!(arg instanceof vscode.Uri) || !isSessionUri(arg)) return undefined;
    return this.state.session(arg.authority);
  }

  private async pickSpider(title: string): Promise<Spider | undefined> {
    const spiders = this.state.spiders();
    if (spiders.length === 0) {
      void vscode.window.showInformationMessage(
        this.state.connection.kind === 'online'
          ? 'CrawlHub: you have no spiders yet.'
          : 'CrawlHub: sign in first (or Refresh if the server was down).',
      );
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(
      spiders.map((spider) => ({
        label: spider.name,
        description: STATE_LABEL[spiderState(this.state.sessionForSpider(spider.id))],
        detail: spider.description || undefined,
        spider,
      })),
      { title, placeHolder: 'Pick a spider', matchOnDescription: true },
    );
    return picked?.spider;
  }

  private async pickSession(title: string, sessions: Session[]): Promise<Session | undefined> {
    if (sessions.length === 0) {
      // Signed out (or the server was down at the last load), nothing is known of any session.
      void vscode.window.showInformationMessage(
        this.state.connection.kind === 'online'
          ? 'CrawlHub: you have no open sessions. Open one from the Spiders view.'
          : 'CrawlHub: sign in first (or Refresh if the server was down).',
      );
      return undefined;
    }
    if (sessions.length === 1) return sessions[0];
    const now = Date.now();
    const picked = await vscode.window.showQuickPick(
      sessions.map((session) => ({ label: session.spider_name, description: sessionDescription(session, now), session })),
      { title, placeHolder: 'Pick a session' },
    );
    return picked?.session;
  }
}

/** A command that needs a running container, asked of a kept session. */
function keptMessage(session: Session): string {
  return `CrawlHub: The session of ${session.spider_name} is kept (its container stopped when a save failed): open it again to go on, or save or close it.`;
}
