import { badRequest } from '../http/errors';

export const MAX_PATH_BYTES = 1024;
export const MAX_SEGMENT_BYTES = 255;
export const MAX_DEPTH = 32;

// C0 and C1 control characters, DEL, and Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// Invisible characters that make a name look like another (a right-to-left override turns
// `invoice\u202Efdp.py` into what reads as "invoicepy.pdf"): direction marks, embeddings,
// overrides and isolates, the zero-width space and the BOM. The joiners (U+200C, U+200D) stay: Persian
// words and emoji sequences are written with them.
const DECEPTIVE = /[\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u061c]/;

/**
 * Why a path is refused, or null when it is fine. `normalizePath` is the checked form.
 *
 * The rules are of two kinds. The structural ones (empty, NUL and control characters, backslashes,
 * absolute paths, drive letters, "..", depth and length) keep a path inside its spider and have held
 * since the first version: every stored file passes them. The naming ones (invisible or text-direction
 * characters, U+FFFD) only keep new names honest, and were added later: a file stored before one was
 * added may break it. `existing` checks the structural rules alone, for looking up such a file to read
 * or delete it; a new naming rule belongs with the naming ones, never with the structural ones.
 */
export function pathProblem(input: string, opts: { existing?: boolean } = {}): string | null {
  if (typeof input !== 'string' || input.length === 0) return 'the path is empty';
  if (CONTROL.test(input)) return 'the path contains NUL or control characters';
  if (!opts.existing) {
    if (DECEPTIVE.test(input)) return 'the path contains invisible or text-direction characters (they make a name look like another)';
    // What a name's bytes become when they are not UTF-8 (a zip from Windows, say): the real name is lost.
    if (input.includes('\uFFFD')) return 'the name is not valid UTF-8 (or holds U+FFFD); rename it';
  }
  if (input.includes('\\')) return 'the path contains a backslash; use "/" between folders';
  if (input.startsWith('/')) return 'the path is absolute; give it relative to the spider folder';
  if (/^[A-Za-z]:/.test(input)) return 'the path starts with a drive letter';
  const segments = input.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0) return 'the path names no file';
  if (segments.includes('..')) return 'the path contains ".."';
  if (segments.length > MAX_DEPTH) return `the path is deeper than ${MAX_DEPTH} folders`;
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) return `a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  if (Buffer.byteLength(segments.join('/')) > MAX_PATH_BYTES) return `the path is longer than ${MAX_PATH_BYTES} bytes`;
  return null;
}

/**
 * The form a stored file of this name would have, whether or not the name passes the rules today
 * (a file stored before a rule was added may be named so): for matching, never for storing.
 */
export function storedForm(name: string): string {
  return name
    .normalize('NFC')
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

/**
 * The form under which a file stored before today's naming rules would be found, or null when the
 * path breaks a structural rule (see `pathProblem`), which no stored file does: for reading or
 * deleting such a file, never for storing one.
 */
export function existingPathForm(input: string): string | null {
  if (typeof input !== 'string') return null;
  const nfc = input.normalize('NFC');
  return pathProblem(nfc, { existing: true }) ? null : storedForm(nfc);
}

/** The canonical form of an untrusted path, or why it is refused (for archive entries that are skipped and reported). */
export function tryNormalizePath(input: string, opts: { exact?: boolean } = {}): { path: string } | { problem: string } {
  const nfc = typeof input === 'string' && !opts.exact ? input.normalize('NFC') : input;
  const problem = pathProblem(nfc);
  if (problem) return { problem };
  return {
    path: nfc
      .split('/')
      .filter((s) => s !== '' && s !== '.')
      .join('/'),
  };
}

/**
 * The canonical form of a file path inside a spider: relative, "/"-separated, NFC, no "." or
 * empty segments. Throws a 400 `invalid_path` for anything that could escape the folder. `exact`
 * keeps the name's Unicode form (a path in a container, whose file system tells NFD from NFC).
 */
export function normalizePath(input: string, opts: { exact?: boolean } = {}): string {
  const result = tryNormalizePath(input, opts);
  if ('problem' in result)
    throw badRequest(`Invalid path ${JSON.stringify(String(input).slice(0, 200))}: ${result.problem}.`, 'invalid_path');
  return result.path;
}

/** Every folder that contains the path: "a/b/c.py" → ["a", "a/b"]. */
export function parentFolders(p: string): string[] {
  const parts = p.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}
