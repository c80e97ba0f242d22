// Opens every VSIX and checks what ships, as CI runs it after `npm run package`:
// - every native file (ELF, Mach-O, PE) is for the VSIX's platform: format and architecture;
// - every library a native file links against is inside that VSIX (beside it, or where its rpath says) or is a
//   system library of that platform;
// - the native modules the engine loads are all there;
// and prints each VSIX's size and what dominates it. Reads binaries with LLVM's llvm-readobj and llvm-objdump
// (Debian: apt-get install llvm), which read all three formats on any host.
//
//   node --import tsx scripts/vsix/check.ts [cluster-lens-<target>.vsix ...]   (default: the four in the repo root)
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { platformOf, requiredNativeFiles, targets, type Target } from './targets';

const root = path.resolve(__dirname, '../..');

/** Libraries every machine of the platform has: the C and C++ runtimes, the OS's own frameworks and DLLs. */
const systemLibraries: Record<'linux' | 'darwin' | 'win32', RegExp> = {
  // glibc's libraries, and GCC's runtime that every glibc distribution installs with it.
  linux: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libresolv\.so\.2|libgcc_s\.so\.1|libstdc\+\+\.so\.6|ld-linux-(x86-64|aarch64)\.so\.[12])$/,
  darwin: /^(\/usr\/lib\/|\/System\/Library\/)/,
  // Windows' own DLLs (API sets included), Direct3D, and the Visual C++ runtime that Windows 10/11 machines carry.
  win32: /^(api-ms-win-.*|ext-ms-.*|kernel32|kernelbase|user32|gdi32|advapi32|shell32|ole32|oleaut32|shlwapi|ws2_32|bcrypt|bcryptprimitives|crypt32|ncrypt|secur32|rpcrt4|dnsapi|setupapi|cfgmgr32|dbghelp|version|winmm|powrprof|ntdll|userenv|iphlpapi|psapi|imm32|comctl32|comdlg32|dwmapi|uxtheme|d3d11|d3d12|dxgi|dxcore|d3dcompiler_47|msvcp140(_1|_2|_atomic_wait|_codecvt_ids)?|vcruntime140(_1)?|vcomp140|ucrtbase|node\.exe)\.dll$|^node\.exe$/i,
};

const expectedFormat: Record<Target, RegExp> = {
  'linux-x64': /^elf64-x86-64$/,
  'linux-arm64': /^elf64-littleaarch64$/,
  'darwin-arm64': /^Mach-O arm64$/,
  'win32-x64': /^COFF-x86-64$/,
};

function magicOf(file: string): 'elf' | 'macho' | 'pe' | undefined {
  const bytes = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  try {
    if (readSync(fd, bytes, 0, 4, 0) < 4) return undefined;
  } finally {
    closeSync(fd);
  }
  if (bytes.toString('latin1') === '\x7fELF') return 'elf';
  const word = bytes.readUInt32BE(0);
  if ([0xfeedfacf, 0xcffaedfe, 0xfeedface, 0xcefaedfe, 0xcafebabe].includes(word)) return 'macho';
  if (bytes.toString('latin1', 0, 2) === 'MZ') return 'pe';
  return undefined;
}

function llvm(tool: 'llvm-readobj' | 'llvm-objdump', args: string[]): string {
  return execFileSync(tool, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
}

/** Formats of the file: one per slice of a universal Mach-O. */
function formatsOf(file: string): string[] {
  return [...llvm('llvm-readobj', ['--file-headers', file]).matchAll(/^Format: (.+)$/gm)].map((match) => match[1].trim());
}

/** The libraries a native file links against, as written in it. */
function linkedLibraries(file: string, kind: 'elf' | 'macho' | 'pe'): string[] {
  if (kind === 'elf') {
    const text = llvm('llvm-readobj', ['--needed-libs', file]);
    return [...(text.match(/NeededLibraries \[([^\]]*)\]/)?.[1] ?? '').split('\n')].map((line) => line.trim()).filter(Boolean);
  }
  if (kind === 'macho') {
    const text = llvm('llvm-objdump', ['--macho', '--dylibs-used', '--arch=arm64', file]);
    return text.split('\n').slice(1).map((line) => line.trim().replace(/ \(compatibility version.*$/, '')).filter(Boolean);
  }
  const text = llvm('llvm-readobj', ['--coff-imports', file]);
  return [...new Set([...text.matchAll(/^\s*Name: (.+\.(dll|exe|DLL|EXE))$/gm)].map((match) => match[1].trim()))];
}

function walk(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(folder, entry.name);
    return entry.isDirectory() ? walk(full) : [full];
  });
}

function targetOf(vsix: string): Target {
  const target = targets.find((name) => path.basename(vsix).includes(name));
  if (!target) throw new Error(`${vsix}: the file name names no target (${targets.join(', ')}).`);
  return target;
}

function checkVsix(vsix: string): string[] {
  const target = targetOf(vsix);
  const { os: platform } = platformOf(target);
  const problems: string[] = [];
  const unpacked = mkdtempSync(path.join(os.tmpdir(), 'cl-vsix-check-'));
  try {
    execFileSync('unzip', ['-q', vsix, '-d', unpacked]);
    const manifest = execFileSync('unzip', ['-p', vsix, 'extension.vsixmanifest'], { encoding: 'utf8' });
    if (!manifest.includes(`TargetPlatform="${target}"`)) problems.push(`the manifest names no TargetPlatform="${target}"`);
    const extension = path.join(unpacked, 'extension');
    const files = walk(extension);
    const byBase = new Map<string, string[]>();
    for (const file of files) byBase.set(path.basename(file).toLowerCase(), [...(byBase.get(path.basename(file).toLowerCase()) ?? []), file]);
    const modules = path.join(extension, 'dist', 'node_modules');
    const relative = (file: string) => path.relative(modules, file).split(path.sep).join('/');
    for (const pattern of requiredNativeFiles(target)) {
      if (!files.some((file) => pattern.test(relative(file)))) problems.push(`missing: a native file matching ${pattern.source} under dist/node_modules`);
    }
    const native = files.filter((file) => magicOf(file) !== undefined);
    for (const file of files) {
      if (/\.(node|so(\.\d+)*|dylib|dll)$/i.test(file) && !native.includes(file)) problems.push(`${relative(file)}: named like a native library, but is none`);
    }
    for (const file of native) {
      const kind = magicOf(file)!;
      const formats = formatsOf(file);
      if (!formats.some((format) => expectedFormat[target].test(format))) {
        problems.push(`${relative(file)}: ${formats.join(' + ') || 'unreadable'}, not ${expectedFormat[target].source.replace(/[\^$]/g, '')} (a foreign binary)`);
        continue;
      }
      for (const library of linkedLibraries(file, kind)) {
        if (systemLibraries[platform].test(library)) continue;
        const base = path.basename(library.replace(/^@(rpath|loader_path|executable_path)\//, '')).toLowerCase();
        if (kind === 'macho' && library.startsWith('@loader_path/')) {
          if (!existsSync(path.resolve(path.dirname(file), library.slice('@loader_path/'.length)))) problems.push(`${relative(file)} links ${library}, which is not there`);
          continue;
        }
        if (kind === 'macho' && path.basename(library) === path.basename(file)) continue; // its own install name
        if (!byBase.has(base)) problems.push(`${relative(file)} links ${library}: neither in the VSIX nor a ${platform} system library`);
      }
    }
    // Size, and what dominates it.
    const total = statSync(vsix).size;
    const shares = new Map<string, number>();
    for (const file of files) {
      const rel = path.relative(extension, file).split(path.sep);
      const key = rel[0] === 'dist' && rel[1] === 'node_modules' ? `dist/node_modules/${rel[2].startsWith('@') ? `${rel[2]}/${rel[3]}` : rel[2]}` : rel.length > 1 ? `${rel[0]}/` : rel[0];
      shares.set(key, (shares.get(key) ?? 0) + statSync(file).size);
    }
    const unpackedBytes = [...shares.values()].reduce((sum, bytes) => sum + bytes, 0);
    const top = [...shares.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([key, bytes]) => `${key} ${(bytes / 1e6).toFixed(1)} MB`);
    console.log(`${path.basename(vsix)}: ${(total / 1e6).toFixed(1)} MB (${(unpackedBytes / 1e6).toFixed(1)} MB unpacked, ${native.length} native files); largest: ${top.join(', ')}`);
  } finally {
    rmSync(unpacked, { recursive: true, force: true });
  }
  return problems;
}

const given = process.argv.slice(2);
const vsixes = given.length > 0 ? given : targets.map((target) => path.join(root, `cluster-lens-${target}.vsix`));
let failed = false;
for (const vsix of vsixes) {
  if (!existsSync(vsix)) {
    console.error(`${vsix}: missing (npm run package writes it)`);
    failed = true;
    continue;
  }
  const problems = checkVsix(vsix);
  for (const problem of problems) console.error(`  ${path.basename(vsix)}: ${problem}`);
  failed ||= problems.length > 0;
}
if (failed) process.exit(1);
console.log(`${vsixes.length} VSIX${vsixes.length === 1 ? '' : 's'}: every native file is for its platform and finds every library it links.`);
