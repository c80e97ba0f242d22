// npm run package: one VSIX per platform (vsce package --target), each carrying that platform's native modules
// beside the bundles. Other platforms' sharp builds are fetched with `npm pack` and checked against the integrity
// that package-lock.json records; everything else comes from node_modules, which holds every platform's files.
//
//   node --import tsx scripts/vsix/package.ts [--target linux-x64 ...] [--out <folder>]
//
// Expects a production build in dist/ (npm run package runs `node esbuild.mjs --production` first).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { platformOf, stagedPackages, targets, type StagedPackage, type Target } from './targets';

const root = path.resolve(__dirname, '../..');
const nodeModules = path.join(root, 'node_modules');
const work = path.join(root, 'out', 'vsix');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function argument(name: string): string[] {
  const values: string[] = [];
  process.argv.forEach((value, i) => process.argv[i - 1] === name && values.push(value));
  return values;
}

/** A fetched package's folder: `npm pack` once into out/vsix/fetched, the tarball's sha512 checked against the lock. */
function fetchedPackage(name: string): string {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
  const locked = lock.packages[`node_modules/${name}`];
  if (!locked?.version || !locked.integrity) throw new Error(`${name} is not in package-lock.json: run npm install once to record it.`);
  const folder = path.join(work, 'fetched', `${name.replace('/', '+')}@${locked.version}`);
  if (existsSync(path.join(folder, 'package.json'))) return folder;
  const tarballs = path.join(work, 'fetched', 'tarballs');
  mkdirSync(tarballs, { recursive: true });
  const [packed] = JSON.parse(execFileSync(npm, ['pack', `${name}@${locked.version}`, '--json', '--pack-destination', tarballs], { encoding: 'utf8' })) as { filename: string }[];
  const tarball = path.join(tarballs, path.basename(packed.filename));
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  if (integrity !== locked.integrity) throw new Error(`${name}@${locked.version}: the fetched tarball's integrity ${integrity} is not the lock file's ${locked.integrity}.`);
  const unpacked = `${folder}.partial`;
  rmSync(unpacked, { recursive: true, force: true });
  mkdirSync(unpacked, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1']);
  cpSync(unpacked, folder, { recursive: true });
  rmSync(unpacked, { recursive: true, force: true });
  return folder;
}

function stagePackage(item: StagedPackage, target: Target, into: string): void {
  const { os, cpu } = platformOf(target);
  const installed = path.join(nodeModules, item.name);
  const hostBuild = item.fetch && `${process.platform}-${process.arch}` === `${os}-${cpu}` && existsSync(installed);
  const source = item.fetch && !hostBuild ? fetchedPackage(item.name) : installed;
  if (!existsSync(path.join(source, 'package.json'))) throw new Error(`${item.name} is missing from ${source}: run npm ci first.`);
  const destination = path.join(into, item.name);
  const except = new Set((item.except ?? []).map((relative) => path.join(source, relative)));
  for (const relative of item.only ?? ['.']) {
    const from = path.join(source, relative);
    if (!existsSync(from)) throw new Error(`${item.name} has no ${relative} (looked in ${from}).`);
    cpSync(from, path.join(destination, relative), { recursive: true, dereference: true, filter: (file) => !except.has(file) && !/\.(map|d\.ts|d\.cts|d\.mts)$/.test(file) });
  }
}

function folderBytes(folder: string): number {
  return readdirSync(folder, { withFileTypes: true }).reduce((sum, entry) => {
    const full = path.join(folder, entry.name);
    return sum + (entry.isDirectory() ? folderBytes(full) : statSync(full).size);
  }, 0);
}

function packageTarget(target: Target, outFolder: string): string {
  const stage = path.join(work, 'stage', target);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  for (const file of ['package.json', 'README.md', 'LICENSE']) cpSync(path.join(root, file), path.join(stage, file));
  // The README's pictures ship too: VS Code shows an installed extension's README with its relative links.
  cpSync(path.join(root, 'media'), path.join(stage, 'media'), { recursive: true });
  cpSync(path.join(root, 'docs', 'screenshots'), path.join(stage, 'docs', 'screenshots'), { recursive: true });
  const dist = path.join(root, 'dist');
  if (!existsSync(path.join(dist, 'engine.js'))) throw new Error('dist/ has no build: run node esbuild.mjs --production first.');
  cpSync(dist, path.join(stage, 'dist'), { recursive: true, filter: (file) => !file.endsWith('.map') && !file.includes(`${path.sep}node_modules`) });
  // The engine reads this to tell a user on another platform which VSIX to install.
  writeFileSync(path.join(stage, 'dist', 'target.json'), `${JSON.stringify({ target })}\n`);
  const modules = path.join(stage, 'dist', 'node_modules');
  for (const item of stagedPackages(target)) stagePackage(item, target, modules);
  // vsce leaves out a top-level node_modules/ when it packs without dependency detection; dist/node_modules is
  // ordinary content, found by Node's resolution from the bundles beside it.
  writeFileSync(path.join(stage, '.vscodeignore'), '**/*.map\n');
  const vsix = path.join(outFolder, `cluster-lens-${target}.vsix`);
  const vsce = path.join(nodeModules, '@vscode', 'vsce', 'vsce');
  execFileSync(process.execPath, [vsce, 'package', '--target', target, '--no-dependencies', '--allow-missing-repository', '--no-rewrite-relative-links', '--out', vsix], { cwd: stage, stdio: ['ignore', 'inherit', 'inherit'] });
  console.log(`${path.basename(vsix)}: ${(statSync(vsix).size / 1e6).toFixed(1)} MB packed, ${(folderBytes(stage) / 1e6).toFixed(1)} MB staged`);
  return vsix;
}

const chosen = argument('--target');
for (const target of chosen) if (!(targets as readonly string[]).includes(target)) throw new Error(`--target ${target}: choose from ${targets.join(', ')}.`);
const outFolder = path.resolve(argument('--out')[0] ?? root);
mkdirSync(outFolder, { recursive: true });
for (const target of chosen.length > 0 ? (chosen as Target[]) : targets) packageTarget(target, outFolder);
