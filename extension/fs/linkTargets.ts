/** How many links the provider keeps in mind, across sessions: an entry is two short strings. */
export const MAX_LINKS = 2000;

/**
 * The links inside /workspace that VS Code stat-ed, by the path they lead to. The container's
 * watcher names a change by the real path only: an editor open on `a.py -> src/b.py` must hear of a
 * change to `src/b.py` too, and one open on `d/b.py` through `d -> src` of one to `src/b.py`. Bounded:
 * the most recently stat-ed links are kept (VS Code stats an open file whenever it looks at it).
 */
export class LinkTargets {
  /** `session \0 link path` → the path it leads to, oldest first. */
  private readonly byLink = new Map<string, string>();
  /** `session \0 real path` → the links (paths) that lead there. */
  private readonly byTarget = new Map<string, Set<string>>();

  constructor(private readonly max = MAX_LINKS) {}

  get size(): number {
    return this.byLink.size;
  }

  /** What a stat said of `path`: a link to `realPath` in /workspace, or (undefined) anything else. */
  note(sessionId: string, path: string, realPath: string | undefined): void {
    this.forget(sessionId, path);
    if (realPath === undefined || realPath === path) return;
    this.byLink.set(`${sessionId}\0${path}`, realPath);
    const key = `${sessionId}\0${realPath}`;
    const links = this.byTarget.get(key) ?? new Set<string>();
    this.byTarget.set(key, links.add(path));
    if (this.byLink.size > this.max) {
      const oldest = this.byLink.keys().next().value!;
      const cut = oldest.indexOf('\0');
      this.forget(oldest.slice(0, cut), oldest.slice(cut + 1));
    }
  }

  forget(sessionId: string, path: string): void {
    const realPath = this.byLink.get(`${sessionId}\0${path}`);
    if (realPath === undefined) return;
    this.byLink.delete(`${sessionId}\0${path}`);
    const key = `${sessionId}\0${realPath}`;
    const links = this.byTarget.get(key);
    links?.delete(path);
    if (links?.size === 0) this.byTarget.delete(key);
  }

  /**
   * The paths through a remembered link of what the watcher calls `path`: the link itself when it
   * leads to `path` (`exact`), and `path` below a linked folder, for it and every folder above it.
   */
  linked(sessionId: string, path: string): { path: string; exact: boolean }[] {
    if (this.byLink.size === 0) return [];
    const found: { path: string; exact: boolean }[] = [];
    for (let end = path.length; end > 0; end = path.lastIndexOf('/', end - 1)) {
      const rest = path.slice(end);
      for (const link of this.byTarget.get(`${sessionId}\0${path.slice(0, end)}`) ?? [])
        found.push({ path: link + rest, exact: rest === '' });
    }
    return found;
  }
}
