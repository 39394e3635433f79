import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium, never a downloaded one. */
export const CHROMIUM = '/usr/bin/chromium';
export const RESULTS_DIR = path.resolve(__dirname, '../../test-results');

export interface Workbench {
  browser: Browser;
  page: Page;
  /** Console errors and uncaught exceptions of the page, from its first load. */
  errors: string[];
  /** `<status> <url>` of every response of 400 or more, from the first load. */
  httpErrors: string[];
  /** Saves a full-page screenshot as test-results/<name>.png and returns its path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Chromium flags added after the usual ones (a `--host-resolver-rules=…` here replaces LOOPBACK_ONLY). */
  args?: string[];
  /** How long the workbench may take to render (a cold code-server takes ~7 s). */
  timeoutMs?: number;
}

/**
 * Every host name resolves to nothing but the loopback ones (`*.localhost` too, which the proxy's
 * subdomain mode uses): a page under test can never reach past this machine, whatever it links to.
 */
export const LOOPBACK_ONLY = '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost, EXCLUDE *.localhost';

/** Debian's headless Chromium with the flags this machine's closed network needs. */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      LOOPBACK_ONLY,
      ...extraArgs,
    ],
  });
}

/**
 * Opens a browser IDE URL (a launch URL with its ticket) in headless Chromium and waits until
 * the workbench and its explorer are up, answering the workspace-trust question as a user would.
 */
export async function openWorkbench(url: string, opts: OpenOptions = {}): Promise<Workbench> {
  const timeout = opts.timeoutMs ?? 60_000;
  const browser = await launchChromium(opts.args);
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (err) => errors.push(String(err)));
    const httpErrors: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) httpErrors.push(`${r.status()} ${r.url()}`);
    });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.locator('.monaco-workbench').waitFor({ state: 'visible' });
    await trustWorkspace(page);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ state: 'visible' });
    const workbench: Workbench = {
      browser,
      page,
      errors,
      httpErrors,
      async screenshot(name) {
        fs.mkdirSync(RESULTS_DIR, { recursive: true });
        const file = path.join(RESULTS_DIR, `${name}.png`);
        await page.screenshot({ path: file });
        return file;
      },
      close: () => browser.close(),
    };
    return workbench;
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** The workspace-trust dialog shows on a folder's first opening; it may also never come. */
async function trustWorkspace(page: Page): Promise<void> {
  const trust = page.getByRole('button', { name: /Yes, I trust the authors/i });
  try {
    await trust.waitFor({ state: 'visible', timeout: 5_000 });
    await trust.click();
    await trust.waitFor({ state: 'hidden', timeout: 10_000 });
  } catch {
    // No dialog: trust is off or was given before.
  }
}

/** The names the explorer shows at its top level (and in expanded folders). */
export async function explorerNames(page: Page): Promise<string[]> {
  return page.locator('.explorer-folders-view .monaco-list-row .label-name').allInnerTexts();
}

/** Opens `a/b/c.py` by clicking through the explorer, as a user would, and waits for its editor. */
export async function openFileInExplorer(page: Page, filePath: string): Promise<void> {
  const parts = filePath.split('/');
  for (let i = 0; i < parts.length; i++) {
    const row = page.locator(`.explorer-folders-view .monaco-list-row[aria-level="${i + 1}"]`, {
      has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(parts[i])}$`) }),
    });
    await row.first().waitFor({ state: 'visible' });
    const last = i === parts.length - 1;
    if (!last && (await row.first().getAttribute('aria-expanded')) === 'true') continue;
    await row.first().click();
  }
  const name = parts[parts.length - 1];
  await page.locator('.tabs-container .tab.active', { hasText: name }).waitFor({ state: 'visible' });
  await page.locator('.editor-instance .monaco-editor .view-lines').first().waitFor({ state: 'visible' });
}

/**
 * Types at the end of the active editor and saves with Ctrl+S; waits until the tab is no longer
 * dirty (the check that the file reached the disk is the caller's). Lines after the first get the
 * editor's auto-indent, as they would for a user.
 */
export async function typeAndSave(page: Page, text: string): Promise<void> {
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) await page.keyboard.press('Enter');
    if (lines[i]) await page.keyboard.insertText(lines[i]);
  }
  // The tab turns dirty once the edit lands (unless auto-save already wrote it).
  const dirty = page.locator('.tabs-container .tab.active.dirty');
  await dirty.waitFor({ state: 'visible', timeout: 5_000 }).catch(() => undefined);
  await page.keyboard.press('Control+S');
  await dirty.waitFor({ state: 'detached' });
}

/** Runs a command by its title from the command palette (F1), as a user would. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await page.keyboard.insertText(title);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
}

/** Waits until some frame of the page (a webview's, say) shows `text`; at most `timeoutMs`. */
export async function frameShowing(page: Page, text: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      const body = await frame
        .locator('body')
        .innerText({ timeout: 500 })
        .catch(() => '');
      if (body.includes(text)) return frame.url();
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no frame showed ${JSON.stringify(text)} within ${timeoutMs} ms`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
