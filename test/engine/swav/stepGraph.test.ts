// The SwAV step's graph (swav/stepGraph.ts) on onnxruntime's CPU provider, checked without any other framework:
// every variable's gradient against finite differences of the swapped loss with the codes held fixed (SwAV's
// codes are targets), the loss against a float64 reference on the graph's own scores, the BatchNorm batch
// statistics against JS means and variances, the crops made in the graph against crops made in JS, the head-only
// variant, and the queue's part in Sinkhorn.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawViews, type MultiCropOptions } from '../../../src/engine/data/augment';
import { cropViews } from '../../../src/engine/data/cropPixels';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { convLayers, networkLayout } from '../../../src/engine/model/layout';
import { createModel, normalizeRowsInPlace, trainableVariables, type ModelSpec, type SwavModel } from '../../../src/engine/model/model';
import { appendToModel, decodeModel, DataType, type NodeMessage, type ValueInfoMessage } from '../../../src/engine/onnx/schema';
import { OrtModel, type OrtArray } from '../../../src/engine/runtime/session';
import { OrtStepGradients } from '../../../src/engine/swav/ortGradients';
import { buildTrainingGraph, trainingGraphNames as names, type TrainingGraph, type TrainingGraphShape } from '../../../src/engine/swav/stepGraph';
import { createRandom } from '../../../src/engine/util/random';
import { tinySpec } from '../model/tinySpec';
import { assertClose, maxDifference, randomPixels } from '../onnx/helpers';
import { referenceCodes, referenceSwappedLoss, rowsOf, timesTransposed } from './swavReference';

const loss = { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] };
const batch = 4;

/** The local pass's prototype scores, which the step's graph keeps inside, as an extra output of the graph. */
const localScores = 'test.scores.local';

/**
 * The graph with each pass's prototype scores as outputs: the forward Gemm against `prototypes` (transB) of the
 * pass's nodes. The global one must be the graph's own `scores.global` (checked by the callers).
 */
function withPassScores(graph: TrainingGraph, rows: { global: number; local: number }, prototypes: number): Uint8Array {
  const nodes = decodeModel(graph.bytes).graph!.node!;
  const scoresOf = (pass: 'global' | 'local') => {
    const found = nodes.filter((node) => node.opType === 'Gemm' && node.name?.startsWith(`${pass}/`) && node.input?.[1] === 'prototypes' && node.attribute?.some((a) => a.name === 'transB' && a.i === 1));
    assert.equal(found.length, 1, `one forward prototype-score product in the ${pass} pass`);
    return found[0].output![0];
  };
  const output = (value: string, name: string, count: number): [NodeMessage, ValueInfoMessage] => [
    { opType: 'Identity', input: [value], output: [name], name },
    { name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: count }, { dimValue: prototypes }] } } } },
  ];
  const extra = [output(scoresOf('global'), 'test.scores.global', rows.global), ...(rows.local > 0 ? [output(scoresOf('local'), localScores, rows.local)] : [])];
  return appendToModel(graph.bytes, { graph: { node: extra.map(([node]) => node), output: extra.map(([, info]) => info) } });
}

interface StepCase {
  spec: ModelSpec;
  model: SwavModel;
  shape: TrainingGraphShape;
  /** Feeds other than the variables: crops or features, and queued embeddings. */
  inputs: Record<string, OrtArray>;
  /** Queued embeddings of each assigned crop, [queueRows, projectionDim] (absent: no queue). */
  queue?: Float32Array[];
}

interface StepRun {
  loss: number;
  gradients: Map<string, Float32Array>;
  embedding: Float32Array;
  scores: Float32Array;
  /** Every crop's [B, K] scores: the global crops, then the local ones. */
  crops: number[][][];
  statistics: Map<string, { mean: Float32Array; variance: Float32Array }>;
}

/** Opens the step's graph for `c` (with each pass's scores exposed) and returns a runner for any weights. */
async function openStep(c: StepCase): Promise<{ graph: TrainingGraph; session: OrtModel; run: (weights?: Map<string, Float32Array>) => Promise<StepRun> }> {
  const trainable = trainableVariables(c.model);
  const shapes = new Map([...trainable].map(([name, v]) => [name, v.shape]));
  const graph = buildTrainingGraph(c.spec, shapes, c.shape, loss);
  const { prototypes } = c.spec;
  const bytes = withPassScores(graph, { global: c.shape.globalCrops * batch, local: c.shape.localCrops * batch }, prototypes);
  const session = await OrtModel.open(bytes, 'the SwAV step graph', { device: 'cpu', threads: 1 });
  const base = new Map([...trainable].map(([name, v]) => [name, v.values]));
  const run = async (weights = base): Promise<StepRun> => {
    const feeds: Record<string, OrtArray> = { ...c.inputs };
    for (const name of graph.variables) feeds[name] = { data: weights.get(name)!, dims: shapes.get(name)! };
    const projectionDim = c.spec.projectionDim;
    c.queue?.forEach((rows, position) => (feeds[names.queueEmbeddings(position)] = { data: rows, dims: [rows.length / projectionDim, projectionDim] }));
    const statisticsNames = graph.batchNormLayers.flatMap(({ layer }) => [names.batchMean(layer), names.batchVariance(layer)]);
    const wanted = [names.loss, names.globalEmbedding, names.globalScores, 'test.scores.global', ...(c.shape.localCrops > 0 ? [localScores] : []), ...graph.variables.map(names.gradient), ...statisticsNames];
    const out = await session.run(feeds, wanted);
    assert.deepEqual(out['test.scores.global'].data, out[names.globalScores].data, 'the exposed global scores are the graph\'s own');
    const passRows = (data: Float32Array, crops: number) => Array.from({ length: crops }, (_, crop) => rowsOf(data, batch, prototypes, crop * batch));
    return {
      loss: out[names.loss].data[0],
      gradients: new Map(graph.variables.map((name) => [name, out[names.gradient(name)].data])),
      embedding: out[names.globalEmbedding].data,
      scores: out[names.globalScores].data,
      crops: [...passRows(out[names.globalScores].data, c.shape.globalCrops), ...(c.shape.localCrops > 0 ? passRows(out[localScores].data, c.shape.localCrops) : [])],
      statistics: new Map(graph.batchNormLayers.map(({ layer }) => [layer, { mean: out[names.batchMean(layer)].data, variance: out[names.batchVariance(layer)].data }])),
    };
  };
  return { graph, session, run };
}

/** SwAV's codes of each assigned crop in float64: Sinkhorn over [queue · prototypesᵀ ; the crop's scores]. */
function codesOf(c: StepCase, crops: number[][][], prototypes: Float32Array): number[][][] {
  const { projectionDim } = c.spec;
  const prototypeRows = rowsOf(prototypes, c.spec.prototypes, projectionDim);
  return loss.cropsForAssign.map((crop, position) => {
    const queue = c.queue?.[position];
    const queueScores = queue && timesTransposed(rowsOf(queue, queue.length / projectionDim, projectionDim), prototypeRows);
    return referenceCodes(crops[crop], queueScores, loss.epsilon, loss.sinkhornIterations);
  });
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((sum, v, i) => sum + v * b[i], 0);
const largestAbs = (values: ArrayLike<number>) => Array.from(values).reduce((max, v) => Math.max(max, Math.abs(v)), 0);

/**
 * The graph's loss, against the float64 reference on its own scores with its codes; and each variable's gradient
 * against finite differences of J(θ) = swapped loss(scores(θ), codes at the base weights), the loss SwAV
 * differentiates (its codes are targets): along a random ±1 direction over the whole variable, and at its entry of
 * largest gradient. Returns the run at the base weights.
 */
async function checkGradients(c: StepCase, options: { changes: number[]; tolerance: number }): Promise<{ base: StepRun; graph: TrainingGraph }> {
  const { graph, session, run } = await openStep(c);
  try {
    const base = await run();
    const weights = new Map([...trainableVariables(c.model)].map(([name, v]) => [name, v.values]));
    const codes = codesOf(c, base.crops, weights.get('prototypes')!);
    const reference = referenceSwappedLoss(base.crops, codes, loss.temperature, loss.cropsForAssign);
    assert.ok(Math.abs(base.loss - reference) < 1e-4 * Math.max(1, Math.abs(reference)), `loss ${base.loss} vs the reference ${reference} on the graph's scores`);

    const fixedCodesLoss = async (name: string, direction: Float32Array, step: number) => {
      const moved = weights.get(name)!.map((value, i) => value + step * direction[i]);
      const { crops } = await run(new Map([...weights, [name, moved]]));
      return referenceSwappedLoss(crops, codes, loss.temperature, loss.cropsForAssign);
    };
    // Differences at steps that move the loss by about each of `options.changes`: the smallest is well above the
    // float32 rounding of the scores (~1e-6 of the loss) and crosses few ReLUs, the larger ones are for where that
    // rounding is coarser. A ReLU whose input is within a step of 0 bends the loss inside it; the graph's gradient is
    // then the slope on the side without the bend, so the one-sided differences count too. The gradient must
    // agree with one of the differences.
    const agrees = async (name: string, direction: Float32Array, slope: number, expected: number, allowed: number, what: string) => {
      const estimates: string[] = [];
      for (const change of options.changes) {
        const step = Math.min(1e-2, Math.max(1e-6, change / Math.max(Math.abs(slope), 1e-12)));
        const [forward, backward] = [await fixedCodesLoss(name, direction, step), await fixedCodesLoss(name, direction, -step)];
        const differences = [(forward - backward) / (2 * step), (forward - reference) / step, (reference - backward) / step];
        if (differences.some((difference) => Math.abs(difference - expected) <= allowed)) return;
        estimates.push(`(${differences.map((d) => d.toPrecision(4)).join(', ')})`);
      }
      assert.fail(`${what}: graph ${expected}, central, forward and backward differences ${estimates.join(', ')}`);
    };
    const random = createRandom(17);
    const scale = Math.max(...graph.variables.map((name) => largestAbs(base.gradients.get(name)!)));
    for (const name of graph.variables) {
      const gradient = base.gradients.get(name)!;
      if (name === 'head.fc1.bias') {
        // BatchNorm follows it: the loss does not depend on it, and the graph's gradient is rounding noise.
        assert.ok(largestAbs(gradient) < 1e-5 * Math.max(1, scale), `the bias before a BatchNorm gets ~0 gradient (${largestAbs(gradient)})`);
        await agrees(name, Float32Array.from(gradient, () => (random.next() < 0.5 ? -1 : 1)), scale, 0, options.tolerance * scale, 'the loss is flat along the bias before a BatchNorm');
        continue;
      }
      const variableScale = largestAbs(gradient);
      assert.ok(variableScale > 1e-6, `${name} has a gradient`);
      // Along a random ±1 direction, to the tolerance of Σ |g_i| (the derivative's size before its terms' signs cancel).
      const direction = Float32Array.from(gradient, () => (random.next() < 0.5 ? -1 : 1));
      const l1 = Array.from(gradient).reduce((sum, g) => sum + Math.abs(g), 0);
      await agrees(name, direction, l1, dot(gradient, direction), options.tolerance * l1, `${name} along a random direction`);
      // At its entry of largest gradient.
      const top = Array.from(gradient, Math.abs).indexOf(variableScale);
      await agrees(name, Float32Array.from(gradient, (_, i) => (i === top ? 1 : 0)), variableScale, gradient[top], options.tolerance * variableScale, `${name}[${top}]`);
    }
    return { base, graph };
  } finally {
    await session.dispose();
  }
}

/** A network's crops as graph inputs: seeded NHWC pixels of each pass. */
function cropInputs(spec: ModelSpec, shape: Pick<TrainingGraphShape, 'globalCrops' | 'globalSizePx' | 'localCrops' | 'localSizePx'>): Record<string, OrtArray> {
  const c = spec.channels;
  const inputs: Record<string, OrtArray> = {
    [names.globalCrops]: { data: randomPixels(shape.globalCrops * batch, shape.globalSizePx, c, 5), dims: [shape.globalCrops * batch, shape.globalSizePx, shape.globalSizePx, c] },
  };
  if (shape.localCrops > 0) inputs[names.localCrops] = { data: randomPixels(shape.localCrops * batch, shape.localSizePx, c, 6), dims: [shape.localCrops * batch, shape.localSizePx, shape.localSizePx, c] };
  return inputs;
}

/** NHWC `pixels` normalised, then a 'same' 3×3 (or 1×1) convolution of stride 1 with `filter` [k, k, in, out]: NHWC out. */
function sameConv(pixels: Float32Array, n: number, sizePx: number, spec: ModelSpec, filter: Float32Array, kernel: number, outChannels: number): Float64Array {
  const c = spec.channels;
  const out = new Float64Array(n * sizePx * sizePx * outChannels);
  const pad = (kernel - 1) / 2;
  for (let image = 0; image < n; image++) {
    for (let y = 0; y < sizePx; y++) {
      for (let x = 0; x < sizePx; x++) {
        for (let o = 0; o < outChannels; o++) {
          let sum = 0;
          for (let i = 0; i < kernel; i++) {
            for (let j = 0; j < kernel; j++) {
              const [yy, xx] = [y + i - pad, x + j - pad];
              if (yy < 0 || xx < 0 || yy >= sizePx || xx >= sizePx) continue;
              for (let ch = 0; ch < c; ch++) {
                const value = (pixels[((image * sizePx + yy) * sizePx + xx) * c + ch] - spec.inputMean[ch]) / spec.inputStd[ch];
                sum += value * filter[((i * kernel + j) * c + ch) * outChannels + o];
              }
            }
          }
          out[((image * sizePx + y) * sizePx + x) * outChannels + o] = sum;
        }
      }
    }
  }
  return out;
}

/** Per-channel mean and biased variance of row-major [positions, channels] values. */
function channelMoments(values: ArrayLike<number>, channels: number): { mean: number[]; variance: number[] } {
  const positions = values.length / channels;
  const mean = Array.from({ length: channels }, (_, ch) => {
    let sum = 0;
    for (let p = 0; p < positions; p++) sum += values[p * channels + ch];
    return sum / positions;
  });
  const variance = mean.map((m, ch) => {
    let sum = 0;
    for (let p = 0; p < positions; p++) sum += (values[p * channels + ch] - m) ** 2;
    return sum / positions;
  });
  return { mean, variance };
}

/** The global embeddings are unit rows and the global scores their products with the prototypes fed. */
function checkEmbeddings(run: StepRun, model: SwavModel): void {
  const { projectionDim, prototypes } = model.spec;
  const embeddings = rowsOf(run.embedding, run.embedding.length / projectionDim, projectionDim);
  embeddings.forEach((row, i) => assert.ok(Math.abs(Math.hypot(...row) - 1) < 1e-5, `embedding ${i} has norm ${Math.hypot(...row)}`));
  const expected = timesTransposed(embeddings, rowsOf(model.variables.get('prototypes')!.values, prototypes, projectionDim));
  assertClose(run.scores, expected.flat(), 1e-5, 'global scores are embedding · prototypesᵀ');
}

/** The step's BatchNorm layers, their positions, and the first layer's batch statistics against JS. */
function checkStatistics(c: StepCase, graph: TrainingGraph, run: StepRun): void {
  const layout = networkLayout(c.spec);
  const layers = convLayers(layout);
  const n = c.shape.globalCrops * batch;
  const sizes = new Map<string, number>();
  let size = c.shape.globalSizePx;
  if (layout.stem) sizes.set(layout.stem.batchNorm, (size = Math.ceil(size / layout.stem.stride)));
  for (const block of layout.blocks) {
    size = Math.ceil(size / block.first.stride);
    for (const layer of [block.first, block.second, ...(block.shortcut.kind === 'projection' ? [block.shortcut.layer] : [])]) sizes.set(layer.batchNorm, size);
  }
  const expected = [...layers.map((layer) => [layer.batchNorm, n * sizes.get(layer.batchNorm)! ** 2] as const), ['head.bn', n] as const];
  assert.deepEqual(
    graph.batchNormLayers.map(({ layer, positions }) => [layer, positions]).sort(),
    expected.map(([layer, positions]) => [layer, positions]).sort(),
    'every BatchNorm of the global pass, each averaging over its batch and positions',
  );
  for (const [layer, { mean, variance }] of run.statistics) {
    assert.equal(mean.length, variance.length);
    assert.ok(Array.from(variance).every((v) => v >= 0), `${layer}: variances are not negative`);
  }
  // The first convolution sees the normalised crops: its BatchNorm's statistics in JS.
  const first = layers[0];
  assert.equal(first.stride, 1);
  const conv = sameConv(c.inputs[names.globalCrops].data, n, c.shape.globalSizePx, c.spec, c.model.variables.get(first.conv)!.values, first.kernel, first.outChannels);
  const moments = channelMoments(conv, first.outChannels);
  assertClose(run.statistics.get(first.batchNorm)!.mean, moments.mean, 1e-5, `batch mean of ${first.batchNorm}`);
  assertClose(run.statistics.get(first.batchNorm)!.variance, moments.variance, 1e-4 * Math.max(...moments.variance), `batch variance of ${first.batchNorm}`);
}

/** Finite differences: steps that move the loss by about `changes`; gradients agree to `tolerance` of their size. */
const fdSettings = { changes: [2e-4, 1e-3, 4e-3], tolerance: 5e-2 };

async function checkNetwork(options: { globalPx: number; localPx: number; architecture?: 'resnet' | 'plain' }): Promise<void> {
  const spec: ModelSpec = { ...tinySpec, architecture: options.architecture };
  const model = createModel(spec, createRandom(3));
  const shape: TrainingGraphShape = { batch, globalCrops: 2, globalSizePx: options.globalPx, localCrops: 2, localSizePx: options.localPx, queueRows: 0 };
  const c: StepCase = { spec, model, shape, inputs: cropInputs(spec, shape) };
  const { base, graph } = await checkGradients(c, fdSettings);
  checkEmbeddings(base, model);
  checkStatistics(c, graph, base);
}

test('step graph: loss, every gradient and the batch statistics against float64 references (odd sizes, both filter-gradient paths)', async () => {
  await checkNetwork({ globalPx: 13, localPx: 7 });
});

test('step graph: the plain architecture (no stem, no shortcuts), at even sizes', async () => {
  await checkNetwork({ globalPx: 12, localPx: 6, architecture: 'plain' });
});

test('step graph with a queue: codes from Sinkhorn over [queue · prototypesᵀ ; the batch], which changes the loss; no gradient through the queue\'s scores', async () => {
  const spec = tinySpec;
  const model = createModel(spec, createRandom(3));
  const queueRows = 12;
  const shape: TrainingGraphShape = { batch, globalCrops: 2, globalSizePx: 10, localCrops: 1, localSizePx: 6, queueRows };
  // Each assigned crop's own queue of past embeddings, unit rows as the embeddings are: crop 0's near prototype 0,
  // crop 1's near prototype 3, so that the two queues pull the codes different ways.
  const random = createRandom(9);
  const prototypeRows = model.variables.get('prototypes')!.values;
  const near = (k: number) => normalizeRowsInPlace(Float32Array.from({ length: queueRows * spec.projectionDim }, (_, i) => prototypeRows[k * spec.projectionDim + (i % spec.projectionDim)] + 0.3 * random.normal()), spec.projectionDim);
  const queue = [near(0), near(3)];
  const c: StepCase = { spec, model, shape, inputs: cropInputs(spec, shape), queue };
  // The loss against the reference with the queued codes, and every gradient (the prototypes' too) against
  // finite differences with those codes held fixed: the queue's scores add nothing to any gradient.
  const { base } = await checkGradients(c, fdSettings);

  // The queue matters, and each assigned crop's codes come from its own queue.
  const prototypes = model.variables.get('prototypes')!.values;
  const lossWith = (queues: Float32Array[] | undefined) => referenceSwappedLoss(base.crops, codesOf({ ...c, queue: queues }, base.crops, prototypes), loss.temperature, loss.cropsForAssign);
  const tolerance = 1e-5 * Math.max(1, Math.abs(base.loss));
  assert.ok(Math.abs(base.loss - lossWith(queue)) < tolerance, `loss ${base.loss} vs the reference ${lossWith(queue)}`);
  assert.ok(Math.abs(base.loss - lossWith(undefined)) > 100 * tolerance, `without the queue the loss would be ${lossWith(undefined)}, not ${base.loss}`);
  assert.ok(Math.abs(base.loss - lossWith([queue[1], queue[0]])) > 10 * tolerance, 'the queues of the two assigned crops are not interchangeable');

  // Without queue inputs the same weights and crops give the reference's loss without a queue.
  const { session, run } = await openStep({ ...c, shape: { ...shape, queueRows: 0 }, queue: undefined });
  try {
    const alone = await run();
    assert.ok(maxDifference(alone.crops.flat(2), base.crops.flat(2)) < 1e-6, 'the queue changes no scores');
    assert.ok(Math.abs(alone.loss - lossWith(undefined)) < tolerance, `${alone.loss} vs ${lossWith(undefined)}`);
  } finally {
    await session.dispose();
  }
});

test('step graph, head only (a frozen backbone\'s features in): loss, the head\'s gradients, its batch statistics; OrtStepGradients runs it the same', async () => {
  const featureDim = 12;
  const model = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(4));
  const random = createRandom(8);
  const features = (rows: number) => Float32Array.from({ length: rows * featureDim }, () => random.uniform(0, 2));
  const shape: TrainingGraphShape = { batch, globalCrops: 2, globalSizePx: 0, localCrops: 2, localSizePx: 0, queueRows: 0, featuresFrom: { featureDim } };
  const global = features(2 * batch);
  const local = features(2 * batch);
  const inputs = { [names.features('global')]: { data: global, dims: [2 * batch, featureDim] }, [names.features('local')]: { data: local, dims: [2 * batch, featureDim] } };
  const c: StepCase = { spec: model.spec, model, shape, inputs };
  const { base, graph } = await checkGradients(c, fdSettings);
  checkEmbeddings(base, model);
  assert.deepEqual([...graph.variables].sort(), [...trainableVariables(model).keys()].sort(), 'a gradient for each of the head\'s weights, no backbone');
  assert.deepEqual(graph.batchNormLayers, [{ layer: 'head.bn', positions: 2 * batch }]);
  // head.bn normalises fc1's output over the global crops' rows.
  const hidden = 16;
  const weight = model.variables.get('head.fc1.weight')!.values;
  const bias = model.variables.get('head.fc1.bias')!.values;
  const fc1 = Array.from({ length: 2 * batch * hidden }, (_, i) => {
    const [row, o] = [Math.floor(i / hidden), i % hidden];
    let sum = bias[o];
    for (let f = 0; f < featureDim; f++) sum += global[row * featureDim + f] * weight[f * hidden + o];
    return sum;
  });
  const moments = channelMoments(fc1, hidden);
  assertClose(base.statistics.get('head.bn')!.mean, moments.mean, 1e-5, 'batch mean of head.bn');
  assertClose(base.statistics.get('head.bn')!.variance, moments.variance, 1e-4 * Math.max(...moments.variance), 'batch variance of head.bn');

  const trainable = trainableVariables(model);
  const step = new OrtStepGradients(model.spec, new Map([...trainable].map(([name, v]) => [name, v.shape])), shape, loss, 1);
  try {
    const computed = await step.compute({ features: { global, local }, weights: new Map([...trainable].map(([name, v]) => [name, v.values])) });
    assert.ok(Math.abs(computed.loss - base.loss) < 1e-6, `${computed.loss} vs ${base.loss}`);
    for (const [name, gradient] of base.gradients) assertCloseScaled(computed.gradients.get(name)!, gradient, 1e-5, `gradient of ${name}`);
    assert.deepEqual(computed.globalScores, base.scores);
    assert.deepEqual(computed.globalEmbedding, base.embedding);
    assert.equal(computed.statistics.get('head.bn')!.count, 2 * batch);
    assert.deepEqual(computed.statistics.get('head.bn')!.mean, base.statistics.get('head.bn')!.mean);
  } finally {
    await step.dispose();
  }
});

/** Agreement to `relative` of the expected values' largest magnitude (all-zero expectations only with all-zero results). */
function assertCloseScaled(actual: ArrayLike<number>, expected: ArrayLike<number>, relative: number, what: string): void {
  const difference = maxDifference(actual, expected);
  assert.ok(difference <= relative * Math.max(largestAbs(expected), 1e-6), `${what}: max difference ${difference} of ${largestAbs(expected)}`);
}

test('step graph: the crops made in the graph from the decoded batch give the step of the same crops made in JS (cropPixels.ts)', async () => {
  const spec: ModelSpec = { ...tinySpec, channels: 3, inputMean: [0.5, 0.45, 0.4], inputStd: [0.25, 0.2, 0.3] };
  const model = createModel(spec, createRandom(6));
  const imageSizePx = 16;
  const crops: MultiCropOptions = { globalCrops: 2, globalSizePx: 12, globalScale: [0.3, 1], localCrops: 2, localSizePx: 6, localScale: [0.05, 0.3], flipProbability: 0.5, colorJitter: 0.4, grayscaleProbability: 0.3 };
  const images = randomPixels(batch, imageSizePx, 3, 11);
  const trainable = trainableVariables(model);
  for (const jitter of [true, false]) {
    const random = createRandom(jitter ? 5 : 6);
    const global = drawViews(random, batch, imageSizePx, crops.globalCrops, crops.globalScale, crops);
    const local = drawViews(random, batch, imageSizePx, crops.localCrops, crops.localScale, crops);
    const passes = { globalCrops: 2, globalSizePx: crops.globalSizePx, localCrops: 2, localSizePx: crops.localSizePx, queueRows: 0 };
    const inGraph: StepCase = {
      spec,
      model,
      shape: { batch, ...passes, cropsFrom: { imageSizePx, jitter } },
      inputs: {
        [names.images]: { data: images, dims: [batch, imageSizePx, imageSizePx, 3] },
        [names.boxes('global')]: { data: global.boxes, dims: [2 * batch, 4] },
        [names.colours('global')]: { data: global.colours, dims: [2 * batch, 4] },
        [names.boxes('local')]: { data: local.boxes, dims: [2 * batch, 4] },
        [names.colours('local')]: { data: local.colours, dims: [2 * batch, 4] },
      },
    };
    const inJs: StepCase = {
      spec,
      model,
      shape: { batch, ...passes },
      inputs: {
        [names.globalCrops]: { data: cropViews(images, batch, imageSizePx, 3, global, crops.globalSizePx, jitter), dims: [2 * batch, crops.globalSizePx, crops.globalSizePx, 3] },
        [names.localCrops]: { data: cropViews(images, batch, imageSizePx, 3, local, crops.localSizePx, jitter), dims: [2 * batch, crops.localSizePx, crops.localSizePx, 3] },
      },
    };
    const runs: StepRun[] = [];
    for (const c of [inGraph, inJs]) {
      const { session, run } = await openStep(c);
      runs.push(await run());
      await session.dispose();
    }
    const [graphCrops, jsCrops] = runs;
    const what = jitter ? 'with colour jitter' : 'without colour jitter';
    assert.ok(Math.abs(graphCrops.loss - jsCrops.loss) < 1e-5, `${what}: loss ${graphCrops.loss} vs ${jsCrops.loss}`);
    assertClose(graphCrops.scores, jsCrops.scores, 1e-5, `${what}: global scores`);
    assertClose(graphCrops.crops[3].flat(), jsCrops.crops[3].flat(), 1e-5, `${what}: local scores`);
    for (const [name, gradient] of jsCrops.gradients) {
      if (name !== 'head.fc1.bias') assertCloseScaled(graphCrops.gradients.get(name)!, gradient, 1e-3, `${what}: gradient of ${name}`);
    }
    for (const [layer, { mean, variance }] of jsCrops.statistics) {
      assertCloseScaled(graphCrops.statistics.get(layer)!.mean, mean, 1e-4, `${what}: batch mean of ${layer}`);
      assertCloseScaled(graphCrops.statistics.get(layer)!.variance, variance, 1e-4, `${what}: batch variance of ${layer}`);
    }

    // The engine's runner feeds the decoded batch and the draws by these names.
    const step = new OrtStepGradients(spec, new Map([...trainable].map(([name, v]) => [name, v.shape])), inGraph.shape, loss, 1);
    try {
      const computed = await step.compute({ images, global, local, weights: new Map([...trainable].map(([name, v]) => [name, v.values])) });
      assert.ok(Math.abs(computed.loss - graphCrops.loss) < 1e-6);
      assertCloseScaled(computed.gradients.get('stem.conv')!, graphCrops.gradients.get('stem.conv')!, 1e-5, 'OrtStepGradients: gradient of stem.conv');
    } finally {
      await step.dispose();
    }
  }
});
