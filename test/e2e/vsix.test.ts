// The product as users get it: this platform's VSIX installed into code-server with --install-extension, walked
// in the oldest VS Code that engines.vscode allows (code-server 4.100.3, Node 20) and in the newest code-server on
// the registry (4.139.1, Node 24). Typed as a person types: "Cluster Lens: Train" + Enter trains on the GPU
// (clusterLens.device: gpu, through the VSIX's own onnxruntime and Dawn; lavapipe in CI), the Clusters view
// answers an opened image's neighbours through the VSIX's usearch (the HNSW threshold lowered with
// CLUSTER_LENS_HNSW_MIN_IMAGES) and says so, and Explain cluster draws Grad-CAM.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { codeServerPath, latestCodeServerPath, linuxVsixPath, node24Folder, requirements, skipUnless } from '../requirements';
import { startVsCode, withOneRetry } from './codeServer';

const root = path.resolve(__dirname, '../..');
const sample = path.join(root, 'sample', 'fashion-mnist');
const needs = [requirements.chromium, requirements.vsix, requirements.vulkanAdapter];

for (const vscode of [
  { name: 'code-server 4.100.3 (VS Code 1.100, Node 20)', codeServer: codeServerPath, env: {}, skip: skipUnless(...needs, requirements.codeServer) },
  { name: 'code-server 4.139.1 (VS Code 1.139, Node 24)', codeServer: latestCodeServerPath, env: { PATH: `${node24Folder}${path.delimiter}${process.env.PATH}` }, skip: skipUnless(...needs, requirements.latestCodeServer) },
]) {
  test(`installed VSIX in ${vscode.name}: trains on the GPU, answers neighbours through HNSW, explains`, { skip: vscode.skip, timeout: 1_200_000 }, (t) =>
    withOneRetry(t, () => walkInstalledVsix(vscode.codeServer, vscode.env)),
  );
}

async function walkInstalledVsix(codeServer: string, env: NodeJS.ProcessEnv): Promise<void> {
  const vscode = await startVsCode({
    vsix: linuxVsixPath,
    codeServer,
    // 24 images: over the lowered HNSW threshold, so indexing saves the usearch index and queries use it.
    env: { ...env, CLUSTER_LENS_HNSW_MIN_IMAGES: '10' },
    files: (workspace) => {
      for (const label of ['1-trouser', '7-sneaker', '8-bag']) {
        mkdirSync(path.join(workspace, 'images', label), { recursive: true });
        for (const file of readdirSync(path.join(sample, label)).slice(0, 8)) cpSync(path.join(sample, label, file), path.join(workspace, 'images', label, file));
      }
    },
    // Small, so that lavapipe (a GPU emulated on the CPU) trains it in seconds.
    settings: { 'clusterLens.device': 'gpu', 'clusterLens.imageSizePx': 16, 'clusterLens.epochs': 2, 'clusterLens.minutes': 0, 'clusterLens.prototypes': 4 },
  });
  const { page } = vscode;
  try {
    const rows = await vscode.typeInPalette('Cluster Lens: Train');
    assert.match(rows[0], /^Cluster Lens: Train Model…/, `"Cluster Lens: Train" lists ${JSON.stringify(rows)}`);
    await page.keyboard.press('Enter');
    // Which folder: type its name and take its row, as a person does; the toast then names the device it ran on.
    await vscode.quickPickRows();
    await page.locator('.quick-input-widget input').click();
    await page.keyboard.type('images', { delay: 20 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: /images\s*24 images/ }).first().waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    const trained = page.locator('.notification-toast .notification-list-item-message', { hasText: /Trained on 24 images/ });
    await trained.first().waitFor({ timeout: 600_000 }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await vscode.describeScreen()}`);
    });
    const toast = (await trained.first().textContent()) ?? '';
    assert.match(toast, /Trained on 24 images on webgpu/, `trained on the GPU: ${toast}`);

    // The Clusters view, then an image of the run opened in the editor: its neighbours, through the HNSW index.
    await page.locator('.activitybar a[aria-label^="Cluster Lens"]').click();
    await (await vscode.webviewWith('Clusters')).locator('.cluster-heading').first().waitFor({ timeout: 60_000 });
    await page.locator('.activitybar a[aria-label^="Explorer"]').click();
    await vscode.expand('images');
    await vscode.expand('7-sneaker');
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: '.png' }).first().click();
    await page.locator('.activitybar a[aria-label^="Cluster Lens"]').click();
    // The view's page was put away while hidden and comes back in a new frame, and the old one can linger: read
    // the heading in every frame until one shows it.
    const deadline = Date.now() + 60_000;
    let heading = '';
    let figures = 0;
    while (!/HNSW index/.test(heading) && Date.now() < deadline) {
      for (const frame of page.frames()) {
        if (frame === page.mainFrame() || frame.isDetached()) continue;
        const text = await Promise.race([frame.locator('[aria-label="Nearest neighbours"] h3').first().textContent({ timeout: 1000 }).catch(() => null), page.waitForTimeout(2000).then(() => null)]);
        if (text && /HNSW index/.test(text)) {
          heading = text;
          figures = await frame.locator('[aria-label="Nearest neighbours"] figure').count().catch(() => 0);
          break;
        }
        heading ||= text ?? '';
      }
      if (!/HNSW index/.test(heading)) await page.waitForTimeout(500);
    }
    assert.match(heading, /^Nearest neighbours of \d+\.png \(cluster \d+, HNSW index\)$/, `the Clusters view's neighbours heading: "${heading}"\n${await vscode.describeScreen()}`);
    assert.ok(figures > 0, 'neighbours are shown');

    // Explain cluster from the explorer's context menu: Grad-CAM on the device the run uses.
    await page.locator('.activitybar a[aria-label^="Explorer"]').click();
    await vscode.contextMenu('.png', 'Explain cluster');
    const explain = await vscode.webviewWith('Grad-CAM heatmap', 300_000);
    await explain.locator('img[alt="Grad-CAM heatmap"][src^="data:image/png"]').waitFor({ timeout: 300_000 });
  } finally {
    await vscode.close();
  }
}
