/**
 * The one interface between the sampler and a backbone. Anything that can (1) start a batch from its
 * conditions, (2) take clean tokens into its context (a KV cache for a transformer) and (3) predict eps
 * for noised tokens can be sampled from: our tfjs transformer, an ONNX graph, an analytic model.
 *
 * Layouts are flat and row-major:
 * - `tokens`: [rows, n, tokenDim] float32,
 * - `positions`: [rows, n] int32, raster indices 0..numTokens-1 of those tokens in the full sample,
 * - `rows` = the number of conditions the session was started with.
 *
 * The sampler does classifier-free guidance itself: it starts the session with the conditions followed
 * by as many `null` (unconditional) conditions, and combines the two halves of each prediction. So a
 * backbone never needs to know about guidance; it only maps `null` to its "no condition" input (the
 * extra null class of CausalFusion's label embedder).
 */
export interface Denoiser<C = number> {
  /** L: tokens per sample. */
  readonly numTokens: number;
  /** Values per token (e.g. p*p*channels). */
  readonly tokenDim: number;
  /** Start a batch: one row per condition; `null` = unconditional. Cond tokens go into the context here. */
  start(conditions: ReadonlyArray<C | null>): DenoiserSession | Promise<DenoiserSession>;
}

export interface DenoiserSession {
  /** Add clean tokens (no timestep) at the given positions to every row's context. */
  pushClean(tokens: Float32Array, positions: Int32Array, count: number): void | Promise<void>;
  /**
   * Predict the noise in `noised` ([rows, count, tokenDim]) at `positions` ([rows, count]) for the
   * ORIGINAL diffusion timestep `timestep` (0..999), attending to everything pushed so far.
   * Returns [rows, count, tokenDim].
   */
  predictEps(noised: Float32Array, positions: Int32Array, count: number, timestep: number): Float32Array | Promise<Float32Array>;
  /** Free what the session holds (tensors, caches). */
  dispose?(): void;
}
