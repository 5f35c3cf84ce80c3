/**
 * Test helpers: the official parity data in ../shared/reference/official_tiny (tensors stored as
 * {shape, dtype, data}) and max-error measures. A minimal copy of @causalfusion/transformer's helpers
 * (test utilities are not shared across packages).
 */
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson, type ModelConfig } from '@causalfusion/config';

export const REFERENCE_DIR =
  process.env.CAUSALFUSION_REFERENCE ?? path.resolve(__dirname, '../../../../shared/reference/official_tiny');

export const WEIGHTS = path.join(REFERENCE_DIR, 'weights.safetensors');

export function readReference(name: string): any {
  const file = path.join(REFERENCE_DIR, name);
  if (!fs.existsSync(file)) throw new Error(`parity data ${file} is missing; set CAUSALFUSION_REFERENCE to the official_tiny folder`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function refConfig(json: any): ModelConfig {
  return configFromJson(json.model_config, 'reference model_config');
}

export const f32 = (t: { data: number[] }): Float32Array => Float32Array.from(t.data);

/** Max |a - b| over all elements (throws on a length mismatch; NaN counts as Infinity). */
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
const measured: Record<string, number> = {};
export function record(name: string, value: number): number {
  measured[name] = value;
  return value;
}
export function printMeasured(title: string): void {
  if (!process.env.PARITY_REPORT) return;
  const lines = Object.entries(measured).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`);
  console.log(`${title}\n${lines.join('\n')}`);
}
