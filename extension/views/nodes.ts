import type { Session, Spider } from '../api/types';

/** A row of the Spiders view; commands get it as their argument when run from its menus. */
export interface SpiderNode {
  kind: 'spider';
  spider: Spider;
  session?: Session;
}

/** A row of the Sessions view. */
export interface SessionNode {
  kind: 'session';
  session: Session;
}

export type CrawlHubNode = SpiderNode | SessionNode;

export function isCrawlHubNode(value: unknown): value is CrawlHubNode {
  const kind = (value as { kind?: unknown } | null)?.kind;
  return kind === 'spider' || kind === 'session';
}
