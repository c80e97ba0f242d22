// Lists the operators that onnxruntime's WebGPU provider leaves to the CPU, for each graph the engine runs:
// the training step (default and bench recipes, without and with the queue), the inference model used for
// indexing, the explanation graphs of our network and of imported backbones (the torchvision and DINO fixtures),
// and the head graph a frozen run embeds with.
//   node --import tsx scripts/gpu/cpuFallbacks.ts
// Each graph opens in a child process with verbose logging, and the partitioner's "Node placements" are read.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveTrainOptions } from '../../src/engine/config';
import { importedGraphs } from '../../src/engine/frozen/explainable';
import { createHeadModel } from '../../src/engine/frozen/headTrainer';
import { createModel, trainableVariables, weightsOf, type ModelSpec } from '../../src/engine/model/model';
import { imagenetNormalization, resolveBackboneInput } from '../../src/engine/onnx/backboneInput';
import { buildOnnxModel } from '../../src/engine/onnx/export';
import { parseOnnx } from '../../src/engine/onnx/graph';
import { buildCounterfactualGraph, headGraph, ownNetwork, targetGradientGraph } from '../../src/engine/runtime/explainGraph';
import { probeBackbone } from '../../src/engine/runtime/importedGraph';
import { buildTrainingGraph } from '../../src/engine/swav/stepGraph';
import { createRandom } from '../../src/engine/util/random';

/** Grad-CAM, counterfactual-step and forward graphs of an imported fixture, with a fresh head. */
async function importedGraphsFor(file: string, imageSizePx: number): Promise<{ name: string; bytes: Uint8Array }[]> {
  const bytes = readFileSync(path.resolve(__dirname, '../../test/fixtures/onnx', file));
  const graph = parseOnnx(bytes, file);
  const input = resolveBackboneInput(graph, imagenetNormalization);
  const featureDim = (await probeBackbone(bytes, graph, input.name, [1, input.channels, imageSizePx, imageSizePx])).get(input.featureOutput)!.dims[1];
  const head = createHeadModel(featureDim, { projectionHiddenDim: 64, projectionDim: 32, prototypes: 10 }, createRandom(0));
  const graphs = importedGraphs(bytes, graph, input, head, () => weightsOf(head));
  const settings = { imageSizePx, temperature: 0.1, mseWeight: 10, tvWeight: 0.5, l2Weight: 0.01, learningRate: 0.05, beta1: 0.9, beta2: 0.999, adamEpsilon: 1e-8 };
  return [
    { name: `${file}: Grad-CAM (prototype gradient at the layer)`, bytes: await graphs.targetGradient({ batch: 1, imageSizePx, target: 'prototype', wrt: 'layer' }) },
    { name: `${file}: counterfactual step`, bytes: await graphs.counterfactual(settings) },
    { name: `${file}: forward (scorer)`, bytes: await graphs.forward({ batch: 16, imageSizePx }) },
    { name: `${file}: head (a frozen run's embeddings)`, bytes: headGraph(weightsOf(head), { batch: 256, featureDim }) },
  ];
}

function specOf(options: ReturnType<typeof resolveTrainOptions>, channels: number): ModelSpec {
  return { channels, stemStride: 1, inputMean: [0.5], inputStd: [0.25], width: options.width, blocksPerStage: options.blocksPerStage, architecture: options.architecture, projectionHiddenDim: options.projectionHiddenDim, projectionDim: options.projectionDim, prototypes: options.prototypes } as ModelSpec;
}

function graphsFor(name: string, partial: Parameters<typeof resolveTrainOptions>[0]): { name: string; bytes: Uint8Array }[] {
  const options = resolveTrainOptions(partial);
  const spec = specOf(options, 1);
  const model = createModel(spec, createRandom(0));
  const shapes = new Map([...trainableVariables(model)].map(([key, v]) => [key, v.shape]));
  const loss = { temperature: options.temperature, epsilon: options.sinkhornEpsilon, sinkhornIterations: options.sinkhornIterations, cropsForAssign: [0, 1] };
  const stepShape = { batch: 8, globalCrops: 2, globalSizePx: options.imageSizePx, localCrops: options.localCrops, localSizePx: options.localCropSizePx, cropsFrom: { imageSizePx: options.imageSizePx, jitter: true } };
  const step = buildTrainingGraph(spec, shapes, { ...stepShape, queueRows: 0 }, loss);
  // With the queue, its embeddings are scored against the prototypes inside the step's graph.
  const queued = buildTrainingGraph(spec, shapes, { ...stepShape, queueRows: 64 }, loss);
  const weights = weightsOf(model);
  const inference = buildOnnxModel(spec, weights, { imageSizePx: options.imageSizePx });
  return [
    { name: `${name}: training step (crops included)`, bytes: step.bytes },
    { name: `${name}: training step with a queue`, bytes: queued.bytes },
    { name: `${name}: inference (index, export)`, bytes: inference },
    { name: `${name}: Grad-CAM (prototype gradient at the layer)`, bytes: targetGradientGraph(ownNetwork(spec, weights), { batch: 1, imageSizePx: options.imageSizePx, target: 'prototype', wrt: 'layer' }) },
    {
      name: `${name}: counterfactual step`,
      bytes: buildCounterfactualGraph(spec, weights, { imageSizePx: options.imageSizePx, temperature: 0.1, mseWeight: 10, tvWeight: 0.5, l2Weight: 0.01, learningRate: 0.05, beta1: 0.9, beta2: 0.999, adamEpsilon: 1e-8 }),
    },
  ];
}

async function main(): Promise<void> {
  const graphs = [
    ...graphsFor('default recipe, 28 px', { imageSizePx: 28 }),
    ...graphsFor('bench recipe (plain, width 32)', { imageSizePx: 28, width: 32, blocksPerStage: [1, 1, 1, 1], architecture: 'plain', projectionHiddenDim: 512, projectionDim: 128, localCropSizePx: 16 }),
    ...(await importedGraphsFor('tv_resnet18_narrow.onnx', 96)),
    ...(await importedGraphsFor('tv_mobilenet_v3_small.onnx', 96)),
    ...(await importedGraphsFor('tv_vit_tiny.onnx', 32)),
    ...(await importedGraphsFor('dino_vit_tiny.onnx', 32)),
  ];
  const folder = mkdtempSync(path.join(os.tmpdir(), 'cl-fallbacks-'));
  for (const graph of graphs) {
    const file = path.join(folder, 'graph.onnx');
    writeFileSync(file, graph.bytes);
    const script = `require('onnxruntime-node').InferenceSession.create(${JSON.stringify(file)}, { executionProviders: ['webgpu'], logSeverityLevel: 0, logVerbosityLevel: 0 }).then(() => process.exit(0), (e) => { console.error('FAILED ' + e.message); process.exit(1); });`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir() } });
    const log = `${child.stdout}\n${child.stderr}`;
    // The partitioner prints "Node placements" then " Node(s) placed on [XxxExecutionProvider]. Number of nodes: N" and "  OpType (name)" lines.
    const placements = new Map<string, Set<string>>();
    let provider: string | undefined;
    for (const line of log.split('\n')) {
      const all = /All nodes placed on \[(\w+)\]/.exec(line);
      if (all) placements.set(all[1], new Set(['(all)']));
      const placed = /Node\(s\) placed on \[(\w+)\]/.exec(line);
      if (placed) {
        provider = placed[1];
        continue;
      }
      const node = provider ? /^\s+(\w+) \(/.exec(line.replace(/^.*\]\s/, ' ')) : null;
      if (node && provider) {
        if (!placements.has(provider)) placements.set(provider, new Set());
        placements.get(provider)!.add(node[1]);
      } else if (!/^\s/.test(line)) provider = undefined;
    }
    const cpu = [...(placements.get('CPUExecutionProvider') ?? [])].sort();
    const gpu = placements.get('WebGpuExecutionProvider');
    const onGpu = gpu?.has('(all)') ? 'every operator on WebGPU' : `${gpu?.size ?? 0} operator types on WebGPU`;
    console.log(`${graph.name}: ${child.status === 0 ? `${onGpu}; on the CPU: ${cpu.length ? cpu.join(', ') : 'none'}` : `failed: ${log.split('\n').find((l) => l.startsWith('FAILED')) ?? `exit ${child.status ?? child.signal}`}`}`);
  }
}

void main();
