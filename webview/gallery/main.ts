// The Clusters side panel: every cluster with its size and samples, its members on click
// (virtualised, so clusters of thousands stay smooth), and the neighbours of the image open in the editor.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import './gallery.css';
import type { DuplicatesResult, OutliersResult, RunOverview } from '../../src/protocol/engine';
import type { FromGallery, ToGallery } from '../../src/protocol/webview';
import { imageUrl } from '../shared/palette';
import { connect, element } from '../shared/vscode';

interface GalleryState {
  openCluster?: number;
}

const root = document.getElementById('root')!;
const status = element('p', { class: 'status', role: 'status' }, 'Loading…');
// Without a run the view is not a dead end: the two ways to get one are buttons right here.
const emptyActions = element('div', { class: 'actions', role: 'group', 'aria-label': 'Get a run', hidden: '' });
for (const [label, command, secondary] of [['Train Model…', 'clusterLens.train', false], ['Open Run…', 'clusterLens.openRun', true]] as const) {
  const button = element('vscode-button' as 'button', secondary ? { secondary: '' } : {}, label);
  button.addEventListener('click', () => post({ type: 'webview.command', command }));
  emptyActions.append(button);
}
const neighboursSection = element('section', { 'aria-label': 'Nearest neighbours', hidden: '' });
const clusterList = element('div', { role: 'list', 'aria-label': 'Clusters', class: 'clusters' });
const members = element('section', { class: 'members', hidden: '' });
// Dataset curation: near-duplicates and outliers, computed on request (they compare every image).
const curation = element('section', { class: 'curation', 'aria-label': 'Curation', hidden: '' });
const curationActions = element('div', { class: 'curation-actions', role: 'group', 'aria-label': 'Curation' });
const duplicatesButton = element('vscode-button' as 'button', { secondary: '' }, 'Find Near-Duplicates');
const outliersButton = element('vscode-button' as 'button', { secondary: '' }, 'Find Outliers');
duplicatesButton.addEventListener('click', () => {
  curationStatus.textContent = 'Looking for near-duplicates…';
  post({ type: 'gallery.findDuplicates' });
});
outliersButton.addEventListener('click', () => {
  curationStatus.textContent = 'Ranking outliers…';
  post({ type: 'gallery.findOutliers' });
});
curationActions.append(duplicatesButton, outliersButton);
const curationStatus = element('p', { class: 'status', role: 'status' });
const curationResults = element('div', { class: 'curation-results' });
curation.append(curationActions, curationStatus, curationResults);
root.append(status, emptyActions, neighboursSection, curation, clusterList, members);

let overview: RunOverview | undefined;
let imageBase = '';
let membersByCluster = new Map<number, number[]>();

const vscode = connect<GalleryState, ToGallery>((message) => {
  switch (message.type) {
    case 'gallery.data':
      overview = message.overview;
      imageBase = message.imageBase;
      membersByCluster = new Map();
      overview.assignments.forEach((cluster, i) => (membersByCluster.get(cluster) ?? membersByCluster.set(cluster, []).get(cluster)!).push(i));
      status.textContent = `${overview.paths.length.toLocaleString('en')} images, ${overview.clusters.length} clusters`;
      emptyActions.hidden = true;
      curation.hidden = false;
      renderClusters();
      if (vscode.getState()?.openCluster !== undefined) openCluster(vscode.getState()!.openCluster!);
      break;
    case 'gallery.neighbours':
      renderNeighbours(message);
      break;
    case 'gallery.duplicates':
      renderDuplicates(message.result);
      break;
    case 'gallery.outliers':
      renderOutliers(message.result);
      break;
    case 'gallery.curationFailed':
      curationStatus.textContent = message.message;
      break;
    case 'gallery.empty':
      overview = undefined;
      status.textContent = message.message;
      clusterList.replaceChildren();
      members.hidden = true;
      neighboursSection.hidden = true;
      curation.hidden = true;
      clusterList.hidden = false;
      emptyActions.hidden = false;
      break;
  }
});

function thumbnail(relativePath: string, caption?: string): HTMLElement {
  const figure = element('figure', { role: 'listitem', title: relativePath, tabindex: '0' });
  const image = element('img', { alt: relativePath, loading: 'lazy' });
  image.src = imageUrl(imageBase, relativePath);
  figure.append(image);
  if (caption) figure.append(element('figcaption', {}, caption));
  figure.addEventListener('click', () => post({ type: 'webview.openImage', path: relativePath }));
  figure.addEventListener('keydown', (event) => event.key === 'Enter' && post({ type: 'webview.explainImage', path: relativePath }));
  return figure;
}

function renderClusters(): void {
  if (!overview) return;
  clusterList.replaceChildren();
  for (const summary of overview.clusters) {
    const item = element('div', { role: 'listitem', class: 'cluster' });
    const heading = element('button', { class: 'cluster-heading', 'aria-label': `Cluster ${summary.cluster}, ${summary.size} images` });
    const label = summary.majorityLabel ? ` · ${summary.majorityLabel} ${Math.round(100 * (summary.purity ?? 0))}%` : '';
    heading.textContent = `Cluster ${summary.cluster} · ${summary.size}${label}`;
    heading.addEventListener('click', () => openCluster(summary.cluster));
    const samples = element('div', { class: 'samples', role: 'list' });
    for (const index of summary.samples.slice(0, 8)) samples.append(thumbnail(overview.paths[index]));
    item.append(heading, samples);
    clusterList.append(item);
  }
}

const rowHeightPx = 76;
const tilePx = 72;

/** Shows one cluster's members in a scroller that only builds the rows in view. */
function openCluster(cluster: number): void {
  if (!overview) return;
  vscode.setState({ openCluster: cluster });
  const indices = membersByCluster.get(cluster) ?? [];
  clusterList.hidden = true;
  members.hidden = false;
  members.replaceChildren();
  const back = element('vscode-button' as 'button', { secondary: '' }, 'All clusters');
  back.addEventListener('click', () => {
    vscode.setState({});
    members.hidden = true;
    clusterList.hidden = false;
  });
  const title = element('h3', {}, `Cluster ${cluster}: ${indices.length} images`);
  const scroller = element('div', { class: 'scroller', role: 'list', 'aria-label': `Members of cluster ${cluster}` });
  const spacer = element('div', { class: 'spacer' });
  const rows = element('div', { class: 'rows' });
  spacer.append(rows);
  scroller.append(spacer);
  members.append(back, title, scroller);
  const renderRows = () => {
    const perRow = Math.max(1, Math.floor(scroller.clientWidth / tilePx));
    const rowCount = Math.ceil(indices.length / perRow);
    spacer.style.height = `${rowCount * rowHeightPx}px`;
    const first = Math.floor(scroller.scrollTop / rowHeightPx);
    const last = Math.min(rowCount, first + Math.ceil(scroller.clientHeight / rowHeightPx) + 2);
    rows.style.transform = `translateY(${first * rowHeightPx}px)`;
    rows.replaceChildren(...indices.slice(first * perRow, last * perRow).map((i) => thumbnail(overview!.paths[i])));
  };
  scroller.addEventListener('scroll', renderRows);
  new ResizeObserver(renderRows).observe(scroller);
  renderRows();
}

function renderNeighbours(message: Extract<ToGallery, { type: 'gallery.neighbours' }>): void {
  neighboursSection.hidden = false;
  // Which search answered: the run's HNSW index (runs of 50,000+ images) is approximate, the scan exact.
  const search = message.search === 'approximate' ? ', HNSW index' : message.search === 'exact' ? ', exact search' : '';
  neighboursSection.replaceChildren(element('h3', {}, `Nearest neighbours of ${message.query.split('/').pop()} (cluster ${message.cluster}${search})`));
  const grid = element('div', { class: 'samples', role: 'list' });
  for (const neighbour of message.neighbours) grid.append(thumbnail(neighbour.path, neighbour.similarity.toFixed(3)));
  neighboursSection.append(grid);
}

const groupLimit = 100;

function renderDuplicates(result: DuplicatesResult): void {
  curationStatus.textContent = result.groups.length
    ? `${result.groups.length} groups of near-duplicates among ${result.images.toLocaleString('en')} images (features ≥ ${result.threshold}, confirmed by pixels)${result.groups.length > groupLimit ? `; showing ${groupLimit}` : ''}`
    : `No near-duplicates among ${result.images.toLocaleString('en')} images (features ≥ ${result.threshold}).`;
  curationResults.replaceChildren(element('h3', {}, 'Near-duplicates'));
  for (const group of result.groups.slice(0, groupLimit)) {
    const row = element('div', { class: 'samples duplicate-group', role: 'list', 'aria-label': `${group.paths.length} near-identical images` });
    group.paths.forEach((relativePath, i) => row.append(thumbnail(relativePath, i === 0 ? (group.exact ? 'identical' : `≥ ${group.minSimilarity.toFixed(3)}`) : undefined)));
    curationResults.append(row);
  }
}

function renderOutliers(result: OutliersResult): void {
  curationStatus.textContent = `The ${result.outliers.length} most isolated of ${result.images.toLocaleString('en')} images (1 − similarity to the ${result.k}th nearest)`;
  const grid = element('div', { class: 'samples', role: 'list', 'aria-label': 'Outliers' });
  for (const outlier of result.outliers) grid.append(thumbnail(outlier.path, outlier.score.toFixed(3)));
  curationResults.replaceChildren(element('h3', {}, 'Outliers'), grid);
}

function post(message: FromGallery): void {
  (vscode.postMessage as (m: FromGallery) => void)(message);
}

post({ type: 'webview.ready' });
