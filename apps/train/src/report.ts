/**
 * What a run shows: a progress bar (plain lines when stdout is not a terminal), the CSV log, the loss
 * curve drawn into an RGBA buffer, and grids of samples, both written as PNG with sharp.
 */
import * as fs from 'fs';
import sharp from 'sharp';
import { writeFileAtomic } from '@causalfusion/safetensors';

export const CSV_HEADER = 'step,loss,grad_norm,lr,ema_decay,steps_per_s,wall_s';

export interface LogRow {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  emaDecay: number;
  stepsPerSec: number;
  wallSeconds: number;
}

export function csvLine(r: LogRow): string {
  return [
    r.step,
    r.loss.toPrecision(6),
    r.gradNorm.toPrecision(6),
    r.lr.toPrecision(6),
    r.emaDecay.toFixed(6),
    r.stepsPerSec.toFixed(3),
    r.wallSeconds.toFixed(1),
  ].join(',');
}

/**
 * Read back a log (to redraw the curve after --resume), keeping the rows up to `maxStep`. Training
 * appends one line per step, so a crash can at worst leave the last line cut short: lines without
 * all 7 fields, or not ending in wall_s's one decimal (as csvLine writes it), are dropped.
 */
export function readCsv(file: string, maxStep = Infinity): LogRow[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(','))
    .filter((fields) => fields.length === 7 && Number.isInteger(Number(fields[0])) && /^\d+\.\d$/.test(fields[6]))
    .map((fields) => {
      // loss and grad norm may be NaN (a diverged step is logged as it was)
      const [step, loss, gradNorm, lr, emaDecay, stepsPerSec, wallSeconds] = fields.map(Number);
      return { step, loss, gradNorm, lr, emaDecay, stepsPerSec, wallSeconds };
    })
    .filter((r) => r.step <= maxStep);
}

export function writeCsv(file: string, rows: LogRow[]): void {
  writeFileAtomic(file, [CSV_HEADER, ...rows.map(csvLine)].join('\n') + '\n');
}

/** One line per `every` steps off a terminal; an in-place bar on one. */
export class Progress {
  /** Whether the in-place bar is on the current line. */
  private open = false;

  constructor(
    readonly total: number,
    readonly tty: boolean,
    readonly write: (s: string) => void,
  ) {}

  update(step: number, loss: number, stepsPerSec: number): void {
    const eta = stepsPerSec > 0 ? (this.total - step) / stepsPerSec : 0;
    const stats = `step ${step}/${this.total}  loss ${loss.toFixed(4)}  ${stepsPerSec.toFixed(2)} steps/s  eta ${formatSeconds(eta)}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * step) / this.total);
      this.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${stats}\x1b[K`);
      this.open = true;
    } else this.write(`${stats}\n`);
  }

  /** End the in-place bar with a newline before other output. */
  break(): void {
    if (this.open) this.write('\n');
    this.open = false;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

/** An RGBA canvas with the two primitives a loss curve needs. */
class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 4).fill(255);
  }
  set(x: number, y: number, rgb: [number, number, number]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.data.set(rgb, i);
  }
  line(x0: number, y0: number, x1: number, y1: number, rgb: [number, number, number]): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, rgb);
  }
}

/**
 * The loss curve: raw losses as light gray dots, their running mean (EMA 0.98) as a blue line, on
 * axes from step 0 to the last step and from 0 to the 99th percentile of the loss; a horizontal grid
 * line every quarter of that range.
 */
export async function writeLossPng(file: string, rows: LogRow[], width = 640, height = 320): Promise<void> {
  const c = new Canvas(width, height);
  const m = 30;
  const finite = rows.filter((r) => Number.isFinite(r.loss));
  const sorted = finite.map((r) => r.loss).sort((a, b) => a - b);
  const top = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] || 1 : 1;
  const lastStep = finite.length ? Math.max(1, finite[finite.length - 1].step) : 1;
  const px = (step: number) => m + ((width - 2 * m) * step) / lastStep;
  const py = (loss: number) => height - m - ((height - 2 * m) * Math.min(loss, top)) / top;
  for (let q = 1; q <= 4; q++) c.line(m, py((top * q) / 4), width - m, py((top * q) / 4), [225, 225, 225]);
  c.line(m, height - m, width - m, height - m, [0, 0, 0]);
  c.line(m, m, m, height - m, [0, 0, 0]);
  for (const r of finite) c.set(px(r.step), py(r.loss), [170, 170, 170]);
  let smooth = NaN;
  let prev: [number, number] | null = null;
  for (const r of finite) {
    smooth = Number.isNaN(smooth) ? r.loss : 0.98 * smooth + 0.02 * r.loss;
    const p: [number, number] = [px(r.step), py(smooth)];
    if (prev) c.line(prev[0], prev[1], p[0], p[1], [30, 90, 200]);
    prev = p;
  }
  const png = await sharp(c.data, { raw: { width, height, channels: 4 } })
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}

/** Images NHWC uint8 laid out `cols` per row with a 2-pixel gap, as a PNG. */
export async function writeGridPng(file: string, images: Uint8Array, count: number, size: number, channels: 1 | 3, cols: number): Promise<void> {
  const gap = 2;
  const rows = Math.ceil(count / cols);
  const W = cols * size + (cols + 1) * gap;
  const H = rows * size + (rows + 1) * gap;
  const out = new Uint8Array(W * H * channels).fill(128);
  const per = size * size * channels;
  for (let i = 0; i < count; i++) {
    const ox = gap + (i % cols) * (size + gap);
    const oy = gap + Math.floor(i / cols) * (size + gap);
    for (let y = 0; y < size; y++) {
      const src = i * per + y * size * channels;
      out.set(images.subarray(src, src + size * channels), ((oy + y) * W + ox) * channels);
    }
  }
  const png = await sharp(out, { raw: { width: W, height: H, channels } })
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}
