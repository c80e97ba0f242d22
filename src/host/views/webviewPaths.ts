// Paths that arrive from a webview (a click on a thumbnail, a lasso's selection, a panel's saved state) are the
// page's word only: each must name an image inside the run's images folder before the host opens, explains or
// lists it. Kept free of `vscode` so that it is unit-tested on its own.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isImageFile } from '../runs';

/** Whether `candidate` (absolute, resolved) is `root` or inside it. */
export function isInsideFolder(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/**
 * The absolute path of `relativePath` under `imagesDir`, by its text alone, or undefined when it is not a relative
 * path to something inside the folder (absolute, "..", a NUL byte, not a string).
 */
export function pathInsideFolder(imagesDir: string, relativePath: unknown): string | undefined {
  if (typeof relativePath !== 'string' || !imagesDir || relativePath === '' || relativePath.includes('\0')) return undefined;
  if (path.isAbsolute(relativePath) || path.win32.isAbsolute(relativePath)) return undefined;
  const root = path.resolve(imagesDir);
  const absolute = path.resolve(root, relativePath);
  return absolute !== root && isInsideFolder(root, absolute) ? absolute : undefined;
}

/**
 * The absolute path of the image `relativePath` names under `imagesDir`, or undefined unless it is an image file
 * name, a regular file, and inside the folder once links are resolved (a link out of the folder does not count).
 */
export async function imageInsideFolder(imagesDir: string, relativePath: unknown): Promise<string | undefined> {
  const absolute = pathInsideFolder(imagesDir, relativePath);
  if (!absolute || !isImageFile(absolute)) return undefined;
  try {
    const [rootReal, real] = await Promise.all([fs.realpath(imagesDir), fs.realpath(absolute)]);
    if (!isInsideFolder(rootReal, real)) return undefined;
    return (await fs.stat(real)).isFile() ? absolute : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An image that an explain panel's saved state (written by the page) names, to explain again after a reload: an
 * image file inside one of `folders` (the run's images folder, the workspace folders, where the user could have
 * opened it), or undefined.
 */
export async function imageInsideAny(folders: readonly string[], image: unknown): Promise<string | undefined> {
  if (typeof image !== 'string' || !path.isAbsolute(image)) return undefined;
  for (const folder of folders) {
    const relative = path.relative(path.resolve(folder), path.resolve(image));
    const found = await imageInsideFolder(folder, relative);
    if (found) return found;
  }
  return undefined;
}
