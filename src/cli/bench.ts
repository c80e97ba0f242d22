// A quick throughput figure on the shipped sample: training and embedding images per second.
// The side-by-side comparison with the PyTorch reference belongs to the speed issue's benchmark.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineClient } from '../host/engineClient';

export async function runBench(json: boolean): Promise<number> {
  const sample = path.resolve(__dirname, '..', 'sample', 'fashion-mnist');
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'cluster-lens-bench-'));
  const client = new EngineClient({ enginePath: path.join(__dirname, 'engine.js') });
  try {
    const trained = await client.request({ type: 'train', imagesDir: sample, runDir, options: { imageSizePx: 28, epochs: 3, minutes: 0 } });
    const indexed = await client.request({ type: 'index', runDir });
    const figures = {
      backend: trained.backend,
      images: trained.images,
      train_imgs_per_s: Number(trained.imagesPerSecond.toFixed(1)),
      embed_imgs_per_s: Number(indexed.imagesPerSecond.toFixed(1)),
      steps: trained.steps,
    };
    process.stdout.write(json ? `${JSON.stringify(figures)}\n` : `${Object.entries(figures).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
    return 0;
  } finally {
    await client.dispose();
    rmSync(runDir, { recursive: true, force: true });
  }
}
