// Training dashboard: what the run is doing now (phase, elapsed time), whether it is working (health state and
// advice, prototype usage, assignment changes per epoch), live loss curve against ln K, learning rate, throughput,
// ETA and prototype usage; before any run, what training does and the buttons that start one.
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import { healthStateLabels, type ProgressEvent, type TrainingHealth } from '../../src/protocol/engine';
import type { FromWebview, ToDashboard, TrainingPoint, WebviewCommand } from '../../src/protocol/webview';
import { chartPalette, connect, element, themeColor } from '../shared/vscode';

interface DashboardState {
  runName: string;
  history: TrainingPoint[];
  usage: number[];
  /** The latest health reading, and one point per epoch end. */
  health?: TrainingHealth;
  epochs?: EpochPoint[];
  summary?: string;
  folder?: string;
  headline?: string;
  /** Wall-clock start and end of the run, for the elapsed time (ms since the epoch). */
  startedAtMs?: number;
  /** The step at which the queue joined, when it did. */
  queueStartStep?: number;
  finishedAtMs?: number;
  failed?: boolean;
}

interface EpochPoint {
  epoch: number;
  step: number;
  /** Share of images that changed cluster since the epoch before. */
  changedShare?: number;
  prototypesUsed: number;
}

const root = document.getElementById('root')!;
const title = element('h2', { id: 'title' }, 'Training');
const headline = element('p', { class: 'headline', 'aria-live': 'polite', 'aria-label': 'Phase' });
const header = element('header', {});
header.append(title, headline);

// Before any run: say what training does, and offer the two ways in.
const emptyState = element('section', { class: 'empty', 'aria-label': 'No training yet' });
emptyState.append(
  element('p', {}, 'Nothing is training. Train Model… asks for a folder of images (or uses the only one), trains SwAV on it in the background and draws the loss curve here; then the cluster map and the Clusters view show what it learned. The run is saved in the workspace\'s .cluster-lens folder.'),
  element('p', {}, 'Open Run… shows a run trained earlier.'),
);
const actions = element('div', { class: 'actions' });
actions.append(commandButton('Train Model…', 'clusterLens.train'), commandButton('Open Run…', 'clusterLens.openRun', true));
emptyState.append(actions);

const content = element('section', { class: 'content', 'aria-label': 'Training run' });
const progressBar = element('vscode-progress-bar' as 'div', { 'aria-label': 'Training progress' }) as unknown as HTMLElement & { value?: number; max: number; indeterminate: boolean };
const stats = element('dl', { class: 'stats', 'aria-label': 'Training statistics' });
// Whether training is working: the state in a word, what to do in a sentence, and the signals behind it.
const healthSection = element('section', { class: 'health', 'aria-label': 'Training health', hidden: '' });
const healthState = element('strong', { class: 'health-state', 'aria-live': 'polite' });
const healthAdvice = element('span', { class: 'health-advice' });
const healthDetail = element('p', { class: 'health-detail' });
const healthLine = element('p', {});
healthLine.append(healthState, ' ', healthAdvice);
healthSection.append(healthLine, healthDetail);
const changesChart = element('div', { role: 'img', 'aria-label': 'Assignment changes per epoch', class: 'chart small', 'data-points': '0' });
const lossChart = element('div', { role: 'img', 'aria-label': 'Loss curve', class: 'chart', 'data-points': '0' });
const usageChart = element('div', { role: 'img', 'aria-label': 'Prototype usage', class: 'chart small' });
const summary = element('p', { class: 'summary', role: 'status', 'aria-label': 'Summary' });
const after = element('div', { class: 'actions', hidden: '' });
after.append(commandButton('Show Cluster Map', 'clusterLens.showClusterMap'), commandButton('Train Model…', 'clusterLens.train', true));
content.append(
  progressBar,
  healthSection,
  stats,
  element('h3', {}, 'Loss (dashed: ln K, where a collapsed run sits) and learning rate'),
  lossChart,
  element('h3', {}, 'Images that changed cluster since the epoch before'),
  changesChart,
  element('h3', {}, 'Prototype usage (share of the last batch)'),
  usageChart,
  summary,
  after,
);
root.append(header, emptyState, content);

function commandButton(label: string, command: WebviewCommand, secondary = false): HTMLElement {
  const button = element('vscode-button' as 'button', secondary ? { secondary: '' } : {}, label);
  button.addEventListener('click', () => post({ type: 'webview.command', command }));
  return button;
}

let state: DashboardState = { runName: '', history: [], usage: [] };
const statValues = new Map<string, HTMLElement>();
for (const label of ['Elapsed', 'Epoch', 'Step', 'Loss', 'Learning rate', 'Images/s', 'ETA', 'Queue']) {
  const value = element('dd', {}, '–');
  stats.append(element('dt', {}, label), value);
  statValues.set(label, value);
}

function chartSize(container: HTMLElement, height: number) {
  return { width: Math.max(200, container.clientWidth || 600), height };
}

const axisStroke = themeColor('foreground', '#ccc');
const gridStroke = themeColor('editorWidget-border', '#444');
const axes = [
  { stroke: axisStroke, grid: { stroke: gridStroke, width: 1 }, ticks: { stroke: gridStroke } },
  { stroke: axisStroke, grid: { stroke: gridStroke, width: 1 }, ticks: { stroke: gridStroke } },
];
const lossPlot = new uPlot(
  {
    ...chartSize(lossChart, 240),
    scales: { x: { time: false }, rate: { auto: true } },
    axes: [...axes, { scale: 'rate', side: 1, stroke: axisStroke, grid: { show: false }, ticks: { stroke: gridStroke }, values: (_: uPlot, ticks: number[]) => ticks.map((t) => t.toExponential(1)) }],
    series: [
      { label: 'step' },
      { label: 'loss', stroke: chartPalette()[0], width: 2 },
      { label: 'ln K', stroke: chartPalette()[2], width: 1, dash: [6, 4], points: { show: false } },
      { label: 'learning rate', stroke: chartPalette()[3], width: 1, scale: 'rate', points: { show: false } },
    ],
    legend: { show: true },
  },
  [[], [], [], []],
  lossChart,
);
const changesPlot = new uPlot(
  {
    ...chartSize(changesChart, 120),
    scales: { x: { time: false }, y: { range: [0, 1] } },
    // Whole epochs on x.
    axes: [{ ...axes[0], incrs: [1, 2, 5, 10, 20, 50, 100] }, { ...axes[1], values: (_: uPlot, ticks: number[]) => ticks.map((t) => `${Math.round(t * 100)}%`) }],
    series: [{ label: 'epoch' }, { label: 'changed', stroke: chartPalette()[1], width: 2 }],
    legend: { show: false },
  },
  [[], []],
  changesChart,
);
const usagePlot = new uPlot(
  {
    ...chartSize(usageChart, 140),
    scales: { x: { time: false } },
    axes,
    series: [{ label: 'prototype' }, { label: 'share', stroke: chartPalette()[1], fill: chartPalette()[1], paths: uPlot.paths.bars!({ size: [0.8, 40] }), points: { show: false } }],
    legend: { show: false },
  },
  [[], []],
  usageChart,
);

function render(): void {
  const empty = !state.runName && state.history.length === 0;
  emptyState.hidden = !empty;
  content.hidden = empty;
  title.textContent = empty ? 'Training' : `Training: ${state.runName}`;
  headline.textContent = empty ? '' : (state.headline ?? (state.summary ? '' : 'Starting the engine…'));
  headline.hidden = !headline.textContent;
  const reference = state.health?.lossReference;
  lossPlot.setData([state.history.map((p) => p.step), state.history.map((p) => p.loss), state.history.map(() => reference ?? null), state.history.map((p) => p.learningRate)] as uPlot.AlignedData);
  lossChart.dataset.points = String(state.history.length);
  const changes = (state.epochs ?? []).filter((point) => point.changedShare !== undefined);
  changesPlot.setData([changes.map((point) => point.epoch), changes.map((point) => point.changedShare!)]);
  changesChart.dataset.points = String(changes.length);
  showHealth(state.health);
  usagePlot.setData([state.usage.map((_, i) => i), state.usage]);
  summary.textContent = state.summary ?? '';
  after.hidden = state.summary === undefined || state.failed === true;
  const running = !empty && state.summary === undefined;
  // Until the first step ends there is no fraction worth showing: the bar moves anyway, so nothing looks frozen.
  progressBar.indeterminate = running && state.history.length === 0;
  if (!running && state.summary !== undefined) {
    progressBar.max = 1;
    progressBar.value = 1;
  }
  showElapsed();
}

function showHealth(health: TrainingHealth | undefined): void {
  healthSection.hidden = health === undefined;
  if (!health) return;
  healthSection.dataset.state = health.state;
  healthState.textContent = `${healthStateLabels[health.state].charAt(0).toUpperCase()}${healthStateLabels[health.state].slice(1)}.`;
  healthAdvice.textContent = health.advice;
  const details = [
    `${health.prototypesUsed} of ${health.prototypes} prototypes used${health.epochsObserved ? ' in the last epoch' : ' so far'} (usage entropy ${health.usageEntropy.toFixed(2)}, even: ${health.lossReference.toFixed(2)})`,
    health.changedShare !== undefined ? `${(100 * health.changedShare).toFixed(1)}% of images changed cluster` : 'assignment changes from the second epoch',
    health.stableEpochs ? `stable for ${health.stableEpochs} epoch${health.stableEpochs === 1 ? '' : 's'}` : '',
    health.queueActive ? 'queue on' : '',
  ];
  healthDetail.textContent = details.filter(Boolean).join(' · ');
}

function showElapsed(): void {
  if (!state.startedAtMs) return;
  const seconds = ((state.finishedAtMs ?? Date.now()) - state.startedAtMs) / 1000;
  statValues.get('Elapsed')!.textContent = formatDuration(seconds);
}

function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const m = Math.floor(total / 60);
  return `${m}:${String(total % 60).padStart(2, '0')}`;
}

function showProgress(event: ProgressEvent, line: string | undefined): void {
  const set = (label: string, text: string | undefined) => {
    if (text !== undefined) statValues.get(label)!.textContent = text;
  };
  set('Epoch', event.epoch !== undefined ? `${event.epoch}${event.epochs ? ` / ${event.epochs}` : ''}` : undefined);
  set('Step', event.step !== undefined ? `${event.step}${event.totalSteps ? ` / ${event.totalSteps}` : ''}` : undefined);
  set('Loss', event.loss?.toFixed(4));
  set('Learning rate', event.learningRate?.toExponential(2));
  set('Images/s', event.imagesPerSecond?.toFixed(1));
  set('ETA', event.etaSeconds !== undefined ? formatDuration(event.etaSeconds) : undefined);
  set('Queue', event.health ? (event.health.queueActive ? `on since step ${state.queueStartStep ?? event.step}` : 'off') : undefined);
  progressBar.max = 1;
  progressBar.value = event.fraction;
  state.headline = line ?? event.message ?? event.phase;
}

const vscode = connect<DashboardState, ToDashboard>((message) => {
  switch (message.type) {
    case 'dashboard.reset':
      state = { runName: message.runName, history: message.history, usage: [], epochs: [], folder: message.folder, startedAtMs: Date.now() };
      for (const value of statValues.values()) value.textContent = '–';
      title.title = message.folder ?? '';
      break;
    case 'dashboard.progress': {
      const event = message.event;
      showProgress(event, message.headline);
      if (event.phase === 'train' && event.step !== undefined && event.loss !== undefined) {
        const last = state.history.at(-1);
        if (!last || last.step < event.step) state.history.push({ step: event.step, loss: event.loss, learningRate: event.learningRate ?? 0, imagesPerSecond: event.imagesPerSecond ?? 0 });
        if (event.prototypeUsage) state.usage = event.prototypeUsage;
      }
      if (event.health) {
        const wasQueue = state.health?.queueActive === true;
        state.health = event.health;
        const epochs = (state.epochs ??= []);
        // An epoch's end: the reading counts one more epoch than the last point.
        if (event.epoch !== undefined && event.step !== undefined && event.health.epochsObserved > (epochs.at(-1)?.epoch ?? 0)) {
          epochs.push({ epoch: event.health.epochsObserved, step: event.step, changedShare: event.health.changedShare, prototypesUsed: event.health.prototypesUsed });
        }
        if (!wasQueue && event.health.queueActive && event.step !== undefined) state.queueStartStep = event.step;
      }
      break;
    }
    case 'dashboard.finished':
      if (message.history?.length) {
        state.history = message.history;
        const last = message.history.at(-1)!;
        statValues.get('Step')!.textContent = String(last.step);
        statValues.get('Loss')!.textContent = last.loss.toFixed(4);
      }
      if (message.epochs !== undefined) statValues.get('Epoch')!.textContent = String(message.epochs);
      if (message.healthHistory?.length) {
        // A run opened later has no live readings: its metrics give the last state and the changes per epoch.
        state.health = message.healthHistory.at(-1)!.health;
        state.epochs = message.healthHistory.map(({ step, health }) => ({ epoch: health.epochsObserved, step, changedShare: health.changedShare, prototypesUsed: health.prototypesUsed }));
      }
      state.summary = message.summary;
      state.failed = message.failed;
      state.headline = message.failed ? 'Failed' : 'Done';
      state.finishedAtMs = Date.now();
      break;
  }
  vscode.setState(state);
  render();
});

function post(message: FromWebview): void {
  vscode.postMessage(message);
}

state = vscode.getState() ?? state;
render();
// The elapsed time ticks while a run is going, so the first minutes never look frozen.
setInterval(() => state.summary === undefined && showElapsed(), 1000);
new ResizeObserver(() => {
  lossPlot.setSize(chartSize(lossChart, 240));
  usagePlot.setSize(chartSize(usageChart, 140));
  changesPlot.setSize(chartSize(changesChart, 120));
}).observe(root);
post({ type: 'webview.ready' });
