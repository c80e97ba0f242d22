import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import type { RunOverview } from '../../src/protocol';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';
import { tempDir } from '../tempDir';

after(closeBrowser);

const hostileName = '<img src=x onerror="window.__pwned=1"> #1.png';

/** Three tight blobs far apart, plus one named point at a known place. */
function overview(count: number): RunOverview {
  const map: number[] = [];
  const assignments: number[] = [];
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const cluster = i % 3;
    const angle = (i * 2.399) % (2 * Math.PI);
    const radius = 0.05 * ((i * 7919) % 97) / 97;
    map.push(cluster * 10 + radius * Math.cos(angle), (cluster === 1 ? 10 : 0) + radius * Math.sin(angle));
    assignments.push(cluster);
    paths.push(i === 0 ? hostileName : `c${cluster}/${i}.png`);
  }
  return {
    runDir: '/run', imagesDir: '/images', paths, map, assignments, confidences: assignments.map(() => 0.9), labels: assignments.map(() => -1), labelNames: [],
    clusters: [0, 1, 2].map((cluster) => ({ cluster, size: count / 3, samples: [], meanConfidence: 0.9 })), prototypes: 3,
  };
}

test('cluster map: hover shows the file name as text with its thumbnail, click asks to explain, lasso selects a blob', { skip: skipWithoutChromium }, async () => {
  const imagesDir = tempDir('cl-map-');
  writeFileSync(path.join(imagesDir, hostileName), await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).png().toBuffer());
  const view = await openWebview('cluster-map', { imagesDir });
  try {
    const data = overview(20_000);
    await view.send({ type: 'map.data', overview: data, imageBase: `${view.origin}/images` });
    const canvas = view.page.getByRole('img', { name: 'Cluster map' });
    await view.page.getByText('20,000 images in 3 clusters', { exact: false }).waitFor();
    const box = (await canvas.boundingBox())!;
    // The page maps data to pixels uniformly with a 10 px margin; do the same here to aim the mouse.
    const xs = data.map.filter((_, i) => i % 2 === 0);
    const ys = data.map.filter((_, i) => i % 2 === 1);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const scale = Math.min((box.width - 20) / (maxX - minX), (box.height - 20) / (maxY - minY));
    const at = (x: number, y: number) => ({ x: box.x + 10 + (x - minX) * scale, y: box.y + box.height - 10 - (y - minY) * scale });

    const first = at(data.map[0], data.map[1]);
    const tooltip = view.page.locator('.tooltip');
    // Point 0 shares its pixel with neighbours of its blob; hovering there shows one of them, named as plain text.
    await view.page.mouse.move(first.x, first.y);
    await tooltip.waitFor({ state: 'visible' });
    assert.match((await tooltip.textContent())!, / · cluster 0$/);
    const thumbnail = await view.page.locator('.tooltip img').evaluate((img: HTMLImageElement) => img.src);
    assert.ok(thumbnail.startsWith(`${view.origin}/images/`), thumbnail);
    assert.equal(await view.page.locator('#root > img').count(), 0, 'no markup injected by file names');

    // Lasso around the middle blob (cluster 1, top centre).
    const centre = at(10, 10);
    await view.page.mouse.move(centre.x - 8, centre.y - 8);
    await view.page.mouse.down();
    for (const [dx, dy] of [[8, -8], [8, 8], [-8, 8], [-8, -8]]) await view.page.mouse.move(centre.x + dx, centre.y + dy, { steps: 4 });
    await view.page.mouse.up();
    const posted = (await view.posted()) as { type: string; imageIndices?: number[] }[];
    const selection = posted.find((m) => m.type === "map.selection")!;
    assert.ok(selection, 'the lasso posts its selection');
    assert.equal(selection.imageIndices!.length, data.assignments.filter((c) => c === 1).length);
    assert.ok(selection.imageIndices!.every((i) => data.assignments[i] === 1), 'only the lassoed blob is selected');
    assert.equal(await view.page.locator('.gallery figure').count(), 200, 'the gallery shows the first 200');

    // A click (no drag) on a point of blob 2 asks to explain that image.
    const right = at(20, 0);
    await view.page.mouse.click(right.x, right.y);
    const explain = ((await view.posted()) as { type: string; path?: string }[]).find((m) => m.type === 'webview.explainImage');
    assert.ok(explain && /^c2\//.test(explain.path!), `explains an image of cluster 2, got ${JSON.stringify(explain)}`);
    assert.equal(await view.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  } finally {
    await view.close();
  }
});
