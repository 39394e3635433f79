import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');

export interface ServiceProcess {
  child: ChildProcess;
  /** The URL the service says it listens on (`http://[::]:<port>` when bound to `::`). */
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 10 s; resolves when the process is gone (at once if it already is). */
  stop: () => Promise<void>;
}

/**
 * Runs `crawlhub serve` in its own process, for tests that signal or kill it: from the TypeScript
 * sources, or with `cli`, the built `dist/cli.js`. Resolves once it prints the URL it listens on
 * (listening comes before the start-up reconcile); rejects with what it said if it exits first or
 * says nothing within 60 s.
 */
export async function spawnService(env: Record<string, string>, opts: { cli?: string } = {}): Promise<ServiceProcess> {
  const args = opts.cli ? [opts.cli, 'serve'] : ['--import', 'tsx', path.join(root, 'service/cli.ts'), 'serve'];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, CRAWLHUB_PORT: '0', CRAWLHUB_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const stuck = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(stuck);
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // A service that never says it listens is not left running behind the failed test.
      child.stdout.off('data', check);
      child.kill('SIGKILL');
      reject(new Error(`the service did not start within 60 s: ${out}`));
    }, 60_000);
    const check = () => {
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (${code ?? child.signalCode}) before it listened: ${out}`));
    });
  });
  return { child, url, output: () => out, exited, stop };
}
