import type { Parameter } from '../model/model';

/** A named array as checkpoints store it. */
export interface NamedArray {
  shape: number[];
  values: Float32Array;
}

/**
 * Adam with L2 weight decay (as torch.optim.Adam), whose rate can change every step. The moments live in plain
 * typed arrays and the update is one loop per weight, in place on the parameter store's arrays.
 */
export class Adam {
  private readonly moments = new Map<string, { first: Float32Array; second: Float32Array; shape: number[] }>();
  step = 0;

  constructor(
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-8,
  ) {}

  /** One step on each weight that has a gradient (by name). */
  apply(variables: Map<string, Parameter>, gradients: Map<string, Float32Array>, learningRate: number, weightDecay: number): void {
    this.step += 1;
    const correction1 = 1 - this.beta1 ** this.step;
    const correction2 = 1 - this.beta2 ** this.step;
    const stepSize = learningRate / correction1;
    for (const [name, g] of gradients) {
      const weights = variables.get(name);
      if (!weights) continue;
      const w = weights.values;
      const { first, second } = this.state(name, weights.shape);
      const { beta1, beta2, epsilon } = this;
      for (let i = 0; i < w.length; i++) {
        const gi = weightDecay > 0 ? g[i] + weightDecay * w[i] : g[i];
        first[i] = beta1 * first[i] + (1 - beta1) * gi;
        second[i] = beta2 * second[i] + (1 - beta2) * gi * gi;
        w[i] -= (stepSize * first[i]) / (Math.sqrt(second[i] / correction2) + epsilon);
      }
    }
  }

  private state(name: string, shape: number[]): { first: Float32Array; second: Float32Array } {
    let state = this.moments.get(name);
    if (!state) {
      const size = shape.reduce((a, b) => a * b, 1);
      state = { first: new Float32Array(size), second: new Float32Array(size), shape };
      this.moments.set(name, state);
    }
    return state;
  }

  /** Moments by name, for checkpoints. */
  exportState(): Map<string, NamedArray> {
    const out = new Map<string, NamedArray>();
    for (const [name, { first, second, shape }] of this.moments) {
      out.set(`adam.first.${name}`, { shape, values: first });
      out.set(`adam.second.${name}`, { shape, values: second });
    }
    return out;
  }

  importState(step: number, arrays: Map<string, NamedArray>): void {
    this.step = step;
    for (const [key, { shape, values }] of arrays) {
      const match = /^adam\.(first|second)\.(.+)$/.exec(key);
      if (!match) continue;
      const [, which, name] = match;
      const state = this.state(name, shape);
      (which === 'first' ? state.first : state.second).set(values);
    }
  }

  dispose(): void {
    this.moments.clear();
  }
}
