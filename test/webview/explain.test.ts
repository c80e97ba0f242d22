import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import sharp from 'sharp';
import type { ExplainResult } from '../../src/protocol';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';

after(closeBrowser);

async function pngBase64(color: string): Promise<string> {
  return (await sharp({ create: { width: 4, height: 4, channels: 3, background: color } }).png().toBuffer()).toString('base64');
}

async function result(method: 'gradcam' | 'counterfactual'): Promise<ExplainResult> {
  const [original, heatmap, counterfactual, diff] = await Promise.all(['#888', '#f00', '#0f0', '#00f'].map(pngBase64));
  return {
    kind: 'explain', backend: 'wasm', method, runDir: '/run', image: '/images/a.png', imageSizePx: 28, cluster: 2,
    topPrototypes: [{ prototype: 2, probability: 0.7, score: 0.9 }, { prototype: 4, probability: 0.2, score: 0.5 }],
    neighbours: [{ imageIndex: 3, path: 'x/<script>alert(1)</script>.png', similarity: 0.91, cluster: 2 }],
    target: { kind: 'prototype', prototype: 2, assigned: true, score: 0.9, probability: 0.7 },
    heatmap: { widthPx: 2, heightPx: 2, values: [0, 1, 0.5, 0.2] },
    counterfactual: method === 'counterfactual' ? { kind: 'pixel', originalCluster: 2, originalClusterProbability: 0.7, targetCluster: 4, newCluster: 4, valid: true, originalTargetProbability: 0.2, targetProbability: 0.6, topPrototypes: [], l1Distance: 3, l2Distance: 0.75, meanAbsoluteChange: 0.01, changedPixelShare: 0.12, steps: 40, converged: true, durationMs: 1500 } : undefined,
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

    await view.send({ type: 'explain.counterfactual', result: await result('counterfactual') });
    for (const name of ['Counterfactual', 'Counterfactual difference']) {
      assert.match((await view.page.getByRole('img', { name, exact: true }).getAttribute('src'))!, /^data:image\/png;base64,/);
    }
    assert.match((await view.page.locator('.facts').textContent())!, /Now in cluster 4.*12\.0% of pixels/);

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
    assert.deepEqual(posted.at(-1), { type: 'explain.counterfactualTarget', cluster: 5 });
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
