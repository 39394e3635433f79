import net from 'node:net';
import Docker from 'dockerode';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { AppError } from '../http/errors';
import type { Logger } from '../logger';

/**
 * The one module that talks to the Docker Engine. Every call logs the container it concerns and
 * has a time limit; streams have an idle limit instead. Nothing that comes back from a container
 * is trusted here: callers validate it.
 */

export const LABEL = {
  app: 'crawlhub.app',
  session: 'crawlhub.session',
  spider: 'crawlhub.spider',
  user: 'crawlhub.user',
  instance: 'crawlhub.instance',
} as const;
export const APP_LABEL_VALUE = 'crawlhub-code';

export interface ContainerSpec {
  name: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  cmd: string[];
  user: string;
  workingDir: string;
  containerPort: number;
  hostPort: number;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  /** Limit of the container's writable storage, or 0 for none. */
  storageBytes: number;
  network: string;
}

export interface ContainerState {
  id: string;
  name: string;
  running: boolean;
  status: string;
  exitCode: number | null;
  oomKilled: boolean;
  labels: Record<string, string>;
  hostPort: number | null;
  /** The container's IPv4 address on each network it is attached to. */
  addresses: Record<string, string>;
}

export interface ListedContainer {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * A failure of the engine or of what a container sent through it, as the API answers it: the
 * engine's own words with a status (410 when the container is gone, 409 when it is not running,
 * 504 for a time limit, else 502), never a bare 500. `statusCode` is the engine's own status.
 */
export class DockerError extends AppError {
  constructor(
    message: string,
    readonly statusCode?: number,
    status = 502,
    code = 'docker_error',
  ) {
    super(status, code, message);
    this.name = 'DockerError';
  }
}

export class DockerTimeoutError extends DockerError {
  constructor(what: string, ms: number) {
    super(`The Docker engine: ${what} did not finish within ${ms} ms.`, undefined, 504, 'docker_timeout');
    this.name = 'DockerTimeoutError';
  }
}

/** An error of dockerode (an engine answer with a status, or a broken connection) as a DockerError. */
function engineError(what: string, err: unknown): unknown {
  if (err instanceof AppError || !(err instanceof Error)) return err;
  const status = (err as { statusCode?: number }).statusCode;
  const message = `The Docker engine: ${what} failed: ${err.message.slice(0, 500)}`;
  if (status === 404) return new DockerError(message, status, 410, 'container_gone');
  if (status === 409) return new DockerError(message, status, 409, 'container_conflict');
  return new DockerError(message, status);
}

const statusOf = (err: unknown) => (err as { statusCode?: number })?.statusCode;
export const isNotFound = (err: unknown) => statusOf(err) === 404;

export class DockerRuntime {
  private readonly docker: Docker;

  constructor(
    private readonly logger: Logger,
    private readonly timeoutMs: number,
    options?: Docker.DockerOptions,
  ) {
    this.docker = new Docker(options);
  }

  /**
   * One engine call with a time limit (the engine's, or `timeoutMs`). `late`: what to do with an
   * answer that comes after the call was given up on — a connection, a stream, a running command,
   * which nobody would ever read or end.
   */
  private async call<T>(
    what: string,
    containerId: string | undefined,
    task: () => Promise<T>,
    opts: { timeoutMs?: number; late?: (result: T) => void } = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const work = task();
    try {
      const result = await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            if (opts.late) work.then(opts.late, () => undefined);
            reject(new DockerTimeoutError(what, timeoutMs));
          }, timeoutMs);
        }),
      ]);
      this.logger.debug({ container: containerId?.slice(0, 12), op: what, ms: Math.round(performance.now() - started) }, 'docker');
      return result;
    } catch (err) {
      this.logger.debug({ container: containerId?.slice(0, 12), op: what, err: (err as Error).message }, 'docker call failed');
      throw engineError(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The engine's version and storage driver, in one `info` call, and whether `--storage-opt size=`
   * works there: btrfs and zfs always, overlay2 only on XFS with pquota.
   */
  async info(): Promise<{ version: string; driver: string; backing: string; storageLimit: boolean }> {
    const info = (await this.call('info', undefined, () => this.docker.info())) as {
      ServerVersion: string;
      Driver: string;
      DriverStatus?: [string, string][];
    };
    const backing = info.DriverStatus?.find(([k]) => k === 'Backing Filesystem')?.[1] ?? '';
    const storageLimit = info.Driver === 'btrfs' || info.Driver === 'zfs' || (info.Driver === 'overlay2' && backing === 'xfs');
    return { version: info.ServerVersion, driver: info.Driver, backing, storageLimit };
  }

  async imageSize(image: string): Promise<number | null> {
    return this.call('image inspect', undefined, async () => {
      try {
        return ((await this.docker.getImage(image).inspect()) as { Size: number }).Size;
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
  }

  /**
   * A bridge network on which containers reach the internet but not each other. One that exists
   * already (made by hand, or named in CRAWLHUB_NETWORK) is used only when it isolates them so too:
   * the default `bridge` or `host` network would let sessions reach each other's code-server.
   */
  async ensureNetwork(name: string, labels: Record<string, string>): Promise<void> {
    await this.call('network ensure', undefined, async () => {
      let existing: Docker.NetworkInspectInfo | null = null;
      try {
        existing = await this.docker.getNetwork(name).inspect();
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (existing) {
        if (existing.Driver !== 'bridge' || existing.Options?.['com.docker.network.bridge.enable_icc'] !== 'false') {
          throw new DockerError(
            `the Docker network "${name}" does not keep session containers apart (driver ${existing.Driver ?? '?'}, ` +
              `enable_icc ${existing.Options?.['com.docker.network.bridge.enable_icc'] ?? 'true'}); remove it and the service ` +
              'creates one, or name a bridge network with com.docker.network.bridge.enable_icc=false in CRAWLHUB_NETWORK',
          );
        }
        return;
      }
      try {
        await this.docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: labels,
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
        });
      } catch (err) {
        if (statusOf(err) !== 409) throw err; // created meanwhile by another caller
      }
    });
  }

  async create(spec: ContainerSpec): Promise<string> {
    const port = `${spec.containerPort}/tcp`;
    const container = await this.call('create', spec.name, () =>
      this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.cmd,
        User: spec.user,
        WorkingDir: spec.workingDir,
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        Labels: spec.labels,
        ExposedPorts: { [port]: {} },
        HostConfig: {
          PortBindings: { [port]: [{ HostIp: '127.0.0.1', HostPort: String(spec.hostPort) }] },
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes,
          NanoCpus: spec.nanoCpus,
          PidsLimit: spec.pidsLimit,
          Privileged: false,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges:true'],
          Init: true,
          IpcMode: 'private',
          NetworkMode: spec.network,
          RestartPolicy: { Name: 'no' },
          LogConfig: { Type: 'json-file', Config: { 'max-size': '5m', 'max-file': '2' } },
          ...(spec.storageBytes > 0 ? { StorageOpt: { size: String(spec.storageBytes) } } : {}),
        },
      }),
    );
    return container.id;
  }

  async start(id: string): Promise<void> {
    await this.call('start', id, async () => {
      try {
        await this.docker.getContainer(id).start();
      } catch (err) {
        if (statusOf(err) !== 304) throw err; // already running
      }
    });
  }

  /** Stops gracefully; idempotent. */
  async stop(id: string, graceSeconds = 10): Promise<void> {
    await this.call(
      'stop',
      id,
      async () => {
        try {
          await this.docker.getContainer(id).stop({ t: graceSeconds });
        } catch (err) {
          if (statusOf(err) !== 304 && !isNotFound(err)) throw err;
        }
      },
      { timeoutMs: this.timeoutMs + graceSeconds * 1000 },
    );
  }

  /** Removes with force; idempotent. */
  async remove(id: string): Promise<void> {
    await this.call('remove', id, async () => {
      try {
        await this.docker.getContainer(id).remove({ force: true, v: true });
      } catch (err) {
        if (!isNotFound(err) && statusOf(err) !== 409) throw err;
      }
    });
  }

  /** The container's state, or null when it does not exist. */
  async inspect(id: string): Promise<ContainerState | null> {
    return this.call('inspect', id, async () => {
      try {
        const info = await this.docker.getContainer(id).inspect();
        const binding = Object.values(info.NetworkSettings?.Ports ?? {})[0]?.[0];
        return {
          id: info.Id,
          name: info.Name.replace(/^\//, ''),
          running: info.State.Running,
          status: info.State.Status,
          exitCode: info.State.Running ? null : info.State.ExitCode,
          oomKilled: info.State.OOMKilled,
          labels: info.Config.Labels ?? {},
          hostPort: binding ? Number(binding.HostPort) : null,
          addresses: Object.fromEntries(
            Object.entries(info.NetworkSettings?.Networks ?? {})
              .filter(([, n]) => net.isIPv4(n?.IPAddress ?? ''))
              .map(([name, n]) => [name, n.IPAddress]),
          ),
        };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
  }

  /** The raw `docker inspect` document, for tests and diagnostics. */
  async inspectRaw(id: string): Promise<Docker.ContainerInspectInfo> {
    return this.call('inspect', id, () => this.docker.getContainer(id).inspect());
  }

  async listByLabel(labels: Record<string, string>): Promise<ListedContainer[]> {
    return this.call('list', undefined, async () => {
      const list = await this.docker.listContainers({ all: true, filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } });
      return list.map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), state: c.State, labels: c.Labels ?? {} }));
    });
  }

  /** Extracts a tar stream into a folder of the container (docker cp in). */
  async putArchive(id: string, path: string, tar: Readable): Promise<void> {
    await this.call('putArchive', id, async () => {
      const res = await this.docker.getContainer(id).putArchive(tar, { path });
      // dockerode resolves with the response stream; drain it so the socket is released.
      (res as unknown as Readable | undefined)?.resume?.();
    }).catch((err: unknown) => {
      // Given up on (or refused): the source is read no further (an export holds its files until it ends).
      tar.destroy();
      throw err;
    });
  }

  /** A folder of the container as a tar stream (docker cp out), produced by the engine. */
  async getArchive(id: string, path: string): Promise<Readable> {
    return this.call('getArchive', id, async () => (await this.docker.getContainer(id).getArchive({ path })) as unknown as Readable, {
      late: (stream) => stream.destroy(),
    });
  }

  /**
   * Runs a command (argv, no shell) and collects its output, each stream capped at `maxOutput`
   * bytes (a container can print without end). `stdin`, when given, is written and closed.
   */
  async exec(
    id: string,
    cmd: string[],
    opts: { user?: string; workingDir?: string; stdin?: Buffer; maxOutput?: number; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const max = opts.maxOutput ?? 16 * 1024 * 1024;
    // A command that outlives its time limit loses its connection (and what it had printed) with it.
    let socket: Duplex | null = null;
    let abandoned = false;
    const tooMuch = () =>
      new DockerError(`The container printed more than ${max} bytes for ${cmd[0]}.`, undefined, 502, 'bad_container_output');
    return this.call(
      `exec ${cmd[0]}`,
      id,
      async () => {
        const { stream, done } = await this.execStream(id, cmd, opts);
        socket = stream.stdin;
        if (abandoned) socket.destroy();
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let outLen = 0;
        let errLen = 0;
        stream.stdout.on('data', (c: Buffer) => {
          outLen += c.length;
          if (outLen <= max) out.push(c);
          else stream.stdout.destroy(tooMuch());
        });
        stream.stderr.on('data', (c: Buffer) => {
          errLen += c.length;
          if (errLen <= 64 * 1024) err.push(c);
        });
        if (opts.stdin) stream.stdin.end(opts.stdin);
        const exitCode = await done;
        if (outLen > max) throw tooMuch();
        return { exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
      },
      { timeoutMs: opts.timeoutMs },
    ).catch((e: unknown) => {
      abandoned = true;
      socket?.destroy();
      throw e;
    });
  }

  /**
   * Starts a command and hands back its separated streams: stdout and stderr demultiplexed, stdin
   * writable. `done` resolves with the exit code once the output has ended.
   */
  async execStream(
    id: string,
    cmd: string[],
    opts: { user?: string; workingDir?: string; stdin?: Buffer | boolean } = {},
  ): Promise<{ stream: { stdout: PassThrough; stderr: PassThrough; stdin: Duplex }; done: Promise<number> }> {
    const container = this.docker.getContainer(id);
    // Creating and starting it have the engine's time limit; a connection that arrives after it
    // was given up on is closed (it would hold the command, and the engine's socket, for good).
    const { exec, socket } = await this.call(
      `exec ${cmd[0]} start`,
      id,
      async () => {
        const exec = await container.exec({
          Cmd: cmd,
          AttachStdin: Boolean(opts.stdin),
          AttachStdout: true,
          AttachStderr: true,
          Tty: false,
          User: opts.user,
          WorkingDir: opts.workingDir,
        });
        return { exec, socket: await exec.start({ hijack: true, stdin: Boolean(opts.stdin) }) };
      },
      { late: ({ socket }) => socket.destroy() },
    );
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    demux(socket, stdout, stderr);
    // Nobody has to read stderr: unread, it flows away instead of piling up in the service.
    stderr.resume();
    let ended = false;
    const done = new Promise<number>((resolve, reject) => {
      const finish = () => {
        if (ended) return;
        ended = true;
        stdout.end();
        stderr.end();
        this.call(`exec ${cmd[0]} inspect`, id, () => exec.inspect()).then((info) => resolve(info.ExitCode ?? -1), reject);
      };
      socket.once('end', finish);
      socket.once('close', finish);
      socket.once('error', reject);
    });
    // Later callers may only watch `done`; keep an unobserved rejection from crashing the process.
    done.catch(() => undefined);
    // A reader that gives up (or fails) ends the command's connection: paused for it, it would stay open.
    stdout.on('error', () => socket.destroy());
    stdout.on('close', () => {
      if (!ended) socket.destroy();
    });
    return { stream: { stdout, stderr, stdin: socket }, done };
  }

  /** An interactive command with a TTY (a terminal): raw bytes both ways, resizable. */
  async execTty(id: string, cmd: string[], opts: { user?: string; workingDir?: string; env?: string[]; cols: number; rows: number }) {
    const exec = await this.call('exec tty', id, () =>
      this.docker.getContainer(id).exec({
        Cmd: cmd,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: true,
        User: opts.user,
        WorkingDir: opts.workingDir,
        Env: opts.env,
        ConsoleSize: [opts.rows, opts.cols],
      }),
    );
    const socket = await this.call('exec tty start', id, () => exec.start({ hijack: true, stdin: true, Tty: true }), {
      // Given up on: the terminal's end of input (^D), as when its window closes, then no connection
      // (the engine leaves a command running when its connection goes).
      late: (late) => {
        late.end('\x04');
        setTimeout(() => late.destroy(), 5000).unref();
      },
    });
    return {
      socket,
      resize: (cols: number, rows: number) => this.call('exec resize', id, () => exec.resize({ w: cols, h: rows })).then(() => undefined),
    };
  }

  /**
   * Engine events for our containers (die, destroy…), for noticing containers that stop behind our
   * back. Subscribing has the engine's time limit (the sweep waits for it); a stream that arrives
   * after it was given up on is closed.
   */
  async events(labels: Record<string, string>): Promise<Readable> {
    return this.call(
      'events',
      undefined,
      async () =>
        (await this.docker.getEvents({
          filters: { type: ['container'], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`), event: ['die', 'destroy', 'oom'] },
        })) as unknown as Readable,
      { late: (stream) => stream.destroy() },
    );
  }
}

/**
 * Splits the engine's multiplexed exec stream (frames of an 8-byte header — stream type, then a
 * big-endian length — and that many bytes) into stdout and stderr, with backpressure: the socket is
 * paused while a side that is read is full. dockerode's demuxStream writes without waiting, so a
 * container printing faster than its reader (or to a stream nobody reads) filled the service's memory.
 */
export function demux(socket: Duplex, stdout: PassThrough, stderr: PassThrough): void {
  const header = Buffer.alloc(8);
  let headerBytes = 0;
  let remaining = 0;
  let target: PassThrough = stdout;
  let waiting = 0;
  const drained = () => {
    if (--waiting === 0) socket.resume();
  };
  socket.on('data', (chunk: Buffer) => {
    let offset = 0;
    const full = new Set<PassThrough>();
    while (offset < chunk.length) {
      if (remaining === 0) {
        const n = Math.min(8 - headerBytes, chunk.length - offset);
        chunk.copy(header, headerBytes, offset, offset + n);
        headerBytes += n;
        offset += n;
        if (headerBytes < 8) break;
        headerBytes = 0;
        if (header[0] > 2 || header[1] !== 0 || header[2] !== 0 || header[3] !== 0) {
          socket.destroy(new DockerError('the engine sent an exec stream that is not multiplexed'));
          return;
        }
        target = header[0] === 2 ? stderr : stdout;
        remaining = header.readUInt32BE(4);
        continue;
      }
      const n = Math.min(remaining, chunk.length - offset);
      if (!target.write(chunk.subarray(offset, offset + n))) full.add(target);
      remaining -= n;
      offset += n;
    }
    for (const side of full) {
      if (side.destroyed) continue;
      if (waiting++ === 0) socket.pause();
      side.once('drain', drained);
    }
  });
}
