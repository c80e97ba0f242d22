// End to end in a real VS Code (code-server) driven through Chromium: train from the explorer, watch the
// loss curve, explain an image, open the cluster map and the Clusters view. Screenshots go to docs/screenshots
// when UPDATE_SCREENSHOTS=1 (or only some of them: UPDATE_SCREENSHOTS=explain,dashboard).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { skipWithoutVsCode, startVsCode, withOneRetry } from './codeServer';

const root = path.resolve(__dirname, '../..');
const sample = path.join(root, 'sample', 'fashion-mnist');
const screenshots = process.env.UPDATE_SCREENSHOTS ? path.join(root, 'docs', 'screenshots') : undefined;

test('e2e: train from the explorer, see the loss curve, explain an image, open the cluster map and the Clusters view', { skip: skipWithoutVsCode, timeout: 900_000 }, (t) => withOneRetry(t, trainExplainAndBrowse));

async function trainExplainAndBrowse(): Promise<void> {
  const vscode = await startVsCode({
    files: (workspace) => {
      for (const label of ['1-trouser', '7-sneaker', '8-bag']) {
        mkdirSync(path.join(workspace, 'images', label), { recursive: true });
        for (const file of readdirSync(path.join(sample, label)).slice(0, 40)) cpSync(path.join(sample, label, file), path.join(workspace, 'images', label, file));
      }
    },
    settings: { 'clusterLens.imageSizePx': 28, 'clusterLens.epochs': 8, 'clusterLens.minutes': 0, 'clusterLens.prototypes': 6 },
  });
  const { page } = vscode;
  const chosen = process.env.UPDATE_SCREENSHOTS?.split(',');
  const shoot = async (name: string) => screenshots && (chosen?.includes('1') || chosen?.includes(name)) && page.screenshot({ path: path.join(screenshots, `${name}.png`) });
  try {
    // Train: right-click the images folder, "Train Model…".
    await vscode.contextMenu('images', 'Train Model…');
    const dashboard = await vscode.webviewWith('Loss curve');
    await dashboard.locator('[aria-label="Loss curve"] canvas').waitFor();
    await dashboard.getByRole('status').filter({ hasText: /Trained on 120 images/ }).waitFor({ timeout: 300_000 });
    await shoot('dashboard');

    // Explain: expand images/7-sneaker and right-click an image.
    await vscode.expand('images');
    await vscode.expand('7-sneaker');
    await vscode.contextMenu('.png', 'Explain cluster');
    const explain = await vscode.webviewWith('Grad-CAM heatmap', 120_000);
    await explain.locator('img[alt="Grad-CAM heatmap"][src^="data:image/png"]').waitFor({ timeout: 120_000 });
    await explain.locator('img[alt="Counterfactual"][src^="data:image/png"]').waitFor({ timeout: 120_000 });
    await explain.locator('img[alt="Counterfactual difference"][src^="data:image/png"]').waitFor();
    // The default counterfactual borrows regions: its sentence, and the donors with their regions outlined.
    const sentence = explain.getByRole('status', { name: 'Counterfactual summary' });
    await sentence.filter({ hasText: /cluster \d+/ }).waitFor({ timeout: 120_000 });
    assert.match((await sentence.textContent())!, /^(Replacing|Changing) .* cluster \d+/);
    assert.ok((await explain.locator('[aria-label="Donor images"] figure').count()) > 0, 'donors are shown');
    assert.ok((await explain.locator('[aria-label="Nearest neighbours"] figure').count()) > 0, 'neighbours are shown');
    await explain.locator('[aria-label="Counterfactual section"]').evaluate((section) => section.scrollIntoView({ block: 'start' }));
    await shoot('explain');

    // The cluster map.
    await vscode.command('Cluster Lens: Show Cluster Map');
    const map = await vscode.webviewWith('Cluster map');
    await map.getByText('120 images in', { exact: false }).waitFor();
    await shoot('cluster-map');

    // The Clusters view in the activity bar.
    await page.locator('.activitybar a[aria-label^="Cluster Lens"]').click();
    const gallery = await vscode.webviewWith('Clusters');
    await gallery.locator('.cluster-heading').first().waitFor();
    assert.ok((await gallery.locator('.cluster-heading').count()) >= 2, 'several clusters are listed');
    await shoot('clusters-view');
  } finally {
    await vscode.close();
  }
}
