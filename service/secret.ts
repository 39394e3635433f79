import { createHash, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './config';

/** What secret.key holds: 32 bytes in base64 (written padded, with a newline; unpadded or base64url read too). */
const KEY_TEXT = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * The service's own key (32 random bytes in <data dir>/secret.key, mode 0600): it signs browser
 * cookies and derives each session's code-server secret, so both survive a restart.
 */
export class ServiceSecret {
  private constructor(readonly key: Buffer) {}

  /**
   * Reads the key, or creates it on a fresh data dir. A new key is written whole to a temporary file
   * and linked into place, so no one ever reads half a key, and of services starting together on one
   * data dir the first link wins and the others read its key. A key file that is there but holds no
   * key is refused, never replaced: replacing it would end every browser IDE cookie and session.
   */
  static loadOrCreate(dataDir: string): ServiceSecret {
    const file = path.join(dataDir, 'secret.key');
    fs.mkdirSync(dataDir, { recursive: true });
    const existing = readKey(file);
    if (existing) return new ServiceSecret(existing);
    const key = randomBytes(32);
    const tmp = path.join(dataDir, `secret.key.tmp.${process.pid}.${randomBytes(6).toString('hex')}`);
    let placed: boolean;
    try {
      const fd = fs.openSync(tmp, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, `${key.toString('base64')}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      placed = putInPlace(tmp, file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    if (!placed) {
      // Another service on this data dir created it first: its key is the one.
      const theirs = readKey(file);
      if (!theirs) throw new Error(`${file} was removed while the service started; start it again.`);
      return new ServiceSecret(theirs);
    }
    syncDir(dataDir);
    return new ServiceSecret(key);
  }

  /** The value code-server in a session's container accepts as its session cookie. */
  codeServerSecret(sessionId: string): string {
    return createHmac('sha256', this.key).update(`code-server:${sessionId}`).digest('hex');
  }

  static hash(value: string): string {
    return createHash('sha256').update(value).digest('hex');
  }
}

/** Links the finished temporary file to its name; false when that name exists already. */
function putInPlace(tmp: string, file: string): boolean {
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return false;
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(code)) throw err;
  }
  // A file system without hard links: an exclusive copy, as close as it gets there.
  try {
    fs.copyFileSync(tmp, file, fs.constants.COPYFILE_EXCL);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The key in the file, or null when there is no file; a file without a key is a ConfigError. */
function readKey(file: string): Buffer | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (KEY_TEXT.test(trimmed) && key.length === 32) return key;
  throw new ConfigError(
    'CRAWLHUB_DATA_DIR',
    `${file} holds no service key (32 random bytes in base64; the file ${trimmed === '' ? 'is empty' : `holds ${Buffer.byteLength(text)} bytes of something else`}). ` +
      'The key signs browser IDE cookies and derives session secrets: restore it from a backup, ' +
      'or, if it never held a key (the first start was cut short), delete it and the next start makes a new one.',
  );
}

/** Makes a new directory entry durable; best effort (not every platform can open a directory). */
function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // The key itself is synced; at worst a crash right now loses the new name, and the next start makes a key again.
  }
}
