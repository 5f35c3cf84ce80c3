/**
 * tokenizer.json interop: what we save loads back identically here and in Hugging Face's
 * `@huggingface/tokenizers` (Tokenizers.js), which must encode it id for id like we do.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { createRng, Rng } from '@causalfusion/rng';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BPETokenizer, fromTokenizerJson, loadGPT2, loadTokenizerJson, trainBPE } from './index';

const REF = path.resolve(__dirname, '../../../../shared/reference');
const reference = JSON.parse(fs.readFileSync(path.join(REF, 'bpe_gpt2.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
const SPECIALS = ['<|pad|>', '<|bos|>', '<|eos|>', '<|image_start|>', '<|image_end|>'];

// Tokenizers.js splits with JavaScript's \s (see its ByteLevel pre-tokenizer), so it can only agree
// with GPT-2 on text without the characters where JavaScript's and Python's \s differ.
const DISPUTED = /[\u0085\ufeff\u001c-\u001f]/;

const hfEncode = (hf: Tokenizer, text: string) => hf.encode(text, { add_special_tokens: false }).ids;

function englishish(rng: Rng, words: number): string {
  const vocab = [
    'the',
    'cat',
    'sat',
    'on',
    'a',
    'mat',
    "it's",
    'running',
    'jumped',
    'over',
    'lazy',
    'dogs',
    '42',
    '3.14',
    'café',
    '日本語',
    '😀',
    '--',
    '(x)',
    "they'll",
    'HELLO',
  ];
  const seps = [' ', ' ', ' ', '  ', '\n', '\n\n', '\t', ', ', '. '];
  let s = '';
  for (let i = 0; i < words; i++) s += vocab[rng.uniformInt(vocab.length)] + seps[rng.uniformInt(seps.length)];
  return s;
}

let trained: BPETokenizer;
let corpus: string[];
beforeAll(() => {
  const rng = createRng('corpus');
  corpus = Array.from({ length: 300 }, () => englishish(rng, 40));
  trained = trainBPE(corpus, { vocabSize: 600, specialTokens: SPECIALS });
});

describe('save / loadTokenizerJson', () => {
  it('round-trips a trained tokenizer through a file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-json-'));
    const file = path.join(dir, 'tokenizer.json');
    trained.save(file);
    const back = loadTokenizerJson(file);
    expect(back.vocabSize).toBe(trained.vocabSize);
    expect(back.merges).toEqual(trained.merges);
    const rng = createRng('json-roundtrip');
    for (let k = 0; k < 50; k++) {
      const s = '<|bos|>' + englishish(rng, 20) + '<|eos|>';
      expect(back.encode(s, { allowedSpecial: 'all' })).toEqual(trained.encode(s, { allowedSpecial: 'all' }));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads both spellings of merges ("a b" and ["a", "b"])', () => {
    const json = trained.toTokenizerJson() as { model: { merges: string[] } };
    const pairs = { ...json, model: { ...json.model, merges: json.model.merges.map((m) => m.split(' ')) } };
    expect(fromTokenizerJson(pairs).merges).toEqual(trained.merges);
  });
});

describe('Hugging Face Tokenizers.js loads what we save', () => {
  it('a trained tokenizer: identical ids on held-out text, special tokens included', () => {
    const hf = new Tokenizer(trained.toTokenizerJson(), {});
    const rng = createRng('hf-trained');
    for (let k = 0; k < 200; k++) {
      const s = englishish(rng, 30);
      expect([s, hfEncode(hf, s)]).toEqual([s, trained.encode(s)]);
    }
    const withSpecials = '<|bos|>a cat<|image_start|><|image_end|> sat<|eos|><|pad|><|pad|>';
    expect(hfEncode(hf, withSpecials)).toEqual(trained.encode(withSpecials, { allowedSpecial: 'all' }));
  });

  it('a trained tokenizer: identical ids on random unicode without the disputed whitespace', () => {
    const hf = new Tokenizer(trained.toTokenizerJson(), {});
    const rng = createRng('hf-unicode');
    for (let k = 0; k < 300; k++) {
      let s = '';
      for (let i = 0; i < 15; i++) s += String.fromCodePoint(rng.uniform() < 0.5 ? rng.uniformInt(0x800) : rng.uniformInt(0x20000));
      s = s.replace(/[\ud800-\udfff]/g, ' ').replace(new RegExp(DISPUTED, 'g'), '  ');
      expect([s, hfEncode(hf, s)]).toEqual([s, trained.encode(s)]);
    }
  });

  it('GPT-2 exported as tokenizer.json: Tokenizers.js matches encoder.py except on the disputed whitespace', () => {
    const gpt2 = loadGPT2(path.join(REF, 'gpt2/encoder.json'), path.join(REF, 'gpt2/vocab.bpe'));
    const hf = new Tokenizer(gpt2.toTokenizerJson(), {});
    const agreeing = reference.cases.filter((c) => !DISPUTED.test(c.text));
    expect(agreeing.length).toBeGreaterThan(30);
    // Hugging Face always matches added tokens, so compare with <|endoftext|> allowed as special.
    for (const c of agreeing) {
      expect([c.text, hfEncode(hf, c.text)]).toEqual([c.text, gpt2.encode(c.text, { allowedSpecial: 'all' })]);
      if (!c.text.includes('<|endoftext|>')) expect(hfEncode(hf, c.text)).toEqual(c.ids);
    }
    const disputed = reference.cases.filter((c) => DISPUTED.test(c.text));
    // Where JavaScript's \s differs, Tokenizers.js is wrong and we are right.
    expect(disputed.filter((c) => JSON.stringify(hfEncode(hf, c.text)) !== JSON.stringify(c.ids)).length).toBeGreaterThan(0);
    for (const c of disputed) expect(gpt2.encode(c.text)).toEqual(c.ids);
  });
});

describe('unsupported tokenizer.json files are refused, not mis-encoded', () => {
  const base = () => JSON.parse(JSON.stringify(trained.toTokenizerJson())) as Record<string, any>;
  it.each([
    ['a normalizer', (j: any) => (j.normalizer = { type: 'NFC' }), /has a normalizer/],
    ['a WordPiece model', (j: any) => (j.model.type = 'WordPiece'), /model.type is "WordPiece"/],
    ['a Metaspace pre-tokenizer', (j: any) => (j.pre_tokenizer = { type: 'Metaspace' }), /pre_tokenizer is "Metaspace"/],
    ['no pre-tokenizer', (j: any) => (j.pre_tokenizer = null), /no pre_tokenizer/],
    ['a template post-processor', (j: any) => (j.post_processor = { type: 'TemplateProcessing' }), /post_processor is "TemplateProcessing"/],
    ['BPE dropout', (j: any) => (j.model.dropout = 0.1), /dropout is 0.1/],
    ['a subword prefix', (j: any) => (j.model.continuing_subword_prefix = '##'), /continuing_subword_prefix/],
    ['a missing byte', (j: any) => delete j.model.vocab['\u0100'], /no token for byte 0x00/],
    ['a merge outside the vocab', (j: any) => j.model.merges.push('Ġ zz'), /which is not in the vocab/],
    ['lstrip added tokens', (j: any) => (j.added_tokens[0].lstrip = true), /lstrip\/rstrip\/single_word/],
  ])('%s', (_name, mutate, message) => {
    const j = base();
    mutate(j);
    expect(() => fromTokenizerJson(j)).toThrow(message);
  });
  it('a file that is not JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-bad-'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{nope');
    expect(() => loadTokenizerJson(path.join(dir, 'tokenizer.json'))).toThrow(/is not valid JSON/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('add_prefix_space and ignore_merges', () => {
  it('follow Tokenizers.js', () => {
    const j = trained.toTokenizerJson() as Record<string, any>;
    j.pre_tokenizer = { ...j.pre_tokenizer, add_prefix_space: true };
    j.model = { ...j.model, ignore_merges: true };
    const ours = fromTokenizerJson(j);
    const hf = new Tokenizer(j, {});
    const rng = createRng('prefix');
    for (let k = 0; k < 50; k++) {
      const s = englishish(rng, 10).trimStart();
      expect(hfEncode(hf, s)).toEqual(ours.encode(s));
    }
    expect(ours.encode('cat')).toEqual(trained.encode(' cat'));
  });
});
