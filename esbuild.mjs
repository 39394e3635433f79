// One build for the three outputs: the desktop extension, the service library and the CLI.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';

const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning', legalComments: 'none' };

await Promise.all([
  // The service runs from this checkout, next to node_modules: only our own code is bundled.
  build({ ...common, entryPoints: { cli: 'service/cli.ts' }, outdir: 'dist', packages: 'external', banner: { js: '#!/usr/bin/env node' } }),
  build({ ...common, entryPoints: { service: 'service/main.ts' }, outdir: 'dist', packages: 'external' }),
  // The extension is one self-contained file: VS Code provides `vscode`, nothing else is installed.
  build({
    ...common,
    entryPoints: { extension: 'extension/extension.ts' },
    outdir: 'dist',
    format: 'cjs',
    external: ['vscode', 'bufferutil', 'utf-8-validate'],
    minify: true,
    sourcemap: false,
    target: 'node18',
  }),
]);
await chmod('dist/cli.js', 0o755);
