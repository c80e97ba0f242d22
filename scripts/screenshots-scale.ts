// Screenshots for the README: the cluster map in its UMAP layout and the Clusters view's near-duplicates, rendered
// by the real webview bundles in headless Chromium (the harness of test/webview) from a run on the shipped sample
// with a few planted copies.
// Run (after `npm run build`): node --import tsx scripts/screenshots-scale.ts [--run <existing run dir>]

import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { silentContext } from '../src/engine/jobContext';
import { computeUmap, findDuplicates, writeMapPoints } from '../src/engine/index/curate';
import { runOverview } from '../src/engine/index/runQueries';
import { train } from '../src/engine/jobs/train';
import { closeBrowser, openWebview } from '../test/webview/harness';

const root = path.resolve(__dirname, '..');
/** VS Code's Dark Modern colours for the variables the panels read (the harness has no VS Code around it). */
const darkTheme = `document.body.classList.add('vscode-dark');
  for (const [name, value] of Object.entries({ 'editor-background': '#1f1f1f', foreground: '#cccccc', 'sideBar-background': '#181818',
    descriptionForeground: '#9d9d9d', 'dropdown-background': '#313131', 'dropdown-foreground': '#cccccc', 'dropdown-border': '#3c3c3c',
    'editorHoverWidget-background': '#202020', 'editorHoverWidget-foreground': '#cccccc', 'editorHoverWidget-border': '#454545',
    focusBorder: '#0078d4', 'font-family': 'system-ui, sans-serif', 'font-size': '13px', 'panel-border': '#2b2b2b' }))
    document.body.style.setProperty('--vscode-' + name, value);`;
const out = path.join(root, 'docs', 'screenshots');

async function makeRun(): Promise<string> {
  const base = path.join(os.tmpdir(), `cl-screens-${Date.now()}`);
  const imagesDir = path.join(base, 'images');
  cpSync(path.join(root, 'sample', 'fashion-mnist'), imagesDir, { recursive: true });
  mkdirSync(path.join(imagesDir, 'planted'));
  const first = (folder: string) => path.join(imagesDir, folder, readdirSync(path.join(imagesDir, folder)).sort()[0]);
  await sharp(first('0-tshirt-top')).resize(56, 56).png().toFile(path.join(imagesDir, 'planted', 'tshirt-resized.png'));
  await sharp(first('1-trouser')).jpeg({ quality: 85 }).toFile(path.join(imagesDir, 'planted', 'trouser-reencoded.jpg'));
  await sharp(first('7-sneaker')).flop().png().toFile(path.join(imagesDir, 'planted', 'sneaker-mirrored.png'));
  cpSync(first('9-ankle-boot'), path.join(imagesDir, 'planted', 'boot-copy.png'));
  const runDir = path.join(base, 'run');
  await train({ imagesDir, runDir, options: { imageSizePx: 28, width: 16, epochs: 8, minutes: 0, batchSize: 100, seed: 1 } }, silentContext());
  return runDir;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { run: { type: 'string' } } });
  const runDir = values.run && existsSync(values.run) ? values.run : await makeRun();
  await computeUmap(runDir, { seed: 0 }, silentContext());
  const points = await writeMapPoints(runDir);
  const overview = await runOverview(runDir);
  const duplicates = await findDuplicates(runDir, undefined, silentContext());

  const map = await openWebview('cluster-map', { imagesDir: points.imagesDir, files: { 'map-points.bin': readFileSync(points.path) }, viewport: { width: 1000, height: 760 } });
  try {
    await map.page.evaluate(darkTheme);
    await map.send({ type: 'map.points', pointsUrl: `${map.origin}/files/map-points.bin`, imageBase: `${map.origin}/images`, runName: path.basename(runDir), clusters: points.clusters, layout: 'umap' });
    await map.page.locator(`#root[data-ready="${points.images}"]`).waitFor();
    const box = (await map.page.getByRole('img', { name: 'Cluster map' }).boundingBox())!;
    const hover = await map.page.evaluate(() => (window as unknown as { clusterMap: { screenPosition(i: number): { x: number; y: number } } }).clusterMap.screenPosition(120));
    await map.page.mouse.move(box.x + hover.x, box.y + hover.y);
    await map.page.locator('.tooltip img').waitFor({ state: 'visible' });
    await map.page.waitForTimeout(300);
    await map.page.screenshot({ path: path.join(out, 'cluster-map-umap.png') });
  } finally {
    await map.close();
  }

  const gallery = await openWebview('gallery', { imagesDir: overview.imagesDir, viewport: { width: 420, height: 760 } });
  try {
    await gallery.page.evaluate(darkTheme);
    await gallery.send({ type: 'gallery.data', overview, imageBase: `${gallery.origin}/images` });
    await gallery.send({ type: 'gallery.duplicates', result: duplicates });
    await gallery.page.getByRole('heading', { name: 'Near-duplicates' }).waitFor();
    await gallery.page.waitForTimeout(500);
    await gallery.page.screenshot({ path: path.join(out, 'duplicates-view.png') });
  } finally {
    await gallery.close();
    await closeBrowser();
  }
  console.log(`Wrote ${path.join(out, 'cluster-map-umap.png')} and ${path.join(out, 'duplicates-view.png')} from ${runDir}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
