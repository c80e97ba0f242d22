import type { ModelSpec } from '../../../src/engine/model/model';

/** A network small enough for exact checks: grey images, two stages of width 4 and 8, five prototypes. */
export const tinySpec: ModelSpec = {
  channels: 1,
  stemStride: 1,
  width: 4,
  blocksPerStage: [1, 1],
  projectionHiddenDim: 16,
  projectionDim: 8,
  prototypes: 5,
  inputMean: [0.5],
  inputStd: [0.25],
};
