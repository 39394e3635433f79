import { stubs } from './helpers/windowStubs';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { LiveUpdatesNotice } from '../../extension/core/liveUpdates';
import { Notifier } from '../../extension/core/notify';

describe('the notification that live updates are unavailable', () => {
  const reason = 'the server answered HTTP 502 instead of opening a WebSocket';
  let now: number;
  let sessionOpen: boolean;
  let shownOutput: number;
  let notice: LiveUpdatesNotice;

  beforeEach(() => {
    stubs.reset();
    now = 1_000_000;
    sessionOpen = true;
    shownOutput = 0;
    const output = { warn() {}, show: () => shownOutput++ } as any;
    notice = new LiveUpdatesNotice(
      new Notifier(output),
      () => sessionOpen,
      () => now,
    );
  });

  it('is shown once per window, and only once the outage has outlasted a server restart', async () => {
    notice.update({ reason, since: now - 5_000 });
    assert.equal(stubs.shown.length, 0, 'a few seconds may be a restart');
    notice.update({ reason, since: now - 30_000 });
    assert.equal(stubs.shown.length, 1);
    assert.equal(stubs.shown[0].kind, 'warning');
    assert.equal(
      stubs.shown[0].message,
      `CrawlHub: Live updates unavailable: ${reason} — stop warnings and file changes from the container will not arrive. Retrying…`,
    );
    notice.update(undefined);
    notice.update({ reason, since: now - 60_000 });
    assert.equal(stubs.shown.length, 1, 'no notification for every retry or outage');
  });

  it('is not shown in a window without a session, and offers the log', async () => {
    sessionOpen = false;
    notice.update({ reason, since: now - 60_000 });
    assert.equal(stubs.shown.length, 0);
    sessionOpen = true;
    stubs.answers = ['Show Output'];
    notice.update({ reason, since: now - 60_000 });
    assert.deepEqual(stubs.shown[0].items, ['Show Output']);
    await new Promise((r) => setImmediate(r));
    assert.equal(shownOutput, 1);
  });
});
