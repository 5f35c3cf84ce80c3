import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const CLI = path.resolve(__dirname, '../dist/cli.js');
// From apps/cli/src up to /work, then shared/reference.
const REF = path.resolve(__dirname, '../../../../shared/reference/cider.json');
const ref = JSON.parse(fs.readFileSync(REF, 'utf8')) as {
  corpus: { cider_d: number; bleu_1_4: number[] };
  images: { image_id: string; refs: string[]; candidate: string; cider_d: number; bleu_1_4: number[] }[];
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-eval-cider-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, value: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'eval', 'cider', ...args], { encoding: 'utf8' });
}

// cider.json as COCO files: numeric image ids, already tokenized captions.
const refs = write('refs.json', {
  annotations: ref.images.flatMap((im) => im.refs.map((caption) => ({ image_id: Number(im.image_id), caption }))),
});
const cands = write(
  'cands.json',
  ref.images.map((im) => ({ image_id: Number(im.image_id), caption: im.candidate })),
);

describe('causalfusion eval cider', () => {
  it('--json prints corpus and per-image CIDEr-D / BLEU-1..4 equal to pycocoevalcap (cider.json)', () => {
    const r = cli('--refs', refs, '--cands', cands, '--json', '--no-tokenize');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(['CIDEr', 'BLEU_1', 'BLEU_2', 'BLEU_3', 'BLEU_4', 'perImage']);
    expect(Math.abs(out.CIDEr - ref.corpus.cider_d)).toBeLessThan(1e-9 * ref.corpus.cider_d);
    ref.corpus.bleu_1_4.forEach((b, k) => expect(Math.abs(out[`BLEU_${k + 1}`] - b)).toBeLessThan(1e-9 * b));
    for (const im of ref.images) {
      const got = out.perImage[im.image_id];
      expect(Math.abs(got.CIDEr - im.cider_d)).toBeLessThanOrEqual(1e-9 * im.cider_d);
      im.bleu_1_4.forEach((b, k) => expect(Math.abs(got[`BLEU_${k + 1}`] - b)).toBeLessThanOrEqual(1e-9 * b));
    }
  });

  it('prints a readable table, PTB-tokenizing by default', () => {
    const r = cli('--refs', refs, '--cands', cands);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^50 images\nCIDEr\s+\d\.\d{6}\nBLEU_1\s+0\.\d{6}\nBLEU_2\s+0\.\d{6}\nBLEU_3\s+0\.\d{6}\nBLEU_4\s+0\.\d{6}\n$/);
  });

  it('notes reference images without a candidate on stderr and scores the rest', () => {
    const some = write(
      'some.json',
      ref.images.slice(0, 5).map((im) => ({ image_id: Number(im.image_id), caption: im.candidate })),
    );
    const r = cli('--refs', refs, '--cands', some, '--json');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^note: 45 of 50 images in .*refs\.json have no candidate/);
    expect(Object.keys(JSON.parse(r.stdout).perImage)).toEqual(['0', '1', '2', '3', '4']);
  });

  it.each<[string, unknown, RegExp]>([
    ['an empty candidate list', [], /^error: .*empty\.json is empty/],
    ['a candidate without references', [{ image_id: 4242, caption: 'a dog' }], /^error: candidate for image_id 4242 \(.*\) has no references in .*refs\.json/],
    [
      'a duplicated image id',
      [
        { image_id: 7, caption: 'a' },
        { image_id: 7, caption: 'b' },
      ],
      /^error: image_id 7 appears twice in .*\.json/,
    ],
    ['a results file that is not a list', { annotations: [] }, /^error: .* must be COCO results/],
    ['a file that is not JSON', '[{"image_id": 1,', /^error: --cands: .* is not valid JSON/],
  ])('rejects %s: one line, exit code 2', (what, content, message) => {
    const file = write(what === 'an empty candidate list' ? 'empty.json' : `bad-${what.replace(/\W+/g, '-')}.json`, content);
    const r = cli('--refs', refs, '--cands', file);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('names a missing file and a missing flag', () => {
    const missing = cli('--refs', path.join(dir, 'nope.json'), '--cands', cands);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^error: --refs: cannot read .*nope\.json: ENOENT/);
    const noFlag = cli('--refs', refs);
    expect(noFlag.status).toBe(2);
    expect(noFlag.stderr).toMatch(/required option '--cands <file>' not specified/);
  });
});
