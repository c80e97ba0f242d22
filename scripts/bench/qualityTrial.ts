// One quality trial with chosen training options, for exploring recipes: trains on Fashion-MNIST's test images
// for --minutes with the options given as JSON, then evaluates on the same images and prints one JSON line.
//   node --import tsx scripts/bench/qualityTrial.ts --out /tmp/q/run1 --minutes 10 '{"queueLength":3840}'
// Uses the built engine (npm run build first) and the PNG tree the quality benchmark writes.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EngineClient } from '../../src/host/engineClient';
import type { TrainOptions } from '../../src/protocol/options';

const { values, positionals } = parseArgs({
  options: { out: { type: 'string' }, minutes: { type: 'string' }, images: { type: 'string' } },
  allowPositionals: true,
});
const options = JSON.parse(positionals[0] ?? '{}') as Partial<TrainOptions>;
const imagesDir = values.images ?? path.join(os.tmpdir(), 'cluster-lens-bench', 'fashion-mnist', 'test');
const runDir = values.out ?? path.join(os.tmpdir(), `cluster-lens-trial-${Date.now()}`);

async function main(): Promise<void> {
  const client = new EngineClient({ enginePath: path.resolve(__dirname, '../../dist/engine.js'), restartOnCrash: false });
  try {
    const trained = await client.request(
      { type: 'train', imagesDir, runDir, options: { ...options, minutes: Number(values.minutes ?? 10) } },
      { onLog: (event) => process.stderr.write(`[${event.level}] ${event.message}\n`) },
    );
    const evaluated = await client.request({ type: 'evaluate', runDir });
    const round = (value: number) => Math.round(value * 1000) / 1000;
    process.stdout.write(
      `${JSON.stringify({ options, runDir, epochs: trained.epochs, steps: trained.steps, imgsPerSecond: round(trained.imagesPerSecond), nmi: round(evaluated.nmi), ari: round(evaluated.ari), acc: round(evaluated.acc), knn: round(evaluated.knn), protoNmi: round(evaluated.proto_nmi) })}\n`,
    );
  } finally {
    await client.dispose();
  }
}

void main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
