// The cluster map's picking grid against brute force: the hovered point and a lasso's points.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insidePolygon, PointGrid } from '../../webview/cluster-map/pointGrid';
import { createRandom } from '../../src/engine/util/random';

function scatter(count: number, seed: number): Float32Array {
  const random = createRandom(seed);
  // Two dense clusters and a sparse spread, so cells hold from zero to many points.
  return Float32Array.from({ length: 2 * count }, (_, i) => (i % 4 < 2 ? random.normal() * 0.05 + (i % 2 ? 3 : -1) : random.uniform(-10, 10)));
}

test('the nearest point within a radius is the brute-force one, ties to the lower index', () => {
  const count = 5000;
  const coordinates = scatter(count, 1);
  const grid = new PointGrid(coordinates, count);
  const random = createRandom(2);
  let found = 0;
  for (let query = 0; query < 400; query++) {
    const [x, y, radius] = [random.uniform(-11, 11), random.uniform(-11, 11), random.uniform(0.01, 1)];
    let expected: number | undefined;
    let bestDistance = radius * radius;
    for (let i = 0; i < count; i++) {
      const distance = (coordinates[2 * i] - x) ** 2 + (coordinates[2 * i + 1] - y) ** 2;
      if (distance < bestDistance) [expected, bestDistance] = [i, distance];
    }
    assert.equal(grid.nearest(x, y, radius), expected, `query ${query} at (${x}, ${y}), radius ${radius}`);
    if (expected !== undefined) found++;
  }
  assert.ok(found > 50 && found < 400, `${found} queries found a point: both outcomes are exercised`);
  const twins = new PointGrid(Float32Array.from([1, 1, 0, 0, 1, 1]), 3);
  assert.equal(twins.nearest(1, 1, 0.5), 0);
});

test('a lasso picks exactly the points inside it, and the bounds hold every point', () => {
  const count = 3000;
  const coordinates = scatter(count, 3);
  const grid = new PointGrid(coordinates, count);
  const star = Array.from({ length: 10 }, (_, k) => {
    const radius = k % 2 ? 2 : 6;
    return { x: radius * Math.cos((k * Math.PI) / 5), y: radius * Math.sin((k * Math.PI) / 5) };
  });
  const expected = [];
  for (let i = 0; i < count; i++) if (insidePolygon(coordinates[2 * i], coordinates[2 * i + 1], star)) expected.push(i);
  assert.ok(expected.length > 100 && expected.length < count, `${expected.length} points inside the star`);
  assert.deepEqual(grid.inside(star), expected);
  for (let i = 0; i < count; i++) {
    const [x, y] = [coordinates[2 * i], coordinates[2 * i + 1]];
    assert.ok(x >= grid.bounds.minX && x <= grid.bounds.maxX && y >= grid.bounds.minY && y <= grid.bounds.maxY);
  }
  assert.ok(insidePolygon(0, 0, star) && !insidePolygon(5, 5, star));
  assert.deepEqual(new PointGrid(new Float32Array(0), 0).bounds, { minX: 0, maxX: 1, minY: 0, maxY: 1 });
});
