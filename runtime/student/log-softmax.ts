// Probabilities from logits, shared by both families' confidence and the encoder's decoding.

/** log(sum(exp(x))) over logits[offset, offset + n), shifted by the maximum so that exp cannot overflow. */
export function logSumExp(logits: Float32Array, offset: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[offset + i] > max) max = logits[offset + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i] - max);
  return max + Math.log(sum);
}

export function softmax(logits: Float32Array, offset: number, n: number): Float64Array {
  const norm = logSumExp(logits, offset, n);
  return Float64Array.from({ length: n }, (_, i) => Math.exp(logits[offset + i] - norm));
}
