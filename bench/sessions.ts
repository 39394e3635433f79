// Code sessions against what Docker itself does, measured in one run:
//   (a) open a 100-file spider until ready      vs  docker run of the image + wait for /healthz
//   (b) a full save of 1,000 files / 50 MB        vs  docker cp of the same tree out of the container
//   (c) a save after one of those files changed   vs  (b)'s docker cp
//
//   node --import tsx bench/sessions.ts      (BENCH_ROUNDS, default 7; medians are reported)
//
// Targets: (a) ≤ 1.5×, (b) ≤ 1.5×, (c) ≤ 0.3×. The table goes to stdout and, as JSON, to
// bench/results/sessions.json.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestService, json, type TestService } from '../test/helpers/service';
import { makeTar } from '../test/helpers/tar';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const IMAGE = process.env.CRAWLHUB_IMAGE || 'crawlhub-code-server:latest';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const ms = async (task: () => unknown) => {
  const t = performance.now();
  await task();
  return performance.now() - t;
};

/**
 * Lets the disk settle before a timed step: dirty pages written out, and — on the btrfs storage
 * driver — subvolumes of containers removed in earlier rounds cleaned up (btrfs does that in the
 * background, and it made each round's figures slower than the last).
 */
function settle(): void {
  spawnSync('sync');
  const info = spawnSync('docker', ['info', '--format', '{{.Driver}} {{.DockerRootDir}}'], { encoding: 'utf8' });
  const [driver, root] = info.stdout.trim().split(' ');
  if (driver === 'btrfs' && root) spawnSync('btrfs', ['subvolume', 'sync', root], { timeout: 60_000 });
}

async function waitHealthy(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('code-server did not answer');
}

/** (a) baseline: the same image with the same limits, started by the Docker CLI. */
async function dockerRun(port: number): Promise<number> {
  const name = `bench-run-${process.pid}-${port}`;
  const took = await ms(async () => {
    docker(
      'run',
      '-d',
      '--name',
      name,
      '--user',
      '1000:1000',
      '--init',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      '--memory',
      '1g',
      '--cpus',
      '1',
      '-p',
      `127.0.0.1:${port}:8080`,
      IMAGE,
      '--bind-addr',
      '0.0.0.0:8080',
      '--auth',
      'none',
      '/workspace',
    );
    await waitHealthy(port);
  });
  docker('rm', '-f', name);
  return took;
}

async function main(): Promise<void> {
  const svc: TestService = await startTestService({
    env: { CRAWLHUB_LOG_LEVEL: 'warn', CRAWLHUB_SWEEP_INTERVAL: '1h', CRAWLHUB_PORT_RANGE: '10200-10299' },
  });
  const token = svc.adminToken;
  const files = Array.from({ length: 100 }, (_, i) => ({
    name: `pkg${i % 10}/mod${i}.py`,
    data: `# module ${i}\n${'x = 1\n'.repeat(200)}`,
  }));
  const open: number[] = [];
  const run: number[] = [];
  const full: number[] = [];
  const cp: number[] = [];
  const one: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      run.push(await dockerRun(10300 + round));
      const spider = await json(await svc.api(token, 'POST', '/api/spiders', { name: `bench-${round}` }));
      await svc.api(token, 'POST', `/api/spiders/${spider.id}/archive`, await makeTar(files));
      let session: { session_id: string; status: string } = { session_id: '', status: '' };
      open.push(
        await ms(async () => {
          session = await json(await svc.api(token, 'POST', `/api/spiders/${spider.id}/code-session?wait=1`));
        }),
      );
      if (session.status !== 'ready') throw new Error(`the session did not start: ${JSON.stringify(session)}`);
      const container = `crawlhub-${svc.config.instance}-${session.session_id}`;
      // A 1,000-file, 50 MB workspace written in the container (incompressible bytes).
      const made = spawnSync(
        'docker',
        [
          'exec',
          '-u',
          '1000:1000',
          container,
          'sh',
          '-c',
          'cd /workspace && mkdir -p data && for i in $(seq 1 900); do head -c 55000 /dev/urandom > data/f$i.bin; done',
        ],
        { encoding: 'utf8' },
      );
      if (made.status !== 0) throw new Error(made.stderr);
      // The files were just written: a first read of them is slower. One untimed copy first, so
      // that the timed docker cp and the save after it both read a warm tree; and the disk settles
      // before each timed step, so that neither pays for the writes of the step before.
      const dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cp-')));
      docker('cp', `${container}:/workspace`, dirs[0]);
      settle();
      cp.push(await ms(() => docker('cp', `${container}:/workspace`, dirs[1])));
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
      settle();
      let saved: { added: string[] } = { added: [] };
      full.push(
        await ms(async () => {
          saved = await json(await svc.api(token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
        }),
      );
      if (saved.added.length !== 900) throw new Error(`the full save added ${saved.added.length} files`);
      docker('exec', '-u', '1000:1000', container, 'sh', '-c', 'echo changed >> /workspace/data/f17.bin');
      one.push(
        await ms(async () => {
          const r = await json(await svc.api(token, 'POST', `/api/spiders/${spider.id}/code-session/sync`));
          if (r.modified.length !== 1) throw new Error(`expected one modified file: ${JSON.stringify(r).slice(0, 300)}`);
        }),
      );
      await svc.api(token, 'DELETE', `/api/spiders/${spider.id}/code-session?discard=1`);
    }
  } finally {
    await svc.close();
    const ids = docker('ps', '-aq', '--filter', `label=crawlhub.instance=${svc.config.instance}`).trim();
    if (ids) spawnSync('docker', ['rm', '-f', ...ids.split('\n')]);
  }
  const rows = [
    {
      row: '(a) open a 100-file spider until ready',
      ours: median(open),
      baseline: median(run),
      baselineName: 'docker run + /healthz',
      target: 1.5,
    },
    {
      row: '(b) full save, 1,000 files / 50 MB',
      ours: median(full),
      baseline: median(cp),
      baselineName: 'docker cp of /workspace',
      target: 1.5,
    },
    {
      row: '(c) save after one file changed',
      ours: median(one),
      baseline: median(cp),
      baselineName: 'docker cp of /workspace',
      target: 0.3,
    },
  ];
  console.log(`\nCode sessions (median of ${ROUNDS} rounds; ratio = ours / baseline, lower is better)\n`);
  console.log('| measure | CrawlHub | baseline | ratio | target |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.ours / r.baseline;
    console.log(
      `| ${r.row} | ${Math.round(r.ours)} ms | ${Math.round(r.baseline)} ms (${r.baselineName}) | ${ratio.toFixed(2)}× | ≤ ${r.target}× ${ratio <= r.target ? '✓' : '✗'} |`,
    );
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(
    path.join(__dirname, 'results/sessions.json'),
    JSON.stringify({ rounds: ROUNDS, rows, samples: { open, run, full, cp, one } }, null, 2),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
