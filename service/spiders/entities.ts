import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';

export const Spider = defineEntity({
  name: 'Spider',
  tableName: 'spiders',
  uniques: [{ properties: ['ownerId', 'name'] }],
  properties: {
    id: p
      .string()
      .primary()
      .length(36)
      .onCreate(() => randomUUID()),
    ownerId: p.string().length(36).index(),
    name: p.string().length(100),
    description: p.text().default(''),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});
export type Spider = InferEntity<typeof Spider>;

/**
 * A file of a spider. Its bytes live in storage under `storageKey`, which derives from the content
 * hash, never from the path: a blob of its own (offset 0), or `size` bytes at `storageOffset` of a pack.
 */
export const SpiderFile = defineEntity({
  name: 'SpiderFile',
  tableName: 'spider_files',
  uniques: [{ properties: ['spiderId', 'path'] }],
  properties: {
    id: p
      .string()
      .primary()
      .length(36)
      .onCreate(() => randomUUID()),
    spiderId: p.string().length(36).index(),
    path: p.string().length(1024),
    size: p.bigint('number'),
    sha256: p.string().length(64),
    storageKey: p.string().length(200),
    storageOffset: p.bigint('number').default(0),
    updatedAt: p.datetime().onCreate(() => new Date()),
  },
});
export type SpiderFile = InferEntity<typeof SpiderFile>;
