import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';

const created = new Set<string>();

function removeAll(): void {
  for (const dir of created) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  created.clear();
}

// Imported once per test file (each runs in its own process): clean up when the file's tests end,
// pass or fail; the 'exit' handler catches whatever a cut-short run leaves.
after(removeAll);
process.once('exit', removeAll);

/** A fresh folder in the OS temp dir, removed when this test file is done. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  created.add(dir);
  return dir;
}
