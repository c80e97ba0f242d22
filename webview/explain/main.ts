// Explain panel: the image's cluster and top prototypes, its nearest neighbours, a Grad-CAM overlay with an
// opacity slider, and a counterfactual toward a chosen cluster by a chosen method, shown as original /
// counterfactual / difference, the donor images with the borrowed regions outlined, and one sentence.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import './explain.css';
import type { CounterfactualRegion, CounterfactualSummary } from '../../src/protocol/options';
import type { ExplainResult } from '../../src/protocol/engine';
import type { CounterfactualMethod, ExplainPanelState, FromExplainPanel, ToExplainPanel } from '../../src/protocol/webview';
import { imageUrl } from '../shared/palette';
import { connect, element } from '../shared/vscode';


const root = document.getElementById('root')!;
const title = element('h2', { id: 'title' }, 'Explain cluster');
const busy = element('vscode-progress-ring' as 'div', { 'aria-label': 'Working', hidden: '' });
const errors = element('p', { class: 'error', role: 'alert', hidden: '' });
const outsideNote = element('p', { class: 'note', role: 'note', 'aria-label': 'Not part of training', hidden: '' });

const summary = element('section', { 'aria-label': 'Assignment' });
const prototypes = element('ol', { class: 'prototypes', 'aria-label': 'Top prototypes' });
summary.append(element('h3', {}, 'Top prototypes'), prototypes);

const camSection = element('section', { 'aria-label': 'Grad-CAM' });
const camStack = element('div', { class: 'stack' });
const camOriginal = element('img', { alt: 'The image as the model sees it' });
const camHeatmap = element('img', { alt: 'Grad-CAM heatmap', class: 'heatmap' });
camStack.append(camOriginal, camHeatmap);
const opacity = element('input', { type: 'range', min: '0', max: '1', step: '0.05', 'aria-label': 'Heatmap opacity' });
const opacityLabel = element('label', {}, 'Heatmap opacity ');
opacityLabel.append(opacity);
camSection.append(element('h3', {}, 'Grad-CAM (assigned prototype)'), camStack, opacityLabel);

const counterfactualSection = element('section', { 'aria-label': 'Counterfactual section' });
const targetSelect = element('vscode-single-select' as 'select', { 'aria-label': 'Target cluster' });
const methodSelect = element('vscode-single-select' as 'select', { 'aria-label': 'Counterfactual method' });
const methods: [CounterfactualMethod, string][] = [
  ['counterfactual', 'regions of the target cluster’s images'],
  ['counterfactual-mask', 'a mask blending in one of them'],
  ['counterfactual-pixel', 'free pixel edits (baseline)'],
];
methodSelect.append(...methods.map(([method, label], index) => element('vscode-option' as 'option', index === 0 ? { value: method, selected: '' } : { value: method }, label)));
const triptych = element('div', { class: 'triptych' });
const cfOriginal = element('img', { alt: 'Original' });
const cfImage = element('img', { alt: 'Counterfactual' });
const cfDiff = element('img', { alt: 'Counterfactual difference' });
const cfRegions = element('div', { class: 'regions', 'aria-hidden': 'true' });
for (const [image, caption] of [[cfOriginal, 'Original'], [cfImage, 'Counterfactual'], [cfDiff, 'Difference']] as const) {
  const figure = element('figure');
  const frame = element('div', { class: 'frame' });
  frame.append(image);
  if (image === cfImage) frame.append(cfRegions);
  figure.append(frame, element('figcaption', {}, caption));
  triptych.append(figure);
}
const cfSentence = element('p', { class: 'sentence', role: 'status', 'aria-label': 'Counterfactual summary' });
const cfFacts = element('p', { class: 'facts' });
const searchProgress = element('progress', { max: '1', value: '0', 'aria-label': 'Counterfactual progress', hidden: '' });
const cancelButton = element('vscode-button' as 'button', { secondary: '', hidden: '' }, 'Cancel');
const donorsHeading = element('h3', { hidden: '' }, 'Borrowed from');
const donorsFigure = element('div', { class: 'donors', role: 'list', 'aria-label': 'Donor images' });
const targetLabel = element('label', {}, 'Move toward cluster ');
targetLabel.append(targetSelect);
const methodLabel = element('label', {}, ' by ');
methodLabel.append(methodSelect);
const controls = element('div', { class: 'controls' });
controls.append(targetLabel, methodLabel, searchProgress, cancelButton);
counterfactualSection.append(element('h3', {}, 'Counterfactual'), controls, triptych, cfSentence, cfFacts, donorsHeading, donorsFigure);

const neighbours = element('section', { 'aria-label': 'Nearest neighbours' });
root.append(title, outsideNote, busy, errors, summary, camSection, counterfactualSection, neighbours);

let state: ExplainPanelState = { opacity: 0.6 };
let imageBase = '';

const vscode = connect<ExplainPanelState, ToExplainPanel>((message) => {
  switch (message.type) {
    case 'explain.loading':
      // Kept so that after a reload the host can explain the same image again (see ExplainPanel.revive).
      state = { ...state, runDir: message.runDir, image: message.image };
      vscode.setState(state);
      title.textContent = `Explain cluster: ${message.imageName}`;
      busy.hidden = false;
      errors.hidden = true;
      outsideNote.hidden = true;
      for (const image of [camOriginal, camHeatmap, cfOriginal, cfImage, cfDiff]) image.removeAttribute('src');
      clearCounterfactual();
      searching('Searching for a counterfactual…');
      break;
    case 'explain.gradcam':
      imageBase = message.imageBase;
      showGradCam(message.result, message.prototypes, message.clusterSizes);
      outsideNote.hidden = message.inRun !== false;
      outsideNote.textContent =
        message.inRun === false
          ? `This image was not part of training${message.runName ? ` in ${message.runName}` : ''}: it was embedded just now and placed among the run's clusters and nearest neighbours.`
          : '';
      break;
    case 'explain.counterfactual':
      busy.hidden = true;
      doneSearching();
      showCounterfactual(message.result);
      break;
    case 'explain.progress':
      searchProgress.hidden = false;
      searchProgress.value = message.fraction;
      if (message.message) cfFacts.textContent = message.message;
      break;
    case 'explain.cancelled':
      busy.hidden = true;
      doneSearching();
      cfSentence.textContent = 'Cancelled. Pick a cluster or a method to search again.';
      cfFacts.textContent = '';
      break;
    case 'explain.error':
      busy.hidden = true;
      errors.hidden = false;
      errors.textContent = `${message.stage === 'gradcam' ? 'Grad-CAM' : 'Counterfactual'}: ${message.message}`;
      if (message.stage === 'counterfactual') {
        doneSearching();
        cfSentence.textContent = '';
        cfFacts.textContent = '';
      }
      break;
  }
});

const png = (base64?: string) => (base64 ? `data:image/png;base64,${base64}` : '');

function showGradCam(result: ExplainResult, prototypeCount: number, clusterSizes?: number[]): void {
  camOriginal.src = png(result.pngs?.original);
  camHeatmap.src = png(result.pngs?.heatmap);
  prototypes.replaceChildren(
    ...result.topPrototypes.map((p) => element('li', {}, `cluster ${p.prototype}: ${(100 * p.probability).toFixed(1)}%${p.prototype === result.cluster ? ' (assigned)' : ''}`)),
  );
  // The default target is the most probable other cluster that has images, as the engine picks it.
  const empty = (cluster: number) => clusterSizes !== undefined && !(clusterSizes[cluster] > 0);
  const defaultTarget =
    result.topPrototypes.find((p) => p.prototype !== result.cluster && !empty(p.prototype))?.prototype ??
    result.topPrototypes.find((p) => p.prototype !== result.cluster)?.prototype ??
    (result.cluster + 1) % prototypeCount;
  targetSelect.replaceChildren(
    ...Array.from({ length: prototypeCount }, (_, cluster) => {
      const size = clusterSizes?.[cluster];
      const label = size === undefined ? `cluster ${cluster}` : size > 0 ? `cluster ${cluster} (${size} images)` : `cluster ${cluster} (empty)`;
      const option = element('vscode-option' as 'option', { value: String(cluster) }, label);
      // The image's own cluster, and empty ones (nothing to borrow from), are not targets.
      if (cluster === result.cluster || empty(cluster)) option.setAttribute('disabled', '');
      if (cluster === defaultTarget) option.setAttribute('selected', '');
      return option;
    }),
  );
  neighbours.replaceChildren(element('h3', {}, 'Nearest neighbours'));
  const grid = element('div', { class: 'grid', role: 'list' });
  for (const neighbour of result.neighbours) {
    const figure = element('figure', { role: 'listitem', title: neighbour.path, tabindex: '0' });
    const image = element('img', { alt: neighbour.path });
    image.src = imageUrl(imageBase, neighbour.path);
    figure.append(image, element('figcaption', {}, `${neighbour.similarity.toFixed(3)} · c${neighbour.cluster}`));
    figure.addEventListener('click', () => post({ type: 'webview.explainImage', path: neighbour.path }));
    grid.append(figure);
  }
  neighbours.append(grid);
}

const percent = (value: number) => `${Math.round(100 * value)} %`;

/** The edit in one sentence, as the issue asks: regions, share of the image, donors, and the move. */
function counterfactualSentence(facts: CounterfactualSummary, imageSizePx: number): string {
  const from = `from cluster ${facts.originalCluster} (${percent(facts.originalClusterProbability)})`;
  const landed = facts.valid
    ? `moves it ${from} to cluster ${facts.targetCluster} (${percent(facts.targetProbability)})`
    : `does not move it into cluster ${facts.targetCluster} (${percent(facts.targetProbability)}): it is assigned to cluster ${facts.newCluster} (${percent(facts.topPrototypes[0]?.probability ?? 0)})`;
  if (facts.regions && facts.donors) {
    const area = facts.regions.reduce((sum, region) => sum + region.widthPx * region.heightPx, 0) / (imageSizePx * imageSizePx);
    const count = facts.regions.length;
    const donors = facts.donors.length === 1 ? 'this image' : `these ${facts.donors.length} images`;
    const verb = facts.kind === 'mask' ? 'Blending in' : 'Replacing';
    return `${verb} ${count} region${count === 1 ? '' : 's'} (${percent(area)} of the image) with parts of ${donors} from cluster ${facts.targetCluster} ${landed}.`;
  }
  return `Changing ${percent(facts.changedPixelShare)} of the pixels ${landed}.`;
}

/** Outlines of `regions` over an image shown at any size: positions in % of the model's image side. */
function outlines(regions: CounterfactualRegion[], imageSizePx: number, donor?: number): HTMLElement[] {
  return regions
    .filter((region) => donor === undefined || region.donor === donor)
    .map((region) => {
      const box = element('div', { class: 'region' });
      box.style.left = `${(100 * region.xPx) / imageSizePx}%`;
      box.style.top = `${(100 * region.yPx) / imageSizePx}%`;
      box.style.width = `${(100 * region.widthPx) / imageSizePx}%`;
      box.style.height = `${(100 * region.heightPx) / imageSizePx}%`;
      return box;
    });
}

function showCounterfactual(result: ExplainResult): void {
  const facts = result.counterfactual;
  cfOriginal.src = png(result.pngs?.original);
  cfImage.src = png(result.pngs?.counterfactual);
  cfDiff.src = png(result.pngs?.diff);
  if (!facts) return;
  cfSentence.textContent = counterfactualSentence(facts, result.imageSizePx);
  cfFacts.textContent =
    `${(100 * facts.changedPixelShare).toFixed(1)}% of pixels changed by more than 0.05, L1 ${facts.l1Distance.toFixed(1)}, ` +
    `${facts.steps} ${facts.kind === 'region' ? 'round' : 'step'}${facts.steps === 1 ? '' : 's'}, ${(facts.durationMs / 1000).toFixed(1)} s.`;
  cfRegions.replaceChildren(...outlines(facts.regions ?? [], result.imageSizePx));
  donorsHeading.hidden = !facts.donors?.length;
  donorsFigure.replaceChildren(
    ...(facts.donors ?? []).map((donor, index) => {
      const figure = element('figure', { role: 'listitem', title: donor.path, tabindex: '0' });
      const frame = element('div', { class: 'frame' });
      const image = element('img', { alt: `Donor ${index + 1}: ${donor.path}` });
      image.src = donor.png ? png(donor.png) : imageUrl(imageBase, donor.path);
      frame.append(image, ...outlines(facts.regions ?? [], result.imageSizePx, index));
      figure.append(frame, element('figcaption', {}, `${donor.similarity.toFixed(3)} · c${donor.cluster}`));
      figure.addEventListener('click', () => post({ type: 'webview.explainImage', path: donor.path }));
      return figure;
    }),
  );
}

function clearCounterfactual(): void {
  cfSentence.textContent = '';
  cfFacts.textContent = '';
  cfRegions.replaceChildren();
  donorsHeading.hidden = true;
  donorsFigure.replaceChildren();
}

function searching(text: string): void {
  cfSentence.textContent = text;
  searchProgress.value = 0;
  searchProgress.hidden = false;
  cancelButton.hidden = false;
}

function doneSearching(): void {
  searchProgress.hidden = true;
  cancelButton.hidden = true;
}

function applyOpacity(): void {
  opacity.value = String(state.opacity);
  camHeatmap.style.opacity = String(state.opacity);
}

opacity.addEventListener('input', () => {
  state = { ...state, opacity: Number(opacity.value) };
  vscode.setState(state);
  applyOpacity();
});

function searchAgain(): void {
  const cluster = Number((targetSelect as unknown as { value: string }).value);
  const method = (methodSelect as unknown as { value: string }).value as CounterfactualMethod;
  if (!Number.isInteger(cluster) || !methods.some(([known]) => known === method)) return;
  busy.hidden = false;
  clearCounterfactual();
  searching(`Searching for a counterfactual toward cluster ${cluster}…`);
  post({ type: 'explain.counterfactualTarget', cluster, method });
}

targetSelect.addEventListener('change', searchAgain);
methodSelect.addEventListener('change', searchAgain);
cancelButton.addEventListener('click', () => post({ type: 'explain.cancel' }));

function post(message: FromExplainPanel): void {
  (vscode.postMessage as (m: FromExplainPanel) => void)(message);
}

state = vscode.getState() ?? state;
applyOpacity();
post({ type: 'webview.ready' });
