import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');

export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs `crawlhub serve` in its own process (from the TypeScript sources), for tests that kill it. */
export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'service/cli.ts'), 'serve'], {
    cwd: root,
    env: { ...process.env, CRAWLHUB_PORT: '0', CRAWLHUB_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
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
      reject(new Error(`the service exited (${code}): ${out}`));
    });
  });
  // Listening comes before reconciling; wait for the first sweep of the engine to be done.
  return { child, url, output: () => out, exited };
}
