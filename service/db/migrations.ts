import type { MigrationObject } from '@mikro-orm/core';
import { Migration0001Initial } from './migrations/0001-initial';
import { Migration0002Packs } from './migrations/0002-packs';

/** Every migration in order; esbuild bundles them, so the list is explicit. */
export const migrations: MigrationObject[] = [
  { name: 'Migration0001Initial', class: Migration0001Initial },
  { name: 'Migration0002Packs', class: Migration0002Packs },
];
