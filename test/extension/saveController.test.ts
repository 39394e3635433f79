import { stubs } from './helpers/windowStubs';
import { vscodeStandIn } from './helpers/vscode';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
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
function setup() {
  const events: string[] = [];
  const client = {
    writeFile: async (_id: string, path: string) => {
      await tick(path === 'autosaved.py' ? 60 : 10);
      events.push(`written ${path}`);
    },
    sync: async (_spider: string, opts: { dryRun?: boolean }) => {
      events.push(`sync ${JSON.stringify(opts)}`);
      // A dry run finds nothing to save (the preview then only says so).
      if (opts.dryRun) return sampleSave({ dry_run: true });
      return sampleSave({ modified: ['spider.py'], saved_at: '2026-01-01T10:00:00.000Z' });
    },
    closeSession: async (_spider: string, opts: { discard: boolean }) => {
      events.push(`close ${JSON.stringify(opts)}`);
      return { session: sampleSession({ status: 'stopped' }), save: opts.discard ? null : sampleSave({ modified: ['spider.py'] }) };
    },
  };
  const fs = new SessionFileSystemProvider({ client: async () => client as any, watchSession() {}, unwatchSession() {}, batchDelayMs: 1 });
  const state = { upsertSession: (s: { status: string }) => events.push(`session ${s.status}`) };
  const tracker = new SaveTracker();
  const log = { ...silentLog, show() {} } as any;
  const closes = { closing: (id: string) => events.push(`closing ${id}`), closeFailed: (id: string) => events.push(`close failed ${id}`) };
  const saves = new SaveController(async () => client as any, state as any, tracker, new Notifier(log), log, fs, closes);
  const write = (path: string) => () => fs.writeFile(fileUri(path), new Uint8Array([1]), { create: true, overwrite: true });
  return { events, fs, tracker, saves, write };
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
