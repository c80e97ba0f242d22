// SwAV's augmentation inside a graph, so that the crops of a training step are made on the device from the
// decoded batch: each view's random-resized crop (flip folded into its box) as two small matrix products, then
// its colour jitter and grey. The boxes and colour draws come from the engine's seeded stream (data/augment.ts).

import type { DifferentiableGraph } from './autodiff';

const lumaWeights = [0.299, 0.587, 0.114];

export interface CropViews {
  /** Views of every image: crops [views · batch, C, S, S] take rows view by view. */
  views: number;
  sizePx: number;
  /** Input name of the boxes [views · batch, 4]: [y1, x1, y2, x2], 0 and 1 the centres of the first and last pixel. */
  boxes: string;
  /** Input name of the colour draws [views · batch, 4]: brightness, contrast, saturation, grey (0 or 1). */
  colours: string;
  /** Whether brightness, contrast and saturation apply (a recipe without colour jitter skips them). */
  jitter: boolean;
}

/**
 * Interpolation weights [rows, S, size] of each row's crop along one axis: output o samples the source at
 * c = start·(size − 1) + o·(end − start)·(size − 1)/(S − 1), bilinearly, i.e. with weight max(0, 1 − |h − c|) at
 * source index h; a sample outside the image is 0 (tf.image.cropAndResize's extrapolation value).
 */
function axisWeights(graph: DifferentiableGraph, boxes: string, rows: number, startColumn: number, size: number, outSize: number): string {
  const column = (index: number) => graph.op('Slice', [boxes, graph.ints([index]), graph.ints([index + 1]), graph.ints([1])], [rows, 1]);
  const [start, end] = [column(startColumn), column(startColumn + 2)].map((value) => graph.op('Reshape', [value, graph.ints([rows, 1, 1])], [rows, 1, 1]));
  const scale = outSize > 1 ? (size - 1) / (outSize - 1) : 0;
  const steps = graph.floats(Array.from({ length: outSize }, (_, o) => (outSize > 1 ? o * scale : 0.5 * (size - 1))), [1, outSize, 1]);
  const span = outSize > 1 ? graph.op('Sub', [end, start], [rows, 1, 1]) : graph.op('Add', [end, start], [rows, 1, 1]);
  // c = start·(size − 1) + o·scale·(end − start); with one output sample, the box's centre
  const first = outSize > 1 ? graph.op('Mul', [start, graph.scalar(size - 1)], [rows, 1, 1]) : graph.floats([0], [1, 1, 1]);
  const centre = graph.op('Add', [first, graph.op('Mul', [steps, span], [rows, outSize, 1])], [rows, outSize, 1]);
  const sources = graph.floats(Array.from({ length: size }, (_, h) => h), [1, 1, size]);
  const shape = [rows, outSize, size];
  const tent = graph.op('Relu', [graph.op('Sub', [graph.scalar(1), graph.op('Abs', [graph.op('Sub', [sources, centre], shape)], shape)], shape)], shape);
  const inside = graph.op('Cast', [graph.op('And', [graph.op('GreaterOrEqual', [centre, graph.scalar(0)], [rows, outSize, 1]), graph.op('LessOrEqual', [centre, graph.scalar(size - 1)], [rows, outSize, 1])], [rows, outSize, 1])], [rows, outSize, 1], { to: 1 });
  return graph.op('Mul', [tent, inside], shape);
}

/** Luma [N, 1, S, S] of NCHW views (a grey view is its own luma). */
function luma(graph: DifferentiableGraph, views: string): string {
  const [n, channels, height, width] = graph.shape(views);
  if (channels === 1) return views;
  return graph.op('ReduceSum', [graph.op('Mul', [views, graph.floats(lumaWeights, [1, 3, 1, 1])], [n, 3, height, width]), graph.ints([1])], [n, 1, height, width], { keepdims: 1 });
}

/**
 * The views of `images` (NCHW [B, C, H, W] in [0, 1]): crops [views · B, C, S, S] in [0, 1], as
 * data/cropPixels.ts's cropAndResize then changeColours, clipped.
 */
export function emitCropViews(graph: DifferentiableGraph, images: string, crop: CropViews): string {
  const [batch, channels, height, width] = graph.shape(images);
  const rows = crop.views * batch;
  const size = crop.sizePx;
  const boxes = graph.input(crop.boxes, [rows, 4], false);
  const colours = graph.input(crop.colours, [rows, 4], false);
  // crop = R_y · image · R_xᵀ per row, the image broadcast over the views: [V, B, 1, S, H] · [1, B, C, H, W] · [V, B, 1, W, S]
  const along = (startColumn: number, extent: number) => graph.op('Reshape', [axisWeights(graph, boxes, rows, startColumn, extent, size), graph.ints([crop.views, batch, 1, size, extent])], [crop.views, batch, 1, size, extent]);
  const rowsWeights = along(0, height);
  const columnWeights = graph.op('Transpose', [along(1, width)], [crop.views, batch, 1, width, size], { perm: [0, 1, 2, 4, 3] });
  const source = graph.op('Reshape', [images, graph.ints([1, batch, channels, height, width])], [1, batch, channels, height, width]);
  const sampledRows = graph.op('MatMul', [rowsWeights, source], [crop.views, batch, channels, size, width]);
  const cropped = graph.op('MatMul', [sampledRows, columnWeights], [crop.views, batch, channels, size, size]);
  const shape = [rows, channels, size, size];
  let views = graph.op('Reshape', [cropped, graph.ints(shape)], shape);
  const factor = (index: number) => graph.op('Reshape', [graph.op('Slice', [colours, graph.ints([index]), graph.ints([index + 1]), graph.ints([1])], [rows, 1]), graph.ints([rows, 1, 1, 1])], [rows, 1, 1, 1]);
  const clip = (value: string) => graph.op('Clip', [value, graph.scalar(0), graph.scalar(1)], shape);
  // x + f·(y − x) for a per-view factor f: contrast and saturation about a mean, and grey.
  const towards = (value: string, about: string, scale: string) => graph.op('Add', [about, graph.op('Mul', [graph.op('Sub', [value, about], shape), scale], shape)], shape);
  if (crop.jitter) {
    views = clip(graph.op('Mul', [views, factor(0)], shape));
    const meanLuma = graph.op('ReduceMean', [luma(graph, views)], [rows, 1, 1, 1], { axes: [1, 2, 3], keepdims: 1 });
    views = clip(towards(views, meanLuma, factor(1)));
    if (channels === 3) views = clip(towards(views, luma(graph, views), factor(2)));
  }
  if (channels === 3) {
    // views + grey·(luma − views): 1 turns a view grey, 0 leaves it
    views = graph.op('Add', [views, graph.op('Mul', [graph.op('Sub', [luma(graph, views), views], shape), factor(3)], shape)], shape);
  }
  // Bilinear weights can overshoot 1 by a rounding error.
  return clip(views);
}
