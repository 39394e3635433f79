import net from 'node:net';
import type { Config } from '../config';
import { AppError, unavailable } from '../http/errors';
import type { Logger } from '../logger';
import {
  APP_LABEL_VALUE,
  LABEL,
  type ContainerSpec,
  type ContainerState,
  type DockerRuntime,
  type ListedContainer,
} from '../runtime/docker';
import type { ServiceSecret } from '../secret';
import { WorkspaceAgents } from './agent';
import { CODE_SERVER_PORT, CONTAINER_USER, WORKSPACE, Workspace } from './workspace';

// code-server's own state (extensions, logs) lives next to /workspace in the writable layer.
const STORAGE_HEADROOM = 64 * 1024 * 1024;
const HEALTH_POLL_MS = 100;

export interface SessionIdentity {
  id: string;
  spiderId: string;
  userId: string;
}

/** Whether nothing listens on 127.0.0.1:port right now (Docker's proxy for a published port does). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** How long the one check of a container's network address may take. */
const NETWORK_PROBE_MS = 1500;

/**
 * The containers of sessions, as JupyterHub's spawners keep them: start one for a session and
 * wait until code-server answers, stop it (idempotent), tell whether it runs, and hear of the ones
 * that die or vanish behind the service's back. What it knows of a session is its id, owner,
 * spider and port; the session rows are SessionService's.
 */
export class Spawner {
  readonly agents: WorkspaceAgents;
  /** Containers we stop or remove ourselves: their engine events are expected. */
  private readonly stopping = new Set<string>();
  /** Containers in which the kernel killed a process for memory, until they die. */
  private readonly outOfMemory = new Set<string>();
  private readonly removals = new Set<Promise<unknown>>();
  private imageBytes = 0;
  private storageLimit: boolean | null = null;
  /** Learnt at the first create: whether the engine's storage limit counts the image's bytes. */
  private storageCountsImage = false;
  private eventStream: NodeJS.ReadableStream | null = null;
  private closed = false;
  /** Set when a container's network address could not be reached: the published ports serve from then on. */
  private networkUnreachable: string | null = null;

  constructor(
    private readonly docker: DockerRuntime,
    private readonly cfg: Config,
    private readonly secret: ServiceSecret,
    private readonly logger: Logger,
  ) {
    this.agents = new WorkspaceAgents(docker, logger);
  }

  labels(extra: Record<string, string> = {}): Record<string, string> {
    return { [LABEL.app]: APP_LABEL_VALUE, [LABEL.instance]: this.cfg.instance, ...extra };
  }

  workspaceOf(containerId: string): Workspace {
    return new Workspace(this.docker, containerId, {
      pool: this.agents,
      ignore: this.cfg.CRAWLHUB_SYNC_IGNORE,
      maxFileBytes: this.cfg.CRAWLHUB_MAX_FILE_SIZE,
    });
  }

  /** The engine answers and has the image; learns once whether it can limit container storage. */
  async checkEngine(): Promise<void> {
    let engine: Awaited<ReturnType<DockerRuntime['info']>>;
    try {
      engine = await this.docker.info();
    } catch (err) {
      throw unavailable(`The Docker engine cannot be reached (${(err as Error).message}).`, 'docker_unavailable');
    }
    const size = await this.docker.imageSize(this.cfg.CRAWLHUB_IMAGE);
    if (size === null) {
      throw unavailable(
        `The session image ${this.cfg.CRAWLHUB_IMAGE} is not on this Docker engine; build it with images/local/build.sh or pull it.`,
        'image_missing',
      );
    }
    this.imageBytes = size;
    if (this.storageLimit === null) {
      this.storageLimit = engine.storageLimit;
      if (!engine.storageLimit && this.cfg.CRAWLHUB_WORKSPACE_SIZE > 0) {
        this.logger.warn(
          { driver: engine.driver, backing: engine.backing },
          'this Docker engine cannot limit container storage: sessions run without the workspace size limit',
        );
      }
    }
  }

  /**
   * Creates and starts the session's container. `created` records each container id at once (so
   * that a crash leaves nothing unknown); a port that another program holds is traded for the one
   * `reallocate` gives.
   */
  async start(
    s: SessionIdentity,
    port: number,
    hooks: { created(containerId: string): Promise<void>; reallocate(avoid: Set<number>): Promise<number> },
  ): Promise<{ containerId: string; port: number }> {
    await this.docker.ensureNetwork(this.cfg.CRAWLHUB_NETWORK, this.labels());
    const avoid = new Set<number>();
    for (let attempt = 0; ; attempt++) {
      let id: string;
      try {
        id = await this.docker.create(this.spec(s, port));
      } catch (err) {
        if (attempt < 5 && !this.storageCountsImage && this.storageLimit && /qgroup|quota/i.test((err as Error).message)) {
          this.storageCountsImage = true;
          this.logger.info('this engine counts image bytes against the storage limit; adding the image size to it');
          continue;
        }
        throw err;
      }
      await hooks.created(id);
      try {
        await this.docker.start(id);
        return { containerId: id, port };
      } catch (err) {
        if (attempt < 10 && /port is already allocated|address already in use/i.test((err as Error).message)) {
          await this.remove(id);
          avoid.add(port);
          port = await hooks.reallocate(avoid);
          continue;
        }
        throw err;
      }
    }
  }

  /** Starts a container that was stopped (a kept one, for a retry or a resume). */
  async restart(containerId: string): Promise<void> {
    this.stopping.delete(containerId);
    await this.docker.start(containerId);
  }

  private spec(s: SessionIdentity, port: number): ContainerSpec {
    const cfg = this.cfg;
    // Engines that count only what a container writes (btrfs simple quotas, XFS project quotas)
    // get the workspace size; btrfs classic quotas count the shared image too, so it is added.
    const image = this.storageCountsImage ? this.imageBytes : 0;
    const limit = cfg.CRAWLHUB_WORKSPACE_SIZE > 0 && this.storageLimit ? image + cfg.CRAWLHUB_WORKSPACE_SIZE + STORAGE_HEADROOM : 0;
    return {
      name: `crawlhub-${cfg.instance}-${s.id}`,
      image: cfg.CRAWLHUB_IMAGE,
      labels: this.labels({ [LABEL.session]: s.id, [LABEL.spider]: s.spiderId, [LABEL.user]: s.userId }),
      env: { HASHED_PASSWORD: this.secret.codeServerSecret(s.id), CRAWLHUB_SESSION: s.id },
      cmd: [
        '--bind-addr',
        `0.0.0.0:${CODE_SERVER_PORT}`,
        '--auth',
        'password',
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        // A browser tab that goes away without saying goodbye (closed while loading, a crash, a
        // lost network) leaves its extension host (~110 MB) waiting for it to come back; code-server
        // waits 3 h by default, and a handful of those fill a session's memory.
        '--reconnection-grace-time',
        String(Math.max(1, Math.round(cfg.CRAWLHUB_RECONNECT_GRACE / 1000))),
        WORKSPACE,
      ],
      user: CONTAINER_USER,
      workingDir: WORKSPACE,
      containerPort: CODE_SERVER_PORT,
      hostPort: port,
      memoryBytes: cfg.CRAWLHUB_SESSION_MEMORY,
      nanoCpus: Math.round(cfg.CRAWLHUB_SESSION_CPUS * 1e9),
      pidsLimit: cfg.CRAWLHUB_SESSION_PIDS,
      storageBytes: limit,
      network: cfg.CRAWLHUB_NETWORK,
    };
  }

  /** Waits until code-server's /healthz answers; fails fast when the container exits. */
  async waitHealthy(containerId: string, port: number): Promise<void> {
    const deadline = Date.now() + this.cfg.CRAWLHUB_START_TIMEOUT;
    let lastCheck = 0;
    while (Date.now() < deadline) {
      if ((await healthzProblem(`http://127.0.0.1:${port}`, 2000)) === null) return; // else: not listening yet
      if (Date.now() - lastCheck > 1000) {
        lastCheck = Date.now();
        const state = await this.docker.inspect(containerId);
        if (!state?.running) {
          throw new AppError(
            502,
            'container_exited',
            `The container exited during start (exit code ${state?.exitCode ?? '?'}${state?.oomKilled ? ', out of memory' : ''}).`,
          );
        }
      }
      await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
    }
    throw new AppError(504, 'start_timeout', `code-server did not answer within ${Math.round(this.cfg.CRAWLHUB_START_TIMEOUT / 1000)} s.`);
  }

  /**
   * Where the proxy reaches code-server without Docker's port proxy: the container's address on
   * the sessions' network, when this process can reach it — checked with one /healthz, since a
   * remote or rootless engine, Docker Desktop, or a service in a container of its own cannot.
   * Null means the published port on 127.0.0.1. An address that fails while the published port
   * answers is this process's problem, not the container's: from then on every session uses its
   * port (said once in the log). When both fail, the container is what failed (stopped, busy,
   * broken by its user) and only it goes by its port. The address comes from the engine: a
   * container without NET_ADMIN cannot move it.
   */
  async networkAddress(containerId: string): Promise<{ host: string; port: number } | null> {
    if (this.cfg.CRAWLHUB_PROXY_UPSTREAM === 'port' || this.networkUnreachable !== null) return null;
    const state = await this.docker.inspect(containerId).catch(() => null);
    const host = state?.addresses[this.cfg.CRAWLHUB_NETWORK];
    if (!host) return null;
    const problem = await healthzProblem(`http://${host}:${CODE_SERVER_PORT}`);
    if (problem === null) return { host, port: CODE_SERVER_PORT };
    if (state.hostPort === null || (await healthzProblem(`http://127.0.0.1:${state.hostPort}`)) !== null) return null;
    this.networkUnreachable = problem;
    this.logger.warn(
      { network: this.cfg.CRAWLHUB_NETWORK, address: host, reason: problem },
      "the browser IDE proxy reaches sessions through their published ports: this process cannot reach containers' network addresses (CRAWLHUB_PROXY_UPSTREAM=port skips this check)",
    );
    return null;
  }

  /** code-server's own heartbeat (a browser is connected): validated, never in the future; 0 when unknown. */
  async browserHeartbeat(port: number): Promise<number> {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000), redirect: 'manual' });
      if (!res.ok) {
        await res.body?.cancel();
        return 0;
      }
      const body = JSON.parse(await readCapped(res, 1000)) as { lastHeartbeat?: unknown };
      return typeof body.lastHeartbeat === 'number' && Number.isFinite(body.lastHeartbeat) ? Math.min(body.lastHeartbeat, Date.now()) : 0;
    } catch {
      return 0; // an unreachable or lying code-server adds no activity
    }
  }

  inspect(containerId: string): Promise<ContainerState | null> {
    return this.docker.inspect(containerId);
  }

  listOwn(): Promise<ListedContainer[]> {
    return this.docker.listByLabel(this.labels());
  }

  /** Stops a container but keeps it and its files (a failed save). */
  async stopKeeping(containerId: string): Promise<void> {
    this.agents.closeFor(containerId);
    this.stopping.add(containerId);
    await this.docker.stop(containerId);
  }

  /**
   * Everything is saved: stops at once, and leaves the slow part (deleting the storage layer) to the
   * background. `frozen`: its user's processes are stopped (SIGSTOP) and cannot act on a SIGTERM,
   * which would only hold the stop for its grace period: they are killed.
   */
  async stopAndRemove(containerId: string, opts: { frozen?: boolean } = {}): Promise<void> {
    this.agents.closeFor(containerId);
    this.stopping.add(containerId);
    await this.docker.stop(containerId, opts.frozen ? 0 : 1);
    const removal = this.remove(containerId).catch((err: unknown) =>
      this.logger.warn({ err, container: containerId.slice(0, 12) }, 'could not remove a container; the next start cleans it up'),
    );
    this.removals.add(removal);
    void removal.finally(() => this.removals.delete(removal));
  }

  /** Removes a container of ours at once. */
  async remove(containerId: string): Promise<void> {
    this.stopping.add(containerId);
    this.agents.closeFor(containerId);
    await this.docker.remove(containerId);
  }

  /**
   * Engine events: `gone` hears of our containers that die or vanish without our doing (and whether
   * the kernel had killed something in them for memory first); `outOfMemory`, of a process in one
   * killed for memory while the container goes on; `ended`, that the stream closed (the engine
   * restarted or went away). False when the engine could not be asked.
   */
  async watch(handlers: {
    gone: (sessionId: string, containerId: string, action: 'die' | 'destroy', exitCode: string | undefined, outOfMemory: boolean) => void;
    outOfMemory: (sessionId: string, containerId: string) => void;
    ended: () => void;
  }): Promise<boolean> {
    try {
      const stream = await this.docker.events(this.labels());
      if (this.closed) {
        // Shut down while subscribing: the stream would keep the process alive.
        (stream as { destroy?: () => void }).destroy?.();
        return false;
      }
      this.eventStream = stream;
      let buffer = '';
      stream.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          let ev: { Action?: string; id?: string; Actor?: { Attributes?: Record<string, string> } };
          try {
            ev = JSON.parse(line) as typeof ev;
          } catch {
            continue; // not an event line
          }
          const sessionId = ev.Actor?.Attributes?.[LABEL.session];
          if (!sessionId || !ev.id) continue;
          if (ev.Action === 'oom') {
            this.outOfMemory.add(ev.id);
            if (!this.stopping.has(ev.id)) handlers.outOfMemory(sessionId, ev.id);
            continue;
          }
          if (ev.Action !== 'die' && ev.Action !== 'destroy') continue;
          const oom = this.outOfMemory.delete(ev.id);
          this.agents.closeFor(ev.id);
          if (this.stopping.has(ev.id)) {
            if (ev.Action === 'destroy') this.stopping.delete(ev.id);
            continue;
          }
          handlers.gone(sessionId, ev.id, ev.Action, ev.Actor?.Attributes?.exitCode, oom);
        }
      });
      stream.on('error', () => undefined);
      const end = () => {
        if (this.eventStream !== stream) return;
        this.eventStream = null;
        handlers.ended();
      };
      stream.on('end', end);
      stream.on('close', end);
      return true;
    } catch (err) {
      this.logger.warn({ err }, 'not watching Docker events; the sweep will try again');
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const stream = this.eventStream;
    this.eventStream = null;
    (stream as { destroy?: () => void } | null)?.destroy?.();
    this.agents.closeAll();
    await Promise.allSettled([...this.removals]);
  }
}

/** Why code-server at `origin` does not answer its /healthz with 2xx within `timeoutMs`, or null when it does. */
async function healthzProblem(origin: string, timeoutMs = NETWORK_PROBE_MS): Promise<string | null> {
  try {
    // Whatever answers in the container is the user's: its redirects are not followed (they could
    // point the service anywhere), and its bodies are not read.
    const res = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    return res.ok ? null : `/healthz answered ${res.status}`;
  } catch (err) {
    return (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
  }
}

/** At most `max` bytes of a response body, as text; the rest is never read. */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < max) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      length += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(parts).subarray(0, max).toString('utf8');
}
