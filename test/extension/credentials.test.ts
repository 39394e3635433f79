import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ApiError } from '../../extension/api/errors';
import { Credentials } from '../../extension/auth/credentials';
import { silentLog } from '../../extension/core/log';
import { scriptedServer, sendJson } from './helpers/server';

// The server URL is a setting, the token a secret: the client for both, built without asking
// SecretStorage for every file operation.

let serverUrl = 'http://127.0.0.1:1';
(vscodeStandIn as any).workspace.getConfiguration = () => ({
  get: (key: string) => (key === 'serverUrl' ? serverUrl : undefined),
  update: async () => undefined,
});

/** A SecretStorage that counts its reads and can say another window changed a key. */
function fakeSecrets(initial: Record<string, string>) {
  const values = new Map(Object.entries(initial));
  const changed = new vscodeStandIn.EventEmitter<{ key: string }>();
  const secrets = {
    reads: 0,
    get: async (key: string) => {
      secrets.reads++;
      return values.get(key);
    },
    store: async (key: string, value: string) => {
      values.set(key, value);
      changed.fire({ key });
    },
    delete: async (key: string) => {
      values.delete(key);
      changed.fire({ key });
    },
    onDidChange: changed.event,
    /** Another window stored a token. */
    elsewhere(key: string, value: string) {
      values.set(key, value);
      changed.fire({ key });
    },
  };
  return secrets;
}

describe('Credentials', () => {
  beforeEach(() => {
    stubs.reset();
    serverUrl = 'http://127.0.0.1:1';
  });

  it('reads the token once per origin, and again after a token changed', async () => {
    const secrets = fakeSecrets({ 'crawlhub.token:http://127.0.0.1:1': 'tok-1' });
    const credentials = new Credentials(secrets, silentLog);
    const first = await credentials.client();
    await Promise.all([credentials.client(), credentials.client(), credentials.client()]);
    assert.ok(first);
    assert.equal(secrets.reads, 1, 'file operations do not each ask SecretStorage');
    assert.equal(first.authorize(first.url('/api/me')).authorization, 'Bearer tok-1');
    let changes = 0;
    credentials.onDidChange(() => changes++);
    secrets.elsewhere('crawlhub.token:http://127.0.0.1:1', 'tok-2');
    const second = await credentials.client();
    assert.equal(changes, 1);
    assert.equal(secrets.reads, 2);
    assert.equal(second?.authorize(second.url('/api/me')).authorization, 'Bearer tok-2');
    await credentials.signOut();
    assert.equal(await credentials.client(), undefined, 'signed out: no stale token');
    credentials.dispose();
  });

  it('remembers that there is no token, and keeps tokens apart by origin', async () => {
    const secrets = fakeSecrets({ 'crawlhub.token:http://127.0.0.1:2': 'tok-other' });
    const credentials = new Credentials(secrets, silentLog);
    assert.equal(await credentials.client(), undefined);
    assert.equal(await credentials.client(), undefined);
    assert.equal(secrets.reads, 1);
    serverUrl = 'http://127.0.0.1:2';
    const other = await credentials.client();
    assert.equal(other?.authorize(other.url('/api/me')).authorization, 'Bearer tok-other');
    credentials.dispose();
  });

  it("says when the current client's call is answered 401", async () => {
    const srv = await scriptedServer((_req, res) => sendJson(res, 401, { error: { code: 'unauthorized', message: 'revoked' } }));
    try {
      serverUrl = srv.url;
      const secrets = fakeSecrets({ [`crawlhub.token:${srv.url}`]: 'tok-1' });
      const credentials = new Credentials(secrets, silentLog);
      let refused = 0;
      credentials.onUnauthorized(() => refused++);
      const client = await credentials.client();
      await assert.rejects(
        () => client!.me(),
        (e: ApiError) => e.status === 401,
      );
      assert.equal(refused, 1);
      secrets.elsewhere(`crawlhub.token:${srv.url}`, 'tok-2');
      await assert.rejects(() => client!.me());
      assert.equal(refused, 1, 'a replaced client speaks for a token that no longer matters');
      credentials.dispose();
    } finally {
      await srv.close();
    }
  });
});
