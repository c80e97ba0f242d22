import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import sharp from 'sharp';
import type { ExplainResult } from '../../src/protocol/engine';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';

after(closeBrowser);

async function pngBase64(color: string): Promise<string> {
  return (await sharp({ create: { width: 4, height: 4, channels: 3, background: color } }).png().toBuffer()).toString('base64');
}

async function result(method: 'gradcam' | 'counterfactual' | 'counterfactual-pixel'): Promise<ExplainResult> {
  const [original, heatmap, counterfactual, diff] = await Promise.all(['#888', '#f00', '#0f0', '#00f'].map(pngBase64));
  return {
    kind: 'explain', device: 'cpu', method, runDir: '/run', image: '/images/a.png', imageSizePx: 28, cluster: 2,
    topPrototypes: [{ prototype: 2, probability: 0.7, score: 0.9 }, { prototype: 4, probability: 0.2, score: 0.5 }],
    neighbours: [{ imageIndex: 3, path: 'x/<script>alert(1)</script>.png', similarity: 0.91, cluster: 2 }],
    target: { kind: 'prototype', prototype: 2, assigned: true, score: 0.9, probability: 0.7 },
    heatmap: { widthPx: 2, heightPx: 2, values: [0, 1, 0.5, 0.2] },
    counterfactual:
      method === 'counterfactual-pixel'
        ? { kind: 'pixel', originalCluster: 2, originalClusterProbability: 0.61, targetCluster: 4, newCluster: 4, valid: true, originalTargetProbability: 0.2, targetProbability: 0.6, topPrototypes: [], l1Distance: 3, l2Distance: 0.75, meanAbsoluteChange: 0.01, changedPixelShare: 0.12, steps: 40, converged: true, durationMs: 1500 }
        : method === 'counterfactual'
          ? {
              kind: 'region', originalCluster: 2, originalClusterProbability: 0.61, targetCluster: 5, newCluster: 5, valid: true, originalTargetProbability: 0.1, targetProbability: 0.48,
              topPrototypes: [{ prototype: 5, probability: 0.48, score: 0.7 }], l1Distance: 9.5, l2Distance: 2, meanAbsoluteChange: 0.01, changedPixelShare: 0.05, steps: 3, converged: true, durationMs: 400,
              donors: [
                { imageIndex: 7, path: 'b/<img src=x onerror=alert(1)>.png', similarity: 0.8, cluster: 5, png: original },
                { imageIndex: 9, path: 'b/two.png', similarity: 0.7, cluster: 5, png: original },
              ],
              // 3 regions of 28 px: 4·4 + 4·4 + 8·2 = 48 px², 6 % of 784.
              regions: [{ donor: 0, xPx: 4, yPx: 4, widthPx: 4, heightPx: 4 }, { donor: 1, xPx: 12, yPx: 8, widthPx: 4, heightPx: 4 }, { donor: 0, xPx: 20, yPx: 20, widthPx: 8, heightPx: 2 }],
            }
          : undefined,
    pngs: method === 'gradcam' ? { original, heatmap } : { original, counterfactual, diff },
    durationMs: 20,
  };
}

test('explain panel: prototypes, Grad-CAM overlay with opacity, counterfactual triptych, target choice, escaped names', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('explain');
  try {
    await view.send({ type: 'explain.loading', runDir: '/runs/r1', image: '/images/a.png', imageName: 'a.png' });
    await view.send({ type: 'explain.gradcam', result: await result('gradcam'), prototypes: 6, imageBase: `${view.origin}/images` });
    const heatmap = view.page.getByRole('img', { name: 'Grad-CAM heatmap' });
    assert.match((await heatmap.getAttribute('src'))!, /^data:image\/png;base64,/);
    assert.equal(await view.page.getByRole('list', { name: 'Top prototypes' }).getByRole('listitem').first().textContent(), 'cluster 2: 70.0% (assigned)');

    await view.page.getByRole('slider', { name: 'Heatmap opacity' }).fill('0.25');
    assert.equal(await heatmap.evaluate((img) => (img as HTMLImageElement).style.opacity), '0.25');
    // The state keeps the run and image too, so the host can explain them again after a reload.
    assert.deepEqual(await view.page.evaluate(() => (window as unknown as { __state: unknown }).__state), { opacity: 0.25, runDir: '/runs/r1', image: '/images/a.png' });

    await view.send({ type: 'explain.counterfactual', result: await result('counterfactual-pixel') });
    for (const name of ['Counterfactual', 'Counterfactual difference']) {
      assert.match((await view.page.getByRole('img', { name, exact: true }).getAttribute('src'))!, /^data:image\/png;base64,/);
    }
    assert.equal(await view.page.getByRole('status', { name: 'Counterfactual summary' }).textContent(), 'Changing 12 % of the pixels moves it from cluster 2 (61 %) to cluster 4 (60 %).');
    assert.match((await view.page.locator('.facts').textContent())!, /12\.0% of pixels changed by more than 0\.05/);

    const neighbours = view.page.getByRole('region', { name: 'Nearest neighbours' });
    assert.equal(await neighbours.getByTitle('x/<script>alert(1)</script>.png').count(), 1);
    assert.equal(await view.page.locator('#root script').count(), 0);

    // Choosing another target asks the host for a new counterfactual.
    await view.page.evaluate(() => {
      const select = document.querySelector('vscode-single-select') as HTMLElement & { value: string };
      select.value = '5';
      select.dispatchEvent(new Event('change'));
    });
    const posted = (await view.posted()) as { type: string; cluster?: number }[];
    assert.deepEqual(posted.at(-1), { type: 'explain.counterfactualTarget', cluster: 5, method: 'counterfactual' });
  } finally {
    await view.close();
  }
});

test('explain panel: an image the run never trained on is explained, and the panel says it was not part of training', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('explain');
  try {
    const note = view.page.getByRole('note', { name: 'Not part of training' });
    await view.send({ type: 'explain.loading', runDir: '/runs/r1', image: '/photos/<b>chelsea</b>.png', imageName: '<b>chelsea</b>.png' });
    await view.send({ type: 'explain.gradcam', result: await result('gradcam'), prototypes: 6, imageBase: `${view.origin}/images`, inRun: false, runName: 'fashion-<i>x</i>' });
    await note.waitFor();
    assert.match((await note.textContent())!, /^This image was not part of training in fashion-<i>x<\/i>: it was embedded just now and placed among the run's clusters and nearest neighbours\.$/);
    assert.equal(await view.page.locator('#root b, #root i').count(), 0, 'names are text');
    // The next image, one of the run, hides the note again.
    await view.send({ type: 'explain.loading', runDir: '/runs/r1', image: '/images/a.png', imageName: 'a.png' });
    await view.send({ type: 'explain.gradcam', result: await result('gradcam'), prototypes: 6, imageBase: `${view.origin}/images`, inRun: true, runName: 'r1' });
    assert.equal(await note.isVisible(), false);
  } finally {
    await view.close();
  }
});

test('explain panel: a region counterfactual shows its sentence, the donors with their regions outlined, a method picker, progress and cancel', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('explain');
  try {
    await view.send({ type: 'explain.loading', runDir: '/runs/r1', image: '/images/a.png', imageName: 'a.png' });
    await view.send({ type: 'explain.gradcam', result: await result('gradcam'), prototypes: 6, imageBase: `${view.origin}/images`, clusterSizes: [5, 0, 3, 2, 7, 1] });
    // An empty cluster has nothing to lend: it is shown, but not offered; nor is the image's own cluster.
    const options = view.page.locator('vscode-single-select[aria-label="Target cluster"] vscode-option');
    assert.equal(await options.nth(1).textContent(), 'cluster 1 (empty)');
    assert.deepEqual(await options.evaluateAll((all) => all.filter((option) => option.hasAttribute('disabled')).map((option) => option.getAttribute('value'))), ['1', '2']);
    assert.equal(await options.nth(4).textContent(), 'cluster 4 (7 images)');
    assert.equal(await options.nth(4).getAttribute('selected'), '', 'the most probable other cluster is the default');
    // While it searches: a progress bar with the engine's line, and a Cancel button that asks the host to stop.
    const progress = view.page.getByRole('progressbar', { name: 'Counterfactual progress' });
    await view.send({ type: 'explain.progress', fraction: 0.25, message: 'Region 2: target margin -0.40' });
    assert.equal(await progress.isVisible(), true);
    assert.equal(await progress.evaluate((bar) => (bar as HTMLProgressElement).value), 0.25);
    await view.page.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual(((await view.posted()) as { type: string }[]).at(-1), { type: 'explain.cancel' });
    await view.send({ type: 'explain.cancelled' });
    assert.equal(await progress.isVisible(), false);
    assert.match((await view.page.getByRole('status', { name: 'Counterfactual summary' }).textContent())!, /^Cancelled/);

    await view.send({ type: 'explain.counterfactual', result: await result('counterfactual') });
    assert.equal(
      await view.page.getByRole('status', { name: 'Counterfactual summary' }).textContent(),
      'Replacing 3 regions (6 % of the image) with parts of these 2 images from cluster 5 moves it from cluster 2 (61 %) to cluster 5 (48 %).',
    );
    const donors = view.page.getByRole('list', { name: 'Donor images' }).getByRole('listitem');
    assert.equal(await donors.count(), 2);
    // Donor 1 lent two regions, donor 2 one; each outline sits where its region is, in % of the image side.
    assert.equal(await donors.nth(0).locator('.region').count(), 2);
    assert.equal(await donors.nth(1).locator('.region').count(), 1);
    assert.deepEqual(await donors.nth(1).locator('.region').evaluate((box) => [(box as HTMLElement).style.left, (box as HTMLElement).style.top, (box as HTMLElement).style.width]), ['42.8571%', '28.5714%', '14.2857%']);
    assert.equal(await view.page.locator('.triptych .region').count(), 3, 'the counterfactual shows every region');
    assert.equal(await view.page.locator('#root img[onerror]').count(), 0, 'file names are text');
    assert.equal(await donors.nth(0).getAttribute('title'), 'b/<img src=x onerror=alert(1)>.png');

    // Picking another method asks for a new counterfactual toward the chosen cluster.
    await view.page.evaluate(() => {
      const select = document.querySelector('vscode-single-select[aria-label="Counterfactual method"]') as HTMLElement & { value: string };
      select.value = 'counterfactual-mask';
      select.dispatchEvent(new Event('change'));
    });
    const last = ((await view.posted()) as { type: string; method?: string }[]).at(-1)!;
    assert.equal(last.type, 'explain.counterfactualTarget');
    assert.equal(last.method, 'counterfactual-mask');
    assert.equal(await donors.count(), 0, 'the old donors go while the new search runs');
  } finally {
    await view.close();
  }
});
