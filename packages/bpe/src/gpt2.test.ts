/**
 * GPT-2 exactness: every case of ../shared/reference/bpe_gpt2.json (produced by openai/gpt-2's
 * encoder.py with Python's `regex` module) must give the same pre-tokens, ids and byte-level tokens.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { BYTE_TO_CHAR, BPETokenizer, loadGPT2, pretokenize } from './index';

const REF = path.resolve(__dirname, '../../../../shared/reference');
const ENCODER = path.join(REF, 'gpt2/encoder.json');
const MERGES = path.join(REF, 'gpt2/vocab.bpe');

interface Case {
  text: string;
  text_utf8_hex: string;
  pretokens: string[];
  ids: number[];
  tokens_byte_level: string[];
}
const reference = JSON.parse(fs.readFileSync(path.join(REF, 'bpe_gpt2.json'), 'utf8')) as {
  vocab: { vocab_bpe_sha256: string; encoder_canonical_sha256: string; num_merges: number; encoder_entries: number };
  pretokenize_regex: string;
  cases: Case[];
};

let gpt2: BPETokenizer;
beforeAll(() => {
  gpt2 = loadGPT2(ENCODER, MERGES);
});

describe('the vocabulary files are the ones the reference used', () => {
  it('vocab.bpe and encoder.json match the recorded hashes and sizes', () => {
    const bpe = fs.readFileSync(MERGES);
    expect(createHash('sha256').update(bpe).digest('hex')).toBe(reference.vocab.vocab_bpe_sha256);
    // The canonical form is Python's json.dumps(sort_keys=True, ensure_ascii=False, separators=(',',':')).
    const encoder = JSON.parse(fs.readFileSync(ENCODER, 'utf8')) as Record<string, number>;
    const keys = Object.keys(encoder).sort(pyCompare);
    const canonical = '{' + keys.map((k) => `${JSON.stringify(k)}:${encoder[k]}`).join(',') + '}';
    expect(createHash('sha256').update(canonical, 'utf8').digest('hex')).toBe(reference.vocab.encoder_canonical_sha256);
    expect(gpt2.merges.length).toBe(reference.vocab.num_merges);
    expect(gpt2.vocab.size).toBe(reference.vocab.encoder_entries);
  });
});

/** Python sorts str keys by code point; JS sort compares UTF-16 units, which differs above U+FFFF. */
function pyCompare(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

describe.each(reference.cases.map((c) => [JSON.stringify(c.text).slice(0, 60), c] as const))('case %s', (_name, c) => {
  it('has the reference text (UTF-8 hex check)', () => {
    expect(Buffer.from(c.text, 'utf8').toString('hex')).toBe(c.text_utf8_hex);
  });
  it('pre-tokenizes like Python regex', () => {
    expect(pretokenize(c.text)).toEqual(c.pretokens);
  });
  it('encodes to the reference ids and byte-level tokens', () => {
    const ids = gpt2.encode(c.text);
    expect(ids).toEqual(c.ids);
    expect(ids.map((id) => gpt2.idToToken(id))).toEqual(c.tokens_byte_level);
  });
  it('decodes back to the text', () => {
    expect(gpt2.decode(c.ids)).toBe(c.text);
  });
});

describe('where JavaScript regex and Python regex disagree', () => {
  const jsRegex = new RegExp(reference.pretokenize_regex, 'gu');
  it('the reference regex run by JavaScript splits U+0085 / U+FEFF cases differently, we do not', () => {
    const disputed = reference.cases.filter((c) => /[\u0085\ufeff]/.test(c.text));
    expect(disputed.length).toBeGreaterThanOrEqual(3);
    let jsWrong = 0;
    for (const c of disputed) {
      if (JSON.stringify(c.text.match(jsRegex) ?? []) !== JSON.stringify(c.pretokens)) jsWrong++;
      expect(pretokenize(c.text)).toEqual(c.pretokens);
    }
    // The reference says node's /gu regex gets (at least) its last three cases wrong.
    expect(jsWrong).toBeGreaterThanOrEqual(3);
  });
});

describe('<|endoftext|>', () => {
  it('is ordinary text by default, exactly like encoder.py', () => {
    expect(gpt2.encode('<|endoftext|>')).toEqual([27, 91, 437, 1659, 5239, 91, 29]);
  });
  it('becomes id 50256 when allowed', () => {
    expect(gpt2.encode('a<|endoftext|>b', { allowedSpecial: 'all' })).toEqual([64, 50256, 65]);
    expect(gpt2.encode('a<|endoftext|>b', { allowedSpecial: ['<|endoftext|>'] })).toEqual([64, 50256, 65]);
    expect(gpt2.decode([64, 50256, 65])).toBe('a<|endoftext|>b');
    expect(gpt2.decode([64, 50256, 65], { skipSpecialTokens: true })).toBe('ab');
  });
});

describe('byte <-> unicode map', () => {
  it('is a bijection onto 256 characters, printable bytes map to themselves, space is Ġ', () => {
    expect(new Set(BYTE_TO_CHAR).size).toBe(256);
    expect(BYTE_TO_CHAR[0x41]).toBe('A');
    expect(BYTE_TO_CHAR[0x20]).toBe('\u0120');
    expect(BYTE_TO_CHAR[0x0a]).toBe('\u010a');
    expect(BYTE_TO_CHAR[0x00]).toBe('\u0100');
    expect(BYTE_TO_CHAR[0xad]).toBe('\u0143');
  });
});

describe('bad files', () => {
  it('names the missing file', () => {
    expect(() => loadGPT2('/nonexistent/encoder.json', MERGES)).toThrow(/cannot read encoder.json "\/nonexistent\/encoder.json"/);
  });
  it('rejects merges whose result is not in the vocab', () => {
    const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'bpe-'));
    fs.copyFileSync(ENCODER, path.join(tmp, 'encoder.json'));
    fs.writeFileSync(path.join(tmp, 'vocab.bpe'), '#version: 0.2\nq z\n');
    expect(() => loadGPT2(path.join(tmp, 'encoder.json'), path.join(tmp, 'vocab.bpe'))).toThrow(/merge #0 .*"qz", which is not in the vocab/);
    fs.writeFileSync(path.join(tmp, 'vocab.bpe'), '#version: 0.2\nq z w\n');
    expect(() => loadGPT2(path.join(tmp, 'encoder.json'), path.join(tmp, 'vocab.bpe'))).toThrow(/merges line 2/);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
