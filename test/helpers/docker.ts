import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { TestService } from './service';

/** The Docker CLI, for checking from the outside what the service did. */
export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 120_000 });
}

/** Runs a shell command inside a container as its user; returns stdout, stderr and the exit code. */
export function dockerExec(container: string, script: string, user = '1000:1000'): { code: number; stdout: string; stderr: string } {
  const res = spawnSync('docker', ['exec', '-u', user, container, 'sh', '-c', script], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Fails at once with a clear message when the engine or the image is missing. */
export function requireDocker(image = process.env.CRAWLHUB_IMAGE || 'crawlhub-code-server:latest'): void {
  const info = spawnSync('docker', ['info', '--format', '{{.Driver}}'], { encoding: 'utf8' });
  assert.equal(info.status, 0, 'These tests need a running Docker engine: run .ci/docker-up.sh (see .ci/run).');
  const img = spawnSync('docker', ['image', 'inspect', image], { encoding: 'utf8' });
  assert.equal(img.status, 0, `These tests need the image ${image}: run images/local/build.sh.`);
}

export function containerName(svc: TestService, sessionId: string): string {
  return `crawlhub-${svc.config.instance}-${sessionId}`;
}

/**
 * Stops every container a test service made (by its instance label) and removes them in the
 * background: deleting a container's storage layer takes seconds on a quota-enabled engine.
 */
export function removeContainers(instance: string): void {
  const ids = docker('ps', '-aq', '--filter', `label=crawlhub.instance=${instance}`).trim();
  if (!ids) return;
  spawnSync('docker', ['kill', ...ids.split('\n')], { timeout: 60_000 });
  spawn('docker', ['rm', '-f', ...ids.split('\n')], { detached: true, stdio: 'ignore' }).unref();
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
