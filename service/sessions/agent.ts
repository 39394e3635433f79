import type { Duplex, PassThrough } from 'node:stream';
import type { Logger } from '../logger';
import type { DockerRuntime } from '../runtime/docker';
import { ENTRY_FORMAT, STAT_SCRIPT } from './find-format';

/** Left by a freeze: it lists the processes that were stopped already (a job its user suspended), which a thaw leaves so. */
const FROZEN_MARK = '/tmp/.crawlhub-frozen';

/**
 * Runs `body` with the mark open as fd 3 when it is a regular file, else not at all. The mark is in
 * the user's /tmp, theirs to replace: a named pipe there would hold a plain open (`>` or `<`) until
 * a writer or reader comes, which none does, and a freeze or thaw would wait out its time limit (a
 * stop failing, a restart's reconcile held up for everyone). `<>` never waits, the type is that of
 * what was opened (/proc/self/fd/3, never a name that could be swapped since), and what is done
 * through /proc/self/fd/3 is done to that same file. A link is not followed. Builtins only: it forks
 * nothing, which a full pid limit would refuse (and a fork that fails ends the shell).
 */
const withMark = (body: string) => `{ [ ! -L ${FROZEN_MARK} ] && [ -f /proc/self/fd/3 ] && { ${body}; }; } 2>/dev/null 3<>${FROZEN_MARK}`;

/**
 * Freezes every process of the container's user with SIGSTOP, which none can catch or ignore, but
 * the shell that runs it (the builtin `kill -1` spares its caller, and PID 1): what that shell forks
 * afterwards runs. Prints kill's exit status. Builtins only: it forks nothing, which a full pid
 * limit would refuse. The mark is written once every other process is stopped, so that nothing of
 * its user's can write in it before a thaw reads it; it is the user's to forge beforehand, and only
 * ever says which of their own processes to resume.
 */
export const FREEZE_SCRIPT =
  'k=x; for d in /proc/[0-9]*; do read -r s 2>/dev/null < "$d/stat" || continue; ' +
  'case "${s##*)}" in " T"*|" t"*) k="$k ${d#/proc/}" ;; esac; done; ' +
  `kill -STOP -1 2>/dev/null; r=$?; ${withMark(`printf '%s\\n' "$k" > /proc/self/fd/3`)}; printf '%s' "$r"`;

/**
 * Thaws what FREEZE_SCRIPT froze (SIGCONT to every process of the user but those its mark lists),
 * and empties the mark (an empty one is none; emptied, not removed: `rm` would fork). Without a
 * mark, mode "C" ($m) resumes them all, mode "R" (a service restart adopting a container) nothing.
 * Mode "R" does not read the mark, only whether it holds anything: a mark left from before a
 * restart may be one its user wrote, as long as their disk allows, and `read` takes it a byte
 * at a time; it resumes every process then.
 */
export const THAW_SCRIPT =
  `k=; ${withMark('if [ -s /proc/self/fd/3 ]; then k=y; [ "$m" = R ] || IFS= read -r k <&3; fi; : > /proc/self/fd/3')}; case "$k" in ` +
  'x*) for d in /proc/[0-9]*; do case "$k " in *" ${d#/proc/} "*) ;; *) kill -CONT "${d#/proc/}" 2>/dev/null ;; esac; done ;; ' +
  `y) kill -CONT -1 2>/dev/null ;; *) [ "$m" = R ] || kill -CONT -1 2>/dev/null ;; esac; printf '%s' 0`;

/**
 * The loop every agent runs: a shell reading one request per line from stdin, as the container's
 * user. "L" lists the workspace with the find arguments given as "$@" (never parsed by the shell);
 * "F<path>" prints a regular file as base64, followed by a "!" (never base64) when it could not be
 * read; "S<path>" and "D<path>" print one entry (STAT_SCRIPT) or a folder's entries, with what a link leads to (a
 * link to a folder is listed as that folder: -H follows the one path given, never what is in it). Every
 * answer ends with a NUL; a listing's records end with NULs of their own, so a listing ends with two. Paths arrive already checked (no
 * control characters, no ".."), and only ever as a quoted variable. "P" freezes every process of
 * the container's user, "C" and "R" thaw them (FREEZE_SCRIPT, THAW_SCRIPT).
 */
const LOOP = `cd /workspace || exit 1
while IFS= read -r line; do
  case "$line" in
    L) "$@" ;;
    F*) p="./\${line#F}"; if [ -f "$p" ] && [ ! -L "$p" ]; then printf 'f\\t'; base64 -w0 -- "$p" || printf '!'; else printf 'x\\t'; fi ;;
    S*) p="./\${line#S}"; { ${STAT_SCRIPT}; } 2>/dev/null ;;
    P) ${FREEZE_SCRIPT} ;;
    C|R) m=$line; ${THAW_SCRIPT} ;;
    D*) find -H "./\${line#D}" -mindepth 1 -maxdepth 1 -printf '${ENTRY_FORMAT}' 2>/dev/null ;;
  esac
  printf '\\0'
done`;

interface Pending {
  resolve(out: Buffer): void;
  reject(err: Error): void;
  chunks: Buffer[];
  /** The last byte received so far (-1 before any): a listing ends with two NULs, maybe split across chunks. */
  lastByte: number;
  size: number;
  /** How many NULs end the answer: 2 for a listing (1 when it is empty), 1 for a file. */
  listing: boolean;
  timer: NodeJS.Timeout;
}

/**
 * A long-lived helper process in one container. It spares every save, watch poll and editor
 * read the cost of a new `docker exec` (a process started by runc, ~50 ms). What it prints is as
 * untrusted as any other container output; when it dies or misbehaves, callers fall back to a
 * one-off exec, and the container's user can only hurt their own session by meddling with it.
 */
class WorkspaceAgent {
  private queue: Promise<unknown> = Promise.resolve();
  private pending: Pending | null = null;
  private dead = false;

  private constructor(
    private readonly stdin: Duplex,
    stdout: PassThrough,
    private readonly maxOutput: number,
  ) {
    stdout.on('data', (chunk: Buffer) => this.onData(chunk));
    stdout.on('end', () => this.fail(new Error('the workspace agent ended')));
    stdout.on('error', (err) => this.fail(err));
    stdin.on('error', (err) => this.fail(err));
  }

  static async start(
    docker: DockerRuntime,
    containerId: string,
    user: string,
    findArgs: string[],
    maxOutput: number,
  ): Promise<WorkspaceAgent> {
    const { stream } = await docker.execStream(containerId, ['sh', '-c', LOOP, 'crawlhub-agent', ...findArgs], { user, stdin: true });
    return new WorkspaceAgent(stream.stdin, stream.stdout, maxOutput);
  }

  get alive(): boolean {
    return !this.dead;
  }

  request(line: string, listing: boolean, timeoutMs: number): Promise<Buffer> {
    const run = this.queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.dead) return reject(new Error('the workspace agent is gone'));
          const timer = setTimeout(() => this.fail(new Error('the workspace agent did not answer in time')), timeoutMs);
          this.pending = { resolve, reject, chunks: [], size: 0, lastByte: -1, listing, timer };
          this.stdin.write(`${line}\n`);
        }),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.fail(new Error('closed'));
  }

  private onData(chunk: Buffer): void {
    const p = this.pending;
    if (!p) return this.fail(new Error('the workspace agent spoke out of turn'));
    p.size += chunk.length;
    if (p.size > this.maxOutput) return this.fail(new Error('the workspace agent answered more than allowed'));
    if (chunk.length === 0) return;
    p.chunks.push(chunk);
    // Each chunk is looked at once, and the answer joined once when it is whole: joining on every
    // chunk that ends a record would cost time quadratic in the answer's size, which the container
    // (untrusted) could provoke on the service's one event loop.
    const before = p.lastByte;
    p.lastByte = chunk[chunk.length - 1];
    if (!p.listing) {
      // One NUL ends a file's answer; a NUL anywhere before the end is out of form.
      const nul = chunk.indexOf(0);
      if (nul === -1) return;
      if (nul !== chunk.length - 1) return this.fail(new Error('the workspace agent answered out of form'));
      return this.finish(p, p.size - 1);
    }
    if (p.lastByte !== 0) return;
    if (p.size === 1) return this.finish(p, 0);
    const previous = chunk.length >= 2 ? chunk[chunk.length - 2] : before;
    if (previous !== 0) return; // a listing record ended, the listing goes on
    this.finish(p, p.size - 1);
  }

  private finish(p: Pending, end: number): void {
    clearTimeout(p.timer);
    this.pending = null;
    p.resolve(Buffer.concat(p.chunks, p.size).subarray(0, end));
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    if (this.pending) {
      clearTimeout(this.pending.timer);
      this.pending.reject(err);
      this.pending = null;
    }
    this.stdin.destroy();
  }
}

/** One agent per container and listing, started on first use and dropped when it dies. */
export class WorkspaceAgents {
  private readonly agents = new Map<string, Promise<WorkspaceAgent>>();

  constructor(
    private readonly docker: DockerRuntime,
    private readonly logger: Logger,
  ) {}

  async request(
    containerId: string,
    user: string,
    findArgs: string[],
    line: string,
    opts: { listing: boolean; maxOutput: number; timeoutMs: number },
  ): Promise<Buffer> {
    const key = `${containerId}\0${findArgs.join('\0')}`;
    let agent = this.agents.get(key);
    if (!agent) {
      agent = WorkspaceAgent.start(this.docker, containerId, user, findArgs, opts.maxOutput);
      this.agents.set(key, agent);
      agent.catch(() => this.agents.delete(key));
    }
    const ready = await agent;
    try {
      return await ready.request(line, opts.listing, opts.timeoutMs);
    } catch (err) {
      if (!ready.alive) this.agents.delete(key);
      this.logger.debug({ err, container: containerId.slice(0, 12) }, 'workspace agent failed');
      throw err;
    }
  }

  /** Closes a container's agents; `except`, the find arguments of one to leave running. */
  closeFor(containerId: string, except?: string[]): void {
    const spared = except && `${containerId}\0${except.join('\0')}`;
    for (const [key, agent] of this.agents) {
      if (!key.startsWith(`${containerId}\0`) || key === spared) continue;
      this.agents.delete(key);
      void agent.then((a) => a.close()).catch(() => undefined);
    }
  }

  closeAll(): void {
    for (const agent of this.agents.values()) void agent.then((a) => a.close()).catch(() => undefined);
    this.agents.clear();
  }
}
