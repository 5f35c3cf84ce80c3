import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { csvLine, readCsv, writeCsv, type LogRow } from './report';

const row = (step: number): LogRow => ({ step, loss: 0.5 / step, gradNorm: 1.25, lr: 1e-3, emaDecay: 0.999, stepsPerSec: 2.5, wallSeconds: 10 + step });

describe('log.csv', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'report-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is written whole atomically, then appended per step; a line cut short by a crash is dropped on resume', () => {
    const file = path.join(dir, 'run', 'log.csv');
    writeCsv(file, [row(1), row(2)]);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['log.csv']);
    const full = csvLine(row(3));
    fs.appendFileSync(file, full + '\n');
    const complete = fs.readFileSync(file, 'utf8');
    expect(readCsv(file).map((r) => r.step)).toEqual([1, 2, 3]);
    // every way the next append can be cut short
    const next = csvLine(row(4));
    for (let cut = 1; cut < next.length; cut++) {
      fs.writeFileSync(file, complete + next.slice(0, cut));
      const rows = readCsv(file);
      expect(rows.map((r) => r.step)).toEqual([1, 2, 3]);
      for (const r of rows) for (const v of Object.values(r)) expect(Number.isFinite(v)).toBe(true);
    }
    fs.writeFileSync(file, complete + next + '\n');
    expect(readCsv(file, 3).map((r) => r.step)).toEqual([1, 2, 3]);
    expect(readCsv(file).map((r) => r.step)).toEqual([1, 2, 3, 4]);
  });

  it('keeps a diverged step (NaN loss) as it was logged', () => {
    const file = path.join(dir, 'log.csv');
    writeCsv(file, [row(1), { ...row(2), loss: NaN, gradNorm: NaN }]);
    const rows = readCsv(file);
    expect(rows).toHaveLength(2);
    expect(rows[1].loss).toBeNaN();
  });
});
