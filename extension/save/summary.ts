import type { SaveResult } from '../api/types';

/** Files a save writes (or would write): added, modified and deleted. */
export function changeCount(result: Pick<SaveResult, 'added' | 'modified' | 'deleted'>): number {
  return result.added.length + result.modified.length + result.deleted.length;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** "2 modified, 1 added, 1 deleted" (or "no changes"); conflicts and skipped files are named too. */
export function describeResult(result: Pick<SaveResult, 'added' | 'modified' | 'deleted' | 'conflicts' | 'skipped'>): string {
  const parts: string[] = [];
  if (result.modified.length) parts.push(`${result.modified.length} modified`);
  if (result.added.length) parts.push(`${result.added.length} added`);
  if (result.deleted.length) parts.push(`${result.deleted.length} deleted`);
  if (parts.length === 0) parts.push('no changes');
  if (result.conflicts.length) parts.push(plural(result.conflicts.length, 'conflict'));
  if (result.skipped.length) parts.push(`${result.skipped.length} skipped`);
  return parts.join(', ');
}

/**
 * A path as it can be shown safely: control and format characters (a text-direction override that
 * makes "x\u202Eyp.txt" read as "xtxt.py", a zero-width space, a newline) and the line and
 * paragraph separators are written as \u{…}, and a backslash as \\ (so that no name reads as
 * another's escape).
 */
export function printablePath(path: string): string {
  return path.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\]/gu, (c) =>
    c === '\\' ? '\\\\' : `\\u{${c.codePointAt(0)!.toString(16).toUpperCase()}}`,
  );
}

/** A short list of paths for a message: "a.py, b.py and 3 more". */
export function listPaths(paths: string[], max = 3): string {
  if (paths.length <= max) return paths.join(', ');
  return `${paths.slice(0, max).join(', ')} and ${paths.length - max} more`;
}

export type PreviewEntryKind = 'modified' | 'added' | 'deleted' | 'conflict' | 'skipped';

export interface PreviewEntry {
  kind: PreviewEntryKind;
  path: string;
  /** Why a file is in conflict or skipped. */
  reason?: string;
}

/** The dry run's files in the order a reviewer wants them: conflicts first, then modified, added, deleted, skipped. */
export function previewEntries(result: SaveResult): PreviewEntry[] {
  const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
  return [
    ...result.conflicts.map((c) => ({ kind: 'conflict' as const, path: c.path, reason: c.reason })).sort(byPath),
    ...result.modified.map((path) => ({ kind: 'modified' as const, path })).sort(byPath),
    ...result.added.map((path) => ({ kind: 'added' as const, path })).sort(byPath),
    ...result.deleted.map((path) => ({ kind: 'deleted' as const, path })).sort(byPath),
    ...result.skipped.map((s) => ({ kind: 'skipped' as const, path: s.path, reason: s.reason })).sort(byPath),
  ];
}
