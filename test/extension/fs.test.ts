import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { CrawlHubClient } from '../../extension/api/client';
import { ApiError } from '../../extension/api/errors';
import { ChangeBatcher } from '../../extension/fs/changeBatcher';
import { LinkTargets } from '../../extension/fs/linkTargets';
import { toFileSystemError } from '../../extension/fs/errors';
import { SessionFileSystemProvider } from '../../extension/fs/provider';
import { openSessionIds, sessionUri, workspacePath } from '../../extension/fs/uris';
import { containerName, dockerExec, removeContainers, requireDocker, until as eventually } from '../helpers/docker';
import { json, startTestService, type TestService } from '../helpers/service';

const { Uri, FileType, FileChangeType } = vscodeStandIn;
/** A session URI by its path inside /workspace ("/" is the folder itself). */
const uri = (path: string) =>
  Uri.from({ scheme: 'crawlhub', authority: 'sess-1', path: path === '/' ? '/workspace' : `/workspace${path}` }) as any;

async function until(what: string, check: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('crawlhub: URIs', () => {
  it('carry the container path and map to /workspace-relative paths', () => {
    assert.equal(workspacePath('/workspace'), '');
    assert.equal(workspacePath('/workspace/'), '');
    assert.equal(workspacePath('/workspace/spiders/books.py'), 'spiders/books.py');
    assert.equal(workspacePath('/workspace/dir/'), 'dir');
    for (const outside of ['/', '', '/etc/passwd', '/workspaces/x', '/workspace2']) assert.equal(workspacePath(outside), null, outside);
    assert.equal(sessionUri('abc', 'a/b.py').toString(), 'crawlhub://abc/workspace/a/b.py');
    assert.equal(sessionUri('abc').toString(), 'crawlhub://abc/workspace');
  });

  it('find the sessions among workspace folders', () => {
    const folder = (u: string) => ({ uri: Uri.parse(u) }) as any;
    assert.deepEqual(
      openSessionIds([folder('file:///home/x'), folder('crawlhub://s1/'), folder('crawlhub://s2/'), folder('crawlhub://s1/sub')]),
      ['s1', 's2'],
    );
    assert.deepEqual(openSessionIds(undefined), []);
  });
});

describe('toFileSystemError', () => {
  const u = uri('/a.py');
  const code = (err: unknown) => (toFileSystemError(err, u) as unknown as { code: string }).code;
  it('maps server answers to the FileSystemError kinds VS Code reacts to', () => {
    assert.equal(code(new ApiError(404, 'not_found', 'x')), 'FileNotFound');
    assert.equal(code(new ApiError(404, 'file_not_found', 'x')), 'FileNotFound');
    assert.equal(code(new ApiError(409, 'file_exists', 'x')), 'FileExists');
    assert.equal(code(new ApiError(400, 'is_a_directory', 'x')), 'FileIsADirectory');
    assert.equal(code(new ApiError(400, 'not_a_directory', 'x')), 'FileNotADirectory');
    assert.equal(code(new ApiError(403, 'no_permission', 'x')), 'NoPermissions');
    assert.equal(code(new ApiError(409, 'not_empty', 'x')), 'NoPermissions');
    assert.equal(code(new ApiError(409, 'session_not_ready', 'The session is stopped.')), 'Unavailable');
    assert.equal(code(new ApiError(0, 'unreachable', 'Cannot reach')), 'Unavailable');
    assert.equal(code(new Error('bare')), 'Unavailable');
  });
  it('says to sign in again when the token was refused (401), not the API\'s "send Authorization: Bearer"', () => {
    const err = toFileSystemError(
      new ApiError(401, 'unauthorized', 'A valid API token is required: send "Authorization: Bearer <token>".'),
      u,
    );
    assert.equal(code(err), 'NoPermissions');
    assert.match(err.message, /^Sign in to CrawlHub again: the server no longer accepts the stored API token/);
    assert.doesNotMatch(err.message, /Bearer/);
  });
  it("names a rename's target when it is the target that exists, and its source otherwise", () => {
    const target = uri('/b.py');
    const exists = toFileSystemError(new ApiError(409, 'file_exists', '"b.py" already exists.'), u, target);
    assert.equal((exists as unknown as { code: string }).code, 'FileExists');
    assert.match(exists.message, /crawlhub:\/\/sess-1\/workspace\/b\.py$/);
    const missing = toFileSystemError(new ApiError(404, 'file_not_found', '"a.py" does not exist.'), u, target);
    assert.equal((missing as unknown as { code: string }).code, 'FileNotFound');
    assert.match(missing.message, /crawlhub:\/\/sess-1\/workspace\/a\.py$/);
  });
  it("keeps the server's message where the kind has no URI form", () => {
    assert.equal(
      toFileSystemError(new ApiError(409, 'session_not_ready', 'The session is stopped.'), u).message,
      'The session is stopped.',
    );
    assert.ok(toFileSystemError(new Error('bare'), u) instanceof vscodeStandIn.FileSystemError);
  });
});

describe('ChangeBatcher', () => {
  it('delivers one batch per burst, without repeats', async () => {
    const batches: string[][] = [];
    const b = new ChangeBatcher<string>(
      10,
      (s) => s,
      (items) => batches.push(items),
    );
    b.add('a', 'b');
    b.add('a', 'c');
    await until('a batch', () => batches.length === 1);
    assert.deepEqual(batches, [['b', 'a', 'c']]);
    b.add('d');
    b.drain();
    assert.deepEqual(batches[1], ['d']);
    b.add('e');
    b.dispose();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(batches.length, 2, 'nothing after dispose');
  });
});

describe('SessionFileSystemProvider', () => {
  function setup(overrides: Record<string, (...args: any[]) => Promise<unknown>> = {}) {
    const calls: unknown[][] = [];
    const watched: string[] = [];
    const record =
      (name: string, answer: (...args: any[]) => unknown = () => undefined) =>
      async (...args: unknown[]) => {
        calls.push([name, ...args]);
        return answer(...args);
      };
    const client = {
      stat: record('stat', () => ({ type: 'file', size: 3, mtime: 2000, ctime: 1000 })),
      readDirectory: record('readDirectory', () => [
        { name: 'a.py', type: 'file' },
        { name: 'pkg', type: 'directory' },
        { name: 'link', type: 'symlink' },
        { name: 'fifo', type: 'other' },
      ]),
      readFile: record('readFile', () => new Uint8Array([104, 105])),
      writeFile: record('writeFile'),
      createDirectory: record('createDirectory'),
      delete: record('delete'),
      rename: record('rename'),
      ...overrides,
    };
    const provider = new SessionFileSystemProvider({
      client: async () => client as any,
      watchSession: (id) => watched.push(`+${id}`),
      unwatchSession: (id) => watched.push(`-${id}`),
      batchDelayMs: 1,
    });
    const changes: { type: number; uri: string }[][] = [];
    provider.onDidChangeFile((events) => changes.push(events.map((e) => ({ type: e.type, uri: e.uri.toString() }))));
    const writes: string[] = [];
    provider.onDidWrite((id) => writes.push(id));
    return { provider, calls, watched, changes, writes };
  }

  it('stats and lists through the fs endpoints with workspace-relative paths', async () => {
    const { provider, calls } = setup();
    assert.deepEqual(await provider.stat(uri('/')), { type: FileType.File, size: 3, mtime: 2000, ctime: 1000 });
    assert.deepEqual(calls[0], ['stat', 'sess-1', '']);
    assert.deepEqual(await provider.readDirectory(uri('/pkg')), [
      ['a.py', FileType.File],
      ['pkg', FileType.Directory],
      ['link', FileType.SymbolicLink | FileType.File],
      ['fifo', FileType.Unknown],
    ]);
    assert.deepEqual(calls[1], ['readDirectory', 'sess-1', 'pkg']);
    assert.deepEqual([...(await provider.readFile(uri('/pkg/a.py')))], [104, 105]);
  });

  it('types a symbolic link by what it leads to, as VS Code types links on disk', async () => {
    const entries = [
      { name: 'lib64', type: 'symlink', target: 'directory' },
      { name: 'cfg', type: 'symlink', target: 'file' },
      { name: 'dangling', type: 'symlink', target: null },
      { name: 'pipe-link', type: 'symlink', target: 'other' },
      { name: 'future', type: 'symlink', target: 'something-new' },
      // A server from before `target`: most links in a workspace lead to files.
      { name: 'old', type: 'symlink' },
    ];
    const { provider } = setup({
      readDirectory: async () => entries,
      stat: async (_id: string, path: string) => ({ ...entries.find((e) => e.name === path), size: 3, mtime: 2, ctime: 1 }),
    });
    const want: [string, number][] = [
      ['lib64', FileType.SymbolicLink | FileType.Directory],
      ['cfg', FileType.SymbolicLink | FileType.File],
      // Dangling, or leading to a pipe or a device: SymbolicLink | Unknown, as VS Code's disk provider says.
      ['dangling', FileType.SymbolicLink],
      ['pipe-link', FileType.SymbolicLink],
      ['future', FileType.SymbolicLink],
      ['old', FileType.SymbolicLink | FileType.File],
    ];
    assert.deepEqual(await provider.readDirectory(uri('/')), want);
    for (const [name, type] of want) assert.equal((await provider.stat(uri(`/${name}`))).type, type, name);
  });

  it('passes create/overwrite through and announces its own writes in one batch', async () => {
    const { provider, calls, changes, writes } = setup();
    await provider.writeFile(uri('/a.py'), new Uint8Array([1]), { create: true, overwrite: true });
    await provider.writeFile(uri('/new.py'), new Uint8Array([2]), { create: true, overwrite: false });
    await provider.createDirectory(uri('/d'));
    await provider.rename(uri('/a.py'), uri('/b.py'), { overwrite: false });
    await provider.delete(uri('/d'), { recursive: true });
    assert.deepEqual(calls[0].slice(0, 3), ['writeFile', 'sess-1', 'a.py']);
    assert.deepEqual(calls[0][4], { create: true, overwrite: true });
    assert.deepEqual(calls[1][4], { create: true, overwrite: false });
    assert.deepEqual(calls[3], ['rename', 'sess-1', 'a.py', 'b.py', { overwrite: false }]);
    assert.deepEqual(calls[4], ['delete', 'sess-1', 'd', { recursive: true }]);
    await until('changes', () => changes.length > 0);
    assert.deepEqual(changes[0], [
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/new.py' },
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/d' },
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/b.py' },
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/d' },
    ]);
    assert.equal(writes.length, 6);
  });

  it('throws FileSystemErrors, never bare errors', async () => {
    const { provider } = setup({
      stat: async () => {
        throw new ApiError(404, 'not_found', '"x" was not found.');
      },
      writeFile: async () => {
        throw new ApiError(409, 'file_exists', 'exists');
      },
      readFile: async () => {
        throw new TypeError('socket hang up');
      },
    });
    await assert.rejects(
      () => provider.stat(uri('/x')),
      (e: any) => e instanceof vscodeStandIn.FileSystemError && e.code === 'FileNotFound',
    );
    await assert.rejects(
      () => provider.writeFile(uri('/x'), new Uint8Array(), { create: true, overwrite: false }),
      (e: any) => e.code === 'FileExists',
    );
    await assert.rejects(
      () => provider.readFile(uri('/x')),
      (e: any) => e instanceof vscodeStandIn.FileSystemError && e.code === 'Unavailable',
    );
    await assert.rejects(
      () => provider.rename(uri('/x'), Uri.from({ scheme: 'crawlhub', authority: 'other', path: '/x' }) as any, { overwrite: false }),
      (e: any) => e.code === 'NoPermissions',
    );
  });

  it('says which file a failed rename is about: the target that exists, the source that does not', async () => {
    let answer = new ApiError(409, 'file_exists', '"b.py" already exists.');
    const { provider, changes } = setup({
      rename: async () => {
        throw answer;
      },
    });
    await assert.rejects(
      () => provider.rename(uri('/a.py'), uri('/b.py'), { overwrite: false }),
      (e: any) => e.code === 'FileExists' && e.message.endsWith('crawlhub://sess-1/workspace/b.py'),
    );
    answer = new ApiError(404, 'file_not_found', '"a.py" does not exist in the workspace.');
    await assert.rejects(
      () => provider.rename(uri('/a.py'), uri('/b.py'), { overwrite: true }),
      (e: any) => e.code === 'FileNotFound' && e.message.endsWith('crawlhub://sess-1/workspace/a.py'),
    );
    // A target outside /workspace is the target's fault too.
    await assert.rejects(
      () =>
        provider.rename(uri('/a.py'), Uri.from({ scheme: 'crawlhub', authority: 'sess-1', path: '/etc/b.py' }) as any, {
          overwrite: false,
        }),
      (e: any) => e.code === 'FileNotFound' && e.message.endsWith('crawlhub://sess-1/etc/b.py'),
    );
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(changes, [], 'a failed rename announces nothing');
  });

  it('has nothing outside /workspace, and asks the server nothing about it', async () => {
    const { provider, calls } = setup();
    for (const path of ['/', '/etc/passwd', '/workspace2/a.py']) {
      const outside = Uri.from({ scheme: 'crawlhub', authority: 'sess-1', path }) as any;
      await assert.rejects(
        () => provider.stat(outside),
        (e: any) => e.code === 'FileNotFound',
        path,
      );
      await assert.rejects(
        () => provider.writeFile(outside, new Uint8Array([1]), { create: true, overwrite: true }),
        (e: any) => e.code === 'FileNotFound',
        path,
      );
    }
    assert.deepEqual(calls, []);
  });

  it('says "sign in" when there is no client', async () => {
    const provider = new SessionFileSystemProvider({ client: async () => undefined, watchSession() {}, unwatchSession() {} });
    await assert.rejects(
      () => provider.stat(uri('/')),
      (e: any) => e.code === 'NoPermissions' && /Sign in/.test(e.message),
    );
  });

  it('watches a session once however many watchers, and turns files events into changes', async () => {
    const { provider, watched, changes } = setup();
    const w1 = provider.watch(uri('/'));
    const w2 = provider.watch(uri('/a.py'));
    assert.deepEqual(watched, ['+sess-1']);
    w1.dispose();
    w1.dispose();
    assert.deepEqual(watched, ['+sess-1']);
    provider.applyServerChanges({
      type: 'files',
      session_id: 'sess-1',
      changes: [
        { path: 'out/items.json', kind: 'created' },
        { path: 'a.py', kind: 'changed' },
        { path: 'old.py', kind: 'deleted' },
      ],
    });
    await until('server changes', () => changes.length === 1);
    assert.deepEqual(changes[0], [
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/out/items.json' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/old.py' },
    ]);
    w2.dispose();
    assert.deepEqual(watched, ['+sess-1', '-sess-1']);
    provider.dispose();
  });

  it('tells of a change through the links it stat-ed: the watcher names only the real path', async () => {
    // a.py -> src/b.py, chain.py -> a.py, d -> src (a folder), far -> /etc/hostname (outside: no real path).
    const links: Record<string, { target: string; real_path?: string }> = {
      'a.py': { target: 'file', real_path: 'src/b.py' },
      'chain.py': { target: 'file', real_path: 'src/b.py' },
      d: { target: 'directory', real_path: 'src' },
      far: { target: 'file' },
    };
    let replaced = false;
    const { provider, changes } = setup({
      stat: async (_id: string, path: string) =>
        links[path] && !(replaced && path === 'chain.py')
          ? { type: 'symlink', ...links[path], size: 11, mtime: 2, ctime: 1 }
          : { type: 'file', size: 3, mtime: 2, ctime: 1 },
    });
    for (const path of ['a.py', 'chain.py', 'd', 'far', 'src/b.py']) await provider.stat(uri(`/${path}`));
    const files = (...changes: { path: string; kind: 'created' | 'changed' | 'deleted' }[]) =>
      provider.applyServerChanges({ type: 'files', session_id: 'sess-1', changes });
    files({ path: 'src/b.py', kind: 'changed' });
    await until('changes', () => changes.length === 1);
    assert.deepEqual(changes[0], [
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/src/b.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/chain.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/d/b.py' },
    ]);
    // A link still there when what it leads to goes: the link changed. Below a linked folder: the same kind.
    files({ path: 'src/b.py', kind: 'deleted' }, { path: 'src/new.py', kind: 'created' });
    await until('changes', () => changes.length === 2);
    assert.deepEqual(changes[1], [
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/src/b.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/chain.py' },
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/d/b.py' },
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/src/new.py' },
      { type: FileChangeType.Created, uri: 'crawlhub://sess-1/workspace/d/new.py' },
    ]);
    // What is no link any more (a file in its place), a deleted link, another session: nothing more.
    replaced = true;
    await provider.stat(uri('/chain.py'));
    files({ path: 'a.py', kind: 'deleted' });
    provider.applyServerChanges({ type: 'files', session_id: 'sess-2', changes: [{ path: 'src/b.py', kind: 'changed' }] });
    files({ path: 'src/b.py', kind: 'changed' });
    await until('changes', () => changes.length === 3);
    assert.deepEqual(changes[2], [
      { type: FileChangeType.Deleted, uri: 'crawlhub://sess-1/workspace/a.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-2/workspace/src/b.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/src/b.py' },
      { type: FileChangeType.Changed, uri: 'crawlhub://sess-1/workspace/d/b.py' },
    ]);
    provider.dispose();
  });

  it('remembers a bounded number of links, the most recently stat-ed', () => {
    const links = new LinkTargets(3);
    for (const n of [1, 2, 3, 4]) links.note('s', `l${n}`, `t${n}`);
    links.note('s', 'l2', 't2'); // stat-ed again: the newest
    links.note('s', 'l5', 't5');
    assert.equal(links.size, 3);
    const to = (path: string) => links.linked('s', path).map((l) => l.path);
    assert.deepEqual([to('t1'), to('t2'), to('t3'), to('t4'), to('t5')], [[], ['l2'], [], ['l4'], ['l5']]);
    // A link to itself (a path the watcher names already) is not kept; nor one to nothing in the workspace.
    links.note('s', 'x', 'x');
    links.note('s', 'y', undefined);
    assert.deepEqual([to('x'), links.size], [[], 3]);
  });
});

describe('SessionFileSystemProvider: writes in flight', () => {
  it("writesSettled waits for the session's writes still on their way (failed ones too), not for other sessions'", async () => {
    const gates = new Map<string, () => void>();
    const gate = (key: string) => new Promise<void>((resolve) => gates.set(key, resolve));
    const client = {
      writeFile: (id: string, path: string) => gate(`${id}/${path}`),
      rename: async () => {
        await gate('rename');
        throw new ApiError(404, 'not_found', 'gone');
      },
    };
    const provider = new SessionFileSystemProvider({
      client: async () => client as any,
      watchSession() {},
      unwatchSession() {},
      batchDelayMs: 1,
    });
    const other = Uri.from({ scheme: 'crawlhub', authority: 'sess-2', path: '/workspace/x.py' }) as any;
    const writing = provider.writeFile(uri('/a.py'), new Uint8Array([1]), { create: true, overwrite: true });
    const renaming = provider.rename(uri('/b.py'), uri('/c.py'), { overwrite: false }).catch(() => 'failed');
    void provider.writeFile(other, new Uint8Array([1]), { create: true, overwrite: true });
    let settled = false;
    const waiting = provider.writesSettled('sess-1').then(() => (settled = true));
    await until('the writes to reach the client', () => gates.size === 3);
    gates.get('sess-1/a.py')!();
    await writing;
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(settled, false, 'the rename is still in flight');
    gates.get('rename')!();
    assert.equal(await renaming, 'failed');
    await waiting;
    assert.equal(settled, true, "sess-2's write is still in flight, and does not hold sess-1 up");
    await provider.writesSettled('sess-3');
    provider.dispose();
  });
});

describe('SessionFileSystemProvider on a real session', () => {
  let svc: TestService;
  let token: string;

  before(async () => {
    requireDocker();
    svc = await startTestService();
    token = (await svc.newUser('alice')).token;
  });
  after(async () => {
    await svc?.close();
    if (svc) removeContainers(svc.config.instance);
  });

  it('has an editor open on a file through a link read it again when what the link leads to changes', async () => {
    const spider = await json(await svc.api(token, 'POST', '/api/spiders', { name: 'linked' }));
    assert.equal((await svc.api(token, 'PUT', `/api/spiders/${spider.id}/files/src/b.py`, 'x = 1\n')).status, 200);
    const session = await json(await svc.api(token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    assert.equal(session.status, 'ready', JSON.stringify(session));
    const id: string = session.session_id;
    const c = containerName(svc, id);
    // The link's own times far in the past: an editor that goes by them never sees a change.
    const made = dockerExec(c, 'cd /workspace && ln -s src/b.py a.py && touch -h -d 2020-01-01 a.py');
    assert.equal(made.code, 0, made.stderr);

    const client = new CrawlHubClient({ serverUrl: svc.url, token });
    const provider = new SessionFileSystemProvider({ client: async () => client, watchSession() {}, unwatchSession() {}, batchDelayMs: 1 });
    const changes: { type: number; uri: string }[] = [];
    provider.onDidChangeFile((events) => changes.push(...events.map((e) => ({ type: e.type, uri: e.uri.toString() }))));
    const link = sessionUri(id, 'a.py');
    const opened = await provider.stat(link);
    assert.deepEqual(opened, { ...(await provider.stat(sessionUri(id, 'src/b.py'))), type: FileType.SymbolicLink | FileType.File });
    assert.equal(new TextDecoder().decode(await provider.readFile(link)), 'x = 1\n');

    // The events socket, as the extension's: the container's changes, by their real paths.
    const ws = new WebSocket(`${svc.url.replace('http', 'ws')}/api/events`, { headers: { authorization: `Bearer ${token}` } });
    ws.on('message', (d: Buffer) => {
      const event = JSON.parse(d.toString());
      if (event.type === 'files') provider.applyServerChanges(event);
    });
    try {
      await new Promise((r, j) => ws.once('open', r).once('error', j));
      ws.send(JSON.stringify({ type: 'watch', session_id: id }));
      // The watcher has its first listing once a new file is reported.
      let n = 0;
      await eventually('the watcher', () => {
        dockerExec(c, `touch /workspace/probe-${++n}`);
        return changes.some((e) => e.uri.startsWith(sessionUri(id, 'probe-').toString()));
      });
      assert.equal(dockerExec(c, 'printf "x = 2  # changed\\n" > /workspace/src/b.py').code, 0);
      await eventually('the change, through the link', () =>
        changes.some((e) => e.uri === link.toString() && e.type === FileChangeType.Changed),
      );
      assert.ok(changes.some((e) => e.uri === sessionUri(id, 'src/b.py').toString()));
      // What VS Code does with the event: a stat, whose size and time tell it the file is new.
      const now = await provider.stat(link);
      assert.deepEqual([now.type, now.size], [FileType.SymbolicLink | FileType.File, 17]);
      assert.notEqual(now.mtime, opened.mtime);
      assert.equal(new TextDecoder().decode(await provider.readFile(link)), 'x = 2  # changed\n');
    } finally {
      ws.close();
      provider.dispose();
    }
  });
});
