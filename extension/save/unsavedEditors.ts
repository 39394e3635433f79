import type * as vscode from 'vscode';
import { errorMessage } from '../api/errors';
import { isSessionUri, workspacePath } from '../fs/uris';
import { listPaths } from './summary';

/** What writing an open document needs (a vscode.TextDocument has it). */
export interface OpenDocument {
  readonly uri: vscode.Uri;
  readonly isDirty: boolean;
  save(): Thenable<boolean>;
}

/** Editors of the session that could not be written into its container: nothing was asked of the server. */
export class UnsavedEditorsError extends Error {
  constructor(
    readonly paths: string[],
    reason: string | undefined,
    advice = `Save ${paths.length === 1 ? 'it' : 'them'} and try again.`,
  ) {
    super(
      `${paths.length === 1 ? 'An unsaved editor' : `${paths.length} unsaved editors`} could not be written into the session (${listPaths(paths)}${reason ? `: ${reason}` : ''}). ${advice}`,
    );
    this.name = 'UnsavedEditorsError';
  }
}

/**
 * Puts what this window holds of a session into its container before the server reads it (Save to
 * Server, Close Session): saves the session's dirty editors, then waits for the file system
 * provider's writes still in flight (an autosave, a rename). Throws UnsavedEditorsError when an
 * editor did not save, so the caller stops instead of saving, or closing, without it.
 */
/** The session's editors with unsaved changes, by their path in the workspace. */
export function unsavedEditorsOf(sessionId: string, documents: readonly OpenDocument[]): string[] {
  return documents
    .filter((d) => d.isDirty && isSessionUri(d.uri) && d.uri.authority === sessionId)
    .map((d) => workspacePath(d.uri.path) ?? d.uri.path);
}

export async function writeUnsavedEditors(
  sessionId: string,
  documents: readonly OpenDocument[],
  writesSettled: (sessionId: string) => Promise<void>,
): Promise<void> {
  const dirty = documents.filter((d) => d.isDirty && isSessionUri(d.uri) && d.uri.authority === sessionId);
  const outcomes = await Promise.allSettled(dirty.map((d) => Promise.resolve(d.save())));
  await writesSettled(sessionId);
  const failed = dirty.filter((_d, i) => {
    const outcome = outcomes[i];
    return outcome.status === 'rejected' || !outcome.value;
  });
  if (failed.length === 0) return;
  const rejected = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  throw new UnsavedEditorsError(
    failed.map((d) => workspacePath(d.uri.path) ?? d.uri.path),
    rejected ? errorMessage(rejected.reason) : undefined,
  );
}
