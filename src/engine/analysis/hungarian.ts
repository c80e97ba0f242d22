// Minimum-cost assignment (Kuhn–Munkres with potentials and shortest augmenting paths, O(n²m)), like scipy's linear_sum_assignment.

export interface Assignment {
  /** Row indices, ascending. */
  rows: number[];
  /** The column matched to each entry of `rows`. */
  cols: number[];
}

/**
 * Matches min(rows, cols) pairs so that the summed cost is smallest.
 * Costs must be finite; a rectangular matrix leaves the surplus rows or columns unmatched.
 */
export function linearSumAssignment(cost: number[][]): Assignment {
  const rowCount = cost.length;
  const columnCount = rowCount === 0 ? 0 : cost[0].length;
  for (const row of cost) {
    if (row.length !== columnCount) throw new Error('Every row of the cost matrix must have the same length.');
    for (const value of row) if (!Number.isFinite(value)) throw new Error('Costs must be finite numbers.');
  }
  if (rowCount === 0 || columnCount === 0) return { rows: [], cols: [] };

  // The augmenting-path form needs rows ≤ columns; solve the transpose otherwise.
  const transposed = rowCount > columnCount;
  const n = transposed ? columnCount : rowCount;
  const m = transposed ? rowCount : columnCount;
  const at = transposed ? (i: number, j: number) => cost[j][i] : (i: number, j: number) => cost[i][j];

  // 1-based arrays; column 0 is the virtual start of each augmenting path.
  const rowPotential = new Float64Array(n + 1);
  const columnPotential = new Float64Array(m + 1);
  const rowOfColumn = new Int32Array(m + 1);
  const previousColumn = new Int32Array(m + 1);
  const minimumSlack = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);

  for (let row = 1; row <= n; row++) {
    rowOfColumn[0] = row;
    let column = 0;
    minimumSlack.fill(Infinity);
    used.fill(0);
    // Grow a shortest-path tree from `row` until it reaches a free column (Dijkstra on reduced costs).
    do {
      used[column] = 1;
      const currentRow = rowOfColumn[column];
      let delta = Infinity;
      let nextColumn = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const reduced = at(currentRow - 1, j - 1) - rowPotential[currentRow] - columnPotential[j];
        if (reduced < minimumSlack[j]) {
          minimumSlack[j] = reduced;
          previousColumn[j] = column;
        }
        if (minimumSlack[j] < delta) {
          delta = minimumSlack[j];
          nextColumn = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          rowPotential[rowOfColumn[j]] += delta;
          columnPotential[j] -= delta;
        } else {
          minimumSlack[j] -= delta;
        }
      }
      column = nextColumn;
    } while (rowOfColumn[column] !== 0);
    // Flip the path back to the root.
    do {
      const previous = previousColumn[column];
      rowOfColumn[column] = rowOfColumn[previous];
      column = previous;
    } while (column !== 0);
  }

  const pairs: [number, number][] = [];
  for (let j = 1; j <= m; j++) {
    if (rowOfColumn[j] === 0) continue;
    const row = rowOfColumn[j] - 1;
    const column = j - 1;
    pairs.push(transposed ? [column, row] : [row, column]);
  }
  pairs.sort((a, b) => a[0] - b[0]);
  return { rows: pairs.map((pair) => pair[0]), cols: pairs.map((pair) => pair[1]) };
}
