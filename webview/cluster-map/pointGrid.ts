// Picking on the map: a uniform grid over one layout's points, for the point under the cursor and a lasso's points.

export interface Bounds {
  minX: number;
  maxX: number;
  minY: number;
  maxY: number;
}

/** Cells per side: fine enough that a hover looks at a handful of points even at a million. */
const gridSide = 512;

/**
 * The points of one layout ([x0, y0, x1, y1, …] in data units) sorted into grid cells: cellStart[c]..cellStart[c+1]
 * index into cellPoints.
 */
export class PointGrid {
  readonly bounds: Bounds;
  private readonly cellStart: Int32Array;
  private readonly cellPoints: Int32Array;

  constructor(
    private readonly coordinates: Float32Array,
    readonly count: number,
  ) {
    let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < count; i++) {
      const [x, y] = [coordinates[2 * i], coordinates[2 * i + 1]];
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
    this.bounds = count ? { minX, maxX, minY, maxY } : { minX: 0, maxX: 1, minY: 0, maxY: 1 };
    // Counting sort of the points into grid cells: two passes, no per-cell arrays.
    const cells = new Int32Array(count);
    const counts = new Int32Array(gridSide * gridSide + 1);
    for (let i = 0; i < count; i++) {
      const [column, row] = this.cellOf(coordinates[2 * i], coordinates[2 * i + 1]);
      cells[i] = row * gridSide + column;
      counts[cells[i] + 1]++;
    }
    for (let c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
    this.cellStart = counts.slice();
    this.cellPoints = new Int32Array(count);
    for (let i = 0; i < count; i++) this.cellPoints[counts[cells[i]]++] = i;
  }

  private cellOf(x: number, y: number): [number, number] {
    const { minX, maxX, minY, maxY } = this.bounds;
    const column = Math.min(gridSide - 1, Math.max(0, Math.floor(((x - minX) / (maxX - minX || 1)) * gridSide)));
    const row = Math.min(gridSide - 1, Math.max(0, Math.floor(((y - minY) / (maxY - minY || 1)) * gridSide)));
    return [column, row];
  }

  /** The point nearest (x, y) within `radius` (data units), the lower index on a tie; undefined when none is that near. */
  nearest(x: number, y: number, radius: number): number | undefined {
    const [firstColumn, firstRow] = this.cellOf(x - radius, y - radius);
    const [lastColumn, lastRow] = this.cellOf(x + radius, y + radius);
    let best: number | undefined;
    let bestDistance = radius * radius;
    for (let row = firstRow; row <= lastRow; row++) {
      for (let column = firstColumn; column <= lastColumn; column++) {
        const cell = row * gridSide + column;
        for (let k = this.cellStart[cell]; k < this.cellStart[cell + 1]; k++) {
          const i = this.cellPoints[k];
          const distance = (this.coordinates[2 * i] - x) ** 2 + (this.coordinates[2 * i + 1] - y) ** 2;
          if (distance < bestDistance || (distance === bestDistance && best !== undefined && i < best)) [best, bestDistance] = [i, distance];
        }
      }
    }
    return best;
  }

  /** The points inside a polygon given in data units, in index order. */
  inside(polygon: { x: number; y: number }[]): number[] {
    const xs = polygon.map((p) => p.x);
    const ys = polygon.map((p) => p.y);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const chosen: number[] = [];
    for (let i = 0; i < this.count; i++) {
      const [x, y] = [this.coordinates[2 * i], this.coordinates[2 * i + 1]];
      if (x >= minX && x <= maxX && y >= minY && y <= maxY && insidePolygon(x, y, polygon)) chosen.push(i);
    }
    return chosen;
  }
}

/** Even–odd rule: whether (x, y) lies inside the polygon. */
export function insidePolygon(x: number, y: number, polygon: { x: number; y: number }[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [a, b] = [polygon[i], polygon[j]];
    if (a.y > y !== b.y > y && x < ((b.x - a.x) * (y - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}
