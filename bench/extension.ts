// The desktop extension's figures, each next to a baseline measured in the same run:
//   activation   require(dist/extension.js) + activate() in a fresh Node process, vs. an empty extension
//   .vsix size   dist/crawlhub-code.vsix, vs. the same package without the bundle; what the bundle holds
//   open a file  a 100 KB file through the FileSystemProvider (stat + readFile, as VS Code opens one,
//                over the fs endpoints), vs. `docker exec <container> cat` of the same file
// Run: node --import tsx bench/extension.ts (after npm run package). Results also go to bench/results/extension.json.
import '../test/extension/helpers/vscode';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { CrawlHubClient } from '../extension/api/client';
import { SessionFileSystemProvider } from '../extension/fs/provider';
import { sessionUri } from '../extension/fs/uris';
import { json, startTestService } from '../test/helpers/service';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const VSIX = path.join(ROOT, 'dist/crawlhub-code.vsix');
const BUNDLE = path.join(ROOT, 'dist/extension.js');
const RESULTS = path.join(__dirname, 'results');

interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => `${x.toFixed(1)} ms`;
const kb = (x: number) => `${(x / 1024).toFixed(1)} KB`;

// ---- activation ------------------------------------------------------------------------------------

/**
 * A `vscode` module good enough for activate() to run all its wiring: every API object answers
 * with inert disposables. Written as plain JS so the child process needs no TypeScript loader.
 */
const VSCODE_STANDIN = `
const disposable = () => ({ dispose() {} });
const event = () => disposable();
class EventEmitter { constructor() { this.event = event; } fire() {} dispose() {} }
class Disposable { constructor(fn) { this.fn = fn; } dispose() { this.fn && this.fn(); } static from() { return disposable(); } }
class Any { constructor() {} }
const channel = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, show() {}, dispose() {} };
module.exports = {
  EventEmitter, Disposable, ThemeIcon: Any, ThemeColor: Any, TreeItem: Any, MarkdownString: Any,
  Uri: { from: (c) => c, parse: (s) => ({ toString: () => s }) },
  FileType: { Unknown: 0, File: 1, Directory: 2, SymbolicLink: 64 }, FileChangeType: { Changed: 1, Created: 2, Deleted: 3 },
  FileSystemError: class extends Error {}, StatusBarAlignment: { Left: 1, Right: 2 }, ProgressLocation: { Window: 10, Notification: 15 },
  ConfigurationTarget: { Global: 1 }, TreeItemCollapsibleState: { None: 0 }, QuickPickItemKind: { Separator: -1 },
  window: {
    state: { focused: true }, activeTextEditor: undefined,
    createOutputChannel: () => channel,
    createTreeView: () => ({ visible: false, onDidChangeVisibility: event, dispose() {} }),
    createStatusBarItem: () => ({ show() {}, hide() {}, dispose() {} }),
    onDidCloseTerminal: event, onDidChangeActiveTextEditor: event, onDidChangeTextEditorSelection: event,
  },
  workspace: {
    workspaceFolders: undefined,
    getConfiguration: () => ({ get: () => undefined, update: async () => {} }),
    registerFileSystemProvider: disposable, registerTextDocumentContentProvider: disposable,
    onDidChangeConfiguration: event, onDidChangeWorkspaceFolders: event, onDidChangeTextDocument: event,
  },
  commands: { registerCommand: disposable, executeCommand: async () => undefined },
};`;

const ACTIVATE_SCRIPT = (standin: string, extension: string) => `
const Module = require('module');
const vscode = require(${JSON.stringify(standin)});
const load = Module._load;
Module._load = function (request, ...rest) { return request === 'vscode' ? vscode : load.call(this, request, ...rest); };
const context = { subscriptions: [], secrets: { get: async () => undefined, store: async () => {}, delete: async () => {}, onDidChange: () => ({ dispose() {} }) } };
const t0 = process.hrtime.bigint();
const ext = require(${JSON.stringify(extension)});
ext.activate(context);
const t1 = process.hrtime.bigint();
for (const d of context.subscriptions) d.dispose();
process.stdout.write(String(Number(t1 - t0) / 1e6));
process.exit(0);
`;

function activationMs(extension: string, dir: string, runs: number): number[] {
  const standin = path.join(dir, 'vscode-standin.js');
  fs.writeFileSync(standin, VSCODE_STANDIN);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const res = spawnSync(process.execPath, ['-e', ACTIVATE_SCRIPT(standin, extension)], { encoding: 'utf8', timeout: 30_000 });
    if (res.status !== 0) throw new Error(`activation failed: ${res.stderr}`);
    times.push(Number(res.stdout));
  }
  return times;
}

// ---- package size --------------------------------------------------------------------------------------

function vsixEntries(): { name: string; size: number; compressed: number }[] {
  const out = spawnSync('unzip', ['-v', VSIX], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && /^\d+$/.test(f[0]) && /^\d+$/.test(f[2]) && f[7])
    .map((f) => ({ size: Number(f[0]), compressed: Number(f[2]), name: f[7] }));
}

/** What the bundle is made of, by package (esbuild's metafile of the same build as esbuild.mjs). */
async function bundleInputs(): Promise<[string, number][]> {
  const result = await build({
    entryPoints: [path.join(ROOT, 'extension/extension.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    external: ['vscode', 'bufferutil', 'utf-8-validate'],
    minify: true,
    target: 'node18',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const byPackage = new Map<string, number>();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
      const key = m ? m[1] : 'extension/ (our code)';
      byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput);
    }
  }
  return [...byPackage.entries()].sort((a, b) => b[1] - a[1]);
}

// ---- opening a file ----------------------------------------------------------------------------------------

async function openFileFigures(runs: number): Promise<{ provider: number[]; readOnly: number[]; dockerCat: number[]; bytes: number }> {
  const base = 20_000 + Math.floor(Math.random() * 400) * 20;
  const svc = await startTestService({ env: { CRAWLHUB_PORT_RANGE: `${base}-${base + 19}`, CRAWLHUB_LOG_LEVEL: 'warn' } });
  let spiderId = '';
  const { token } = await svc.newUser('bench');
  try {
    spiderId = (await json(await svc.api(token, 'POST', '/api/spiders', { name: 'bench' }))).id;
    // 100 KB of source-like text.
    const content = Buffer.from(
      randomBytes(75 * 1024)
        .toString('base64')
        .replace(/(.{76})/g, '$1\n'),
    ).subarray(0, 100 * 1024);
    if ((await svc.api(token, 'PUT', `/api/spiders/${spiderId}/files/big.py`, content)).status !== 200) throw new Error('upload failed');
    const session = await json(await svc.api(token, 'POST', `/api/spiders/${spiderId}/code-session?wait=1`));
    if (session.status !== 'ready') throw new Error(`the session is ${session.status}: ${session.last_error}`);
    const container = (await run('docker', ['ps', '-q', '--filter', `label=crawlhub.session=${session.session_id}`])).stdout.trim();
    if (!container) throw new Error('the session container was not found');

    const client = new CrawlHubClient({ serverUrl: svc.url, token });
    const provider = new SessionFileSystemProvider({ client: async () => client, watchSession() {}, unwatchSession() {} });
    const uri = sessionUri(session.session_id, 'big.py');
    const viaProvider = async () => {
      await provider.stat(uri);
      return provider.readFile(uri);
    };
    const viaDocker = async () =>
      (await run('docker', ['exec', container, 'cat', '/workspace/big.py'], { encoding: 'buffer', maxBuffer: 1 << 21 })).stdout;
    // Same bytes both ways, and one warm-up each.
    const a = Buffer.from(await viaProvider());
    const b = await viaDocker();
    if (!a.equals(content) || !b.equals(content)) throw new Error('the two ways read different bytes');

    const time = async (f: () => Promise<unknown>) => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const providerTimes: number[] = [];
    const readTimes: number[] = [];
    const dockerTimes: number[] = [];
    // Interleaved, so a busy moment of the machine hits both sides alike.
    for (let i = 0; i < runs; i++) {
      providerTimes.push(await time(viaProvider));
      readTimes.push(await time(() => provider.readFile(uri)));
      dockerTimes.push(await time(viaDocker));
    }
    provider.dispose();
    return { provider: providerTimes, readOnly: readTimes, dockerCat: dockerTimes, bytes: content.length };
  } finally {
    if (spiderId) await svc.api(token, 'DELETE', `/api/spiders/${spiderId}/code-session?discard=1`).catch(() => undefined);
    await svc.close();
  }
}

// ---- the table ----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!fs.existsSync(VSIX) || !fs.existsSync(BUNDLE)) throw new Error('run `npm run package` first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-bench-ext-'));
  const rows: Row[] = [];
  try {
    const empty = path.join(dir, 'empty-extension.js');
    fs.writeFileSync(empty, 'exports.activate = function () {}; exports.deactivate = function () {};');
    const RUNS = 15;
    const ours = median(activationMs(BUNDLE, dir, RUNS));
    const baseline = median(activationMs(empty, dir, RUNS));
    rows.push({
      figure: `activation: require + activate() (median of ${RUNS} fresh processes)`,
      value: ms(ours),
      baseline: `empty extension ${ms(baseline)}`,
      ratio: `+${ms(ours - baseline)}`,
      target: '< 50 ms',
    });

    const vsixSize = fs.statSync(VSIX).size;
    const entries = vsixEntries();
    const bundleEntry = entries.find((e) => e.name === 'extension/dist/extension.js');
    const withoutBundle = vsixSize - (bundleEntry?.compressed ?? 0);
    rows.push({
      figure: '.vsix size',
      value: kb(vsixSize),
      baseline: `without the bundle ${kb(withoutBundle)}`,
      ratio: `bundle ${kb(bundleEntry?.size ?? 0)} (${kb(bundleEntry?.compressed ?? 0)} zipped)`,
      target: '< 1 MB',
    });

    const inputs = await bundleInputs();
    const open = await openFileFigures(20);
    const p = median(open.provider);
    const r = median(open.readOnly);
    const d = median(open.dockerCat);
    rows.push({
      figure: `open a ${kb(open.bytes)} file: stat + readFile via crawlhub:// (median of 20)`,
      value: ms(p),
      baseline: `docker exec cat ${ms(d)}`,
      ratio: `${(p / d).toFixed(2)}×`,
      target: '≤ 1×',
    });
    rows.push({
      figure: 'the same, readFile alone (a file VS Code already stat-ed)',
      value: ms(r),
      baseline: `docker exec cat ${ms(d)}`,
      ratio: `${(r / d).toFixed(2)}×`,
      target: '≤ 1×',
    });

    console.table(rows);
    console.log('bundle contents (bytes in dist/extension.js):');
    for (const [name, bytes] of inputs) console.log(`  ${name.padEnd(24)} ${kb(bytes)}`);
    console.log('vsix files:');
    for (const e of entries) console.log(`  ${e.name.padEnd(34)} ${kb(e.size)}`);
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(
      path.join(RESULTS, 'extension.json'),
      JSON.stringify({ rows, bundleInputs: Object.fromEntries(inputs), vsixEntries: entries, raw: open }, null, 2),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
