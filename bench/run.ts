// `npm run bench`: every benchmark, one after the other (they would disturb each other), each
// printing its figures next to a baseline measured in the same run. Tables also land as JSON in
// bench/results/. Pass names to run only some: `npm run bench -- proxy`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const all = ['sessions', 'proxy', 'workbench', 'extension'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = (wanted.length ? all.filter((b) => wanted.includes(b)) : all).filter((b) => fs.existsSync(path.join(__dirname, `${b}.ts`)));
let failed = 0;
for (const name of chosen) {
  console.log(`\n=== ${name}`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, `${name}.ts`)], {
    stdio: 'inherit',
    cwd: path.resolve(__dirname, '..'),
  });
  if (res.status !== 0) {
    failed++;
    console.log(`${name} failed (exit ${res.status ?? res.signal})`);
  }
}
process.exit(failed ? 1 : 0);
