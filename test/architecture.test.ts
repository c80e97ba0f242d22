// The layout is the architecture: the engine never imports vscode, onnx/ is the file format alone,
// and no module reaches itself through its imports (type-only imports included).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..');

function sourceFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const file = path.join(folder, name);
    return statSync(file).isDirectory() ? sourceFiles(file) : file.endsWith('.ts') ? [file] : [];
  });
}

/** Every import or re-export specifier of a file, relative ones resolved to files. */
function importsOf(file: string): { specifier: string; resolved?: string }[] {
  const text = readFileSync(file, 'utf8');
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)/g;
  const found: { specifier: string; resolved?: string }[] = [];
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1] ?? match[2] ?? match[3];
    if (!specifier.startsWith('.')) {
      found.push({ specifier });
      continue;
    }
    const base = path.resolve(path.dirname(file), specifier);
    const resolved = [`${base}.ts`, path.join(base, 'index.ts'), base].find((candidate) => existsSync(candidate) && statSync(candidate).isFile());
    found.push({ specifier, resolved });
  }
  return found;
}

const files = [...sourceFiles(path.join(root, 'src')), ...sourceFiles(path.join(root, 'webview'))];
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const relative = (file: string) => path.relative(root, file);

test('the engine, the CLI and the engine client never import vscode', () => {
  for (const file of files.filter((name) => /^src\/(engine|cli|protocol)/.test(relative(name)))) {
    assert.ok(!graph.get(file)!.some((entry) => entry.specifier === 'vscode'), `${relative(file)} imports vscode`);
  }
});

test('the protocol is split by audience: the engine and the CLI never import the webview messages', () => {
  for (const file of files.filter((name) => /^src\/(engine|cli)\//.test(relative(name)))) {
    for (const entry of graph.get(file)!) {
      if (entry.resolved) assert.notEqual(relative(entry.resolved), 'src/protocol/webview.ts', `${relative(file)} imports the webview messages`);
    }
  }
});

test('domain folders import only downward, and jobs/ sits on top of them all', () => {
  const folderOf = (file: string) => /^src\/engine\/([a-z]+)\//.exec(relative(file))?.[1];
  // What each folder may import from the engine's other folders, bottom to top.
  const mayImport: Record<string, string[]> = {
    util: ['util'],
    analysis: ['analysis', 'util'],
    data: ['data', 'util'],
    onnx: ['onnx', 'model', 'util'],
    model: ['model', 'util'],
    runtime: ['runtime', 'model', 'onnx', 'util'],
    swav: ['swav', 'data', 'model', 'onnx', 'runtime', 'util'],
    index: ['index', 'analysis', 'data', 'model', 'onnx', 'runtime', 'util'],
    explain: ['explain', 'data', 'model', 'onnx', 'runtime', 'util'],
    frozen: ['frozen', 'data', 'index', 'model', 'onnx', 'runtime', 'swav', 'util'],
  };
  const folders = new Set(files.map(folderOf).filter((folder): folder is string => folder !== undefined));
  for (const folder of folders) if (folder !== 'jobs') assert.ok(mayImport[folder], `${folder}/ has a place in the layering`);
  for (const file of files.filter((name) => folderOf(name) !== undefined)) {
    const folder = folderOf(file)!;
    for (const entry of graph.get(file)!) {
      const target = entry.resolved && folderOf(entry.resolved);
      if (!target || target === folder) continue;
      if (folder !== 'jobs') assert.notEqual(target, 'jobs', `${relative(file)} imports ${relative(entry.resolved!)}: jobs/ sits above every domain folder`);
      if (mayImport[folder]) assert.ok(mayImport[folder].includes(target), `${relative(file)} imports ${relative(entry.resolved!)}: ${folder}/ may import only ${mayImport[folder].join(', ')}`);
    }
  }
});

test('onnx/ is the file format: it imports no runtime, training, index or explanation module', () => {
  const allowed = /^src\/engine\/(onnx\/|errors\.ts$|util\/|model\/(layout|model)\.ts$)|^src\/protocol\//;
  for (const file of files.filter((name) => relative(name).startsWith('src/engine/onnx/'))) {
    for (const entry of graph.get(file)!) {
      if (entry.resolved) assert.match(relative(entry.resolved), allowed, `${relative(file)} imports ${relative(entry.resolved)}`);
    }
  }
});

test('onnxruntime sessions open in one place (runtime/)', () => {
  for (const file of files.filter((name) => relative(name).startsWith('src/') && !relative(name).startsWith('src/engine/runtime/'))) {
    assert.doesNotMatch(readFileSync(file, 'utf8'), /InferenceSession\.create|executionProviders/, `${relative(file)} opens an onnxruntime session itself`);
  }
});

test('no import circles', () => {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const { resolved } of graph.get(file) ?? []) {
      if (!resolved || !graph.has(resolved)) continue;
      if (state.get(resolved) === 'open') {
        const circle = [...stack.slice(stack.indexOf(resolved)), resolved].map(relative);
        assert.fail(`import circle: ${circle.join(' → ')}`);
      }
      if (!state.has(resolved)) visit(resolved);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
});

test('one runtime: nothing imports TensorFlow.js, and no dependency brings it in', () => {
  const everything = [...files, ...sourceFiles(path.join(root, 'test')), ...sourceFiles(path.join(root, 'scripts'))];
  for (const file of everything) {
    for (const entry of importsOf(file)) assert.ok(!entry.specifier.startsWith('@tensorflow/'), `${relative(file)} imports ${entry.specifier}`);
  }
  const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies']) {
    for (const name of Object.keys(manifest[field] ?? {})) assert.ok(!name.startsWith('@tensorflow/'), `package.json ${field} lists ${name}`);
  }
  // The lock file is what npm ci installs: no package under @tensorflow/, directly or through another package.
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  const locked = Object.keys(lock.packages).filter((key) => key.includes('node_modules/@tensorflow/'));
  assert.deepEqual(locked, []);
});
