import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ApiError } from '../../extension/api/errors';
import { silentLog } from '../../extension/core/log';
import { Notifier } from '../../extension/core/notify';
import { SessionFileSystemProvider } from '../../extension/fs/provider';
import { SaveController } from '../../extension/save/saveController';
import { SaveTracker } from '../../extension/save/tracker';
import { UnsavedEditorsError, writeUnsavedEditors } from '../../extension/save/unsavedEditors';
import { sampleSave, sampleSession } from './helpers/server';

// Save to Server and Close Session copy what the container has: the session's unsaved editors and
// the writes still on their way must be in it first, or the save leaves them out (and a close loses them).

const SESSION = sampleSession().session_id;
const session = { session_id: SESSION, spider_id: 'sp1', spider_name: 'books' };
const fileUri = (path: string, sessionId = SESSION) =>
  vscodeStandIn.Uri.from({ scheme: 'crawlhub', authority: sessionId, path: `/workspace/${path}` }) as any;

/** An open text document; its save() runs `write` (by default: nothing) and answers `saves`. */
function editor(path: string, opts: { dirty?: boolean; sessionId?: string; saves?: boolean; write?: () => Promise<void> } = {}) {
  const doc = {
    uri: fileUri(path, opts.sessionId),
    isDirty: opts.dirty ?? true,
    saved: 0,
    async save() {
      doc.saved++;
      await opts.write?.();
      if (opts.saves === false) return false;
      doc.isDirty = false;
      return true;
    },
  };
  return doc;
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file system provider over a container whose writes take a while (an autosave longer); `events` records the order of things. */
function setup(server: { saved?: Record<string, unknown>; syncError?: Error; known?: Record<string, unknown> } = {}) {
  const events: string[] = [];
  const logged: string[] = [];
  const client = {
    writeFile: async (_id: string, path: string) => {
      await tick(path === 'autosaved.py' ? 60 : 10);
      events.push(`written ${path}`);
    },
    sync: async (_spider: string, opts: { dryRun?: boolean }) => {
      events.push(`sync ${JSON.stringify(opts)}`);
      if (server.syncError) throw server.syncError;
      // A dry run finds nothing to save (the preview then only says so).
      if (opts.dryRun) return sampleSave({ dry_run: true });
      return sampleSave({ modified: ['spider.py'], saved_at: '2026-01-01T10:00:00.000Z', ...server.saved });
    },
    closeSession: async (_spider: string, opts: { discard: boolean }) => {
      events.push(`close ${JSON.stringify(opts)}`);
      return { session: sampleSession({ status: 'stopped' }), save: opts.discard ? null : sampleSave({ modified: ['spider.py'] }) };
    },
  };
  const fs = new SessionFileSystemProvider({ client: async () => client as any, watchSession() {}, unwatchSession() {}, batchDelayMs: 1 });
  const state = {
    upsertSession: (s: { status: string }) => events.push(`session ${s.status}`),
    // What the state knows of the session (the events socket's news), when a test says.
    session: (id: string) => (server.known && id === SESSION ? sampleSession(server.known) : undefined),
  };
  const tracker = new SaveTracker();
  const log = {
    ...silentLog,
    info: (m: string) => logged.push(`info ${m}`),
    warn: (m: string) => logged.push(`warn ${m}`),
    show() {},
  } as any;
  const closes = { closing: (id: string) => events.push(`closing ${id}`), closeFailed: (id: string) => events.push(`close failed ${id}`) };
  const saves = new SaveController(async () => client as any, state as any, tracker, new Notifier(log), log, fs, closes);
  const write = (path: string) => () => fs.writeFile(fileUri(path), new Uint8Array([1]), { create: true, overwrite: true });
  return { events, logged, fs, tracker, saves, write };
}

describe('Save to Server and Close Session write unsaved editors first', () => {
  beforeEach(() => stubs.reset());

  it("Save to Server saves the session's dirty editors and waits for writes in flight before the server saves", async () => {
    const { events, saves, write } = setup();
    const spider = editor('spider.py', { write: write('spider.py') });
    const clean = editor('clean.py', { dirty: false });
    const elsewhere = editor('other.py', { sessionId: 'another-session' });
    stubs.textDocuments = [spider, clean, elsewhere];
    void write('autosaved.py')(); // an autosave still on its way
    const result = await saves.save(session);
    assert.deepEqual(result?.modified, ['spider.py']);
    assert.deepEqual(events, ['written spider.py', 'written autosaved.py', 'sync {}']);
    assert.equal(spider.saved, 1);
    assert.equal(clean.saved, 0, 'a clean editor is left alone');
    assert.equal(elsewhere.saved, 0, "another session's editor is left alone");
  });

  it("Preview Save writes the session's dirty editors and waits for writes in flight before the dry run", async () => {
    const { events, saves, write } = setup();
    const spider = editor('spider.py', { write: write('spider.py') });
    const elsewhere = editor('other.py', { sessionId: 'another-session' });
    stubs.textDocuments = [spider, elsewhere];
    void write('autosaved.py')();
    await saves.preview(session);
    assert.deepEqual(
      events.map((e) => e.replace(/,"signal":\{\}/, '')),
      ['written spider.py', 'written autosaved.py', 'sync {"dryRun":true}'],
    );
    assert.equal(spider.saved, 1);
    assert.equal(elsewhere.saved, 0, "another session's editor is left alone");
    assert.match(stubs.shown.at(-1)?.message ?? '', /Nothing to save/);
  });

  it('an editor that does not save stops Preview Save before the dry run, and says why', async () => {
    const { events, saves } = setup();
    stubs.textDocuments = [editor('spider.py', { saves: false })];
    await saves.preview(session);
    assert.deepEqual(events, [], 'no dry run of what the container lacks');
    const errors = stubs.shown.filter((s) => s.kind === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /Preview of books failed: An unsaved editor could not be written into the session \(spider\.py\)/);
  });

  it('Close Session saves the dirty editors into the container before the server saves and stops it', async () => {
    const { events, saves, write } = setup();
    stubs.textDocuments = [editor('spider.py', { write: write('spider.py') })];
    stubs.answers = ['Save and Close'];
    assert.equal(await saves.close(session), true);
    assert.deepEqual(events, ['written spider.py', `closing ${SESSION}`, 'close {"discard":false}', 'session stopped']);
  });

  it('an editor that does not save stops Close Session: the error names it and the session stays open', async () => {
    const { events, saves } = setup();
    stubs.textDocuments = [editor('spider.py', { saves: false }), editor('ok.py')];
    assert.equal(await saves.close(session, { confirmed: true }), false);
    assert.deepEqual(events, [`close failed ${SESSION}`], 'the server was not asked to close');
    const errors = stubs.shown.filter((s) => s.kind === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /Closing books failed: An unsaved editor could not be written into the session \(spider\.py\)/);
  });

  it('an editor that does not save stops Save to Server, and the status says the save failed', async () => {
    const { events, saves, tracker } = setup();
    stubs.textDocuments = [
      editor('spider.py', {
        write: async () => {
          throw new Error('no space left');
        },
      }),
    ];
    assert.equal(await saves.save(session), undefined);
    assert.deepEqual(events, []);
    assert.match(tracker.get(SESSION).lastError ?? '', /spider\.py: no space left/);
    assert.equal(tracker.get(SESSION).saving, false);
  });

  it('a close the server refuses is told to the stop announcements as not having happened', async () => {
    const { events, saves } = setup();
    (saves as any).client = async () => ({
      closeSession: async () => {
        events.push('close');
        throw new Error('the engine is down');
      },
    });
    assert.equal(await saves.close(session, { confirmed: true }), false);
    assert.deepEqual(events, [`closing ${SESSION}`, 'close', `close failed ${SESSION}`]);
  });

  it('Close Session waits for no running save: it says one runs and leaves it alone', async () => {
    const { events, saves, tracker } = setup();
    tracker.begin(SESSION);
    assert.equal(await saves.close(session, { confirmed: true }), false);
    assert.deepEqual(events, [], 'the server was not asked to close');
    assert.match(stubs.shown.at(-1)?.message ?? '', /A save of books is running; close the session once it is done\./);
    assert.equal(tracker.get(SESSION).saving, true, 'the save still shows as running');
  });

  it('Close Without Saving does not write the editors', async () => {
    const { events, saves } = setup();
    const spider = editor('spider.py');
    stubs.textDocuments = [spider];
    // The private path a failed save's "Close Without Saving" takes.
    assert.equal(await (saves as any).runClose(session, true), true);
    assert.equal(spider.saved, 0);
    assert.deepEqual(events, [`closing ${SESSION}`, 'close {"discard":true}', 'session stopped']);
  });
});

describe('a save whose session stopped after it was asked for', () => {
  beforeEach(() => stubs.reset());
  const stopped = { status: 'stopped', status_reason: 'stopped after saving (idle)' };
  const notReady = () => new ApiError(409, 'session_not_ready', 'The session is stopped; it can be saved once it is ready.');

  it('says that it stopped, not that it "can be saved once it is ready"', async () => {
    for (const act of ['save', 'preview'] as const) {
      stubs.reset();
      const { saves, tracker } = setup({ syncError: notReady(), known: stopped });
      await saves[act](session);
      const error = stubs.shown.find((m) => m.kind === 'error');
      assert.ok(error, `${act}: ${JSON.stringify(stubs.shown)}`);
      assert.match(
        error.message,
        /failed: the session stopped before this save \(it is stopped \(stopped after saving \(idle\)\)\), and its files are no longer reachable here\.$/,
      );
      assert.doesNotMatch(error.message, /once it is ready/);
      if (act === 'save') assert.match(tracker.get(SESSION).lastError ?? '', /stopped before this save/);
    }
  });

  it('says where the unsaved editors it could not write stand, instead of "save them and try again"', async () => {
    const { saves } = setup({ known: stopped });
    const spider = editor('spider.py', {
      write: async () => {
        throw new ApiError(409, 'session_not_ready', 'The session is stopped; its files are reachable once it is ready.');
      },
    });
    stubs.textDocuments = [spider];
    await saves.save(session);
    const error = stubs.shown.find((m) => m.kind === 'error');
    assert.ok(error, JSON.stringify(stubs.shown));
    assert.match(
      error.message,
      /An editor has unsaved changes that are not in it \(spider\.py\): copy them elsewhere \(File > Save As\) before you open a new session\.$/,
    );
    assert.doesNotMatch(error.message, /try again/);
  });

  it("keeps the server's words while the session is still live (it is starting, say)", async () => {
    const { saves } = setup({ syncError: notReady(), known: { status: 'starting' } });
    await saves.save(session);
    assert.match(stubs.shown.find((m) => m.kind === 'error')?.message ?? '', /once it is ready/);
  });
});

describe('writeUnsavedEditors', () => {
  it('lists every editor that did not save, with the first reason', async () => {
    const docs = [
      editor('a.py', { saves: false }),
      editor('b.py'),
      editor('pkg/c.py', {
        write: async () => {
          throw new Error('disk full');
        },
      }),
    ];
    let settled = 0;
    await assert.rejects(
      () => writeUnsavedEditors(SESSION, docs, async () => void settled++),
      (e: unknown) =>
        e instanceof UnsavedEditorsError &&
        e.paths.join() === 'a.py,pkg/c.py' &&
        e.message === '2 unsaved editors could not be written into the session (a.py, pkg/c.py: disk full). Save them and try again.',
    );
    assert.equal(settled, 1, 'the writes in flight are still waited for');
  });
});

describe('a kept session (its container stopped when a save failed)', () => {
  beforeEach(() => stubs.reset());
  const kept = { ...session, status: 'failed', save_pending: true };
  /** An editor of the session with unsaved changes: its container is stopped, so it cannot be written. */
  const unwritable = () =>
    editor('spider.py', {
      write: async () => {
        throw new Error('The session is failed; its files are reachable once it is ready.');
      },
    });

  it('is saved by the server from what the container holds, without trying to write editors into it', async () => {
    const { events, saves } = setup();
    assert.deepEqual((await saves.save(kept))?.modified, ['spider.py']);
    assert.deepEqual(events, ['sync {}']);
    assert.match(
      stubs.shown.at(-1)?.message ?? '',
      /^CrawlHub: Saved books: 1 modified\. The kept container goes at the server’s next retry; Close Session removes it now\.$/,
    );
  });

  it('is not saved nor closed while an editor of it has unsaved changes (they cannot reach its stopped container)', async () => {
    for (const act of ['save', 'close'] as const) {
      stubs.reset();
      const { events, saves } = setup();
      const spider = unwritable();
      stubs.textDocuments = [spider];
      stubs.answers = ['Save and Close'];
      if (act === 'save') await saves.save(kept);
      else assert.equal(await saves.close(kept), false);
      assert.equal(spider.saved, 0, 'no write is tried into the stopped container');
      assert.ok(
        !events.some((e) => e.startsWith('sync') || e.startsWith('close {')),
        `${act}: nothing was asked of the server: ${events.join()}`,
      );
      assert.match(
        stubs.shown.at(-1)?.message ?? '',
        /An unsaved editor could not be written into the session \(spider\.py: the session is kept and its container stopped\)\. Open the session in the editor again to resume it, then save\./,
      );
    }
  });

  it('is closed the same way, after saying what closing it does', async () => {
    const { events, saves } = setup();
    stubs.answers = ['Save and Close'];
    assert.equal(await saves.close(kept), true);
    assert.deepEqual(events, [`closing ${SESSION}`, 'close {"discard":false}', 'session stopped']);
    const ask = stubs.shown[0].items[0] as { modal: boolean; detail: string };
    assert.match(
      ask.detail,
      /^Its container stopped when a save failed\. What it holds is saved to the server first; then it is removed\.$/,
    );
  });

  it('offers no diffs of its conflicts: they would read its stopped container', async () => {
    const { saves } = setup();
    await saves.offerConflicts(kept, { conflicts: [{ path: 'a.py', reason: 'changed on the server' }] });
    assert.deepEqual(stubs.shown[0].items, ['Overwrite on Server']);
    assert.match(stubs.shown[0].message, /Open the session again to compare them\.$/);
    stubs.reset();
    await saves.offerConflicts(session, { conflicts: [{ path: 'a.py', reason: 'changed on the server' }] });
    assert.deepEqual(stubs.shown[0].items, ['Overwrite on Server', 'Show Diffs']);
  });
});

describe('files a save skipped', () => {
  beforeEach(() => stubs.reset());
  const skipped = [
    { path: 'settings.py', reason: 'symbolic links are not stored' },
    { path: 'x\u202Eyp.txt', reason: 'only regular files are stored' },
  ];

  it('are named in the log with their reasons, and listed by "Show Skipped", saying that the server keeps its copy', async () => {
    const { saves, logged } = setup({ saved: { skipped } });
    stubs.answers = ['Show Skipped'];
    await saves.save(session);
    assert.deepEqual(stubs.shown, [{ kind: 'info', message: 'CrawlHub: Saved books: 1 modified, 2 skipped.', items: ['Show Skipped'] }]);
    assert.ok(logged.includes('warn   settings.py: symbolic links are not stored'), logged.join('\n'));
    assert.ok(logged.includes('warn   x\\u{202E}yp.txt: only regular files are stored'), 'a text-direction character is shown, not obeyed');
    assert.ok(logged.some((l) => /2 skipped .*the server keeps its own copy/.test(l)));
    await tick(1);
    assert.equal(stubs.quickPicks.length, 1);
    const pick = stubs.quickPicks[0];
    assert.deepEqual(pick.items, [
      { label: 'settings.py', detail: 'symbolic links are not stored' },
      { label: 'x\\u{202E}yp.txt', detail: 'only regular files are stored' },
    ]);
    assert.match(String(pick.options.title), /books: 2 files skipped/);
    assert.match(String(pick.options.placeHolder), /The server keeps its stored copy of each of these files/);
  });

  it('are not hidden by conflicts: the conflict warning does not say "everything else was saved", and lists them too', async () => {
    const conflicts = [{ path: 'a\u202Etxt.py', reason: 'changed on the server since this session pulled it' }];
    const { saves } = setup({ saved: { skipped, conflicts } });
    stubs.answers = ['Show Skipped'];
    await saves.save(session);
    await tick(1);
    const warning = stubs.shown.find((m) => m.kind === 'warning');
    assert.ok(warning, JSON.stringify(stubs.shown));
    assert.match(warning.message, /Everything else was saved but 2 skipped files, which the server does not store\./);
    assert.match(warning.message, /pulled it: a\\u\{202E\}txt\.py\./, 'a text-direction character in a name is shown, not obeyed');
    assert.deepEqual(warning.items, ['Overwrite on Server', 'Show Diffs', 'Show Skipped']);
    assert.equal(stubs.quickPicks.length, 1);
    assert.match(String(stubs.quickPicks[0].options.title), /books: 2 files skipped/);
  });

  it('leave a save without them as it was', async () => {
    const { saves } = setup();
    await saves.save(session);
    assert.deepEqual(stubs.shown, [{ kind: 'info', message: 'CrawlHub: Saved books: 1 modified.', items: [] }]);
  });
});
