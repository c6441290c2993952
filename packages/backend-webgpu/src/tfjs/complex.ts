import * as tf from "@tensorflow/tfjs-core";
import { valuesFor, type TensorSource } from "@savepoint/core";

/**
 * A complex64 tensor from checkpoint bytes. tfjs-webgpu cannot `write` complex64 data (it keeps
 * the real and imaginary parts as two tensors), so this builds it with `tf.complex`. Complex
 * tensors are rare in training state; they are read whole rather than streamed.
 */
export async function complexFromSource(source: TensorSource, key: string): Promise<tf.Tensor> {
  const interleaved = (await valuesFor(source, "complex64", key)) as Float32Array;
  const n = interleaved.length / 2;
  const re = new Float32Array(n);
  const im = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    re[i] = interleaved[2 * i]!;
    im[i] = interleaved[2 * i + 1]!;
  }
  return tf.tidy(() => tf.complex(tf.tensor(re, [...source.shape]), tf.tensor(im, [...source.shape])));
}
