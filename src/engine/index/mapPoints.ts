// The cluster map's binary file: what a webview fetches as one ArrayBuffer, so a million points cross as typed
// arrays, never as JSON numbers. The layout is MapPointsHeader in protocol/mapPoints.ts.
import type { MapLayout, MapPointsArray, MapPointsHeader } from '../../protocol/mapPoints';
import { mapPointsMagic } from '../../protocol/mapPoints';

export interface MapPointsInput {
  layouts: Partial<Record<MapLayout, Float32Array>>;
  clusters: Int32Array;
  confidences: Float32Array;
  labels: Int32Array;
  labelNames: string[];
  prototypes: number;
  paths: string[];
  outlierScores?: Float32Array;
}

/** "CLMP" | uint32 header bytes | header JSON | zero padding to 8 | arrays, each starting on 8 bytes. */
export function encodeMapPoints(input: MapPointsInput): Buffer {
  const count = input.clusters.length;
  const named: [string, Float32Array | Int32Array | Uint8Array][] = [];
  const layouts = (['pca', 'umap'] as const).filter((layout) => input.layouts[layout]);
  for (const layout of layouts) named.push([layout, input.layouts[layout]!]);
  named.push(['cluster', input.clusters], ['confidence', input.confidences], ['label', input.labels]);
  if (input.outlierScores) named.push(['outlier', input.outlierScores]);
  // File names cannot hold NUL, so it separates them.
  named.push(['paths', Buffer.from(input.paths.join('\0'), 'utf8')]);
  const arrays: MapPointsArray[] = [];
  let offset = 0;
  for (const [name, values] of named) {
    const dtype = values instanceof Float32Array ? 'float32' : values instanceof Int32Array ? 'int32' : 'uint8';
    arrays.push({ name, dtype, offset, length: values.length });
    offset = Math.ceil((offset + values.byteLength) / 8) * 8;
  }
  const header: MapPointsHeader = { count, layouts, labelNames: input.labelNames, prototypes: input.prototypes, arrays };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const dataStart = Math.ceil((8 + headerBytes.length) / 8) * 8;
  const file = Buffer.alloc(dataStart + offset);
  file.write(mapPointsMagic, 0, 'ascii');
  file.writeUInt32LE(headerBytes.length, 4);
  headerBytes.copy(file, 8);
  named.forEach(([, values], i) => Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(file, dataStart + arrays[i].offset));
  return file;
}
