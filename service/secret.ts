import { createHash, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The service's own key (32 random bytes in <data dir>/secret.key, mode 0600): it signs browser
 * cookies and derives each session's code-server secret, so both survive a restart.
 */
export class ServiceSecret {
  private constructor(readonly key: Buffer) {}

  static loadOrCreate(dataDir: string): ServiceSecret {
    const file = path.join(dataDir, 'secret.key');
    fs.mkdirSync(dataDir, { recursive: true });
    try {
      const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
      if (key.length === 32) return new ServiceSecret(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const key = randomBytes(32);
    fs.writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
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
