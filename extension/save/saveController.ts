import * as vscode from 'vscode';
import type { CrawlHubClient } from '../api/client';
import { ApiError } from '../api/errors';
import { isKept, isLive, type SaveResult, type Session } from '../api/types';
import { ContextKeys } from '../core/contextKeys';
import { setContext } from '../core/setContext';
import { abortOn, type Notifier } from '../core/notify';
import { sessionUri } from '../fs/uris';
import type { CrawlHubState } from '../state/store';
import { openSaveDiff } from './serverDocuments';
import { logSkipped, SHOW_SKIPPED, showSkipped } from './skippedFiles';
import { changeCount, describeResult, listPaths, previewEntries, printablePath, type PreviewEntry } from './summary';
import type { SaveTracker } from './tracker';
import { UnsavedEditorsError, unsavedEditorsOf, writeUnsavedEditors } from './unsavedEditors';

/** The session to save or close; with its status, a kept one (a stopped container) is told apart. */
export type SessionRef = Pick<Session, 'session_id' | 'spider_id' | 'spider_name'> & Partial<Pick<Session, 'status' | 'save_pending'>>;

const MAX_DIFFS_OPENED = 5;
const OVERWRITE = 'Overwrite on Server';
const SHOW_DIFFS = 'Show Diffs';

/**
 * Save to Server and everything around it: the preview (a dry run with diffs, before anything is
 * written), conflicts (overwrite or look at the diffs), and Close Session (save, then stop). The
 * server saves (and a preview compares) what the container has, so each first writes the session's unsaved editors into it.
 */
export class SaveController {
  private running = 0;

  constructor(
    private readonly client: () => Promise<CrawlHubClient | undefined>,
    private readonly state: CrawlHubState,
    private readonly tracker: SaveTracker,
    private readonly notify: Notifier,
    private readonly log: vscode.LogOutputChannel,
    private readonly files: { writesSettled(sessionId: string): Promise<void> },
    /** Told before Close Session asks the server to stop a session, and when that close did not happen. */
    private readonly closes: { closing(sessionId: string): void; closeFailed(sessionId: string): void } = {
      closing() {},
      closeFailed() {},
    },
  ) {}

  /**
   * The session's dirty editors saved and its writes landed in the container; throws when an editor
   * did not save. A kept session's container is stopped: nothing can be written into it (the server
   * saves what it holds), so an editor with unsaved changes stops the save or close instead of
   * being left behind — closing would remove the only place it could go.
   */
  private async writeEditors(session: SessionRef): Promise<void> {
    if (isKept(session)) {
      const dirty = unsavedEditorsOf(session.session_id, vscode.workspace.textDocuments);
      if (dirty.length > 0)
        throw new UnsavedEditorsError(
          dirty,
          'the session is kept and its container stopped',
          'Open the session in the editor again to resume it, then save.',
        );
      return;
    }
    await writeUnsavedEditors(session.session_id, vscode.workspace.textDocuments, (id) => this.files.writesSettled(id));
  }

  /**
   * A save (or preview) that failed because its session stopped after it was asked for (an idle or
   * age stop, a Close elsewhere): the server's "it can be saved once it is ready", or an editor that
   * could not be written, would send the user to try again. Said instead as what happened: its files
   * are gone from here (a stop saves them first), and this window's unsaved editors are not in it.
   */
  private stoppedMeanwhile(session: SessionRef, err: unknown): unknown {
    const notReady = err instanceof ApiError && err.status === 409 && err.code === 'session_not_ready';
    if (!notReady && !(err instanceof UnsavedEditorsError)) return err;
    const now = this.state.session(session.session_id);
    if (!now || isLive(now) || isKept(now)) return err;
    const why = now.status_reason ? ` (${now.status_reason})` : '';
    const unsaved = unsavedEditorsOf(session.session_id, vscode.workspace.textDocuments);
    const editors =
      unsaved.length === 0
        ? ''
        : ` ${unsaved.length === 1 ? 'An editor has' : `${unsaved.length} editors have`} unsaved changes that are not in it (${listPaths(unsaved.map(printablePath))}): copy them elsewhere (File > Save As) before you open a new session.`;
    return new ApiError(
      409,
      'session_stopped',
      `the session stopped before this save (it is ${now.status}${why}), and its files are no longer reachable here.${editors}`,
      (err as { details?: unknown }).details,
    );
  }

  /** "Saved books: 1 modified, 2 skipped." and the like, with "Show Skipped" when files were left out. */
  private tellSaved(spiderName: string, message: string, skipped: SaveResult['skipped']): void {
    void this.notify.info(message, ...(skipped.length ? [SHOW_SKIPPED] : [])).then((choice) => {
      if (choice === SHOW_SKIPPED) void showSkipped(spiderName, skipped);
    });
  }

  private async requireClient(): Promise<CrawlHubClient> {
    const client = await this.client();
    if (!client) throw new ApiError(401, 'signed_out', 'Sign in to CrawlHub first.');
    return client;
  }

  /** Save to Server with progress; conflicts are offered for overwrite or review. */
  async save(session: SessionRef, opts: { overwrite?: boolean } = {}): Promise<SaveResult | undefined> {
    const id = session.session_id;
    if (this.tracker.get(id).saving) {
      void this.notify.info(`A save of ${session.spider_name} is already running.`);
      return undefined;
    }
    this.tracker.begin(id);
    this.setSaving(+1);
    try {
      const client = await this.requireClient();
      const result = await vscode.window.withProgress(
        // The status-bar button spins meanwhile; a notification would only repeat it.
        { location: vscode.ProgressLocation.Window, title: `Saving ${session.spider_name} to the server…` },
        async () => {
          await this.writeEditors(session);
          return client.sync(session.session_id, { overwrite: opts.overwrite });
        },
      );
      this.tracker.saved(id, result);
      this.log.info(`saved ${session.spider_name}: ${describeResult(result)}`);
      logSkipped(this.log, session.spider_name, result.skipped);
      if (result.conflicts.length > 0) void this.offerConflicts(session, result);
      else {
        // The server's next retry finds nothing left to save and removes the kept container.
        const kept = isKept(session) ? ' The kept container goes at the server’s next retry; Close Session removes it now.' : '';
        this.tellSaved(session.spider_name, `Saved ${session.spider_name}: ${describeResult(result)}.${kept}`, result.skipped);
      }
      return result;
    } catch (caught) {
      const err = this.stoppedMeanwhile(session, caught);
      this.tracker.failed(id, err instanceof Error ? err.message : String(err));
      void this.notify.error(`Saving ${session.spider_name}`, err);
      return undefined;
    } finally {
      this.tracker.end(id);
      this.setSaving(-1);
    }
  }

  /** A dry run: lists what would be saved and opens the diffs of modified files, then offers to save. */
  async preview(session: SessionRef): Promise<void> {
    let result: SaveResult;
    try {
      const client = await this.requireClient();
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Comparing ${session.spider_name} with the server…`, cancellable: true },
        async (_progress, token) => {
          const abort = abortOn(token);
          try {
            // The dry run compares what the container has: the session's unsaved editors go in first, as for a save.
            await this.writeEditors(session);
            return await client.sync(session.session_id, { dryRun: true, signal: abort.signal });
          } finally {
            abort.dispose();
          }
        },
      );
    } catch (err) {
      void this.notify.error(`Preview of ${session.spider_name}`, this.stoppedMeanwhile(session, err));
      return;
    }
    this.tracker.planned(session.session_id, result);
    if (changeCount(result) === 0 && result.conflicts.length === 0) {
      this.tellSaved(
        session.spider_name,
        `Nothing to save: the server has every file of ${session.spider_name}${result.skipped.length ? ` (${result.skipped.length} skipped)` : ''}.`,
        result.skipped,
      );
      return;
    }
    for (const path of result.modified.slice(0, MAX_DIFFS_OPENED)) {
      await openSaveDiff(session.spider_id, session.session_id, path, 'both', { preview: false, preserveFocus: true });
    }
    const choice = await this.pickFromPreview(session, result);
    if (choice === 'save') await this.save(session);
    else if (choice === 'overwrite') await this.save(session, { overwrite: true });
  }

  /** The preview list: each file opens its diff; the top items save. */
  private pickFromPreview(session: SessionRef, result: SaveResult): Promise<'save' | 'overwrite' | undefined> {
    type Item = vscode.QuickPickItem & { action?: 'save' | 'overwrite'; entry?: PreviewEntry };
    const ICON: Record<PreviewEntry['kind'], string> = {
      conflict: '$(warning)',
      modified: '$(diff-modified)',
      added: '$(diff-added)',
      deleted: '$(diff-removed)',
      skipped: '$(circle-slash)',
    };
    const count = changeCount(result);
    const items: Item[] = [];
    if (count > 0) {
      items.push({
        label: `$(cloud-upload) Save ${count} change${count === 1 ? '' : 's'} to the server`,
        description: result.conflicts.length ? 'conflicting files are left as they are on the server' : describeResult(result),
        action: 'save',
        alwaysShow: true,
      });
    }
    if (result.conflicts.length > 0) {
      items.push({
        label: `$(warning) Save and overwrite ${result.conflicts.length} conflicting file${result.conflicts.length === 1 ? '' : 's'}`,
        description: 'replaces what changed on the server since this session pulled it',
        action: 'overwrite',
        alwaysShow: true,
      });
    }
    let section: string | undefined;
    for (const entry of previewEntries(result)) {
      if (entry.kind !== section) {
        section = entry.kind;
        items.push({ label: entry.kind, kind: vscode.QuickPickItemKind.Separator });
      }
      items.push({
        label: `${ICON[entry.kind]} ${printablePath(entry.path)}`,
        description: entry.reason ?? entry.kind,
        entry,
      });
    }
    const pick = vscode.window.createQuickPick<Item>();
    pick.title = `Preview Save: ${session.spider_name} — ${describeResult(result)}`;
    pick.placeholder = 'Pick a file to see its diff (server ↔ session), or save';
    pick.items = items;
    pick.ignoreFocusOut = true;
    pick.matchOnDescription = true;
    return new Promise((resolve) => {
      let decided: 'save' | 'overwrite' | undefined;
      pick.onDidAccept(() => {
        const item = pick.selectedItems[0];
        if (item?.action) {
          decided = item.action;
          pick.hide();
        } else if (item?.entry && item.entry.kind !== 'skipped') {
          void this.openEntry(session, item.entry);
        }
      });
      pick.onDidHide(() => {
        pick.dispose();
        resolve(decided);
      });
      pick.show();
    });
  }

  private async openEntry(session: SessionRef, entry: PreviewEntry): Promise<void> {
    const side =
      entry.kind === 'added'
        ? 'serverMissing'
        : entry.kind === 'deleted'
          ? 'workspaceMissing'
          : await this.conflictSide(session, entry.path);
    await openSaveDiff(session.spider_id, session.session_id, entry.path, side, { preview: true, preserveFocus: true });
  }

  /** A conflicting file may be gone from the workspace (deleted here, changed there). */
  private async conflictSide(session: SessionRef, path: string): Promise<'both' | 'workspaceMissing'> {
    try {
      await vscode.workspace.fs.stat(sessionUri(session.session_id, path));
      return 'both';
    } catch {
      return 'workspaceMissing';
    }
  }

  /**
   * Conflicts after a save: the rest was saved (but the skipped files, which are said and listed
   * too); these files changed on the server meanwhile.
   */
  async offerConflicts(
    session: SessionRef,
    result: Pick<SaveResult, 'conflicts'> & Partial<Pick<SaveResult, 'skipped'>>,
    then?: 'close',
  ): Promise<void> {
    const paths = result.conflicts.map((c) => c.path);
    const skipped = result.skipped ?? [];
    // A diff reads the session's side from its container, which a kept session has stopped.
    const kept = isKept(session);
    const rest =
      then === 'close'
        ? 'The session was kept open.'
        : skipped.length
          ? `Everything else was saved but ${skipped.length} skipped file${skipped.length === 1 ? '' : 's'}, which the server does not store.`
          : 'Everything else was saved.';
    const choice = await vscode.window.showWarningMessage(
      `CrawlHub: ${paths.length} file${paths.length === 1 ? '' : 's'} of ${session.spider_name} changed on the server since this session pulled ${paths.length === 1 ? 'it' : 'them'}: ${listPaths(paths.map(printablePath))}. ${rest}${kept ? ' Open the session again to compare them.' : ''}`,
      ...(kept ? [OVERWRITE] : [OVERWRITE, SHOW_DIFFS]),
      ...(skipped.length && then !== 'close' ? [SHOW_SKIPPED] : []),
    );
    if (choice === SHOW_SKIPPED) void showSkipped(session.spider_name, skipped);
    if (choice === OVERWRITE) {
      const saved = await this.save(session, { overwrite: true });
      if (saved && then === 'close') await this.close(session, { confirmed: true });
    } else if (choice === SHOW_DIFFS) {
      for (const path of paths.slice(0, MAX_DIFFS_OPENED)) {
        await openSaveDiff(session.spider_id, session.session_id, path, await this.conflictSide(session, path), { preview: false });
      }
    }
  }

  /** Close Session: asks, saves, then stops the container. Conflicts or a failed save keep it. */
  async close(session: SessionRef, opts: { confirmed?: boolean } = {}): Promise<boolean> {
    // One at a time: a close beside a running save would end the button's spin early and race it.
    if (this.tracker.get(session.session_id).saving) {
      void this.notify.info(`A save of ${session.spider_name} is running; close the session once it is done.`);
      return false;
    }
    if (!opts.confirmed) {
      const answer = await vscode.window.showWarningMessage(
        `Close the CrawlHub session of ${session.spider_name}?`,
        {
          modal: true,
          detail: isKept(session)
            ? 'Its container stopped when a save failed. What it holds is saved to the server first; then it is removed.'
            : 'Its files are saved to the server first; then the container is stopped and removed.',
        },
        'Save and Close',
      );
      if (answer !== 'Save and Close') return false;
    }
    return this.runClose(session, false);
  }

  private async runClose(session: SessionRef, discard: boolean): Promise<boolean> {
    this.tracker.begin(session.session_id);
    this.setSaving(+1);
    try {
      const client = await this.requireClient();
      const closed = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: discard ? `Closing ${session.spider_name} without saving…` : `Saving and closing ${session.spider_name}…`,
        },
        async () => {
          // Closing without saving drops the editors' changes with the rest, as the user chose.
          if (!discard) await this.writeEditors(session);
          // The stop this brings is the user's own doing: no "the session is stopped" news for it.
          this.closes.closing(session.session_id);
          return client.closeSession(session.session_id, { discard });
        },
      );
      this.state.upsertSession(closed.session);
      if (closed.save) {
        this.tracker.saved(session.session_id, closed.save);
        logSkipped(this.log, session.spider_name, closed.save.skipped);
      }
      this.tellSaved(
        session.spider_name,
        `Closed the session of ${session.spider_name}${closed.save ? ` (saved: ${describeResult(closed.save)})` : discard ? ' without saving' : ''}.`,
        closed.save?.skipped ?? [],
      );
      return true;
    } catch (err) {
      this.closes.closeFailed(session.session_id);
      this.tracker.end(session.session_id);
      if (err instanceof ApiError && err.status === 409 && err.code === 'conflicts') {
        const conflicts = Array.isArray(err.details) ? (err.details as { path: string; reason: string }[]) : [];
        this.tracker.saved(session.session_id, { ...emptyResult(), conflicts });
        void this.offerConflicts(session, { conflicts }, 'close');
        return false;
      }
      const action = err instanceof ApiError && err.code === 'save_failed' ? 'Close Without Saving' : undefined;
      const choice = await this.notify.error(`Closing ${session.spider_name}`, err, ...(action ? [action] : []));
      if (choice === action && action) {
        const sure = await vscode.window.showWarningMessage(
          `Close ${session.spider_name} without saving?`,
          { modal: true, detail: 'Changes made in the session since the last save are lost.' },
          'Close Without Saving',
        );
        if (sure) return this.runClose(session, true);
      }
      return false;
    } finally {
      this.tracker.end(session.session_id);
      this.setSaving(-1);
    }
  }

  private setSaving(delta: number): void {
    this.running += delta;
    setContext(ContextKeys.saving, this.running > 0);
  }
}

function emptyResult(): SaveResult {
  return { added: [], modified: [], deleted: [], unchanged: 0, skipped: [], conflicts: [], bytes: 0, dry_run: false, saved_at: null };
}
