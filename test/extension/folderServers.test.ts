import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ApiError } from '../../extension/api/errors';
import type { Session } from '../../extension/api/types';
import { openInEditor, type SessionDeps } from '../../extension/commands/sessions';
import { Targets } from '../../extension/commands/targets';
import { silentLog } from '../../extension/core/log';
import { Notifier } from '../../extension/core/notify';
import { SessionWatches } from '../../extension/core/sessionWatches';
import { SessionFileSystemProvider } from '../../extension/fs/provider';
import { CrawlHubState } from '../../extension/state/store';
import {
  FOLDER_SERVERS_KEY,
  FolderServers,
  ForeignFolderNotice,
  foreignMessage,
  type FolderClient,
} from '../../extension/workspace/folderServers';
import { sampleSession } from './helpers/server';

// A crawlhub://<session_id>/workspace folder names only its session. Which server (and account) it
// belongs to is recorded when it opens; once the extension is pointed at another server or signed in
// as someone else, the folder says so (one notification, with a way back or out) instead of failing
// with "not found", and its session id is never sent to the server signed in to now.

const { Uri } = vscodeStandIn;
const A = 'https://a.example';
const B = 'https://b.example';
const SESSION = '11111111-1111-1111-1111-111111111111';
const uri = (path = '', session = SESSION) => Uri.from({ scheme: 'crawlhub', authority: session, path: `/workspace${path}` }) as any;
const output = { ...silentLog, show() {} } as any;

/** globalState as VS Code keeps it: values go through JSON, and a new window reads what an old one wrote. */
function memento(initial: Record<string, unknown> = {}) {
  const values = new Map(Object.entries(initial).map(([k, v]) => [k, JSON.stringify(v)]));
  return {
    writes: 0,
    get<T>(key: string, fallback?: T): T | undefined {
      const v = values.get(key);
      return v === undefined ? fallback : (JSON.parse(v) as T);
    },
    async update(key: string, value: unknown) {
      this.writes++;
      values.set(key, JSON.stringify(value));
    },
    keys: () => [...values.keys()],
  };
}

/** A client of `server` signed in as `user`: records every call (the session ids it was told). */
function fakeClient(server: string, user = { id: 'u1', name: 'alice', isAdmin: false }) {
  const calls: unknown[][] = [];
  const record =
    (name: string, answer: () => unknown = () => undefined) =>
    async (...args: unknown[]) => {
      calls.push([name, ...args]);
      return answer();
    };
  const base = new URL(server);
  return {
    calls,
    base,
    origin: base.origin,
    me: record('me', () => user),
    stat: record('stat', () => ({ type: 'directory', size: 0, mtime: 1, ctime: 1 })),
    readDirectory: record('readDirectory', () => []),
    readFile: record('readFile', () => new Uint8Array()),
    writeFile: record('writeFile'),
  };
}

/** The provider wired as the extension wires it: the records decide, the notice speaks once. */
function setup(client: ReturnType<typeof fakeClient>, store = memento(), tokens: string[] = []) {
  const servers = new FolderServers(store, () => client as unknown as FolderClient);
  const asked: string[] = [];
  const notice = new ForeignFolderNotice({
    warn: (message, ...actions) => new Notifier(output).warn(message, ...actions),
    hasToken: async (origin) => tokens.includes(origin),
    switchTo: async (server) => void asked.push(`switch ${server}`),
    signIn: (server) => void asked.push(`sign in ${server}`),
    removeFolder: (id) => void asked.push(`remove ${id}`),
    isFolder: (id) => id === SESSION,
  });
  servers.onForeign((f) => void notice.show(f));
  const provider = new SessionFileSystemProvider({
    client: async () => client as any,
    watchSession() {},
    unwatchSession() {},
    foreignFolder: async (id, c) => {
      const foreign = await servers.check(id, c);
      return foreign && foreignMessage(foreign);
    },
    batchDelayMs: 1,
  });
  return { servers, notice, provider, store, asked };
}

const settle = () => new Promise((r) => setTimeout(r, 5));
const unavailable = (pattern: RegExp) => (e: any) =>
  e instanceof vscodeStandIn.FileSystemError && (e as any).code === 'Unavailable' && pattern.test(e.message);

describe('crawlhub folders of another server', () => {
  beforeEach(() => stubs.reset());

  it('say which server they belong to, once, and never name their session to the current server', async () => {
    const store = memento();
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(A) as unknown as FolderClient);
    // The extension was pointed at B since (a reload reads the same globalState).
    const b = fakeClient(B);
    const { provider } = setup(b, store);
    for (const call of [
      () => provider.stat(uri()),
      () => provider.readDirectory(uri()),
      () => provider.readFile(uri('/a.py')),
      () => provider.writeFile(uri('/a.py'), new Uint8Array([1]), { create: true, overwrite: true }),
    ])
      await assert.rejects(
        call,
        unavailable(/^This folder is a session on https:\/\/a\.example, but CrawlHub is now connected to https:\/\/b\.example\.$/),
      );
    await settle();
    assert.deepEqual(b.calls, [], 'nothing was asked of B');
    assert.equal(stubs.shown.length, 1, 'one notification, not one per file call');
    assert.equal(stubs.shown[0].kind, 'warning');
    assert.match(
      stubs.shown[0].message,
      /^CrawlHub: A folder of this window \(session 11111111\) is a session on https:\/\/a\.example; .*connected to https:\/\/b\.example\.$/,
    );
    assert.deepEqual(stubs.shown[0].items, [`Sign In to ${A}`, 'Remove Folder'], 'no token for A is stored: no "Switch to"');
  });

  it('name their server when the user is signed out', async () => {
    const store = memento();
    const servers = new FolderServers(store, () => undefined);
    await servers.remember(SESSION, fakeClient(A) as unknown as FolderClient);
    const provider = new SessionFileSystemProvider({
      client: async () => undefined,
      watchSession() {},
      unwatchSession() {},
      folderServer: (id) => servers.get(id)?.server,
    });
    const noPermissions = (pattern: RegExp) => (e: any) => e.code === 'NoPermissions' && pattern.test(e.message);
    await assert.rejects(
      provider.stat(uri()),
      noPermissions(/^Sign in to CrawlHub at https:\/\/a\.example to reach the files of this session\.$/),
    );
    await assert.rejects(provider.stat(uri('', '22222222-2222-2222-2222-222222222222')), noPermissions(/^Sign in to CrawlHub to reach/));
  });

  it('offer to switch back when a token for that server is stored, and to remove the folder', async () => {
    const store = memento();
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(A) as unknown as FolderClient);
    stubs.answers = [`Switch to ${A}`];
    const { provider, asked, notice } = setup(fakeClient(B), store, [A]);
    await assert.rejects(() => provider.stat(uri()), unavailable(/a\.example/));
    await settle();
    assert.deepEqual(stubs.shown[0].items, [`Switch to ${A}`, 'Remove Folder']);
    assert.deepEqual(asked, [`switch ${A}`]);
    // Pointed somewhere else again: worth a word again.
    notice.reset();
    stubs.answers = ['Remove Folder'];
    await assert.rejects(() => provider.stat(uri()));
    await settle();
    assert.equal(stubs.shown.length, 2);
    assert.deepEqual(asked, [`switch ${A}`, `remove ${SESSION}`]);
  });

  it('on the same server but another account, name the account, and ask the user only once', async () => {
    const store = memento();
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(A) as unknown as FolderClient);
    const bob = fakeClient(A, { id: 'u2', name: 'bob', isAdmin: false });
    const { provider } = setup(bob, store, [A]);
    await assert.rejects(
      () => provider.stat(uri()),
      unavailable(/^This folder is alice's session on https:\/\/a\.example, but you are signed in to it as bob\.$/),
    );
    await assert.rejects(() => provider.readDirectory(uri()));
    await settle();
    assert.deepEqual(bob.calls, [['me']], 'only /api/me: the session id was not sent, and the user asked once');
    assert.equal(stubs.shown.length, 1);
    // The token stored for A is bob's: switching would change nothing, signing in as alice would.
    assert.deepEqual(stubs.shown[0].items, [`Sign In to ${A}`, 'Remove Folder']);
  });

  it("reach the session's files on its own server and account, and keep folders opened before records work", async () => {
    const store = memento();
    const alice = fakeClient(A);
    await new FolderServers(store, () => undefined).remember(SESSION, alice as unknown as FolderClient);
    const { provider } = setup(alice, store);
    await provider.stat(uri());
    await provider.readFile(uri('/a.py'));
    const legacy = '22222222-2222-2222-2222-222222222222';
    await provider.stat(uri('', legacy));
    assert.deepEqual(
      alice.calls.map((c) => c.slice(0, 2)),
      [['me'], ['me'], ['stat', SESSION], ['readFile', SESSION], ['stat', legacy]],
    );
    assert.deepEqual(stubs.shown, []);
  });

  it('record the server and account, and outlive the window (a reload reads them back)', async () => {
    const store = memento();
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(`${A}/crawlhub/`) as unknown as FolderClient);
    const again = new FolderServers(memento({ [FOLDER_SERVERS_KEY]: store.get(FOLDER_SERVERS_KEY) }), () => undefined);
    const r = again.get(SESSION);
    assert.deepEqual({ ...r, at: 0 }, { server: `${A}/crawlhub`, origin: A, userId: 'u1', userName: 'alice', at: 0 });
    // Folders opened before records were kept: those the server lists as the user's are adopted.
    await again.adopt([SESSION, 'old-1'], fakeClient(B), { id: 'u9', name: 'carol', isAdmin: false });
    assert.equal(again.get(SESSION)?.origin, A, 'a record is not replaced by adoption');
    assert.deepEqual({ ...again.get('old-1'), at: 0 }, { server: B, origin: B, userId: 'u9', userName: 'carol', at: 0 });
  });

  it("a failure to learn the user is the call's error, and is asked again next time", async () => {
    const store = memento();
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(A) as unknown as FolderClient);
    const client = fakeClient(A);
    let fail = true;
    client.me = async () => {
      client.calls.push(['me']);
      if (fail) throw new ApiError(0, 'unreachable', 'Cannot reach https://a.example');
      return { id: 'u1', name: 'alice', isAdmin: false };
    };
    const { provider } = setup(client, store);
    await assert.rejects(() => provider.stat(uri()), unavailable(/Cannot reach/));
    fail = false;
    await provider.stat(uri());
    assert.deepEqual(
      client.calls.map((c) => c[0]),
      ['me', 'me', 'stat'],
    );
  });
});

describe('the events socket and folders of another server', () => {
  it('is never asked to watch them; a folder of the same server waits until the user is known', async () => {
    const store = memento();
    const other = '33333333-3333-3333-3333-333333333333';
    await new FolderServers(store, () => undefined).remember(SESSION, fakeClient(A) as unknown as FolderClient);
    await new FolderServers(store, () => undefined).remember(other, fakeClient(B) as unknown as FolderClient);
    const client = fakeClient(A);
    const servers = new FolderServers(store, () => client as unknown as FolderClient);
    const sent: string[] = [];
    const watching = new Set<string>();
    const socket = {
      watch: (id: string) => void (watching.has(id) || (watching.add(id), sent.push(`watch ${id}`))),
      unwatch: (id: string) => void (watching.delete(id) && sent.push(`unwatch ${id}`)),
      forget: (id: string) => void watching.delete(id),
      watching,
    };
    const legacy = 'legacy-1';
    const watches = new SessionWatches(socket, () => [SESSION, other, legacy].filter((id) => !servers.elsewhere(id)));
    servers.onDidIdentify(() => watches.sync());
    watches.sync();
    assert.deepEqual(sent, [`watch ${legacy}`], "B's session is never named; A's waits for the user");
    await settle();
    assert.deepEqual(sent, [`watch ${legacy}`, `watch ${SESSION}`]);
    assert.deepEqual(client.calls, [['me']]);
  });
});

describe('Open Session in Editor', () => {
  beforeEach(() => stubs.reset());

  it("records the session's server before its folder opens", async () => {
    const session = sampleSession({ session_id: SESSION }) as Session;
    const client = fakeClient(A);
    const api = { ...client, spiders: async () => [{ id: 'sp1', name: 'books' }], sessions: async () => [session] };
    const state = new CrawlHubState(async () => api as any);
    await state.refresh();
    const store = memento();
    const at: number[] = [];
    const update = store.update.bind(store);
    store.update = async (key, value) => {
      at.push(stubs.commands.length);
      await update(key, value);
    };
    const deps = {
      state,
      targets: new Targets(state, { current: () => undefined } as any),
      folders: new FolderServers(store, () => undefined),
      client: async () => api,
      notify: new Notifier(output),
    } as unknown as SessionDeps;
    await openInEditor(deps, { kind: 'spider', spider: { id: 'sp1', name: 'books' } });
    assert.deepEqual(stubs.commands[0]?.slice(0, 2), ['vscode.openFolder', uri()]);
    assert.deepEqual(at, [0], 'recorded before the window opened the folder');
    assert.equal(new FolderServers(store, () => undefined).get(SESSION)?.origin, A);
  });
});
