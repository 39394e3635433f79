import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { SETTINGS } from '../../service/config';
import { startTestService } from '../helpers/service';

const readme = fs.readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

describe('README', () => {
  it('its configuration table lists every setting the service reads', () => {
    const rows = new Set([...readme.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]));
    for (const name of Object.keys(SETTINGS)) assert.ok(rows.has(name), `${name} is missing from the README's table`);
  });

  it('its quick start has exactly two commands, and .ci/run runs the second', () => {
    const quick = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = quick.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    assert.equal(commands.length, 2, quick);
    const testCommand = commands[1].split('#')[0].trim();
    const ci = fs.readFileSync(path.resolve(__dirname, '../../.ci/run'), 'utf8');
    assert.ok(
      ci.split('\n').some((l) => l.trim() === testCommand),
      `.ci/run must run "${testCommand}"`,
    );
  });
});

/**
 * Every error code the service's source can answer with, and its status where the source fixes it:
 * `new AppError(status, 'code', …)`, the helpers of service/http/errors.ts with their code argument
 * (or their default), and `{ code: '…' }` in the error objects written by hand (upgrades, sockets).
 */
function errorCodesInSource(): Map<string, Set<number | null>> {
  const helpers: Record<string, { status: number | null; codeArg: number; fallback: string | null }> = {
    badRequest: { status: 400, codeArg: 1, fallback: 'bad_request' },
    conflict: { status: 409, codeArg: 1, fallback: 'conflict' },
    unavailable: { status: 503, codeArg: 1, fallback: 'unavailable' },
    unauthorized: { status: 401, codeArg: -1, fallback: 'unauthorized' },
    forbidden: { status: 403, codeArg: -1, fallback: 'forbidden' },
    notFound: { status: 404, codeArg: -1, fallback: 'not_found' },
    tooLarge: { status: 413, codeArg: -1, fallback: 'too_large' },
  };
  const codes = new Map<string, Set<number | null>>();
  const add = (code: string, status: number | null) => codes.set(code, (codes.get(code) ?? new Set()).add(status));
  const files = fs.readdirSync(path.resolve(__dirname, '../../service'), { recursive: true, encoding: 'utf8' });
  for (const rel of files.filter((f) => f.endsWith('.ts'))) {
    const file = path.resolve(__dirname, '../../service', rel);
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const statusAndCode = (args: ts.NodeArray<ts.Expression>) => {
      for (let i = 0; i + 1 < args.length; i++) {
        const [status, code] = [args[i], args[i + 1]];
        if (ts.isNumericLiteral(status) && Number(status.text) >= 400 && Number(status.text) < 600 && ts.isStringLiteral(code))
          add(code.text, Number(status.text));
      }
    };
    const visit = (node: ts.Node): void => {
      // `super(message, undefined, 504, 'docker_timeout')` in a subclass of an error with a status.
      if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.SuperKeyword) statusAndCode(node.arguments);
      if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && ts.isIdentifier(node.expression)) {
        const args = node.arguments ?? ts.factory.createNodeArray();
        const name = node.expression.text;
        if (name === 'AppError' && ts.isNewExpression(node) && args.length >= 2 && ts.isStringLiteral(args[1])) {
          add(args[1].text, ts.isNumericLiteral(args[0]) ? Number(args[0].text) : null);
        } else if (ts.isNewExpression(node) && name.endsWith('Error')) {
          // A subclass's (status, code) pair among its arguments: `new DockerError(message, engineStatus, 410, 'container_gone')`.
          statusAndCode(args);
        } else if (name in helpers && ts.isCallExpression(node)) {
          const h = helpers[name];
          const arg = h.codeArg >= 0 ? args[h.codeArg] : undefined;
          if (arg && ts.isStringLiteral(arg)) add(arg.text, h.status);
          else if (!arg && h.fallback) add(h.fallback, h.status);
        }
      }
      // A subclass's defaults: `constructor(message, …, status = 502, code = 'docker_error')`.
      if (ts.isConstructorDeclaration(node)) {
        const init = (n: string) => node.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === n)?.initializer;
        const [status, code] = [init('status'), init('code')];
        if (status && code && ts.isNumericLiteral(status) && ts.isStringLiteral(code)) add(code.text, Number(status.text));
      }
      if (
        ts.isPropertyAssignment(node) &&
        ts.isIdentifier(node.name) &&
        node.name.text === 'code' &&
        ts.isStringLiteral(node.initializer) &&
        /^[a-z]+(_[a-z]+)*$/.test(node.initializer.text) &&
        ts.isObjectLiteralExpression(node.parent) &&
        node.parent.properties.some((p) => p.name && ts.isIdentifier(p.name) && p.name.text === 'message')
      ) {
        add(node.initializer.text, null);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return codes;
}

describe('README error codes', () => {
  it('the Error codes table lists every code the service answers, with its status', () => {
    const section = /### Error codes\s+([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
    // Socket messages have no status: `—`.
    const table = new Map([...section.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(\d+|—)\s*\|/gm)].map((m) => [m[1], Number(m[2])]));
    const codes = errorCodesInSource();
    // The command line's own (it prints them; no HTTP client sees them).
    for (const cliOnly of ['no_database', 'ambiguous_token']) codes.delete(cliOnly);
    assert.ok(codes.size > 30, `found only ${codes.size} codes in the source`);
    const missing: string[] = [];
    for (const [code, statuses] of codes) {
      if (!table.has(code)) missing.push(code);
      for (const status of statuses) {
        if (status !== null && table.has(code))
          assert.equal(table.get(code), status, `${code}: the README says ${table.get(code)}, the source ${status}`);
      }
    }
    assert.deepEqual(missing, [], 'codes the service answers with that the README does not list');
  });
});

describe('README API', () => {
  it('its API tables list every route the service serves, with its methods', async () => {
    const section = /## API\s+([\s\S]*?)\n### Error codes/.exec(readme)?.[1] ?? '';
    const listed = new Set<string>();
    for (const m of section.matchAll(/^\|\s*(`[A-Z][^|]*?)\s*\|/gm)) {
      // `GET/PATCH/DELETE /api/spiders/:id` · `GET /api/spiders` {body}, with queries in brackets.
      for (const part of m[1].matchAll(/`([A-Z/]+) ([^`\s]+)`/g)) {
        const route = part[2]
          .replace(/[[?].*$/, '')
          .replace(/:(\w+)/g, '{$1}')
          .replace(/<(\w+)>/g, '{$1}');
        for (const method of part[1].split('/')) listed.add(`${method} ${route}`);
      }
    }
    const svc = await startTestService();
    try {
      const doc = (await (await fetch(`${svc.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
      const served = Object.entries(doc.paths).flatMap(([route, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${route}`));
      assert.ok(served.length > 20, `only ${served.length} routes`);
      // The description itself is named in the prose above the table.
      const missing = served.filter((r) => !listed.has(r) && r !== 'GET /openapi.json');
      assert.deepEqual(missing, [], 'routes the service serves that the README does not list');
      const stale = [...listed].filter((r) => !served.includes(r));
      assert.deepEqual(stale, [], 'routes the README lists that the service does not serve');
      assert.match(section, /`GET \/openapi\.json`/);
    } finally {
      await svc.close();
    }
  });
});
