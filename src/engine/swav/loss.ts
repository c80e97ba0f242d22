import * as tf from '@tensorflow/tfjs-core';
import { stopGradient } from '../util/tensorOps';
import { sinkhorn } from './sinkhorn';

export interface SwapLossOptions {
  temperature: number;
  epsilon: number;
  sinkhornIterations: number;
  /** Crops whose codes are predicted from the other crops (SwAV's `crops_for_assign`). */
  cropsForAssign: number[];
}

/**
 * SwAV's swapped prediction: for each assigned crop, codes q = Sinkhorn(scores) (no gradient),
 * and every other crop v predicts them: −mean Σ_k q log softmax(scores_v / T), averaged over v.
 * `cropScores[i]` is [B, K]; `queueScores[j]`, when given, is extra [Q, K] rows for crop j's Sinkhorn.
 */
export function swapLoss(cropScores: tf.Tensor2D[], options: SwapLossOptions, queueScores?: (tf.Tensor2D | undefined)[]): tf.Scalar {
  return tf.tidy(() => {
    const batch = cropScores[0].shape[0];
    let total = tf.scalar(0);
    options.cropsForAssign.forEach((assigned, position) => {
      const queued = queueScores?.[position];
      const scores = queued ? tf.concat([queued, cropScores[assigned]]) : cropScores[assigned];
      const allCodes = sinkhorn(stopGradient(scores), options.epsilon, options.sinkhornIterations);
      const codes = queued ? tf.slice(allCodes, [allCodes.shape[0] - batch, 0], [batch, -1]) : allCodes;
      let crossEntropy = tf.scalar(0);
      cropScores.forEach((scoresOfView, view) => {
        if (view === assigned) return;
        const logProbabilities = tf.logSoftmax(tf.div(scoresOfView, options.temperature));
        crossEntropy = tf.sub(crossEntropy, tf.mean(tf.sum(tf.mul(codes, logProbabilities), 1)));
      });
      total = tf.add(total, tf.div(crossEntropy, cropScores.length - 1));
    });
    return tf.div(total, options.cropsForAssign.length) as tf.Scalar;
  });
}
