// What each platform's VSIX carries: the bundles, and, beside them in dist/node_modules, that platform's build of
// every native package the bundles load at run time (and the small pure-JS packages those load). Shared by the
// packaging script and the check that opens every VSIX.

export const targets = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64'] as const;
export type Target = (typeof targets)[number];

export function platformOf(target: Target): { os: 'linux' | 'darwin' | 'win32'; cpu: 'x64' | 'arm64' } {
  const [os, cpu] = target.split('-') as ['linux' | 'darwin' | 'win32', 'x64' | 'arm64'];
  return { os, cpu };
}

/** A package copied into the VSIX: whole, or only the listed paths (files or folders) inside it. */
export interface StagedPackage {
  name: string;
  only?: string[];
  /** Paths inside `only` to leave out (a byte-identical twin of a library, say). */
  except?: string[];
  /** Fetched for this target with `npm pack` (other platforms' sharp builds are not in node_modules). */
  fetch?: boolean;
}

/** The packages each target stages, in dist/node_modules. */
export function stagedPackages(target: Target): StagedPackage[] {
  const { os, cpu } = platformOf(target);
  const sharpPlatform = `${os}-${cpu}`;
  return [
    // sharp (image decoding and encoding) with its platform binding and libvips (bundled in the binding on Windows).
    { name: 'sharp', only: ['package.json', 'LICENSE', 'dist'] },
    { name: '@img/colour' },
    { name: 'detect-libc' },
    { name: 'semver' },
    { name: `@img/sharp-${sharpPlatform}`, fetch: true },
    ...(os === 'win32' ? [] : [{ name: `@img/sharp-libvips-${sharpPlatform}`, fetch: true }]),
    // onnxruntime-node: its JS, and the binding and library of this platform alone. On macOS the binding links
    // @rpath/libonnxruntime.1.dylib; libonnxruntime.1.30.0.dylib beside it is a byte-identical 45 MB twin.
    {
      name: 'onnxruntime-node',
      only: ['package.json', 'README.md', 'dist', `bin/napi-v6/${os}/${cpu}`],
      except: os === 'darwin' ? [`bin/napi-v6/${os}/${cpu}/libonnxruntime.1.30.0.dylib`] : [],
    },
    { name: 'onnxruntime-common', only: ['package.json', 'README.md', 'dist/cjs'] },
    // usearch (HNSW index above 50,000 images): its CommonJS build and this platform's prebuild (macOS: universal).
    { name: 'usearch', only: ['package.json', 'LICENSE', 'javascript/dist/cjs', `prebuilds/${os === 'darwin' ? 'darwin-arm64+x64' : `${os}-${cpu}`}`] },
    { name: 'node-gyp-build' },
    { name: 'bindings' },
    { name: 'file-uri-to-path' },
    // webgpu (Dawn): names the GPU adapter for the device ladder. macOS is one universal build.
    { name: 'webgpu', only: ['package.json', 'LICENSE.md', 'index.js', `dist/${os}-${os === 'darwin' ? 'universal' : cpu}`] },
  ];
}

/** Native files every VSIX must hold, as path patterns under extension/dist/node_modules/. */
export function requiredNativeFiles(target: Target): RegExp[] {
  const { os, cpu } = platformOf(target);
  const ortLibrary = os === 'win32' ? 'onnxruntime\\.dll' : os === 'darwin' ? 'libonnxruntime\\.1\\.dylib' : 'libonnxruntime\\.so\\.1';
  return [
    new RegExp(`^@img/sharp-${os}-${cpu}/lib/sharp-${os}-${cpu}-[\\d.]+\\.node$`),
    ...(os === 'win32' ? [/^@img\/sharp-win32-x64\/lib\/libvips-42\.dll$/] : [new RegExp(`^@img/sharp-libvips-${os}-${cpu}/lib/libvips-cpp\\.`)]),
    new RegExp(`^onnxruntime-node/bin/napi-v6/${os}/${cpu}/onnxruntime_binding\\.node$`),
    new RegExp(`^onnxruntime-node/bin/napi-v6/${os}/${cpu}/${ortLibrary}$`),
    new RegExp(`^usearch/prebuilds/${os === 'darwin' ? 'darwin-arm64\\+x64' : `${os}-${cpu}`}/usearch\\.node$`),
    new RegExp(`^webgpu/dist/${os}-${os === 'darwin' ? 'universal' : cpu}/dawn\\.node$`),
  ];
}
