/**
 * Test helpers of the parity tests (@causalfusion/transformer, @causalfusion/onnx): the official parity data
 * in ../shared/reference/official_tiny (tensors stored as {shape, dtype, data}), and max-error measures.
 */
import * as fs from 'fs';
import * as path from 'path';

export const REFERENCE_DIR = process.env.CAUSALFUSION_REFERENCE ?? path.resolve(__dirname, '../../shared/reference/official_tiny');

export interface RefTensor {
  shape: number[];
  dtype: string;
  data: number[];
}

export function readReference(name: string): any {
  const file = path.join(REFERENCE_DIR, name);
  if (!fs.existsSync(file)) {
    throw new Error(`parity data ${file} is missing; set CAUSALFUSION_REFERENCE to the official_tiny folder`);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export const WEIGHTS = path.join(REFERENCE_DIR, 'weights.safetensors');

export function f32(t: RefTensor): Float32Array {
  return Float32Array.from(t.data);
}

export function i32(t: RefTensor | number[]): Int32Array {
  return Int32Array.from(Array.isArray(t) ? t : t.data);
}

/** Max |a - b| over all elements (throws on a length mismatch). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Errors measured by the parity tests, printed at the end of a file with PARITY_REPORT=1. */
export const measured: Record<string, number> = {};
export function record(name: string, value: number): number {
  measured[name] = value;
  return value;
}
export function printMeasured(title: string): void {
  const lines = Object.entries(measured).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`);
  if (process.env.PARITY_REPORT) console.log(`${title}\n${lines.join('\n')}`);
}
