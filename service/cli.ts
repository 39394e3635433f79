import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Command } from 'commander';
import { VERSION } from './app';
import { ConfigError, loadConfig, SETTINGS } from './config';
import { AppError } from './http/errors';
import { createLogger } from './logger';
import { serve } from './main';
import { openDatabase } from './services';
import { UserService } from './auth/users';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** The first line of standard input (a pasted token and Enter), or '' when it ends first. */
async function firstLine(): Promise<string> {
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of lines) return line;
    return '';
  } finally {
    lines.close();
  }
}

/** Opens the database for a one-off admin command. */
async function withDb<T>(task: (em: import('./db/orm').Em, users: UserService) => Promise<T>): Promise<T> {
  const config = loadConfig();
  // Run from another folder, the default ./data is another (empty) database: say so, create nothing.
  // (Named explicitly, a data dir may be new: users can be added before the service first starts.)
  const implicit = !process.env.CRAWLHUB_DATA_DIR && !process.env.DATABASE_URL;
  const sqliteFile = implicit ? path.resolve(config.databaseUrl.replace(/^sqlite:(\/\/)?/, '')) : null;
  if (sqliteFile !== null && !fs.existsSync(sqliteFile)) {
    throw new AppError(
      404,
      'no_database',
      `There is no database at ${sqliteFile}. Run crawlhub with the service's CRAWLHUB_DATA_DIR (or DATABASE_URL), or from the folder the service runs in; the service creates the database when it first starts.`,
    );
  }
  const orm = await openDatabase(config);
  try {
    return await task(orm.em.fork(), new UserService());
  } finally {
    await orm.close();
  }
}

const program = new Command('crawlhub').description('CrawlHub Code: private code-server sessions for spiders').version(VERSION);

program
  .command('serve')
  .description('run the service (settings come from CRAWLHUB_* environment variables)')
  .action(async () => {
    const config = loadConfig();
    const logger = createLogger(config.CRAWLHUB_LOG_LEVEL);
    await serve(config, { logger, signals: true });
  });

const user = program.command('user').description('manage users');
user
  .command('add <name>')
  .description('create a user and print a new API token for it, once')
  .option('--admin', 'the user sees and manages every spider and session')
  .action((name: string, opts: { admin?: boolean }) =>
    withDb(async (em, users) => {
      const created = await users.createUser(em, name, Boolean(opts.admin));
      const { token } = await users.createToken(em, created, 'created with the user');
      out(`Created ${created.isAdmin ? 'admin ' : ''}user "${created.name}". Its API token (shown once):`);
      out(token);
    }),
  );

const token = program.command('token').description('manage API tokens');
token
  .command('add <user>')
  .description('create an API token for a user and print it, once')
  .option('--label <text>', 'a note to tell the token apart', '')
  .action((name: string, opts: { label: string }) =>
    withDb(async (em, users) => {
      const { token: secret, info } = await users.createToken(em, await users.findUser(em, name), opts.label);
      out(`New token ${info.id} for "${name}" (shown once):`);
      out(secret);
    }),
  );
token
  .command('list <user>')
  .description("list a user's tokens (prefixes only)")
  .action((name: string) =>
    withDb(async (em, users) => {
      const rows = await users.listTokens(em, await users.findUser(em, name));
      out(['id', 'prefix', 'label', 'created', 'last used', 'revoked'].join('\t'));
      for (const t of rows) {
        out(
          [
            t.id,
            `${t.prefix}…`,
            t.label || '-',
            t.createdAt.toISOString(),
            t.lastUsedAt?.toISOString() ?? '-',
            t.revokedAt?.toISOString() ?? '-',
          ].join('\t'),
        );
      }
    }),
  );
token
  .command('revoke <token>')
  .description('revoke a token by its id, its prefix as listed (chub_1234567…) or the whole token; - reads it from standard input')
  .action((given: string) =>
    withDb(async (em, users) => {
      // A leaked token given as `-` stays out of the process list and the shell's history.
      const id = given === '-' ? await firstLine() : given;
      const info = await users.revokeToken(em, id);
      out(`Revoked token ${info.id} (${info.prefix}…).`);
    }),
  );

program
  .command('config')
  .description('print every setting with its default')
  .action(() => {
    for (const [name, spec] of Object.entries(SETTINGS)) out(`${name}=${spec.default}\t# ${spec.help}`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`crawlhub: bad configuration: ${err.message}\n`);
  else if (err instanceof AppError) process.stderr.write(`crawlhub: ${err.message}\n`);
  else process.stderr.write(`crawlhub: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(err instanceof ConfigError ? 78 : 1);
});
