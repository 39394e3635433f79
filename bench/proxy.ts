// The browser IDE proxy against a direct connection and against configurable-http-proxy (the
// proxy JupyterHub puts in front of its notebook servers), all to the same upstream, in one run:
//
//   node --import tsx bench/proxy.ts
//
// The upstream (a small GET, a 10 MB download, a WebSocket echo) runs where code-server does: in a
// container of the session image (CRAWLHUB_IMAGE, default crawlhub-code-server:latest) with a
// session's limits, its port published on 127.0.0.1 as the service publishes a session's. "Direct"
// is a connection to that port (through Docker's port proxy, as any client on the host connects).
// The proxies forward where the service's proxy does: to the container's address on its network
// (one hop less), which a column of its own measures too ("network"); all of them to the same
// address, so that they compare like with like. BENCH_UPSTREAM=host runs the upstream
// as a plain process on the host instead (no Docker; the proxies' own cost stands out more).
// A bare TCP relay (bench/lib/tcp-relay.ts) runs alongside as the floor: what any proxy in its own
// process costs before it parses a byte. Relay, CrawlHub proxy and configurable-http-proxy each
// run in their own process; this one is only the client. Rounds alternate between the targets so
// that drift on a shared machine (other processes, CPU frequency) falls on all of them alike.
// When Debian's nginx is installed (`apt-get install nginx-light`), it joins the table as a
// reference (bench/lib/nginx.ts): the design note's front proxy, a C proxy with no checks at all.
// Sample counts come from BENCH_GETS (10000), BENCH_WS (20000) and BENCH_DOWNLOADS (15) per pass;
// BENCH_PASSES (3) full passes. Each figure is the median of its passes; each ratio the median of
// the ratios within a pass, where both sides were measured side by side. The p99 rows rest on the
// slowest 1% of the samples, hence the many: with 4000 per pass (40 trips), CrawlHub's WebSocket p99
// against chp's, two proxies that relay frames alike, ranged 0.87–1.22× over three runs. The table
// goes to stdout and, as JSON, to bench/results/proxy.json.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { DOWNLOAD_BYTES } from './lib/upstream';
import { findNginx, startNginx } from './lib/nginx';
import {
  compile,
  cpuMs,
  freePort,
  get,
  median,
  openSocket,
  percentile,
  roundTrip,
  spawnJson,
  spawnListening,
  stop,
  target,
  type Target,
} from './lib/measure';

const GETS = Number(process.env.BENCH_GETS ?? 10_000);
const WS_TRIPS = Number(process.env.BENCH_WS ?? 20_000);
const DOWNLOADS = Number(process.env.BENCH_DOWNLOADS ?? 15);
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
/** Rounds per measurement; each visits the targets in a rotated order, so none always goes first. */
const ROUNDS = 20;
const UPSTREAM = process.env.BENCH_UPSTREAM === 'host' ? 'host' : 'container';
const IMAGE = process.env.CRAWLHUB_IMAGE || 'crawlhub-code-server:latest';
const root = path.resolve(__dirname, '..');

interface Row {
  label: string;
  unit: string;
  /** Lower is better (latency) or higher (throughput). */
  lowerIsBetter: boolean;
  values: Record<string, number>;
  /** Each pass's values, in the combined rows: ratios are taken within a pass. */
  perPass?: Record<string, number>[];
}

/**
 * `a` over `b` as the median of the ratios within each pass, where both were measured side by side
 * in alternating rounds, rather than a ratio of two medians that may come from different passes.
 */
function pairedRatio(r: Row, a: string, b: string): number {
  return median((r.perPass ?? [r.values]).map((v) => v[a] / v[b]));
}

async function cookieFromLaunch(launchUrl: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(launchUrl, { agent: false }, (res) => {
        res.resume();
        // The IDE cookie and, in path mode, the browser's binding to its user.
        const pairs = (res.headers['set-cookie'] ?? []).filter((c) => c.startsWith('crawlhub_ide')).map((c) => c.split(';')[0]);
        if (res.statusCode === 302 && pairs.some((p) => p.startsWith('crawlhub_ide='))) resolve(pairs.join('; '));
        else reject(new Error(`launch answered ${res.statusCode}`));
      })
      .on('error', reject);
  });
}

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * The upstream in a container of the session image, hardened and limited as a session's is (one
 * CPU, 1 GiB, no capabilities, no new privileges, user 1000), its port published on 127.0.0.1.
 */
async function containerUpstream(): Promise<{ port: number; address: string | null; stop: () => void }> {
  const script = compile(path.join(__dirname, 'lib/upstream.ts'), { standalone: true });
  const port = await freePort();
  const name = `crawlhub-bench-upstream-${process.pid}`;
  const stop = () => void spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  process.once('exit', stop);
  // The image's node: code-server's own in the production image, /opt/node in the local one.
  const run = 'exec "$(command -v node || echo /usr/lib/code-server/lib/node)" /tmp/upstream.cjs';
  docker(
    'create',
    '--name',
    name,
    '--user',
    '1000:1000',
    '--cpus',
    '1',
    '--memory',
    '1g',
    '--memory-swap',
    '1g',
    '--pids-limit',
    '512',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--publish',
    `127.0.0.1:${port}:8080`,
    '--env',
    'PORT=8080',
    '--env',
    'HOST=0.0.0.0',
    '--entrypoint',
    'sh',
    IMAGE,
    '-c',
    run,
  );
  docker('cp', script, `${name}:/tmp/upstream.cjs`);
  docker('start', name);
  // Docker's port proxy accepts connections before the server listens: wait for an answer.
  const probe = target('probe', port);
  for (let i = 0; i < 300; i++) {
    const ok = await get(probe, '/small').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) {
      // Where the service's proxy would reach it: the address on its network, if this process can.
      const ip = docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name).trim();
      const reachable = await get({ ...target('probe', 8080), host: ip }, '/small').then(
        (r) => r.status === 200,
        () => false,
      );
      return { port, address: reachable ? `${ip}:8080` : null, stop };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the upstream container did not answer on 127.0.0.1:${port} within 30 s: ${docker('logs', name)}`);
}

async function hostUpstream(): Promise<{ port: number; address: string | null; stop: () => void }> {
  const { child, info } = await spawnJson<{ port: number }>(process.execPath, [compile(path.join(__dirname, 'lib/upstream.ts'))]);
  return { port: info.port, address: null, stop: () => stop(child) };
}

async function main(): Promise<void> {
  const up = UPSTREAM === 'container' ? await containerUpstream() : await hostUpstream();
  /** Where every proxy forwards to. */
  const via = up.address ?? `127.0.0.1:${up.port}`;
  const { child: crawlhub, info: ch } = await spawnJson<{ port: number; sessionId: string; launchUrl: string }>(
    process.execPath,
    [compile(path.join(__dirname, 'lib/crawlhub-proxy.ts'))],
    { UPSTREAM_PORT: String(up.port), ...(up.address ? { UPSTREAM_ADDRESS: up.address } : {}) },
  );
  const { child: relay, info: rl } = await spawnJson<{ port: number }>(
    process.execPath,
    [compile(path.join(__dirname, 'lib/tcp-relay.ts'))],
    { UPSTREAM: via },
  );
  const chpPort = await freePort();
  const chpApiPort = await freePort();
  const chp = await spawnListening(
    process.execPath,
    [
      path.join(root, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(chpPort),
      '--api-ip',
      '127.0.0.1',
      '--api-port',
      String(chpApiPort),
      '--default-target',
      `http://${via}`,
      '--log-level',
      'error',
    ],
    chpPort,
    { CONFIGPROXY_AUTH_TOKEN: 'bench' },
  );

  const nginxBinary = findNginx();
  const nginx = nginxBinary ? await startNginx(nginxBinary, via) : null;

  const cookie = await cookieFromLaunch(ch.launchUrl);
  const direct = target('direct', up.port);
  const [viaHost, viaPort] = via.split(':');
  const network = up.address ? [{ ...target('network', Number(viaPort)), host: viaHost }] : [];
  const floor = target('tcp relay', rl.port);
  const ours = target('crawlhub', ch.port, `/code-server/${ch.sessionId}`, { cookie });
  const peer = target('configurable-http-proxy', chpPort);
  const targets = [direct, ...network, floor, ours, peer, ...(nginx ? [target('nginx', nginx.port)] : [])];
  const origin = (t: Target) => `http://${t.host ?? '127.0.0.1'}:${t.port}`;

  for (const t of targets) {
    const check = await get(t, '/small');
    if (check.status !== 200) throw new Error(`${t.name}: GET /small answered ${check.status}`);
  }

  process.stderr.write(`warming up (${targets.length} targets)…\n`);
  const sockets = new Map(await Promise.all(targets.map(async (t) => [t.name, await openSocket(t, origin(t))] as const)));
  const payload = Buffer.alloc(64, 120);
  for (const t of targets) {
    for (let i = 0; i < 300; i++) await get(t, '/small');
    for (let i = 0; i < 200; i++) await roundTrip(sockets.get(t.name)!, payload);
    await get(t, '/download');
  }

  const per = (f: (name: string) => number) => Object.fromEntries(targets.map((t) => [t.name, f(t.name)]));
  /** One full measurement of every row; the table shows each cell's median over the passes. */
  const measure = async (): Promise<{ rows: Row[]; cpuRows: Row[] }> => {
    // The proxy process's own CPU time per operation: steadier than wall time on a shared machine.
    const pids: Record<string, number | undefined> = {
      direct: undefined,
      network: undefined,
      'tcp relay': relay.pid,
      crawlhub: crawlhub.pid,
      'configurable-http-proxy': chp.pid,
      nginx: nginx?.child.pid,
    };
    const getMs: Record<string, number[]> = {};
    const wsMs: Record<string, number[]> = {};
    const downloadMiBs: Record<string, number[]> = {};
    const cpu: Record<string, { get: number; download: number }> = {};
    for (const t of targets) {
      getMs[t.name] = [];
      wsMs[t.name] = [];
      downloadMiBs[t.name] = [];
      cpu[t.name] = { get: 0, download: 0 };
    }
    const cpuOf = (t: Target) => (pids[t.name] === undefined ? 0 : cpuMs(pids[t.name]!));
    const rotated = (round: number) => targets.map((_, i) => targets[(i + round) % targets.length]);
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 5 === 0) process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
      for (const t of rotated(round)) {
        const before = cpuOf(t);
        for (let i = 0; i < GETS / ROUNDS; i++) getMs[t.name].push((await get(t, '/small')).ms);
        cpu[t.name].get += cpuOf(t) - before;
        for (let i = 0; i < WS_TRIPS / ROUNDS; i++) wsMs[t.name].push(await roundTrip(sockets.get(t.name)!, payload));
      }
    }
    for (let i = 0; i < DOWNLOADS; i++) {
      for (const t of rotated(i)) {
        const before = cpuOf(t);
        const { ms, bytes } = await get(t, '/download');
        cpu[t.name].download += cpuOf(t) - before;
        if (bytes !== DOWNLOAD_BYTES) throw new Error(`${t.name}: downloaded ${bytes} bytes`);
        downloadMiBs[t.name].push(bytes / 1024 / 1024 / (ms / 1000));
      }
    }
    const rows: Row[] = [
      { label: 'small GET p50', unit: 'ms', lowerIsBetter: true, values: per((n) => percentile(getMs[n], 50)) },
      { label: 'small GET p99', unit: 'ms', lowerIsBetter: true, values: per((n) => percentile(getMs[n], 99)) },
      { label: 'WebSocket echo p50', unit: 'ms', lowerIsBetter: true, values: per((n) => percentile(wsMs[n], 50)) },
      { label: 'WebSocket echo p99', unit: 'ms', lowerIsBetter: true, values: per((n) => percentile(wsMs[n], 99)) },
      { label: '10 MB download', unit: 'MiB/s', lowerIsBetter: false, values: per((n) => median(downloadMiBs[n])) },
    ];
    const cpuRows: Row[] = [
      { label: 'proxy CPU per small GET', unit: 'µs', lowerIsBetter: true, values: per((n) => (cpu[n].get * 1000) / GETS) },
      { label: 'proxy CPU per 10 MB download', unit: 'ms', lowerIsBetter: true, values: per((n) => cpu[n].download / DOWNLOADS) },
    ];
    return { rows, cpuRows };
  };
  const passes: { rows: Row[]; cpuRows: Row[] }[] = [];
  for (let i = 0; i < PASSES; i++) {
    process.stderr.write(`pass ${i + 1}/${PASSES}\n`);
    passes.push(await measure());
  }
  for (const ws of sockets.values()) ws.close();
  const combine = (pick: (p: { rows: Row[]; cpuRows: Row[] }) => Row[]) =>
    pick(passes[0]).map((row, r) => ({
      ...row,
      values: per((n) => median(passes.map((p) => pick(p)[r].values[n]))),
      perPass: passes.map((p) => pick(p)[r].values),
    }));
  const rows = combine((p) => p.rows);
  const cpuRows = combine((p) => p.cpuRows);
  const columns = targets.slice(1).map((t) => t.name);
  print(columns, rows, cpuRows, { gets: GETS, ws: WS_TRIPS, downloads: DOWNLOADS, passes: PASSES }, up.address !== null);

  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(
    path.join(__dirname, 'results/proxy.json'),
    JSON.stringify(
      {
        at: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        upstream: UPSTREAM === 'container' ? `container of ${IMAGE}, published on 127.0.0.1` : 'host process',
        proxiesForwardTo: up.address ? 'the container’s network address' : 'the published port',
        samples: { gets: GETS, ws: WS_TRIPS, downloads: DOWNLOADS, passes: PASSES },
        passes,
        rows,
        cpuRows,
      },
      null,
      2,
    ),
  );
  for (const child of [chp, crawlhub, relay, ...(nginx ? [nginx.child] : [])]) stop(child);
  if (nginx) fs.rmSync(nginx.dir, { recursive: true, force: true });
  up.stop();
}

const CHP = 'configurable-http-proxy';
/** Short names for the table's header. */
const SHORT: Record<string, string> = { [CHP]: 'chp' };
/** How the verdict lines name the reference columns. */
const REFERENCE: Record<string, string> = { network: 'direct to the network address', 'tcp relay': 'the bare TCP relay', nginx: 'nginx' };

function print(
  columns: string[],
  rows: Row[],
  cpuRows: Row[],
  samples: { gets: number; ws: number; downloads: number; passes: number },
  viaNetwork: boolean,
): void {
  const fmt = (v: number, unit: string) => (unit === 'ms' ? v.toFixed(3) : v.toFixed(0));
  const times = (x: number) => `${x.toFixed(2)}×`;
  const ratio = (r: Row, a: string, b: string) => times(pairedRatio(r, a, b));
  const header = ['', 'direct', ...columns.flatMap((n) => [SHORT[n] ?? n, 'vs direct']), 'crawlhub vs chp'];
  const cells = (r: Row) => {
    const d = r.values.direct;
    const each = columns.flatMap((n) => [fmt(r.values[n], r.unit), d ? ratio(r, n, 'direct') : '']);
    return [`${r.label} (${r.unit})`, d ? fmt(d, r.unit) : '–', ...each, ratio(r, 'crawlhub', CHP)];
  };
  const lines = [...rows, ...cpuRows].map(cells);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cs: string[]) => `| ${cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const out = [
    row(header),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...lines.map(row),
  ];
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  process.stdout.write(
    `\nBrowser IDE proxy, upstream ${UPSTREAM === 'container' ? `in a container of ${IMAGE} on its published 127.0.0.1 port` : 'a host process on loopback'}, Node ${process.version}, ${os.cpus().length} CPUs, load ${load}: ` +
      `${samples.passes} passes of ${samples.gets} GETs, ${samples.ws} WebSocket round trips and ${samples.downloads} downloads per target (each figure: the median of the passes; each ratio: the median of its ratios within a pass)\n` +
      (viaNetwork
        ? 'direct = the published port (through Docker’s port proxy); network = a direct connection to the container’s network address, where every proxy here forwards (as the service does).\n'
        : '') +
      'tcp relay = a bare TCP relay that copies bytes and parses nothing: the floor for any proxy in its own process.\n' +
      'chp = configurable-http-proxy (JupyterHub’s proxy).' +
      (columns.includes('nginx') ? ' nginx = Debian’s nginx as a plain reverse proxy (no checks), for reference.' : '') +
      ' Latency and CPU: lower is better; download: higher is better.\n\n',
  );
  process.stdout.write(`${out.join('\n')}\n\n`);
  for (const r of [...rows, ...cpuRows]) {
    const notes: string[] = [];
    const references = columns
      .filter((n) => n === 'network' || n === 'tcp relay' || n === 'nginx')
      .map((n) => `${REFERENCE[n]}: ${ratio(r, n, 'direct')}`)
      .join(', ');
    const vsDirect = pairedRatio(r, 'crawlhub', 'direct');
    if (r.label.endsWith('p50'))
      notes.push(`${vsDirect <= 1.2 ? 'meets' : 'misses'} the ≤ 1.2× direct target (${times(vsDirect)}; ${references})`);
    if (r.label === '10 MB download')
      notes.push(`${vsDirect >= 0.8 ? 'meets' : 'misses'} the ≥ 0.8× direct target (${times(vsDirect)}; ${references})`);
    // How much worse than chp, as a fraction (0 or less: no worse).
    const vsChp = pairedRatio(r, 'crawlhub', CHP);
    const behind = r.lowerIsBetter ? vsChp - 1 : 1 / vsChp - 1;
    const verdict = behind <= 0 ? 'no worse than' : behind <= 0.02 ? 'level with (within 2%)' : 'WORSE than';
    notes.push(`${verdict} configurable-http-proxy (${times(vsChp)})`);
    process.stdout.write(`${r.label}: ${notes.join('; ')}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
