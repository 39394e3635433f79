import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerName, dockerExec, removeContainers, requireDocker } from '../helpers/docker';
import type { Page } from 'playwright-core';
import { json, startTestService, type TestService } from '../helpers/service';
import {
  answerInput,
  chooseFromContextMenu,
  ensureVsix,
  eventually,
  openBrowser,
  requireWorkbench,
  runCommand,
  showView,
  startCodeServer,
  type CodeServer,
  type Workbench,
  workbenchSkipped,
} from './helpers/workbench';

// The extension in a real VS Code workbench (code-server with the packaged .vsix), against the real
// service and real containers: sign in, the trees, a session opened through crawlhub://, an edit
// saved through the FileSystemProvider, the status-bar Save to Server, the terminal, Preview Save.
// Screenshots go to test-results/extension-*.png. Without code-server, Node 24 (both from
// images/local/build.sh's cache) or Chromium it fails, unless CRAWLHUB_SKIP_WORKBENCH_E2E=1 leaves it out.

describe('the extension in a real VS Code workbench', { skip: workbenchSkipped(), timeout: 15 * 60_000 }, () => {
  let svc: TestService;
  let cs: CodeServer;
  let wb: Workbench;
  let token: string;
  let spiderId: string;
  let sessionId = '';
  /** Heartbeats the service answered (the extension's: nothing else calls the route), counted in before(). */
  let heartbeats = 0;

  const page = () => wb.page;
  /** Brings an open editor's tab to the front and puts the cursor in its text. */
  const focusEditor = async (tab: string | RegExp) => {
    const p = page();
    await p.locator('.tabs-container .tab', { hasText: tab }).first().click();
    await p.locator('.editor-instance .monaco-editor .view-lines').first().click();
  };
  /**
   * A row of the CrawlHub views. Scoped to the side bar: notification toasts are list rows too, and
   * one that names the spider ("Saved books: …") would otherwise be the first match.
   */
  const sideBarRow = (hasText: string | RegExp, p = page()) => p.locator('.part.sidebar .monaco-list-row', { hasText }).first();
  const stored = async (path: string) => {
    const res = await svc.api(token, 'GET', `/api/spiders/${spiderId}/files/${path}`);
    return res.status === 200 ? res.text() : undefined;
  };
  const inContainer = async (path: string) => {
    const res = await svc.api(token, 'GET', `/api/sessions/${sessionId}/fs/file?path=${encodeURIComponent(path)}`);
    return res.status === 200 ? res.text() : undefined;
  };
  /** Runs a step; on failure leaves a screenshot and the extension's log behind. */
  const step = async (name: string, body: () => Promise<void>) => {
    try {
      await body();
    } catch (err) {
      await wb?.screenshot(`extension-failed-${name}`).catch(() => undefined);
      console.error(`--- extension log ---\n${cs?.extensionLog().slice(-6000)}`);
      throw err;
    }
  };

  /**
   * The launch URL a command hands to the browser. code-server hands 127.0.0.1 links to its own
   * /proxy/<port>/ forwarder, which a desktop VS Code does not: the request carrying the ticket is
   * stopped here, and the path it was meant for (that prefix taken off) comes back with the URL.
   */
  const launchedFrom = async (p: Page, action: () => Promise<void>): Promise<{ path: string; url: URL }> => {
    let launched: URL | undefined;
    await p.context().route(/[?&]ticket=/, async (route) => {
      launched ??= new URL(route.request().url());
      await route.abort();
    });
    const popup = p.context().waitForEvent('page', { timeout: 60_000 });
    await action();
    // VS Code may ask before it opens a site that is not a trusted domain.
    const open = p.getByRole('button', { name: 'Open', exact: true });
    await open.waitFor({ timeout: 10_000 }).then(
      () => open.click(),
      () => undefined,
    );
    await popup;
    const url = await eventually('the launch URL', async () => launched);
    await p.context().unroute(/[?&]ticket=/);
    return { path: url.pathname.replace(/^\/proxy\/\d+/, ''), url };
  };

  before(async () => {
    requireWorkbench();
    requireDocker();
    // A port block of its own: other services on this Docker engine (other suites) use the default range.
    const base = 20_000 + Math.floor(Math.random() * 400) * 20;
    svc = await startTestService({ env: { CRAWLHUB_PORT_RANGE: `${base}-${base + 19}` } });
    const sessions = svc.services.sessions;
    const heartbeat = sessions.heartbeatById.bind(sessions);
    sessions.heartbeatById = async (...args: Parameters<typeof heartbeat>) => {
      const session = await heartbeat(...args);
      heartbeats++;
      return session;
    };
    token = (await svc.newUser('alice')).token;
    const spider = await json(await svc.api(token, 'POST', '/api/spiders', { name: 'books', description: 'Scrapes a bookshop' }));
    spiderId = spider.id;
    assert.equal((await svc.api(token, 'PUT', `/api/spiders/${spiderId}/files/main.py`, 'print("hello")\n')).status, 200);
    assert.equal((await svc.api(token, 'PUT', `/api/spiders/${spiderId}/files/pkg/items.py`, 'ITEMS = []\n')).status, 200);
    ensureVsix();
    cs = await startCodeServer();
    wb = await openBrowser(cs.url);
  });

  after(async () => {
    await wb?.close().catch(() => undefined);
    await cs?.stop().catch(() => undefined);
    if (sessionId) await svc.api(token, 'DELETE', `/api/spiders/${spiderId}/code-session?discard=1`).catch(() => undefined);
    try {
      await svc?.close();
    } finally {
      // Whatever a failed step left running: every container of this service's instance.
      if (svc) removeContainers(svc.config.instance);
    }
  });

  it('signs in and lists the spiders with their session state', async () => {
    await step('sign-in', async () => {
      // Signed out, the Spiders view welcomes with a Sign In button.
      await showView(page(), 'CrawlHub');
      const welcome = page().locator('.welcome-view-content', { hasText: 'Work on your CrawlHub spiders' }).first();
      await welcome.waitFor();
      await wb.screenshot('extension-0-welcome');
      await welcome.getByRole('button', { name: 'Sign In' }).click();
      await answerInput(page(), /Sign In \(1\/2\)/, svc.url);
      await answerInput(page(), /Sign In \(2\/2\)/, token);
      await page().getByText(`Signed in to ${svc.url} as alice`).first().waitFor();
      await showView(page(), 'CrawlHub');
      const row = sideBarRow('books');
      await row.waitFor();
      assert.match(await row.innerText(), /books\s*no session/);
      await wb.screenshot('extension-1-signed-in-spiders');
    });
  });

  it('opens the session in the editor as a crawlhub:// workspace folder', async () => {
    await step('open', async () => {
      await chooseFromContextMenu(sideBarRow('books'), 'Open Session in Editor');
      // The empty window becomes the session's window: it reloads with the folder.
      await page().waitForURL(/[?&]folder=crawlhub/, { timeout: 180_000 });
      sessionId = /crawlhub%3A%2F%2F([0-9a-f-]{36})/.exec(page().url())![1];
      await page().locator('.monaco-workbench').waitFor();
      await page().locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' }).first().waitFor();
      // The folder carries its container path, so it is called "workspace" (as in the browser IDE), not "/".
      await page()
        .locator('.explorer-viewlet .pane-header .title', { hasText: /^workspace$/ })
        .waitFor({ timeout: 10_000 });
      const session = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
      assert.equal(session.status, 'ready');
      assert.equal(session.spider_id, spiderId);
      await wb.screenshot('extension-2-session-folder');
    });
  });

  it('saves an edit through the FileSystemProvider, and the status-bar button stores it on the server', async () => {
    await step('edit-and-save', async () => {
      const p = page();
      await p.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' }).first().click();
      await p.locator('.tabs-container .tab.active', { hasText: 'main.py' }).waitFor();
      await p.locator('.editor-instance .monaco-editor .view-lines').first().click();
      await p.keyboard.press('Control+End');
      await p.keyboard.insertText('print("edited in VS Code")');
      await p.locator('.tabs-container .tab.active.dirty').waitFor();
      await p.keyboard.press('Control+S');
      await p.locator('.tabs-container .tab.active.dirty').waitFor({ state: 'detached' });
      // Written into the container, not yet to the server.
      assert.equal(await inContainer('main.py'), 'print("hello")\nprint("edited in VS Code")');
      assert.equal(await stored('main.py'), 'print("hello")\n');

      const button = p.locator('.statusbar-item', { hasText: 'Save to Server' }).first();
      await button.waitFor();
      await wb.screenshot('extension-3-edited');
      await button.click();
      const saved = await eventually('the edit on the server', async () => {
        const text = await stored('main.py');
        return text?.includes('edited in VS Code') ? text : undefined;
      });
      assert.equal(saved, 'print("hello")\nprint("edited in VS Code")');
      await p
        .locator('.statusbar-item', { hasText: /Save to Server.*saved (just now|\d+ s ago)/ })
        .first()
        .waitFor();
      await p.getByText('Saved books: 1 modified').first().waitFor();
      await wb.screenshot('extension-4-saved-to-server');
    });
  });

  it('opens a terminal in the container; what it changes shows up in the explorer', async () => {
    await step('terminal', async () => {
      const p = page();
      await runCommand(p, 'CrawlHub: Open Terminal');
      const terminal = p.locator('.terminal-wrapper .xterm').first();
      await terminal.waitFor();
      await terminal.click();
      // Keystrokes typed while the terminal socket connects are kept and sent once it opens.
      await p.keyboard.type('echo from-terminal > made-in-terminal.txt && whoami\n');
      assert.equal(await eventually('the file in the container', () => inContainer('made-in-terminal.txt')), 'from-terminal\n');
      // The container's change reaches the explorer through the files events of /api/events.
      await p.locator('.explorer-folders-view .monaco-list-row', { hasText: 'made-in-terminal.txt' }).first().waitFor();
      await wb.screenshot('extension-5-terminal');
    });
  });

  it('previews a save with the changes listed and a diff open before anything is written, then saves', async () => {
    await step('preview', async () => {
      const p = page();
      await focusEditor('main.py');
      await p.keyboard.press('Control+End');
      await p.keyboard.insertText('\nprint("second edit")');
      await p.keyboard.press('Control+S');
      await p.locator('.tabs-container .tab.dirty').first().waitFor({ state: 'detached' });

      await runCommand(p, 'CrawlHub: Preview Save');
      await p.locator('.quick-input-widget', { hasText: 'Preview Save: books' }).waitFor();
      const rows = p.locator('.quick-input-widget .monaco-list-row');
      await rows.filter({ hasText: 'made-in-terminal.txt' }).first().waitFor();
      assert.ok(await rows.filter({ hasText: 'main.py' }).count());
      await p.locator('.tabs-container .tab', { hasText: 'main.py (server ↔ session)' }).first().waitFor();
      assert.equal(await stored('main.py'), 'print("hello")\nprint("edited in VS Code")', 'nothing written by the preview');
      assert.equal(await stored('made-in-terminal.txt'), undefined);
      await wb.screenshot('extension-6-preview-save');

      await rows.filter({ hasText: 'Save 2 changes to the server' }).first().click();
      await eventually('the previewed save', async () => ((await stored('made-in-terminal.txt')) === 'from-terminal\n' ? true : undefined));
      assert.match((await stored('main.py')) ?? '', /second edit/);
    });
  });

  it('shows a conflict with the server and resolves it by overwriting', async () => {
    await step('conflict', async () => {
      const p = page();
      // Someone changes the stored file after the session pulled it…
      assert.equal(
        (await svc.api(token, 'PUT', `/api/spiders/${spiderId}/files/pkg/items.py`, 'ITEMS = ["from the server"]\n')).status,
        200,
      );
      // …and the session changes it too.
      await showView(p, 'Explorer');
      const pkg = p.locator('.explorer-folders-view .monaco-list-row', { hasText: 'pkg' }).first();
      if ((await pkg.getAttribute('aria-expanded')) !== 'true') await pkg.click();
      await p.locator('.explorer-folders-view .monaco-list-row', { hasText: 'items.py' }).first().click();
      await p.locator('.tabs-container .tab.active', { hasText: 'items.py' }).waitFor();
      await p.locator('.editor-instance .monaco-editor .view-lines').first().click();
      await p.keyboard.press('Control+End');
      await p.keyboard.insertText('ITEMS.append("from the session")');
      await p.keyboard.press('Control+S');
      await p.locator('.tabs-container .tab.active.dirty').waitFor({ state: 'detached' });

      await p.locator('.statusbar-item', { hasText: 'Save to Server' }).first().click();
      const toast = p
        .locator('.notification-toast', { hasText: 'changed on the server since this session pulled it: pkg/items.py' })
        .first();
      await toast.waitFor();
      await p.locator('.statusbar-item', { hasText: 'Save to Server (1 conflict)' }).first().waitFor();
      assert.equal(await stored('pkg/items.py'), 'ITEMS = ["from the server"]\n', 'a conflicting file is not overwritten unasked');
      await wb.screenshot('extension-7-conflict');
      await toast.getByRole('button', { name: 'Overwrite on Server' }).click();
      assert.equal(
        await eventually('the overwrite', async () => {
          const text = await stored('pkg/items.py');
          return text?.includes('from the session') ? text : undefined;
        }),
        'ITEMS = []\nITEMS.append("from the session")',
      );
      await p
        .locator('.statusbar-item', { hasText: /^\s*Save to Server · saved/ })
        .first()
        .waitFor();
    });
  });

  it('opens the browser IDE through a one-time launch URL', async () => {
    await step('browser', async () => {
      const p = page();
      await showView(p, 'CrawlHub');
      const { path, url } = await launchedFrom(p, () => chooseFromContextMenu(sideBarRow('books', p), 'Open Session in Browser'));
      assert.equal(path, `/code-server/${sessionId}/`);
      assert.ok(url.searchParams.get('ticket'), 'a one-time ticket');
      const ide = await p.context().newPage();
      await ide.goto(`${svc.url}${path}${url.search}`);
      // The ticket became a cookie and the address lost it; the session's own workbench opens.
      await eventually('the ticket traded for a cookie', async () => (new URL(ide.url()).searchParams.has('ticket') ? undefined : true));
      await ide.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
      await ide.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' }).first().waitFor({ timeout: 60_000 });
      await ide.screenshot({ path: `${wb.resultsDir}/extension-8-browser-ide.png`, animations: 'disabled' });
      for (const other of p.context().pages()) if (other !== p) await other.close();
    });
  });

  it('opens a server running in the session in the browser, through a port launch URL', async () => {
    await step('port', async () => {
      const p = page();
      dockerExec(
        containerName(svc, sessionId),
        'mkdir -p /tmp/site && echo "<h1>crawl report on 8000</h1>" > /tmp/site/index.html && (nohup python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/site >/dev/null 2>&1 &)',
      );
      await showView(p, 'CrawlHub');
      const { path, url } = await launchedFrom(p, async () => {
        await chooseFromContextMenu(sideBarRow('books', p), 'Open a Port of the Session in Browser…');
        const title = p.locator('.quick-input-widget .quick-input-title', { hasText: /Open a port of the books session/ });
        await title.waitFor({ state: 'visible' });
        await p.locator('.quick-input-widget input').fill('8080');
        await p.locator('.quick-input-widget', { hasText: /code-server itself/ }).waitFor();
        await p.locator('.quick-input-widget input').fill('8000');
        await p.locator('.quick-input-widget', { hasText: /code-server itself/ }).waitFor({ state: 'hidden' });
        await wb.screenshot('extension-8c-port-input');
        await p.locator('.quick-input-widget input').press('Enter');
      });
      assert.equal(path, `/code-server/${sessionId}/proxy/8000/`);
      const site = await p.context().newPage();
      await site.goto(`${svc.url}${path}${url.search}`);
      await site.getByRole('heading', { name: 'crawl report on 8000' }).waitFor({ timeout: 30_000 });
      assert.equal(new URL(site.url()).search, '', 'the ticket became a cookie');
      await site.screenshot({ path: `${wb.resultsDir}/extension-8d-port-in-browser.png`, animations: 'disabled' });
      for (const other of p.context().pages()) if (other !== p) await other.close();
    });
  });

  it('shows my session with both deadlines in the Sessions view', async () => {
    await step('sessions-view', async () => {
      const p = page();
      await showView(p, 'CrawlHub');
      const spider = sideBarRow('books', p);
      await spider.waitFor();
      const session = sideBarRow(/idle \d+ min · hard \d+ h/, p);
      await session.waitFor();
      assert.match(await session.innerText(), /books\s*idle \d+ min · hard (4 h|3 h \d+ min)/);
      assert.match(await spider.innerText(), /books\s*ready/);
      // The tooltip names both deadlines. A hover shows once the pointer comes onto the row: after
      // pages opened and closed by the steps before, the pointer is moved off and back, a few times at most.
      await p.bringToFront();
      const tooltip = p.locator('.monaco-hover, .workbench-hover', { hasText: /Idle stop: .*Hard stop:/s }).first();
      for (let attempt = 1; ; attempt++) {
        await p.mouse.move(700, 300);
        await session.hover();
        const shown = await tooltip.waitFor({ timeout: 15_000 }).then(
          () => true,
          () => false,
        );
        if (shown) break;
        assert.ok(attempt < 4, 'the session tooltip did not show');
      }
      await wb.screenshot('extension-8b-sessions-view');
    });
  });

  it('keeps a session the user works in alive when its idle stop nears, without a warning', async () => {
    await step('warning-while-working', async () => {
      const p = page();
      // Activity in a session file (moving the cursor) that no heartbeat has carried yet…
      await focusEditor(/^main\.py$/);
      await p.keyboard.press('Control+Home');
      await p.keyboard.press('End');
      const before = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
      const beats = heartbeats;
      const answered = /heartbeat books: idle stop moved to/g;
      const answersLogged = () => cs.extensionLog().match(answered)?.length ?? 0;
      const logged = answersLogged();
      // …and the sweeper's idle warning: the extension answers it with a heartbeat at once.
      await svc.services.sessions.sweep(Date.parse(before.idle_deadline) - 7 * 60_000);
      await eventually('the heartbeat', async () => (heartbeats > beats ? true : undefined));
      const after = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
      assert.ok(after.idle_deadline > before.idle_deadline, 'the heartbeat moved the idle stop');
      // The extension has the heartbeat's answer (it logs it), so it is done with the warning: had
      // it meant to show one, the toast would have been asked for by now.
      await eventually('the extension to log the heartbeat’s answer', async () => (answersLogged() > logged ? true : undefined));
      assert.equal(
        await p.locator('.notification-toast', { hasText: /for lack of activity/ }).count(),
        0,
        'no warning for someone working',
      );
    });
  });

  it('warns before the session stops; Keep working sends a heartbeat', async () => {
    await step('warning', async () => {
      const p = page();
      const toast = p
        .locator('.notification-toast', { hasText: /the session of books stops in \d+ minutes .* for lack of activity/ })
        .first();
      // Nothing happened since the heartbeat of the step before — but a cursor move of that step may
      // reach the extension only after its heartbeat took the activity (the workbench delivers
      // selection events on its own time). Then this warning too is answered with a heartbeat, as it
      // should be, and the sweeper is asked again: a warning nobody's activity answers is shown.
      let before: { idle_deadline: string } | undefined;
      for (let attempt = 1; !before; attempt++) {
        const now = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
        const beats = heartbeats;
        // The real sweeper, asked to look at the session 7 minutes before its idle stop.
        // (7 minutes, or a little more: the sweeper first takes the browser IDE's own activity into account.)
        await svc.services.sessions.sweep(Date.parse(now.idle_deadline) - 7 * 60_000);
        const outcome = await eventually('the warning, or a heartbeat for late activity', async () =>
          (await toast.count()) > 0 ? 'warning' : heartbeats > beats ? 'heartbeat' : undefined,
        );
        if (outcome === 'warning') before = now;
        else assert.ok(attempt < 3, 'every warning was answered with a heartbeat: activity that never ends');
      }
      await toast.waitFor();
      assert.ok(await toast.getByRole('button', { name: 'Save now' }).isVisible());
      await wb.screenshot('extension-9-stop-warning');
      // The heartbeat is counted where it lands: the sweep may have moved the activity time as well
      // (the browser IDE's), so a later last_active_at alone would not show that Keep working sent one.
      const beats = heartbeats;
      await toast.getByRole('button', { name: 'Keep working' }).click();
      await eventually('the heartbeat', async () => (heartbeats > beats ? true : undefined));
      const after = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
      assert.ok(after.idle_deadline > before.idle_deadline, 'Keep working moved the idle stop');
    });
  });

  it('says so when a process in the session runs out of memory', async () => {
    await step('oom', async () => {
      const p = page();
      const crawl = dockerExec(containerName(svc, sessionId), 'python3 -c "x = bytearray(2 << 30)"; echo "exit=$?"');
      assert.match(crawl.stdout, /exit=137/);
      await p
        .locator('.notification-toast', { hasText: /out of memory in the session of books \(1 GB\): a process was killed/ })
        .first()
        .waitFor();
      await wb.screenshot('extension-9b-out-of-memory');
    });
  });

  it('closes the session: asks first, saves (unsaved editors too), then stops it', async () => {
    await step('close', async () => {
      const p = page();
      await focusEditor(/^main\.py$/);
      await p.keyboard.press('Control+End');
      await p.keyboard.insertText('\nprint("last edit")');
      // Not saved (autosave is off): Close Session writes the editor into the container before the server saves.
      await p.locator('.tabs-container .tab.active.dirty').waitFor();

      await runCommand(p, 'CrawlHub: Close Session');
      await p.locator('.monaco-dialog-box', { hasText: 'Close the CrawlHub session of books?' }).waitFor();
      await wb.screenshot('extension-10-close-asks');
      await p.getByRole('button', { name: 'Save and Close' }).click();
      await p
        .getByText(/Closed the session of books \(saved: 1 modified\)/)
        .first()
        .waitFor();
      const session = await json(await svc.api(token, 'GET', `/api/sessions/${sessionId}`));
      assert.equal(session.status, 'stopped');
      assert.match((await stored('main.py')) ?? '', /last edit/);
      assert.equal(await p.locator('.tabs-container .tab.dirty').count(), 0);
      // The window still shows the stopped session's folder: the status bar says so, with no warning
      // on top of the user's own Close.
      await p.locator('.statusbar-item', { hasText: 'session stopped' }).first().waitFor();
      assert.equal(await p.locator('.notification-toast', { hasText: 'the session of books is stopped' }).count(), 0);
      await wb.screenshot('extension-11-closed');
    });
  });
});
