// Training dashboard: live loss curve, learning rate, throughput, ETA and prototype usage.
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import type { ProgressEvent, ToDashboard, TrainingPoint } from '../../src/protocol';
import { chartPalette, connect, element, themeColor } from '../shared/vscode';

interface DashboardState {
  runName: string;
  history: TrainingPoint[];
  usage: number[];
  summary?: string;
}

const root = document.getElementById('root')!;
const title = element('h2', { id: 'title' }, 'Training');
const stats = element('dl', { class: 'stats', 'aria-label': 'Training statistics' });
const progressBar = element('vscode-progress-bar' as 'div', { 'aria-label': 'Training progress' }) as unknown as HTMLElement & { value?: number; max: number };
const lossChart = element('div', { role: 'img', 'aria-label': 'Loss curve', class: 'chart' });
const usageChart = element('div', { role: 'img', 'aria-label': 'Prototype usage', class: 'chart small' });
const summary = element('p', { class: 'summary', role: 'status' });
root.append(title, progressBar, stats, element('h3', {}, 'Loss'), lossChart, element('h3', {}, 'Prototype usage (share of the last batch)'), usageChart, summary);

let state: DashboardState = { runName: '', history: [], usage: [] };
const statValues = new Map<string, HTMLElement>();
for (const label of ['Epoch', 'Step', 'Loss', 'Learning rate', 'Images/s', 'ETA']) {
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
    scales: { x: { time: false } },
    axes,
    series: [{ label: 'step' }, { label: 'loss', stroke: chartPalette()[0], width: 2 }],
    legend: { show: true },
  },
  [[], []],
  lossChart,
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
  title.textContent = state.runName ? `Training: ${state.runName}` : 'Training';
  lossPlot.setData([state.history.map((p) => p.step), state.history.map((p) => p.loss)]);
  usagePlot.setData([state.usage.map((_, i) => i), state.usage]);
  summary.textContent = state.summary ?? '';
}

function showProgress(event: ProgressEvent): void {
  const set = (label: string, text: string | undefined) => {
    if (text !== undefined) statValues.get(label)!.textContent = text;
  };
  set('Epoch', event.epoch !== undefined ? `${event.epoch} / ${event.epochs}` : undefined);
  set('Step', event.step !== undefined ? String(event.step) : undefined);
  set('Loss', event.loss?.toFixed(4));
  set('Learning rate', event.learningRate?.toExponential(2));
  set('Images/s', event.imagesPerSecond?.toFixed(1));
  set('ETA', event.etaSeconds !== undefined ? `${Math.round(event.etaSeconds)} s` : undefined);
  progressBar.max = 1;
  progressBar.value = event.fraction;
  if (event.phase !== 'train') summary.textContent = event.message ?? event.phase;
}

const vscode = connect<DashboardState, ToDashboard>((message) => {
  switch (message.type) {
    case 'dashboard.reset':
      state = { runName: message.runName, history: message.history, usage: [] };
      break;
    case 'dashboard.progress': {
      const event = message.event;
      showProgress(event);
      if (event.phase === 'train' && event.step !== undefined && event.loss !== undefined) {
        const last = state.history.at(-1);
        if (!last || last.step < event.step) state.history.push({ step: event.step, loss: event.loss, learningRate: event.learningRate ?? 0, imagesPerSecond: event.imagesPerSecond ?? 0 });
        if (event.prototypeUsage) state.usage = event.prototypeUsage;
      }
      break;
    }
    case 'dashboard.finished':
      state.summary = message.summary;
      break;
  }
  vscode.setState(state);
  render();
});

state = vscode.getState() ?? state;
render();
new ResizeObserver(() => {
  lossPlot.setSize(chartSize(lossChart, 240));
  usagePlot.setSize(chartSize(usageChart, 140));
}).observe(root);
vscode.postMessage({ type: 'webview.ready' });
