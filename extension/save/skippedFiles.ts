import * as vscode from 'vscode';
import type { SaveResult } from '../api/types';
import type { Log } from '../core/log';
import { printablePath } from './summary';

export const SHOW_SKIPPED = 'Show Skipped';

type Skipped = SaveResult['skipped'];

/**
 * What a save left out: a link, a pipe or a device, a name not in NFC form, a folder the container
 * cannot read. The server stores none of these and keeps what it had stored under each name (a
 * file that the workspace replaced by a link keeps its stored copy), so the save "succeeds" while
 * those files are not the workspace's. The notification only counts them: the log names each one.
 */
export function logSkipped(log: Log, spiderName: string, skipped: Skipped): void {
  if (skipped.length === 0) return;
  log.warn(`${spiderName}: ${skipped.length} skipped (not stored; the server keeps its own copy of each, if it has one):`);
  for (const s of skipped) log.warn(`  ${printablePath(s.path)}: ${s.reason}`);
}

/** "Show Skipped": the skipped files with their reasons, to read (nothing to pick). */
export async function showSkipped(spiderName: string, skipped: Skipped): Promise<void> {
  await vscode.window.showQuickPick(
    skipped.map((s) => ({ label: printablePath(s.path), detail: s.reason })),
    {
      title: `Not saved from ${spiderName}: ${skipped.length} file${skipped.length === 1 ? '' : 's'} skipped`,
      placeHolder: 'The server keeps its stored copy of each of these files (if it has one); the workspace’s version was not saved',
      matchOnDetail: true,
    },
  );
}
