import { spawn, type ChildProcess } from 'node:child_process';
import { buildSync } from 'esbuild';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { WebSocket } from 'ws';

/** One way of reaching the upstream: directly, or through a proxy. */
export interface Target {
  name: string;
  port: number;
  /** Prepended to the upstream path (the proxy's /code-server/<id>). */
  prefix: string;
  headers: Record<string, string>;
  /** The client's HTTP connection, kept alive across requests as a browser's is. */
  agent: http.Agent;
  /** Where the target listens; 127.0.0.1 unless given. */
  host?: string;
}

export function target(name: string, port: number, prefix = '', headers: Record<string, string> = {}): Target {
  return { name, port, prefix, headers, agent: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
});

/**
 * Bundles a TypeScript entry the way the service is built (esbuild, node_modules left external)
 * into bench/results/, so that the child runs on plain node like dist/service.js does: the tsx
 * loader would add its own thread and CPU time to the proxy's.
 * With `standalone`, node_modules are bundled too (for a container that has only node).
 */
export function compile(entry: string, opts: { standalone?: boolean } = {}): string {
  const suffix = opts.standalone ? '.standalone' : '';
  const outfile = path.join(__dirname, '..', 'results', `${path.basename(entry, '.ts')}${suffix}.cjs`);
  buildSync({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // Standalone: dependencies bundled in, for a container that has only node.
    packages: opts.standalone ? undefined : 'external',
    logLevel: 'warning',
  });
  return outfile;
}

/** Starts a child process and resolves with the JSON object it prints on its first stdout line (at most 30 s). */
export function spawnJson<T>(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  started.add(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} printed nothing in 30 s`)), 30_000);
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve({ child, info: JSON.parse(line) as T });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
      // Keep draining so the child never blocks on a full pipe.
      lines.on('line', () => undefined);
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** Starts a child process that prints nothing useful, and waits until `port` accepts connections (at most 30 s). */
export async function spawnListening(cmd: string, args: string[], port: number, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  started.add(child);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${args.join(' ')} did not listen on ${port} within 30 s`);
}

export function stop(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGTERM');
  started.delete(child);
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One GET, body read to the end; resolves with milliseconds and bytes. */
export function get(t: Target, path: string): Promise<{ ms: number; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = http.get(
      { host: t.host ?? '127.0.0.1', port: t.port, path: t.prefix + path, headers: t.headers, agent: t.agent },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, bytes, status: res.statusCode ?? 0 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('GET timed out')));
  });
}

/** A WebSocket to the target's echo, open. */
export function openSocket(t: Target, origin: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${t.host ?? '127.0.0.1'}:${t.port}${t.prefix}/`, {
      headers: t.headers,
      origin,
      perMessageDeflate: false,
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${t.name}: WebSocket refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** One message there and back; resolves with milliseconds. */
export function roundTrip(ws: WebSocket, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const timer = setTimeout(() => reject(new Error('WebSocket echo timed out')), 30_000);
    ws.once('message', () => {
      clearTimeout(timer);
      resolve(Number(process.hrtime.bigint() - start) / 1e6);
    });
    ws.send(payload);
  });
}

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(samples: number[]): number {
  return percentile(samples, 50);
}

/** CPU time (user + system) a process has used so far, in milliseconds, from /proc (Linux; 100 ticks a second). */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}
