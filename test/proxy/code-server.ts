import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/** A real code-server container, run the way the service runs sessions (password auth, hardened). */
export interface CodeServerContainer {
  name: string;
  port: number;
  secret: string;
  /** Runs a shell command in the container as its user. */
  exec(script: string): string;
  remove(): void;
}

const IMAGE = process.env.CRAWLHUB_IMAGE || 'crawlhub-code-server:latest';
const started = new Set<string>();
// Whatever happens to the test process, its containers go with it.
process.once('exit', () => {
  for (const name of started) spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
});

export function dockerAvailable(): string | null {
  const info = spawnSync('docker', ['image', 'inspect', IMAGE], { encoding: 'utf8', timeout: 30_000 });
  return info.status === 0 ? null : `needs a Docker engine and the image ${IMAGE} (images/local/build.sh)`;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startCodeServer(): Promise<CodeServerContainer> {
  const secret = randomBytes(32).toString('hex');
  const name = `proxytest-${randomBytes(4).toString('hex')}`;
  // The port may be taken between freePort() and docker run; a few tries settle that.
  let port = 0;
  for (let attempt = 0; attempt < 5 && port === 0; attempt++) {
    const candidate = await freePort();
    const run = spawnSync(
      'docker',
      [
        'run',
        '-d',
        '--rm',
        '--name',
        name,
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '--memory',
        '1g',
        '-e',
        `HASHED_PASSWORD=${secret}`,
        '-p',
        `127.0.0.1:${candidate}:8080`,
        IMAGE,
        '--bind-addr',
        '0.0.0.0:8080',
        '--auth',
        'password',
        '--disable-telemetry',
        '--disable-update-check',
        '/workspace',
      ],
      // A busy engine can take a minute or more to create and start a container.
      { encoding: 'utf8', timeout: 240_000 },
    );
    started.add(name);
    if (run.status === 0) {
      port = candidate;
    } else if (!/port is already allocated|address already in use/i.test(run.stderr ?? '')) {
      spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore', timeout: 60_000 });
      throw new Error(`docker run failed (${run.error?.message ?? `exit ${run.status}`}): ${run.stderr}`);
    }
  }
  if (!port) throw new Error('no free port for the container');
  const container: CodeServerContainer = {
    name,
    port,
    secret,
    exec: (script) => execFileSync('docker', ['exec', name, 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 }),
    remove() {
      spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore', timeout: 60_000 });
      started.delete(name);
    },
  };
  // Ready when /healthz answers (it needs no auth); at most 60 s.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if ((await healthz(port)) === 200) break;
    if (Date.now() > deadline) {
      const logs = spawnSync('docker', ['logs', name], { encoding: 'utf8' });
      container.remove();
      throw new Error(`code-server did not answer /healthz within 60 s:\n${logs.stdout}${logs.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return container;
}

/**
 * The status of GET /healthz, or 0 when nothing answers. node:http rather than fetch: a pending
 * fetch here did not keep the event loop alive, and the process quietly exited mid-wait.
 */
function healthz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** A small Scrapy project, written into the container's /workspace. */
export const SCRAPY_PROJECT: Record<string, string> = {
  'README.md': '# Quotes spider\n\nCollects **quotes** from quotes.toscrape.com.\n',
  'scrapy.cfg': '[settings]\ndefault = quotes.settings\n\n[deploy]\nproject = quotes\n',
  'quotes/__init__.py': '',
  'quotes/settings.py': 'BOT_NAME = "quotes"\nSPIDER_MODULES = ["quotes.spiders"]\nROBOTSTXT_OBEY = True\n',
  'quotes/spiders/__init__.py': '',
  'quotes/spiders/quotes.py':
    'import scrapy\n\n\nclass QuotesSpider(scrapy.Spider):\n    name = "quotes"\n    start_urls = ["https://quotes.toscrape.com/"]\n\n' +
    '    def parse(self, response):\n        for quote in response.css("div.quote"):\n            yield {"text": quote.css("span.text::text").get()}\n',
};

export function copyProject(container: CodeServerContainer, files: Record<string, string>): void {
  // Through docker exec as the container's user, so the files are theirs; base64 keeps quoting simple.
  const script = Object.entries(files)
    .map(([path, text]) => {
      const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '.';
      return `mkdir -p '/workspace/${dir}' && printf '%s' '${Buffer.from(text).toString('base64')}' | base64 -d > '/workspace/${path}'`;
    })
    .join(' && ');
  container.exec(script);
}
