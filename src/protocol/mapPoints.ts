// The map-points.bin format the engine writes and the cluster map reads.

/** The cluster map's layouts: PCA of the projections, or UMAP of the features' neighbour graph. */
export type MapLayout = 'pca' | 'umap';
export type MapColouring = 'cluster' | 'label' | 'confidence' | 'outlier';

/** The first bytes of map-points.bin. */
export const mapPointsMagic = 'CLMP';

/** One typed array of map-points.bin; `offset` counts from the first byte after the header's padding. */
export interface MapPointsArray {
  name: string;
  dtype: 'float32' | 'int32' | 'uint8';
  offset: number;
  length: number;
}

/**
 * The JSON header of map-points.bin: "CLMP" | uint32 header bytes | header | zero padding to 8 | arrays.
 * Arrays: one per layout (float32 x, y interleaved), `cluster` and `label` (int32, −1: none), `confidence`,
 * `outlier` when known (float32), `paths` (UTF-8, NUL-separated, relative to the images folder).
 */
export interface MapPointsHeader {
  count: number;
  layouts: MapLayout[];
  labelNames: string[];
  prototypes: number;
  arrays: MapPointsArray[];
}
