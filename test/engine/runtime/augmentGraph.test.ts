// The training step's crops are made in its graph: against the JS reference (data/cropPixels.ts, itself checked
// against hand-computed values in data/augment.test.ts) on fixed boxes (flips, boxes past the edges, up- and
// down-sampling, colour jitter and grey) and on the seeded draws of a multi-crop, against hand-computed bilinear
// samples, and on the GPU against the cpu provider.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { drawViews, type MultiCropOptions } from '../../../src/engine/data/augment';
import { cropViews } from '../../../src/engine/data/cropPixels';
import { emitCropViews } from '../../../src/engine/runtime/augmentGraph';
import { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { encodeModel } from '../../../src/engine/onnx/schema';
import { OrtModel } from '../../../src/engine/runtime/session';
import type { DeviceKind } from '../../../src/protocol/options';
import { createRandom } from '../../../src/engine/util/random';
import { skipWithoutGpu } from '../../gpu';
import { maxDifference, randomPixels } from '../onnx/helpers';

const sessions: OrtModel[] = [];
after(async () => {
  for (const session of sessions) await session.dispose();
});

/** Crops of `batch` images [H, H, C] for `views` views at `sizePx`, through the graph on `device`. */
async function cropsInGraph(images: Float32Array, batch: number, heightPx: number, channels: number, views: number, sizePx: number, boxes: Float32Array, colours: Float32Array, jitter: boolean, device: DeviceKind = 'cpu'): Promise<Float32Array> {
  const graph = new DifferentiableGraph();
  const input = graph.input('images', [batch, heightPx, heightPx, channels], false);
  const nchw = graph.op('Transpose', [input], [batch, channels, heightPx, heightPx], { perm: [0, 3, 1, 2] });
  const crops = emitCropViews(graph, nchw, { views, sizePx, boxes: 'boxes', colours: 'colours', jitter });
  graph.output(graph.op('Transpose', [crops], [views * batch, sizePx, sizePx, channels], { perm: [0, 2, 3, 1] }), 'crops');
  const bytes = encodeModel({ irVersion: 8, producerName: 'test', opsetImport: [{ domain: '', version: 17 }], graph: { name: 'crops', node: graph.nodes, initializer: graph.initializers, input: graph.inputs, output: graph.outputs } });
  const session = await OrtModel.open(bytes, 'the crop graph', { device });
  sessions.push(session);
  const outputs = await session.run(
    { images: { data: images, dims: [batch, heightPx, heightPx, channels] }, boxes: { data: boxes, dims: [views * batch, 4] }, colours: { data: colours, dims: [views * batch, 4] } },
    ['crops'],
  );
  return outputs.crops.data;
}

/** The JS reference (data/cropPixels.ts, which frozen backbones' crops use): cropAndResize, then the colour changes, clipped. */
function cropsInJs(images: Float32Array, batch: number, heightPx: number, channels: number, _views: number, sizePx: number, boxes: Float32Array, colours: Float32Array, jitter: boolean): Float32Array {
  return cropViews(images, batch, heightPx, channels, { boxes, colours }, sizePx, jitter);
}

// Per row: a plain crop, a flipped one, one past the top-left edge, one past the bottom-right, the whole image.
const fixedBoxes = Float32Array.from([
  [0.1, 0.2, 0.8, 0.9],
  [0.3, 0.9, 0.95, 0.05],
  [-0.2, -0.1, 0.5, 0.6],
  [0.4, 0.5, 1.3, 1.2],
  [0, 0, 1, 1],
  [0.25, 0.75, 0.25, 0.75],
].flat());
const fixedColours = Float32Array.from([
  [1.3, 0.7, 1.2, 0],
  [0.6, 1.4, 0.5, 1],
  [1, 1, 1, 0],
  [0.9, 1.1, 1.5, 1],
  [1.2, 0.8, 0.9, 0],
  [0.7, 1.3, 1.1, 0],
].flat());

test('crops in the graph: the JS reference on fixed boxes, flipped, past the edges, up- and down-sampled, with colour jitter and grey', async () => {
  for (const channels of [1, 3]) {
    for (const [heightPx, sizePx] of [[12, 7], [9, 16]]) {
      for (const jitter of [true, false]) {
        // Two images, three views each: rows are view-major, so the image of row r is r mod 2.
        const images = randomPixels(2, heightPx, channels, heightPx + channels);
        const expected = cropsInJs(images, 2, heightPx, channels, 3, sizePx, fixedBoxes, fixedColours, jitter);
        const ours = await cropsInGraph(images, 2, heightPx, channels, 3, sizePx, fixedBoxes, fixedColours, jitter);
        const gap = maxDifference(ours, expected);
        assert.ok(gap < 1e-5, `${channels} channels, ${heightPx} → ${sizePx} px, jitter ${jitter}: crops differ by ${gap}`);
        // The boxes past the edges are black there, and the flip mirrors.
        assert.ok(expected.some((value) => value === 0), 'some samples fall outside the image');
      }
    }
  }
});

test('crops in the graph: the JS crops of a multi-crop\'s seeded draws (random boxes, flips, jitter, grey)', async () => {
  const options: MultiCropOptions = { globalCrops: 2, globalSizePx: 20, globalScale: [0.3, 1], localCrops: 3, localSizePx: 9, localScale: [0.05, 0.3], flipProbability: 0.5, colorJitter: 0.4, grayscaleProbability: 0.2 };
  for (const channels of [1, 3]) {
    const sizePx = 24;
    const images = randomPixels(4, sizePx, channels, 7 + channels);
    const random = createRandom(5);
    const global = drawViews(random, 4, sizePx, options.globalCrops, options.globalScale, options);
    const local = drawViews(random, 4, sizePx, options.localCrops, options.localScale, options);
    // The draws hold flips and greys, so the comparison covers them.
    assert.ok(Array.from({ length: 8 }, (_, row) => global.boxes[row * 4 + 1] > global.boxes[row * 4 + 3]).some(Boolean), 'some global crops are flipped');
    const passes = [
      { draws: global, views: options.globalCrops, size: options.globalSizePx },
      { draws: local, views: options.localCrops, size: options.localSizePx },
    ];
    for (const [pass, { draws, views, size }] of passes.entries()) {
      const ours = await cropsInGraph(images, 4, sizePx, channels, views, size, draws.boxes, draws.colours, true);
      const expected = cropsInJs(images, 4, sizePx, channels, views, size, draws.boxes, draws.colours, true);
      const gap = maxDifference(ours, expected);
      assert.ok(gap < 1e-4, `${channels} channels, ${pass === 0 ? 'global' : 'local'} crops differ from the JS crops by ${gap}`);
    }
  }
});

test('crops in the graph: hand-computed bilinear samples of a 3×3 image', async () => {
  // Pixels 0, .1, .4 / .2, .8, .3 / .5, 0, .6; the box samples at 0.5 and 1.5 on both axes, then a flipped whole image at 3 px.
  const image = Float32Array.from([0, 0.1, 0.4, 0.2, 0.8, 0.3, 0.5, 0, 0.6]);
  const boxes = Float32Array.from([0.25, 0.25, 0.75, 0.75]);
  const plain = Float32Array.from([1, 1, 1, 0]);
  const crop = await cropsInGraph(image, 1, 3, 1, 1, 2, boxes, plain, false);
  assert.ok(maxDifference(crop, [0.275, 0.4, 0.375, 0.425]) < 1e-6, `${Array.from(crop)}`);
  const mirrored = await cropsInGraph(image, 1, 3, 1, 1, 3, Float32Array.from([0, 1, 1, 0]), plain, false);
  assert.ok(maxDifference(mirrored, [0.4, 0.1, 0, 0.3, 0.8, 0.2, 0.6, 0, 0.5]) < 1e-6, `${Array.from(mirrored)}`);
});

test('crops in the graph on the GPU match the cpu provider', { skip: skipWithoutGpu, timeout: 300_000 }, async () => {
  const images = randomPixels(2, 12, 3, 3);
  const cpu = await cropsInGraph(images, 2, 12, 3, 3, 7, fixedBoxes, fixedColours, true, 'cpu');
  const gpu = await cropsInGraph(images, 2, 12, 3, 3, 7, fixedBoxes, fixedColours, true, 'webgpu');
  assert.ok(maxDifference(cpu, gpu) < 1e-5, `crops differ by ${maxDifference(cpu, gpu)}`);
});
