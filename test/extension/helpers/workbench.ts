import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../../helpers/ide';

// A real VS Code workbench for the extension's end-to-end test: code-server (VS Code for the web,
// its extension host in Node 24) with the packaged .vsix installed, driven by Debian's Chromium
// through playwright-core. Nothing is mocked. code-server and Node are the npm installs that
// images/local/build.sh keeps in its cache, in the versions that script names.

export const ROOT = path.resolve(__dirname, '../../..');
export const RESULTS_DIR = path.join(ROOT, 'test-results');
export const VSIX = path.join(ROOT, 'dist/crawlhub-code.vsix');
const BUILD_SCRIPT = path.join(ROOT, 'images/local/build.sh');

/** `NAME=value` as images/local/build.sh sets it. */
function buildScriptVersion(name: string): string {
  const m = new RegExp(`^${name}=([0-9][0-9A-Za-z.-]*)$`, 'm').exec(fs.readFileSync(BUILD_SCRIPT, 'utf8'));
  if (!m) throw new Error(`${BUILD_SCRIPT} does not set ${name}`);
  return m[1];
}

/** The cache build.sh fills: CRAWLHUB_CACHE_DIR, /var/cache/crawlhub when unset or empty (as in the script). */
export const CACHE_DIR = process.env.CRAWLHUB_CACHE_DIR || '/var/cache/crawlhub';
export const CODE_SERVER = path.join(
  CACHE_DIR,
  `code-server-${buildScriptVersion('CODE_SERVER_VERSION')}`,
  'node_modules/.bin/code-server',
);
export const NODE24_BIN = path.join(CACHE_DIR, `node-${buildScriptVersion('NODE_VERSION')}`, 'bin');
/** Set to 1 to leave the workbench test out on a machine that cannot run it; otherwise a missing piece fails it. */
export const SKIP_ENV = 'CRAWLHUB_SKIP_WORKBENCH_E2E';

/** Why the workbench cannot run here, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
  if (!fs.existsSync(CODE_SERVER)) return `code-server is not installed at ${CODE_SERVER}`;
  if (!fs.existsSync(path.join(NODE24_BIN, 'node'))) return `Node 24 is not at ${NODE24_BIN}`;
  if (!fs.existsSync(CHROMIUM)) return `Chromium is not at ${CHROMIUM}`;
  return undefined;
}

/** The reason to skip the workbench test, when its opt-out is set; false otherwise (then it runs, or fails). */
export function workbenchSkipped(): string | false {
  return process.env[SKIP_ENV] === '1' ? `${SKIP_ENV}=1` : false;
}

/** Fails at once, saying what to do, when code-server, Node 24 or Chromium is missing (like requireDocker). */
export function requireWorkbench(): void {
  const missing = missingPrerequisite();
  assert.equal(
    missing,
    undefined,
    `The extension's workbench test cannot run: ${missing}. Run images/local/build.sh (with the same CRAWLHUB_CACHE_DIR), ` +
      `or set ${SKIP_ENV}=1 to leave it out.`,
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Builds dist/crawlhub-code.vsix when it is missing (npm test packages it before the tests). */
export function ensureVsix(): void {
  if (fs.existsSync(VSIX)) return;
  const res = spawnSync('npm', ['run', '--silent', 'package'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  if (res.status !== 0) throw new Error(`npm run package failed: ${res.stderr}`);
}

export interface CodeServer {
  url: string;
  dir: string;
  /** code-server's own output, for failure reports. */
  output(): string;
  /** The extension's log (its LogOutputChannel) as written so far. */
  extensionLog(): string;
  stop(): Promise<void>;
}

/** Installs the .vsix into a fresh profile and starts code-server on a free loopback port with no folder. */
export async function startCodeServer(): Promise<CodeServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-vscode-'));
  const userData = path.join(dir, 'user-data');
  const extensions = path.join(dir, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'home'));
  fs.writeFileSync(
    path.join(userData, 'User/settings.json'),
    JSON.stringify({
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'chat.disableAIFeatures': true,
      'security.workspace.trust.enabled': false,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'update.mode': 'none',
      'telemetry.telemetryLevel': 'off',
      'files.autoSave': 'off',
    }),
  );
  const env = {
    ...process.env,
    PATH: `${NODE24_BIN}:${process.env.PATH ?? ''}`,
    HOME: path.join(dir, 'home'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_DATA_HOME: path.join(dir, 'data'),
  };
  const install = spawnSync(CODE_SERVER, ['--install-extension', VSIX, '--extensions-dir', extensions, '--user-data-dir', userData], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (install.status !== 0 || !/successfully installed/.test(install.stdout)) {
    throw new Error(`installing the .vsix failed (${install.status}): ${install.stdout}\n${install.stderr}`);
  }
  const port = await freePort();
  let out = '';
  const child: ChildProcess = spawn(
    CODE_SERVER,
    [
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--log',
      'debug',
      '--extensions-dir',
      extensions,
      '--user-data-dir',
      userData,
    ],
    // Its own process group: stop() ends code-server and the extension host it started, nothing else.
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-50_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-50_000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || !child.pid) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const killed = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
    if (!killed) process.kill(-child.pid, 'SIGKILL');
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i >= 120 || child.exitCode !== null) {
      await stop();
      throw new Error(`code-server did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    dir,
    output: () => out,
    extensionLog: () => {
      const logs = path.join(userData, 'logs');
      const found = fs.existsSync(logs)
        ? (fs.readdirSync(logs, { recursive: true }) as string[]).filter((f) =>
            f.endsWith(path.join('crawlhub.crawlhub-code', 'CrawlHub.log')),
          )
        : [];
      return found.map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('\n');
    },
    async stop() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Workbench {
  browser: Browser;
  page: Page;
  resultsDir: string;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function openBrowser(url: string): Promise<Workbench> {
  const browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.locator('.monaco-workbench').waitFor({ state: 'visible' });
  // The extension's contributions are registered once its container shows in the activity bar.
  await page.locator('.activitybar .action-label[aria-label="CrawlHub"]').waitFor({ state: 'visible' });
  return {
    browser,
    page,
    resultsDir: RESULTS_DIR,
    async screenshot(name) {
      fs.mkdirSync(RESULTS_DIR, { recursive: true });
      const file = path.join(RESULTS_DIR, `${name}.png`);
      await page.screenshot({ path: file, animations: 'disabled' });
      return file;
    },
    close: () => browser.close(),
  };
}

/** Runs a command from the palette by its title, as a user would (retrying while the palette does not list it yet). */
export async function runCommand(page: Page, title: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
  for (let attempt = 0; ; attempt++) {
    await page.keyboard.press('F1');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    try {
      await row.waitFor({ state: 'visible', timeout: 5_000 });
      break;
    } catch (err) {
      if (attempt >= 10) throw err;
      await page.keyboard.press('Escape');
      await page.waitForTimeout(1000);
    }
  }
  await page.keyboard.press('Enter');
}

/**
 * Right-clicks `target` and picks `item` from its context menu. The workbench's menu ignores a click
 * that comes the instant it opens, so the pick waits for the menu to settle and is retried.
 */
export async function chooseFromContextMenu(target: Locator, item: string): Promise<void> {
  const page = target.page();
  const entry = page.getByRole('menuitem', { name: item });
  for (let attempt = 0; ; attempt++) {
    if (!(await entry.isVisible())) await target.click({ button: 'right' });
    // A menu without the item (the right-click met something else) fails now, saying what it shows.
    await entry.waitFor({ state: 'visible', timeout: 10_000 }).catch(async () => {
      const shown = await page.getByRole('menuitem').allInnerTexts();
      await page.keyboard.press('Escape');
      throw new Error(`the context menu has no "${item}"; it shows: ${shown.join(', ') || 'nothing'}`);
    });
    await page.waitForTimeout(300);
    await entry.hover();
    await entry.click();
    try {
      await entry.waitFor({ state: 'hidden', timeout: 3_000 });
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

/** Shows a view container of the activity bar (a click on the one already shown would hide the side bar). */
export async function showView(page: Page, label: 'Explorer' | 'CrawlHub'): Promise<void> {
  const item = page.locator('.activitybar .action-item', { has: page.locator(`.action-label[aria-label^="${label}"]`) }).first();
  const action = item.locator('.action-label').first();
  if (!/\bchecked\b/.test((await item.getAttribute('class')) ?? '')) await action.click();
  await page.locator('.part.sidebar').waitFor({ state: 'visible' });
}

/** Answers the open input box with `text` once its title says `title`. */
export async function answerInput(page: Page, title: RegExp, text: string): Promise<void> {
  await page.locator('.quick-input-widget .quick-input-title', { hasText: title }).waitFor({ state: 'visible' });
  await page.locator('.quick-input-widget input').fill(text);
  await page.keyboard.press('Enter');
}

/** Polls `check` until it returns a value, a bounded number of times. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, tries = 120, delayMs = 500): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}
