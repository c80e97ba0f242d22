import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { encodeMapPoints } from '../../src/engine/index/mapPoints';
import { clusterRgb } from '../../webview/shared/palette';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';
import { tempDir } from '../tempDir';

after(closeBrowser);

const hostileName = '<img src=x onerror="window.__pwned=1"> #1.png';

/** Three tight blobs far apart (cluster 1 above the others); point 0 has a hostile name. */
function blobs(count: number) {
  const pca = new Float32Array(2 * count);
  const clusters = new Int32Array(count);
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const cluster = i % 3;
    const angle = (i * 2.399) % (2 * Math.PI);
    const radius = (1.5 * ((i * 7919) % 97)) / 97;
    pca[2 * i] = cluster * 10 + radius * Math.cos(angle);
    pca[2 * i + 1] = (cluster === 1 ? 10 : 0) + radius * Math.sin(angle);
    clusters[i] = cluster;
    paths.push(i === 0 ? hostileName : `c${cluster}/${i}.png`);
  }
  const file = encodeMapPoints({
    layouts: { pca },
    clusters,
    confidences: new Float32Array(count).fill(0.9),
    labels: new Int32Array(count).fill(-1),
    labelNames: [],
    prototypes: 3,
    paths,
  });
  return { pca, clusters, paths, file };
}

type MapApi = { clusterMap: { screenPosition(i: number): { x: number; y: number }; dataToScreen(x: number, y: number): { x: number; y: number }; readPixels(): { pixels: number[] } } };

test('cluster map: 100k points drawn by WebGL; hover names the point under the cursor as text; click explains; lasso selects a blob', { skip: skipWithoutChromium }, async () => {
  const imagesDir = tempDir('cl-map-');
  writeFileSync(path.join(imagesDir, hostileName), await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).png().toBuffer());
  const count = 100_000;
  const data = blobs(count);
  const view = await openWebview('cluster-map', { imagesDir, files: { 'map-points.bin': data.file } });
  try {
    await view.send({ type: 'map.points', pointsUrl: `${view.origin}/files/map-points.bin`, imageBase: `${view.origin}/images`, runName: 'run', clusters: 3 });
    await view.page.locator('#root[data-ready="100000"]').waitFor();
    await view.page.getByText('100,000 images in 3 clusters', { exact: false }).waitFor();

    // Read the WebGL canvas back: the three blobs colour pixels, and pixels of all three cluster colours exist.
    const pixels = await view.page.evaluate(() => {
      const { pixels: data } = (window as unknown as MapApi).clusterMap.readPixels();
      const background = [data[0], data[1], data[2]];
      let drawn = 0;
      const colours = new Set<string>();
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - background[0]) + Math.abs(data[i + 1] - background[1]) + Math.abs(data[i + 2] - background[2]) > 60) {
          drawn++;
          colours.add(`${data[i] >> 5},${data[i + 1] >> 5},${data[i + 2] >> 5}`);
        }
      }
      return { drawn, colours: colours.size, total: data.length / 4 };
    });
    assert.ok(pixels.drawn > 200, `points were drawn: ${JSON.stringify(pixels)}`);
    assert.ok(pixels.drawn < pixels.total / 4, `the background stays: ${JSON.stringify(pixels)}`);
    assert.ok(pixels.colours >= 3, `three cluster colours: ${JSON.stringify(pixels)}`);

    const canvas = view.page.getByRole('img', { name: 'Cluster map' });
    const box = (await canvas.boundingBox())!;
    const at = async (index: number) => {
      const position = await view.page.evaluate((i) => (window as unknown as MapApi).clusterMap.screenPosition(i), index);
      return { x: box.x + position.x, y: box.y + position.y };
    };
    // Zoom in on point 0 until it stands apart, then hover it: the tooltip names exactly that point, as text.
    const tooltip = view.page.locator('.tooltip');
    for (let i = 0; i < 12; i++) {
      const target = await at(0);
      await view.page.mouse.move(target.x, target.y);
      await view.page.mouse.wheel(0, -400);
    }
    const target = await at(0);
    await view.page.mouse.move(target.x + 1, target.y);
    await view.page.mouse.move(target.x, target.y);
    await tooltip.waitFor({ state: 'visible' });
    assert.equal(await tooltip.locator('span').textContent(), `${hostileName} · cluster 0`);
    const thumbnail = await view.page.locator('.tooltip img').evaluate((img: HTMLImageElement) => img.src);
    assert.ok(thumbnail.startsWith(`${view.origin}/images/`), thumbnail);
    assert.equal(await view.page.locator('#root img:not(.tooltip img)').count(), 0, 'no markup injected by file names');

    // A click (no drag) on it asks to explain that image.
    await view.page.mouse.click(target.x, target.y);
    const explain = ((await view.posted()) as { type: string; path?: string }[]).find((m) => m.type === 'webview.explainImage');
    assert.equal(explain?.path, hostileName);

    // Back to the whole map; lasso around the middle blob (cluster 1, top centre).
    await canvas.focus();
    await view.page.keyboard.press('0');
    // 1.6 data units either side of blob 1's centre: wider than the blob (radius < 1.5), inside the canvas's margin.
    const [centre, corner] = await view.page.evaluate(() => {
      const api = (window as unknown as MapApi).clusterMap;
      return [api.dataToScreen(10, 10), api.dataToScreen(11.6, 11.6)];
    });
    const [cx, cy, half] = [box.x + centre.x, box.y + centre.y, corner.x - centre.x];
    await view.page.mouse.move(cx - half, cy - half);
    await view.page.mouse.down();
    for (const [dx, dy] of [[half, -half], [half, half], [-half, half], [-half, -half]]) await view.page.mouse.move(cx + dx, cy + dy, { steps: 4 });
    await view.page.mouse.up();
    const posted = (await view.posted()) as { type: string; imageIndices?: number[] }[];
    const selection = posted.find((m) => m.type === 'map.selection');
    assert.ok(selection, 'the lasso posts its selection');
    const expected = Array.from(data.clusters.keys()).filter((i) => data.clusters[i] === 1);
    assert.deepEqual(selection!.imageIndices, expected, 'exactly the lassoed blob, in index order');
    assert.equal(await view.page.locator('.gallery figure').count(), 200, 'the gallery shows the first 200');

    // The selection's paths go to the host for copying.
    await view.page.getByRole('button', { name: 'Copy paths' }).click();
    const copy = ((await view.posted()) as { type: string; paths?: string[] }[]).find((m) => m.type === 'map.copyPaths');
    assert.equal(copy?.paths?.length, expected.length);
    assert.equal(copy?.paths?.[0], data.paths[expected[0]]);
    assert.equal(await view.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  } finally {
    await view.close();
  }
});

type LevelOfDetailApi = { clusterMap: { dataToScreen(x: number, y: number): { x: number; y: number }; drawnPoints(): number; movingPointBudget(): number; readPixels(): { width: number; height: number; pixels: number[] } } };

test('cluster map: a moving view draws a sample, the view at rest every point, each in its own colour', { skip: skipWithoutChromium }, async () => {
  const count = 150_000;
  const data = blobs(count);
  const view = await openWebview('cluster-map', { files: { 'map-points.bin': data.file } });
  try {
    await view.send({ type: 'map.points', pointsUrl: `${view.origin}/files/map-points.bin`, imageBase: `${view.origin}/images`, runName: 'run', clusters: 3 });
    await view.page.locator(`#root[data-ready="${count}"]`).waitFor();

    // The points sit in the GPU buffers in a shuffled order: each blob's centre still shows its own cluster's colour.
    const dark = await view.page.evaluate(() => document.body.classList.contains('vscode-dark'));
    const palette = clusterRgb(3, dark);
    const centres = await view.page.evaluate(() => {
      const api = (window as unknown as LevelOfDetailApi).clusterMap;
      const frame = api.readPixels();
      return [api.dataToScreen(0, 0), api.dataToScreen(10, 10), api.dataToScreen(20, 0)].map((at) => {
        const ratio = window.devicePixelRatio || 1;
        const row = frame.height - 1 - Math.round(at.y * ratio);
        const offset = 4 * (row * frame.width + Math.round(at.x * ratio));
        return frame.pixels.slice(offset, offset + 3);
      });
    });
    centres.forEach((rgb, cluster) => {
      const distances = palette.map((colour) => Math.hypot(colour[0] - rgb[0], colour[1] - rgb[1], colour[2] - rgb[2]));
      assert.equal(distances.indexOf(Math.min(...distances)), cluster, `blob ${cluster}'s centre is ${rgb}, palette ${JSON.stringify(palette)}`);
    });

    // A wheel zoom draws the sample (a prefix of the shuffled buffers); 150 ms after the last move, everything.
    const canvas = view.page.getByRole('img', { name: 'Cluster map' });
    const box = (await canvas.boundingBox())!;
    await view.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const budget = await view.page.evaluate(() => (window as unknown as LevelOfDetailApi).clusterMap.movingPointBudget());
    assert.ok(budget < count, `the test map is larger than the moving budget (${budget})`);
    await view.page.mouse.wheel(0, -100);
    // The budget may adapt on this very frame: the frame drawn while moving holds at most the budget, fewer than all.
    await view.page.waitForFunction((n) => (window as unknown as LevelOfDetailApi).clusterMap.drawnPoints() <= n, Math.round(budget * 1.1), { timeout: 2_000 });
    await view.page.waitForFunction((n) => (window as unknown as LevelOfDetailApi).clusterMap.drawnPoints() === n, count, { timeout: 5_000 });
  } finally {
    await view.close();
  }
});
