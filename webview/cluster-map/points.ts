// map-points.bin decoded into typed arrays that view the fetched buffer (no copies), and the seeded draw order.
import type { MapLayout, MapPointsHeader } from '../../src/protocol/mapPoints';
import { mapPointsMagic } from '../../src/protocol/mapPoints';

/** What the map holds of a run, decoded from map-points.bin. */
export interface Points {
  count: number;
  header: MapPointsHeader;
  layouts: Partial<Record<MapLayout, Float32Array>>;
  clusters: Int32Array;
  labels: Int32Array;
  confidences: Float32Array;
  outliers?: Float32Array;
  paths: string[];
}

export function decodePoints(buffer: ArrayBuffer): Points {
  const bytes = new Uint8Array(buffer);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== mapPointsMagic) throw new Error('map-points.bin is not a Cluster Lens map file');
  const headerLength = new DataView(buffer).getUint32(4, true);
  const parsed = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as MapPointsHeader;
  const dataStart = Math.ceil((8 + headerLength) / 8) * 8;
  const array = (name: string) => {
    const entry = parsed.arrays.find((candidate) => candidate.name === name);
    if (!entry) return undefined;
    const start = dataStart + entry.offset;
    if (entry.dtype === 'float32') return new Float32Array(buffer, start, entry.length);
    if (entry.dtype === 'int32') return new Int32Array(buffer, start, entry.length);
    return new Uint8Array(buffer, start, entry.length);
  };
  const layouts: Partial<Record<MapLayout, Float32Array>> = {};
  for (const name of parsed.layouts) layouts[name] = array(name) as Float32Array;
  const pathBytes = array('paths') as Uint8Array;
  return {
    count: parsed.count,
    header: parsed,
    layouts,
    clusters: array('cluster') as Int32Array,
    labels: array('label') as Int32Array,
    confidences: array('confidence') as Float32Array,
    outliers: array('outlier') as Float32Array | undefined,
    paths: parsed.count ? new TextDecoder().decode(pathBytes).split('\0') : [],
  };
}

/** Fisher–Yates with a fixed seed: the same sample every time, spread over the whole map. */
export function shuffledOrder(count: number): Uint32Array {
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  let state = 12345;
  for (let i = count - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}
