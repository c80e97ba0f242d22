// Builds every bundle: the extension host, the engine worker, the CLI (Node) and the webviews (browser).
import * as esbuild from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

// Native packages, and optional ones detected at run time, stay outside the bundles.
const nodeExternals = [
  'vscode',
  'sharp',
  'onnxruntime-node',
  'usearch',
];

const common = {
  bundle: true,
  sourcemap: true,
  minify: production,
  logLevel: 'info',
};

const nodeBuild = {
  ...common,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: nodeExternals,
};

const webviewEntries = existsSync('webview')
  ? readdirSync('webview', { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name !== 'shared' && existsSync(path.join('webview', d.name, 'main.ts')))
      .map((d) => path.join('webview', d.name, 'main.ts'))
  : [];

const builds = [
  { ...nodeBuild, entryPoints: { extension: 'src/host/extension.ts' }, outdir: 'dist' },
  { ...nodeBuild, entryPoints: { engine: 'src/engine/main.ts' }, outdir: 'dist' },
  { ...nodeBuild, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
];
if (webviewEntries.length > 0) {
  builds.push({
    ...common,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    entryPoints: Object.fromEntries(webviewEntries.map((e) => [path.basename(path.dirname(e)), e])),
    outdir: 'dist/webview',
  });
}

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
