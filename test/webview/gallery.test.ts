import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { RunOverview } from '../../src/protocol/engine';
import { closeBrowser, openWebview, skipWithoutChromium } from './harness';

after(closeBrowser);

function overview(): RunOverview {
  // Cluster 0 is big (5,000 members) to exercise the virtualised list; cluster 1 has a hostile file name.
  const count = 5010;
  const assignments = Array.from({ length: count }, (_, i) => (i < 5000 ? 0 : 1));
  const paths = assignments.map((c, i) => (i === 5005 ? 'odd/<b onmouseover=alert(1)>x</b>.png' : `c${c}/${i}.png`));
  return {
    runDir: '/run', imagesDir: '/images', paths, assignments, confidences: assignments.map(() => 0.8),
    labels: assignments, labelNames: ['shirts', 'shoes'], prototypes: 2,
    clusters: [
      { cluster: 0, size: 5000, samples: [0, 1, 2, 3], meanConfidence: 0.8, majorityLabel: 'shirts', purity: 1 },
      { cluster: 1, size: 10, samples: [5005, 5001], meanConfidence: 0.8, majorityLabel: 'shoes', purity: 1 },
    ],
  };
}

test('gallery: lists clusters with samples, opens a big cluster virtualised, shows neighbours, escapes names', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('gallery');
  try {
    await view.send({ type: 'gallery.data', overview: overview(), imageBase: `${view.origin}/images` });
    const clusters = view.page.getByRole('list', { name: 'Clusters' });
    await clusters.getByRole('button', { name: 'Cluster 0, 5000 images' }).waitFor();
    assert.equal(await clusters.getByRole('listitem').filter({ has: view.page.locator('.cluster-heading') }).count(), 2);
    const hostile = view.page.getByTitle('odd/<b onmouseover=alert(1)>x</b>.png');
    assert.equal(await hostile.count(), 1, 'the hostile name is an attribute value, not markup');
    assert.equal(await view.page.locator('b').count(), 0);

    await clusters.getByRole('button', { name: 'Cluster 0, 5000 images' }).click();
    const memberList = view.page.getByRole('list', { name: 'Members of cluster 0' });
    await memberList.waitFor();
    const rendered = await memberList.locator('figure').count();
    assert.ok(rendered > 0 && rendered < 400, `only the rows in view are built (${rendered} of 5000)`);
    await memberList.evaluate((element) => {
      element.scrollTop = element.scrollHeight / 2;
      element.dispatchEvent(new Event('scroll'));
    });
    const middle = await memberList.locator('figure').first().getAttribute('title');
    assert.ok(Number(middle!.split('/')[1].split('.')[0]) > 1000, `scrolling builds rows further down (first is ${middle})`);
    assert.deepEqual(await view.page.evaluate(() => (window as unknown as { __state: unknown }).__state), { openCluster: 0 });

    await memberList.locator('figure').first().click();
    const posted = (await view.posted()) as { type: string; path?: string }[];
    assert.deepEqual(posted.at(-1), { type: 'webview.openImage', path: middle });

    await view.send({ type: 'gallery.neighbours', query: 'c1/5001.png', cluster: 1, neighbours: [{ imageIndex: 5002, path: 'c1/5002.png', similarity: 0.97, cluster: 1 }], search: 'approximate' });
    const neighbours = view.page.getByRole('region', { name: 'Nearest neighbours' });
    await neighbours.getByText('0.970').waitFor();
    // The heading says which search answered.
    assert.equal(await neighbours.locator('h3').textContent(), 'Nearest neighbours of 5001.png (cluster 1, HNSW index)');
  } finally {
    await view.close();
  }
});

test('gallery: with no run the view says so and its buttons train a model or open a run', { skip: skipWithoutChromium }, async () => {
  const view = await openWebview('gallery');
  try {
    const actions = view.page.getByRole('group', { name: 'Get a run' });
    assert.equal(await actions.isVisible(), false, 'no buttons before the host says there is no run');
    await view.send({ type: 'gallery.empty', message: 'No run yet. Train a model on a folder of images.' });
    await actions.waitFor();
    assert.equal(await view.page.getByRole('status').textContent(), 'No run yet. Train a model on a folder of images.');
    await actions.getByRole('button', { name: 'Train Model…' }).click();
    await actions.getByRole('button', { name: 'Open Run…' }).click();
    assert.deepEqual((await view.posted()).slice(1), [
      { type: 'webview.command', command: 'clusterLens.train' },
      { type: 'webview.command', command: 'clusterLens.openRun' },
    ]);
    await view.send({ type: 'gallery.data', overview: overview(), imageBase: `${view.origin}/images` });
    await view.page.getByRole('button', { name: 'Cluster 0, 5000 images' }).waitFor();
    assert.equal(await actions.isVisible(), false);
  } finally {
    await view.close();
  }
});
