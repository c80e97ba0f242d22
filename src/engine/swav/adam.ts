import * as tf from '@tensorflow/tfjs-core';

/** Adam with L2 weight decay (as torch.optim.Adam), whose rate can change every step. */
export class Adam {
  private readonly moments = new Map<string, { first: tf.Variable; second: tf.Variable }>();
  step = 0;

  constructor(
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-8,
  ) {}

  apply(variables: Map<string, tf.Variable>, gradients: tf.NamedTensorMap, learningRate: number, weightDecay: number): void {
    this.step += 1;
    const correction1 = 1 - this.beta1 ** this.step;
    const correction2 = 1 - this.beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, gradient] of Object.entries(gradients)) {
        const weights = variables.get(name);
        if (!weights) continue;
        const state = this.state(name, weights);
        const g = weightDecay > 0 ? tf.add(gradient, tf.mul(weights, weightDecay)) : gradient;
        state.first.assign(tf.add(tf.mul(state.first, this.beta1), tf.mul(g, 1 - this.beta1)));
        state.second.assign(tf.add(tf.mul(state.second, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const denominator = tf.add(tf.sqrt(tf.div(state.second, correction2)), this.epsilon);
        weights.assign(tf.sub(weights, tf.mul(tf.div(state.first, denominator), learningRate / correction1)));
      }
    });
  }

  private state(name: string, weights: tf.Variable): { first: tf.Variable; second: tf.Variable } {
    let state = this.moments.get(name);
    if (!state) {
      state = { first: zerosVariable(weights.shape), second: zerosVariable(weights.shape) };
      this.moments.set(name, state);
    }
    return state;
  }

  /** Moment tensors by name, for checkpoints. */
  exportState(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, { first, second }] of this.moments) {
      out.set(`adam.first.${name}`, first);
      out.set(`adam.second.${name}`, second);
    }
    return out;
  }

  importState(step: number, tensors: Map<string, { shape: number[]; values: Float32Array }>): void {
    this.step = step;
    for (const [key, { shape, values }] of tensors) {
      const match = /^adam\.(first|second)\.(.+)$/.exec(key);
      if (!match) continue;
      const [, which, name] = match;
      let state = this.moments.get(name);
      if (!state) {
        state = { first: zerosVariable(shape), second: zerosVariable(shape) };
        this.moments.set(name, state);
      }
      tf.tidy(() => (which === 'first' ? state!.first : state!.second).assign(tf.tensor(values, shape)));
    }
  }

  dispose(): void {
    for (const { first, second } of this.moments.values()) tf.dispose([first, second]);
    this.moments.clear();
  }
}

function zerosVariable(shape: number[]): tf.Variable {
  const zeros = tf.zeros(shape);
  const result = tf.variable(zeros, false);
  zeros.dispose();
  return result;
}
