// Explain panel: the image's cluster and top prototypes, its nearest neighbours, a Grad-CAM overlay with an
// opacity slider, and a counterfactual toward a chosen cluster shown as original / counterfactual / difference.
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import './explain.css';
import type { ExplainPanelState, ExplainResult, FromExplainPanel, ToExplainPanel } from '../../src/protocol';
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
const triptych = element('div', { class: 'triptych' });
const cfOriginal = element('img', { alt: 'Original' });
const cfImage = element('img', { alt: 'Counterfactual' });
const cfDiff = element('img', { alt: 'Counterfactual difference' });
for (const [image, caption] of [[cfOriginal, 'Original'], [cfImage, 'Counterfactual'], [cfDiff, 'Difference']] as const) {
  const figure = element('figure');
  figure.append(image, element('figcaption', {}, caption));
  triptych.append(figure);
}
const cfFacts = element('p', { class: 'facts', role: 'status' });
const targetLabel = element('label', {}, 'Move toward cluster ');
targetLabel.append(targetSelect);
counterfactualSection.append(element('h3', {}, 'Counterfactual'), targetLabel, triptych, cfFacts);

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
      cfFacts.textContent = 'Searching for a counterfactual…';
      break;
    case 'explain.gradcam':
      imageBase = message.imageBase;
      showGradCam(message.result, message.prototypes);
      outsideNote.hidden = message.inRun !== false;
      outsideNote.textContent =
        message.inRun === false
          ? `This image was not part of training${message.runName ? ` in ${message.runName}` : ''}: it was embedded just now and placed among the run's clusters and nearest neighbours.`
          : '';
      break;
    case 'explain.counterfactual':
      busy.hidden = true;
      showCounterfactual(message.result);
      break;
    case 'explain.error':
      busy.hidden = true;
      errors.hidden = false;
      errors.textContent = `${message.stage === 'gradcam' ? 'Grad-CAM' : 'Counterfactual'}: ${message.message}`;
      if (message.stage === 'counterfactual') cfFacts.textContent = '';
      break;
  }
});

const png = (base64?: string) => (base64 ? `data:image/png;base64,${base64}` : '');

function showGradCam(result: ExplainResult, prototypeCount: number): void {
  camOriginal.src = png(result.pngs?.original);
  camHeatmap.src = png(result.pngs?.heatmap);
  prototypes.replaceChildren(
    ...result.topPrototypes.map((p) => element('li', {}, `cluster ${p.prototype}: ${(100 * p.probability).toFixed(1)}%${p.prototype === result.cluster ? ' (assigned)' : ''}`)),
  );
  // The default target is the most probable other cluster, as the engine picks it.
  const defaultTarget = result.topPrototypes.find((p) => p.prototype !== result.cluster)?.prototype ?? (result.cluster + 1) % prototypeCount;
  targetSelect.replaceChildren(
    ...Array.from({ length: prototypeCount }, (_, cluster) => {
      const option = element('vscode-option' as 'option', { value: String(cluster) }, `cluster ${cluster}`);
      if (cluster === result.cluster) option.setAttribute('disabled', '');
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

function showCounterfactual(result: ExplainResult): void {
  const facts = result.counterfactual;
  cfOriginal.src = png(result.pngs?.original);
  cfImage.src = png(result.pngs?.counterfactual);
  cfDiff.src = png(result.pngs?.diff);
  if (!facts) return;
  cfFacts.textContent =
    `${facts.valid ? 'Now in' : 'Still not in'} cluster ${facts.targetCluster}: assigned to cluster ${facts.newCluster} ` +
    `(p = ${(100 * facts.targetProbability).toFixed(1)}%, was ${(100 * facts.originalTargetProbability).toFixed(1)}%). ` +
    `Edit: L2 ${facts.l2Distance.toFixed(3)}, ${(100 * facts.changedPixelShare).toFixed(1)}% of pixels changed by more than 0.05, ` +
    `${facts.steps} steps, ${(facts.durationMs / 1000).toFixed(1)} s.`;
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

targetSelect.addEventListener('change', () => {
  const cluster = Number((targetSelect as unknown as { value: string }).value);
  if (!Number.isInteger(cluster)) return;
  busy.hidden = false;
  cfFacts.textContent = `Searching for a counterfactual toward cluster ${cluster}…`;
  post({ type: 'explain.counterfactualTarget', cluster });
});

function post(message: FromExplainPanel): void {
  (vscode.postMessage as (m: FromExplainPanel) => void)(message);
}

state = vscode.getState() ?? state;
applyOpacity();
post({ type: 'webview.ready' });
