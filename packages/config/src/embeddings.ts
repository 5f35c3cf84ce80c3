/**
 * The fixed (non-learned) embeddings of the official model, computed on the CPU in plain JS:
 * the 2-D sin-cos `pos_embed` init and the timestep sinusoid fed to the timestep MLP.
 */

/**
 * The official `get_2d_sincos_pos_embed(embedDim, gridSize)`: [gridSize^2, embedDim] in raster order.
 * Computed in float64 like numpy, then rounded to float32. Note the official quirk: its meshgrid puts
 * w first, so the first half ("emb_h") encodes the column w and the second half the row h. Each half is
 * [sin(pos * omega), cos(pos * omega)] with omega_i = 10000^(-i / (embedDim / 4)).
 */
export function get2dSincosPosEmbed(embedDim: number, gridSize: number): Float32Array {
  return sincosPosEmbed2d(embedDim, gridSize, gridSize);
}

/** {@link get2dSincosPosEmbed} of a gridH x gridW grid (raster order, rows of width gridW). */
export function sincosPosEmbed2d(embedDim: number, gridH: number, gridW: number): Float32Array {
  if (embedDim % 4 !== 0) throw new Error(`2-D sin-cos pos_embed needs a width divisible by 4, got ${embedDim}`);
  const quarter = embedDim / 4;
  const out = new Float32Array(gridH * gridW * embedDim);
  for (let h = 0; h < gridH; h++) {
    for (let w = 0; w < gridW; w++) {
      const row = (h * gridW + w) * embedDim;
      const coords = [w, h]; // first half: w, second half: h (the official meshgrid order)
      for (let half = 0; half < 2; half++) {
        for (let i = 0; i < quarter; i++) {
          const omega = 1 / 10000 ** (i / quarter);
          const arg = coords[half] * omega;
          out[row + half * 2 * quarter + i] = Math.sin(arg);
          out[row + half * 2 * quarter + quarter + i] = Math.cos(arg);
        }
      }
    }
  }
  return out;
}

/**
 * The official `TimestepEmbedder.timestep_embedding(t, dim)`: [N, dim] = [cos(t f), sin(t f)] with
 * f_i = exp(-ln(10000) i / (dim/2)). Each operation is rounded to float32 in the order torch evaluates
 * it, so only torch's own (not correctly rounded) float32 exp/cos/sin separate us from it (~1e-5 at t≈900).
 */
export function timestepSinusoid(t: ArrayLike<number>, dim = 256, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const freqs = timestepFrequencies(dim, maxPeriod);
  const f = Math.fround;
  const out = new Float32Array(t.length * dim);
  for (let n = 0; n < t.length; n++) {
    const tn = f(t[n]);
    for (let i = 0; i < half; i++) {
      const arg = f(tn * freqs[i]);
      out[n * dim + i] = Math.cos(arg);
      out[n * dim + half + i] = Math.sin(arg);
    }
    // an odd dim gets one zero column, as the official code
  }
  return out;
}

/**
 * The dim/2 frequencies of {@link timestepSinusoid} as torch rounds them: exp(fround(fround(-ln(maxPeriod) * i)
 * / (dim/2))) in float32. The ONNX graphs take this table as a constant.
 */
export function timestepFrequencies(dim = 256, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const scale = f(-Math.log(maxPeriod));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = f(Math.exp(f(f(scale * i) / half)));
  return freqs;
}
