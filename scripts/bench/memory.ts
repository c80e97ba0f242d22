// Memory of an image folder as the engine holds it: the compact uint8 ImageSet (N×S×S×C bytes), against what
// float32 pixels would take, and the process's peak resident size while loading it.
// Run: node --import tsx scripts/bench/memory.ts <images-dir> [--size 28]
// A 20,000-image tree: node dist/cli.js fashion-mnist --out data/fmnist20k --split train --per-class 2000

import { readFileSync } from 'node:fs';
import { loadImageSet } from '../../src/engine/data/decode';
import { scanImageFolder } from '../../src/engine/data/scan';

function peakResidentMiB(): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}

async function main(): Promise<void> {
  const directory = process.argv[2];
  if (!directory) throw new Error('usage: memory.ts <images-dir> [--size S]');
  const sizeIndex = process.argv.indexOf('--size');
  const imageSizePx = sizeIndex > 0 ? Number(process.argv[sizeIndex + 1]) : 28;
  const before = peakResidentMiB();
  const scan = await scanImageFolder(directory);
  const images = await loadImageSet(scan, { imageSizePx, channels: 'auto' });
  const n = images.records.length;
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  console.log(`${n} images at ${imageSizePx}×${imageSizePx}×${images.channels}`);
  console.log(`  ImageSet pixels: ${mib(images.pixels.byteLength)} MiB (uint8); as float32 they would take ${mib(4 * images.pixels.byteLength)} MiB`);
  console.log(`  decode buffer while loading: ${mib(n * imageSizePx * imageSizePx * 3)} MiB (RGB, collapsed to grey when every image is grey)`);
  console.log(`  process peak resident: ${peakResidentMiB().toFixed(0)} MiB (${before.toFixed(0)} MiB before loading)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
