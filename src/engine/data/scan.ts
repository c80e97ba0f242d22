// Finds the images under a folder: recursive, sorted, symlink-safe, with labels from first-level subfolders.
// Symbolic links are followed only while they stay inside the folder; one that leads out of it (to a file or a
// folder) is skipped and listed, as is an image name that is not a regular file (a FIFO, a socket, a device), so
// nothing outside the chosen folder is read and nothing can block the decoder.

import { promises as fs, type Dirent, type Stats } from 'node:fs';
import * as path from 'node:path';
import { loadSharp } from '../nativeModules';
import type { ImageRecord, SkippedFile } from '../../protocol/options';
import { EngineError } from '../errors';

export interface ScanResult {
  /** Absolute path of the folder that was scanned. */
  root: string;
  files: ImageRecord[];
  labelNames: string[];
  skipped: SkippedFile[];
}

export interface ScanOptions {
  signal?: AbortSignal;
  /**
   * Follow symbolic links that lead outside the folder (default false: they are skipped, each with its reason).
   * For a folder assembled from links into a shared dataset store, by a caller that trusts where they lead.
   */
  followSymlinksOutside?: boolean;
}

export const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'gif', 'tif', 'tiff'] as const;

// Image formats people drop into folders that we cannot read; reported so a user knows why they were left out.
const UNSUPPORTED_IMAGE_EXTENSIONS = new Set(['svg', 'heic', 'heif', 'avif', 'ico', 'jp2', 'jxl', 'psd', 'cr2', 'nef', 'dng']);

const imageExtensionSet = new Set<string>(IMAGE_EXTENSIONS);

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1).toLowerCase();
}

export function isImageFileName(name: string): boolean {
  return imageExtensionSet.has(extensionOf(name));
}

/** Code-unit order, segment by segment, so the result never depends on the locale and folders stay together. */
export function comparePaths(a: string, b: string): number {
  const aParts = a.split('/');
  const bParts = b.split('/');
  const shared = Math.min(aParts.length, bParts.length);
  for (let i = 0; i < shared; i++) {
    if (aParts[i] !== bParts[i]) return aParts[i] < bParts[i] ? -1 : 1;
  }
  return aParts.length - bParts.length;
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code})`;
  if (code === 'ENOENT') return 'it disappeared during the scan (ENOENT)';
  if (code === 'ELOOP') return 'too many levels of symbolic links (ELOOP)';
  return code ? `${(error as Error).message} (${code})` : String(error);
}

/** Whether `real` (a resolved path) is `rootReal` or inside it. */
function isInside(rootReal: string, real: string): boolean {
  const relative = path.relative(rootReal, real);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/** What a directory entry is when it is neither a file nor a folder, for the skipped list. */
function specialKind(stats: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'neither a file nor a folder';
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineError('CANCELLED', 'The image scan was cancelled.');
}

interface FoundFile {
  relativePath: string;
  /** First path segment when the file sits inside a subfolder of the root. */
  topFolder: string | undefined;
}

export async function scanImageFolder(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const rootPath = path.resolve(root);
  let rootStats;
  try {
    rootStats = await fs.stat(rootPath);
  } catch {
    throw new EngineError('NOT_FOUND', `The images folder "${rootPath}" does not exist. Choose an existing folder of images.`);
  }
  if (!rootStats.isDirectory()) {
    throw new EngineError('NOT_FOUND', `"${rootPath}" is a file, not a folder. Choose the folder that holds your images.`);
  }

  // Links are judged against the folder's real path (the chosen folder may itself sit behind a link, as /tmp does on macOS).
  const rootReal = await fs.realpath(rootPath).catch(() => rootPath);
  const followOutside = options.followSymlinksOutside === true;
  const found: FoundFile[] = [];
  const skipped: SkippedFile[] = [];
  // Real path of every folder entered, mapped to the relative path it was first seen under.
  const visited = new Map<string, string>();

  async function walk(directory: string, relative: string, ancestors: Set<string>): Promise<void> {
    throwIfAborted(options.signal);
    let realDirectory: string;
    try {
      realDirectory = await fs.realpath(directory);
    } catch (error) {
      skipped.push({ path: `${relative}/`, reason: `cannot resolve folder: ${describeFsError(error)}` });
      return;
    }
    // A folder that was swapped for a link after it was listed: still never walked out of the chosen folder.
    if (!followOutside && !isInside(rootReal, realDirectory)) {
      skipped.push({ path: `${relative}/`, reason: `it leads outside the images folder (to "${realDirectory}"), so it was not followed; train with --follow-links (setting clusterLens.followLinks) to use it` });
      return;
    }
    if (ancestors.has(realDirectory)) {
      skipped.push({
        path: `${relative}/`,
        reason: `symbolic link loop: it points back to "${visited.get(realDirectory) || '.'}", so it was not followed`,
      });
      return;
    }
    const firstSeenAs = visited.get(realDirectory);
    if (firstSeenAs !== undefined) {
      skipped.push({ path: `${relative}/`, reason: `same folder as "${firstSeenAs}" (symbolic link), already scanned` });
      return;
    }
    visited.set(realDirectory, relative);

    let entries;
    try {
      entries = await fs.readdir(directory, { withFileTypes: true });
    } catch (error) {
      skipped.push({ path: relative ? `${relative}/` : './', reason: `cannot read folder: ${describeFsError(error)}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const innerAncestors = new Set(ancestors).add(realDirectory);

    for (const entry of entries) {
      // Hidden entries are tool folders (.git, .cache) or macOS "._x.jpg" resource forks, never training images.
      if (entry.name.startsWith('.')) continue;
      const entryPath = path.join(directory, entry.name);
      const entryRelative = relative ? `${relative}/${entry.name}` : entry.name;
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      let kind: Dirent | Stats = entry;
      if (entry.isSymbolicLink()) {
        try {
          const target = await fs.realpath(entryPath);
          const stats = await fs.stat(target);
          isDirectory = stats.isDirectory();
          isFile = stats.isFile();
          kind = stats;
          if (!followOutside && !isInside(rootReal, target)) {
            skipped.push({
              path: isDirectory ? `${entryRelative}/` : entryRelative,
              reason: `symbolic link to "${target}", outside the images folder, so it was not followed; train with --follow-links (setting clusterLens.followLinks) to use it`,
            });
            continue;
          }
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          const reason = code === 'ENOENT' ? 'broken symbolic link' : `cannot follow symbolic link: ${describeFsError(error)}`;
          skipped.push({ path: entryRelative, reason });
          continue;
        }
      }
      if (!isDirectory && !isFile) {
        // A FIFO, a socket or a device: opening one can block for ever or never end, so it is never decoded. Listed
        // when its name says image, so a user who expected it sees why it is missing.
        const extension = extensionOf(entry.name);
        if (imageExtensionSet.has(extension) || UNSUPPORTED_IMAGE_EXTENSIONS.has(extension)) {
          skipped.push({ path: entryRelative, reason: `not a regular file (${specialKind(kind)}), so it was not read` });
        }
        continue;
      }
      if (isDirectory) {
        await walk(entryPath, entryRelative, innerAncestors);
      } else if (isFile) {
        const extension = extensionOf(entry.name);
        if (imageExtensionSet.has(extension)) {
          found.push({ relativePath: entryRelative, topFolder: relative ? entryRelative.split('/')[0] : undefined });
        } else if (UNSUPPORTED_IMAGE_EXTENSIONS.has(extension)) {
          skipped.push({ path: entryRelative, reason: `unsupported image format (.${extension}); convert it to PNG or JPEG` });
        }
      }
    }
  }

  await walk(rootPath, '', new Set());
  throwIfAborted(options.signal);

  if (found.length === 0) {
    const unreadable = skipped.filter((item) => item.reason.startsWith('cannot read folder')).length;
    const note = unreadable > 0 ? ` (${unreadable} folder${unreadable === 1 ? '' : 's'} could not be read)` : '';
    throw new EngineError(
      'NO_IMAGES',
      `No images found in "${rootPath}"${note}. Supported extensions: ${IMAGE_EXTENSIONS.map((e) => `.${e}`).join(', ')}.`,
    );
  }

  found.sort((a, b) => comparePaths(a.relativePath, b.relativePath));
  const topFolders = [...new Set(found.flatMap((file) => (file.topFolder === undefined ? [] : [file.topFolder])))].sort(
    (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  );
  // One subfolder is just where the images live, not a labelling.
  const labelNames = topFolders.length >= 2 ? topFolders : [];
  const labelIndex = new Map(labelNames.map((name, index) => [name, index]));
  const files: ImageRecord[] = found.map((file) => ({
    path: file.relativePath,
    label: file.topFolder === undefined ? -1 : (labelIndex.get(file.topFolder) ?? -1),
  }));
  skipped.sort((a, b) => comparePaths(a.path, b.path));
  return { root: rootPath, files, labelNames, skipped };
}

/**
 * The median shorter side of up to 64 images spread over the folder, read from their headers (no decoding);
 * undefined when none can be read.
 */
export async function typicalImageSizePx(root: string, files: string[]): Promise<number | undefined> {
  const sample = Array.from({ length: Math.min(64, files.length) }, (_, i) => files[Math.floor((i * files.length) / Math.min(64, files.length))]);
  const sides: number[] = [];
  const sharp = loadSharp();
  await Promise.all(
    sample.map(async (file) => {
      try {
        const { width, height } = await sharp(path.join(root, file)).metadata();
        if (width && height) sides.push(Math.min(width, height));
      } catch {
        // Unreadable files are reported when the images load; BMP headers are not worth a second reader here.
      }
    }),
  );
  if (sides.length === 0) return undefined;
  sides.sort((a, b) => a - b);
  return sides[Math.floor(sides.length / 2)];
}
