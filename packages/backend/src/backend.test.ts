import { currentBackend, initBackend, tf } from './index';

/** Runs `f` while capturing what it writes to stderr. */
async function captureStderr<T>(f: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    return { value: await f(), lines };
  } finally {
    spy.mockRestore();
  }
}

describe('initBackend', () => {
  const savedEnv = process.env.CAUSALFUSION_BACKEND;
  beforeEach(() => delete process.env.CAUSALFUSION_BACKEND);
  afterAll(() => {
    if (savedEnv === undefined) delete process.env.CAUSALFUSION_BACKEND;
    else process.env.CAUSALFUSION_BACKEND = savedEnv;
  });

  it('picks wasm (SIMD) when tfjs-node is not installed, says so in one stderr line, once', async () => {
    expect(currentBackend()).toBeNull();
    const first = await captureStderr(() => initBackend());
    expect(first.value).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(first.lines).toEqual(['tfjs backend: wasm (SIMD; install @tensorflow/tfjs-node for the native backend)\n']);

    const again = await captureStderr(() => Promise.all([initBackend(), initBackend()]));
    expect(again.value).toEqual(['wasm', 'wasm']);
    expect(again.lines).toEqual([]);

    // It computes: a small product on the chosen backend.
    const product = tf.matMul(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([[5], [6]]),
    );
    expect(Array.from(await product.data())).toEqual([17, 39]);
  });

  it('honours an explicit backend, from the options or CAUSALFUSION_BACKEND', async () => {
    const cpu = await captureStderr(() => initBackend({ backend: 'cpu' }));
    expect(cpu.value).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(cpu.lines).toEqual(['tfjs backend: cpu (requested; pure JS, about 100x slower than wasm)\n']);

    process.env.CAUSALFUSION_BACKEND = 'wasm';
    expect(await initBackend({ quiet: true })).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(currentBackend()).toBe('wasm');
  });

  it('rejects an unknown backend name, listing the valid ones', async () => {
    await expect(initBackend({ backend: 'webgpu' as never })).rejects.toThrow(
      `Unknown tfjs backend "webgpu" (options.backend): use one of 'tensorflow', 'wasm', 'cpu', or leave it out`,
    );
    process.env.CAUSALFUSION_BACKEND = 'gpu';
    await expect(initBackend()).rejects.toThrow(/Unknown tfjs backend "gpu" \(CAUSALFUSION_BACKEND\)/);
    // A failed call leaves the working backend in place.
    delete process.env.CAUSALFUSION_BACKEND;
    expect(await initBackend()).toBe('wasm');
  });

  it("says how to get 'tensorflow' when it is requested but tfjs-node is not installed", async () => {
    await expect(initBackend({ backend: 'tensorflow' })).rejects.toThrow(
      "tfjs backend 'tensorflow' was requested but is not available: install @tensorflow/tfjs-node for the native backend.",
    );
  });
});
