// What a user of the browser IDE feels of the proxy: the time until code-server's workbench shows
// a 100-file spider in its explorer, through the service's proxy against a direct connection to
// the same container's published port, in one run:
//
//   node --import tsx bench/workbench.ts      (BENCH_ROUNDS, default 11; medians are reported)
//
// Each round and target gets a new browser context: a cold load (empty cache, as on a first visit)
// and then a reload of the same page (warm: what a user sees on every later visit). Both targets
// start with their cookie already in the browser (the proxy's from a launch ticket, code-server's
// own password cookie for the direct port), so the two load exactly the same workbench. Rounds
// alternate which target goes first. Debian's Chromium, headless. The table goes to stdout and,
// as JSON, to bench/results/workbench.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { containerName, docker, removeContainers } from '../test/helpers/docker';
import { launchChromium } from '../test/helpers/ide';
import { json, startTestService } from '../test/helpers/service';
import { makeTar } from '../test/helpers/tar';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Target {
  name: 'direct' | 'crawlhub';
  url: string;
  cookies: { name: string; value: string; domain: string; path: string }[];
}

/** A Scrapy-shaped project of 100 small files. */
function spiderFiles(): { name: string; data: string }[] {
  const files = [
    { name: 'scrapy.cfg', data: '[settings]\ndefault = books.settings\n' },
    { name: 'books/__init__.py', data: '' },
    { name: 'books/settings.py', data: 'BOT_NAME = "books"\n' },
    { name: 'books/spiders/__init__.py', data: '' },
  ];
  for (let i = files.length; i < 100; i++) {
    files.push({ name: `books/spiders/site_${i}.py`, data: `import scrapy\n\n\nclass Site${i}(scrapy.Spider):\n    name = "site_${i}"\n` });
  }
  return files;
}

/** Milliseconds from navigation until the explorer lists the spider's folder. */
async function untilExplorer(page: Page, load: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await load();
  await page.locator('.explorer-folders-view .monaco-list-row .label-name', { hasText: /^books$/ }).waitFor({ state: 'visible' });
  return performance.now() - started;
}

async function measure(browser: Browser, t: Target): Promise<{ cold: number; warm: number }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  try {
    await context.addCookies(t.cookies.map((c) => ({ ...c, httpOnly: true, sameSite: 'Lax' as const })));
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    const cold = await untilExplorer(page, () => page.goto(t.url, { waitUntil: 'commit' }));
    // Let the workbench finish what it does after the explorer shows (extension host, file watcher).
    await page.waitForTimeout(1_500);
    const warm = await untilExplorer(page, () => page.reload({ waitUntil: 'commit' }));
    // Closing a tab that is still connecting leaves its extension host waiting to reconnect.
    await page.waitForTimeout(1_500);
    return { cold, warm };
  } finally {
    await context.close();
  }
}

async function main(): Promise<void> {
  // Dozens of tabs in a few minutes: extension hosts of any tab that went away uncleanly go after 10 s.
  const svc = await startTestService({ env: { CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_RECONNECT_GRACE: '10s' } });
  let browser: Browser | undefined;
  try {
    const user = await svc.newUser('bench');
    const spider = await json(await svc.api(user.token, 'POST', '/api/spiders', { name: 'books' }));
    await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/archive`, await makeTar(spiderFiles()));
    const session = await json(await svc.api(user.token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
    if (session.status !== 'ready') throw new Error(`the session is ${session.status}`);
    const id: string = session.session_id;
    const port = Number(docker('port', containerName(svc, id), '8080/tcp').trim().split(':').at(-1));

    // The proxy's cookie, from a launch ticket as a browser would get it.
    const { url: launch } = await json(await svc.api(user.token, 'POST', `/api/sessions/${id}/launch`));
    const redeemed = await fetch(launch, { redirect: 'manual' });
    const set = redeemed.headers.getSetCookie();
    const pair = (cookieName: string) => {
      const found = set.find((c) => c.startsWith(`${cookieName}=`));
      if (redeemed.status !== 302 || !found) throw new Error(`the launch URL answered ${redeemed.status} without ${cookieName}`);
      return found.split(';')[0].split(/=(.*)/s)[1];
    };
    const targets: Target[] = [
      {
        name: 'direct',
        url: `http://127.0.0.1:${port}/?folder=/workspace`,
        cookies: [{ name: 'code-server-session', value: svc.services.sessions.upstreamSecret(id), domain: '127.0.0.1', path: '/' }],
      },
      {
        name: 'crawlhub',
        url: `${svc.url}/code-server/${id}/?folder=/workspace`,
        cookies: [
          { name: 'crawlhub_ide', value: pair('crawlhub_ide'), domain: '127.0.0.1', path: `/code-server/${id}/` },
          // The browser's binding to its user (path mode).
          { name: 'crawlhub_ide_user', value: pair('crawlhub_ide_user'), domain: '127.0.0.1', path: '/code-server/' },
        ],
      },
    ];

    browser = await launchChromium();
    process.stderr.write('warming up…\n');
    for (const t of targets) await measure(browser, t);
    const cold: Record<string, number[]> = { direct: [], crawlhub: [] };
    const warm: Record<string, number[]> = { direct: [], crawlhub: [] };
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
      for (const t of round % 2 ? [...targets].reverse() : targets) {
        const m = await measure(browser, t);
        process.stderr.write(`  ${t.name}: cold ${m.cold.toFixed(0)} ms, warm ${m.warm.toFixed(0)} ms\n`);
        cold[t.name].push(m.cold);
        warm[t.name].push(m.warm);
      }
    }

    const rows = [
      { label: 'workbench, first visit (empty cache)', direct: median(cold.direct), crawlhub: median(cold.crawlhub) },
      { label: 'workbench, reload (warm cache)', direct: median(warm.direct), crawlhub: median(warm.crawlhub) },
    ];
    const header = ['', 'direct', 'crawlhub', 'ratio'];
    const lines = rows.map((r) => [
      r.label,
      `${r.direct.toFixed(0)} ms`,
      `${r.crawlhub.toFixed(0)} ms`,
      `${(r.crawlhub / r.direct).toFixed(2)}×`,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const row = (cs: string[]) => `| ${cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
    process.stdout.write(
      `\nBrowser IDE load, code-server in a session container, headless Chromium, ${os.cpus().length} CPUs: ` +
        `until the explorer shows a 100-file spider, median of ${ROUNDS} rounds; direct = the container's published port.\n\n` +
        [
          row(header),
          `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
          ...lines.map(row),
        ].join('\n') +
        '\n',
    );
    fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    fs.writeFileSync(
      path.join(__dirname, 'results/workbench.json'),
      JSON.stringify({ at: new Date().toISOString(), cpus: os.cpus().length, rounds: ROUNDS, cold, warm, rows }, null, 2),
    );
  } finally {
    await browser?.close();
    await svc.close();
    removeContainers(svc.config.instance);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
