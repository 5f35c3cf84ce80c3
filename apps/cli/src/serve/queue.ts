/**
 * One job at a time per model, with a bounded waiting line: a model's runtime (its onnxruntime sessions, its
 * tfjs weights) serves one sampler call at a time, and a request that would wait behind too many others is
 * refused up front (HTTP 429) instead of piling up memory and latency.
 */

/** The waiting line is full: the server answers 429. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

export class JobQueue {
  private running = false;
  private readonly waiting: (() => void)[] = [];

  /** `maxWaiting`: requests that may wait while one runs. */
  constructor(readonly maxWaiting: number) {}

  /** Jobs running or waiting. */
  get size(): number {
    return (this.running ? 1 : 0) + this.waiting.length;
  }

  /** Whether a new job would be refused. */
  get full(): boolean {
    return this.running && this.waiting.length >= this.maxWaiting;
  }

  /**
   * Run `job` when the jobs before it are done. `onWait` hears its place in the line (1 = next) if it has to
   * wait. An abort while it waits takes it out of the line (rejecting with the signal's reason); an abort
   * while it runs is the job's to notice (the sampler stops between diffusion steps).
   */
  async run<T>(signal: AbortSignal, job: () => Promise<T>, onWait?: (position: number) => void): Promise<T> {
    if (this.full)
      throw new QueueFullError(`busy: ${this.size} requests are running or waiting for this model (at most ${this.maxWaiting + 1}); try again shortly`);
    signal.throwIfAborted();
    if (this.running) {
      onWait?.(this.waiting.length + 1);
      await new Promise<void>((resolve, reject) => {
        const start = () => {
          signal.removeEventListener('abort', leave);
          resolve();
        };
        const leave = () => {
          this.waiting.splice(this.waiting.indexOf(start), 1);
          reject(signal.reason);
        };
        this.waiting.push(start);
        signal.addEventListener('abort', leave, { once: true });
      });
    }
    // running stays true across a hand-over: the next job is started by the one that finishes
    this.running = true;
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running = false;
    }
  }
}
