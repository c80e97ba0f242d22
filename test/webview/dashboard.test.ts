import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Locator } from 'playwright-core';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';

after(closeBrowser);

/** Where the loss series is drawn on the chart's canvas: columns it covers, and its mean height in the outer fifths. */
async function lossPixels(chart: Locator): Promise<{ width: number; height: number; columns: number; leftY: number; rightY: number }> {
  return chart.evaluate((element) => {
    const marker = element.querySelector<HTMLElement>('.u-legend .u-series:nth-child(2) .u-marker')!;
    const [r, g, b] = getComputedStyle(marker).borderColor.match(/\d+/g)!.map(Number);
    const canvas = element.querySelector('canvas')!;
    const { width, height } = canvas;
    const pixels = canvas.getContext('2d')!.getImageData(0, 0, width, height).data;
    const ys: number[][] = Array.from({ length: width }, () => []);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = 4 * (y * width + x);
        if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 40) ys[x].push(y);
      }
    }
    // No named helpers in here: tsx would wrap them in a function the page does not have.
    const drawn: { x: number; y: number }[] = [];
    ys.forEach((column, x) => column.length > 0 && drawn.push({ x, y: column.reduce((sum, y) => sum + y, 0) / column.length }));
    const first = drawn[0]?.x ?? 0;
    const last = drawn.at(-1)?.x ?? 0;
    const left = drawn.filter((column) => column.x <= first + (last - first) / 5);
    const right = drawn.filter((column) => column.x >= last - (last - first) / 5);
    return {
      width,
      height,
      columns: drawn.length,
      leftY: left.reduce((sum, column) => sum + column.y, 0) / Math.max(1, left.length),
      rightY: right.reduce((sum, column) => sum + column.y, 0) / Math.max(1, right.length),
    };
  });
}

const progress = (step: number, loss: number) => ({
  type: 'dashboard.progress',
  event: { type: 'progress', id: 1, phase: 'train', fraction: step / 10, epoch: 1, epochs: 2, step, loss, learningRate: 0.001, imagesPerSecond: 42.5, etaSeconds: 12, prototypeUsage: [0.5, 0.25, 0.25] },
});

test('dashboard: says it is ready, draws the loss curve from progress, keeps state', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('dashboard');
  try {
    assert.deepEqual(await view.posted(), [{ type: 'webview.ready' }]);
    await view.send({ type: 'dashboard.reset', runName: 'demo', history: [{ step: 1, loss: 3.4, learningRate: 0.001, imagesPerSecond: 40 }] });
    for (let step = 2; step <= 5; step++) await view.send(progress(step, 3.4 - step * 0.1));
    const chart = view.page.getByRole('img', { name: 'Loss curve' });
    await chart.locator('canvas').waitFor();
    await view.page.getByText('2.9000').waitFor();
    assert.equal(await view.page.locator('#title').textContent(), 'Training: demo');
    const state = (await view.page.evaluate(() => (window as unknown as { __state: { history: { step: number }[]; usage: number[] } }).__state))!;
    assert.deepEqual(state.history.map((p) => p.step), [1, 2, 3, 4, 5]);
    assert.deepEqual(state.usage, [0.5, 0.25, 0.25]);
    // The curve itself, read off the canvas: pixels in the loss series' colour (its legend marker's) run across
    // the plot from step 1 to step 5, and sit higher at the left (loss 3.4) than at the right (loss 2.9).
    const curve = await lossPixels(chart);
    assert.ok(curve.columns > 0.6 * curve.width, `the loss line spans ${curve.columns} of ${curve.width} columns`);
    assert.ok(curve.leftY < curve.rightY - 0.3 * curve.height, `the line falls: mean y ${curve.leftY} at the left, ${curve.rightY} at the right`);
    // A sixth point that jumps back up lifts the right end of the line.
    await view.send(progress(6, 3.5));
    await view.page.getByText('3.5000').waitFor();
    const raised = await lossPixels(chart);
    assert.ok(raised.rightY < curve.rightY - 0.15 * curve.height, `the new point is drawn: right end at y ${raised.rightY}, was ${curve.rightY}`);
  } finally {
    await view.close();
  }
});

test('dashboard: restores its state after a reload', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('dashboard', { state: { runName: 'restored', history: [{ step: 7, loss: 1.5, learningRate: 0, imagesPerSecond: 0 }], usage: [], summary: 'Trained.' } });
  try {
    assert.equal(await view.page.locator('#title').textContent(), 'Training: restored');
    assert.equal(await view.page.getByRole('status').textContent(), 'Trained.');
    assert.equal(await view.page.getByRole('region', { name: 'No training yet' }).isVisible(), false);
  } finally {
    await view.close();
  }
});

test('dashboard: hostile run names are shown as text, and the CSP blocks inline script', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('dashboard');
  try {
    const hostile = '<img src=x onerror="window.__pwned=1">';
    await view.send({ type: 'dashboard.reset', runName: hostile, history: [] });
    assert.equal(await view.page.locator('#title').textContent(), `Training: ${hostile}`);
    assert.equal(await view.page.locator('#root img').count(), 0);
    const blocked = await view.page.evaluate(
      () =>
        new Promise<boolean>((resolve) => {
          document.addEventListener('securitypolicyviolation', () => resolve(true), { once: true });
          const script = document.createElement('script');
          script.textContent = 'window.__inline = 1';
          document.body.append(script);
          setTimeout(() => resolve(false), 500);
        }),
    );
    assert.equal(blocked, true, 'a securitypolicyviolation fired');
    assert.equal(await view.page.evaluate(() => (window as unknown as { __inline?: number; __pwned?: number }).__inline ?? (window as unknown as { __pwned?: number }).__pwned), undefined);
  } finally {
    await view.close();
  }
});

test('dashboard: with nothing trained it says what training does and offers Train Model… and Open Run…', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('dashboard');
  try {
    const empty = view.page.getByRole('region', { name: 'No training yet' });
    await empty.waitFor();
    assert.match((await empty.textContent())!, /asks for a folder of images.*trains SwAV.*loss curve/);
    assert.equal(await view.page.getByRole('region', { name: 'Training run' }).isVisible(), false, 'no empty charts and dashes');
    await empty.getByRole('button', { name: 'Train Model…' }).click();
    await empty.getByRole('button', { name: 'Open Run…' }).click();
    assert.deepEqual((await view.posted()).slice(1), [
      { type: 'webview.command', command: 'clusterLens.train' },
      { type: 'webview.command', command: 'clusterLens.openRun' },
    ]);
    // A run starts: the empty state gives way to the run, whose header says the phase from the first moment.
    await view.send({ type: 'dashboard.reset', runName: 'fashion-1', history: [], folder: '/ws/fashion' });
    // The page handles the message on its next task: wait for it (isVisible alone reads the page before it has).
    await empty.waitFor({ state: 'hidden', timeout: 5000 }).catch(() => undefined);
    assert.equal(await empty.isVisible(), false);
    const phase = view.page.getByLabel('Phase');
    assert.equal(await phase.textContent(), 'Starting the engine…');
    assert.equal(await view.page.locator('vscode-progress-bar').evaluate((bar) => (bar as HTMLElement & { indeterminate: boolean }).indeterminate), true, 'the bar moves before the first step');
    await view.send({ type: 'dashboard.progress', event: { type: 'progress', id: 1, phase: 'decode', fraction: 0.02, message: 'Decoding images 40/600' }, headline: 'Decoding images 40/600' });
    assert.equal(await phase.textContent(), 'Decoding images 40/600');
    await view.send({ ...progress(1, 3.3), headline: 'Training: epoch 1/2, step 1 of 10' });
    assert.equal(await phase.textContent(), 'Training: epoch 1/2, step 1 of 10');
    assert.equal(await view.page.getByRole('img', { name: 'Loss curve' }).getAttribute('data-points'), '1');
    assert.equal(await view.page.locator('vscode-progress-bar').evaluate((bar) => (bar as HTMLElement & { indeterminate: boolean }).indeterminate), false);
    assert.match((await view.page.getByRole('definition').first().textContent())!, /^\d+:\d\d$/, 'elapsed time is shown');
    // Progress is sampled; the finished run's own history fills in every step.
    const history = [1, 2, 3].map((step) => ({ step, loss: 3.3 - step / 10, learningRate: 0.001, imagesPerSecond: 40 }));
    await view.send({ type: 'dashboard.finished', summary: 'Trained on 600 images.', failed: false, history, epochs: 2 });
    assert.equal(await phase.textContent(), 'Done');
    assert.equal(await view.page.getByRole('img', { name: 'Loss curve' }).getAttribute('data-points'), '3');
    assert.equal(await view.page.locator('.stats dt:text-is("Step") + dd').textContent(), '3');
    await view.page.getByRole('button', { name: 'Show Cluster Map' }).click();
    assert.deepEqual((await view.posted()).at(-1), { type: 'webview.command', command: 'clusterLens.showClusterMap' });
  } finally {
    await view.close();
  }
});

test('dashboard: shows the health state with its advice, the signals behind it, and the changes per epoch', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('dashboard');
  try {
    await view.send({ type: 'dashboard.reset', runName: 'health', history: [] });
    const health = (state: string, epochsObserved: number, changedShare: number | undefined, advice: string) => ({
      state,
      advice,
      epochsObserved,
      prototypesUsed: state === 'collapsing' ? 1 : 28,
      prototypes: 30,
      usageEntropy: state === 'collapsing' ? 0 : 3.1,
      changedShare,
      stableEpochs: 0,
      lossReference: Math.log(30),
      queueActive: epochsObserved >= 2,
    });
    const event = (step: number, epoch: number, reading: ReturnType<typeof health>) => ({
      type: 'dashboard.progress',
      event: { type: 'progress', id: 1, phase: 'train', fraction: 0.5, epoch, step, loss: 3, learningRate: 0.002, health: reading },
    });
    const region = view.page.getByRole('region', { name: 'Training health' });
    await view.send(event(1, 1, health('learning', 0, undefined, 'Clusters are still moving.')));
    await region.getByText('Still learning.').waitFor();
    // Two epoch ends, then a collapse.
    await view.send(event(10, 1, health('learning', 1, undefined, 'Clusters are still moving.')));
    await view.send(event(20, 2, health('learning', 2, 0.4, 'Clusters are still moving.')));
    await view.send(event(21, 3, health('collapsing', 2, 0.4, 'Lower the learning rate.')));
    await region.getByText('Collapsing.').waitFor();
    assert.equal(await region.getAttribute('data-state'), 'collapsing');
    assert.match((await region.textContent())!, /Collapsing\. Lower the learning rate\./);
    assert.match((await region.textContent())!, /1 of 30 prototypes used in the last epoch .*40\.0% of images changed cluster · queue on/);
    assert.equal(await view.page.getByRole('img', { name: 'Assignment changes per epoch' }).getAttribute('data-points'), '1');
    assert.match((await view.page.getByRole('definition').filter({ hasText: 'since step' }).textContent())!, /on since step 20/);

    // A run opened later: no live readings, its metrics' readings give the last state and the changes per epoch.
    await view.send({ type: 'dashboard.reset', runName: 'earlier', history: [] });
    const history = [10, 20, 30].map((step) => ({ step, loss: 3, learningRate: 0.001, imagesPerSecond: 40 }));
    const healthHistory = [
      { step: 10, health: health('learning', 1, undefined, 'Clusters are still moving.') },
      { step: 20, health: health('learning', 2, 0.3, 'Clusters are still moving.') },
      { step: 30, health: health('converged', 3, 0.05, 'Train longer only for a small gain.') },
    ];
    await view.send({ type: 'dashboard.finished', summary: 'Finished earlier: 30 steps.', failed: false, history, healthHistory });
    await region.getByText('Converged.').waitFor();
    assert.equal(await region.getAttribute('data-state'), 'converged');
    assert.equal(await view.page.getByRole('img', { name: 'Assignment changes per epoch' }).getAttribute('data-points'), '2');
  } finally {
    await view.close();
  }
});
