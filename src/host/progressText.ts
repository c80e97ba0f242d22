// What a training run's progress says in the status bar, the notification and the dashboard's header, from the
// first "decoding" to the last "indexing". No `vscode` here, so it is unit-tested in plain Node.
import { healthStateLabels, type ProgressEvent, type TrainResult, type WorkPhase } from '../protocol/engine';

const phaseNames: Record<WorkPhase, string> = {
  scan: 'Scanning the folder',
  decode: 'Decoding images',
  train: 'Training',
  index: 'Indexing',
  evaluate: 'Evaluating',
  explain: 'Explaining',
  layout: 'Laying out the map',
  curate: 'Comparing images',
};

export function phaseName(phase: WorkPhase): string {
  return phaseNames[phase] ?? phase;
}

export interface ProgressText {
  /** The status bar item's text (with its spinning icon). */
  status: string;
  /** The notification's message, beside its own progress bar. */
  notification: string;
  /** The dashboard header's line: the phase and what it is doing now. */
  header: string;
}

/** "1:05" for 65 s; "1:02:03" past an hour. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function describeProgress(event: ProgressEvent): ProgressText {
  const phase = phaseName(event.phase);
  if (event.phase === 'train' && event.loss !== undefined) {
    const epoch = event.epoch !== undefined ? `epoch ${event.epoch}${event.epochs ? `/${event.epochs}` : ''}` : `step ${event.step}`;
    const eta = event.etaSeconds !== undefined ? `, ${formatDuration(event.etaSeconds)} left` : '';
    const health = event.health;
    const state = health ? healthStateLabels[health.state] : undefined;
    const trouble = health?.state === 'collapsing' || health?.state === 'diverged';
    return {
      status: `${trouble ? '$(warning)' : '$(sync~spin)'} Cluster Lens: ${epoch} · loss ${event.loss.toFixed(3)}${state ? ` · ${state}` : ''}`,
      notification: `${epoch}, loss ${event.loss.toFixed(3)}${state ? `, ${state}` : ''}${eta}${trouble ? `. ${health!.advice}` : ''}`,
      header: `${phase}: ${epoch}, step ${event.step}${event.totalSteps ? ` of ${event.totalSteps}` : ''}${eta}${state ? ` · ${state}` : ''}`,
    };
  }
  // Before the first step and outside training the engine's own message says the most ("Decoding images 40/600").
  const detail = event.message?.trim() || phase;
  const short = detail.length > 60 ? `${detail.slice(0, 57)}…` : detail;
  return {
    status: `$(sync~spin) Cluster Lens: ${short.charAt(0).toLowerCase()}${short.slice(1)}`,
    notification: detail,
    header: firstWord(detail) === firstWord(phase) ? detail : `${phase}: ${detail}`,
  };
}

const firstWord = (text: string) => /^\p{L}+/u.exec(text)?.[0] ?? '';

/** Why a run stopped, in words: "converged after 12 epochs (assignments stable, loss flat)". */
export function stopReasonText(result: Pick<TrainResult, 'stopReason' | 'epochs' | 'health'>): string {
  const state = result.health ? healthStateLabels[result.health.state] : undefined;
  switch (result.stopReason) {
    case 'converged':
      return `converged after ${result.epochs} epochs (assignments stable, loss flat)`;
    case 'time':
      return `the time budget ran out${state ? ` while ${state === 'converged' ? 'converged' : `the run was ${state}`}` : ''}`;
    case 'epochs':
      return `the ${result.epochs} epochs asked for are done${state ? ` (${state})` : ''}`;
    case 'cancelled':
      return 'cancelled';
  }
}
