/**
 * Parser fuzzing (issue #19): mutated tokenizer.json files and GPT-2 encoder.json + vocab.bpe pairs must
 * be a clear Error naming the file, or a tokenizer that works: any byte-level BPE that loads must give
 * decode(encode(s)) == s (lone surrogates as U+FFFD) on every probe string, with ids inside its vocab.
 * A tokenizer that loads but garbles text (two tokens sharing an id, ...) is a failure.
 * `pnpm fuzz` runs more cases (test-utils/fuzz.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { describeFailures, fuzz, fuzzTimeout, jsonText, mutateJson, mutateText, type FuzzRng } from '../../../test-utils/fuzz';
import { BPETokenizer, loadGPT2, loadTokenizerJson, toWellFormed, trainBPE } from './index';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const SPECIALS = ['<|pad|>', '<|bos|>', '<|eos|>'];
const PROBES = [
  'hello world',
  ' the cat sat on the mat',
  'café 日本語 😀👨‍👩‍👧',
  '\t\n  \r\n x',
  '<|bos|>a cat<|eos|>',
  'x\ud83dy \udc00',
  '',
  "it's 42 -- (x)",
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
];

function seedTokenizer(): BPETokenizer {
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', "it's", 'running', 'café', '日本語', '😀', '42', 'hello', 'world'];
  const texts = Array.from({ length: 60 }, (_, i) => Array.from({ length: 12 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(j(i)));
  return trainBPE(texts, { vocabSize: 330, specialTokens: SPECIALS });
  function j(i: number) {
    return [' ', '  ', '\n', ', '][i % 4];
  }
}

/** A problem with a tokenizer that loaded, or nothing. */
function probe(tok: BPETokenizer): string | undefined {
  for (const s of PROBES) {
    let ids: number[];
    try {
      ids = tok.encode(s);
    } catch (err) {
      return `encode(${JSON.stringify(s)}) threw ${(err as Error).message}`;
    }
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= tok.vocabSize);
    if (bad !== undefined) return `encode(${JSON.stringify(s)}) gave id ${bad} (vocab size ${tok.vocabSize})`;
    const want = toWellFormed(tok.addPrefixSpace && s !== '' && !s.startsWith(' ') ? ' ' + s : s);
    let got: string;
    try {
      got = tok.decode(ids);
    } catch (err) {
      return `decode(encode(${JSON.stringify(s)})) threw ${(err as Error).message}`;
    }
    if (got !== want) return `decode(encode(${JSON.stringify(s)})) = ${JSON.stringify(got)}`;
  }
  return undefined;
}

/** Line-level damage to vocab.bpe: lines dropped, swapped, doubled, split or joined; spaces and CRs. */
function mutateMerges(rng: FuzzRng, text: string): { text: string; what: string } {
  if (rng.chance(0.3)) return mutateText(rng, text);
  const lines = text.split('\n');
  const i = 1 + rng.int(Math.max(1, lines.length - 2));
  const op = rng.int(7);
  const ops: [string, () => void][] = [
    ['dropped', () => lines.splice(i, 1)],
    ['doubled', () => lines.splice(i, 0, lines[i])],
    ['swapped with the next', () => ([lines[i], lines[i + 1]] = [lines[i + 1] ?? '', lines[i]])],
    ['given a third token', () => (lines[i] += ' x')],
    ['given a double space', () => (lines[i] = lines[i].replace(' ', '  '))],
    ['joined to the next', () => lines.splice(i, 2, `${lines[i]}${lines[i + 1] ?? ''}`)],
    ['given a CR and trailing space', () => (lines[i] += rng.pick(['\r', ' ', '\r\r', '\t']))],
  ];
  ops[op][1]();
  return { text: lines.join('\n'), what: `vocab.bpe line ${i + 1} ${ops[op][0]}` };
}

describe('tokenizer file fuzzing', () => {
  const seed = seedTokenizer();
  const tokenizerJson = seed.toTokenizerJson();
  const encoder: Record<string, number> = {};
  for (const [t, id] of seed.vocab) encoder[t] = id;
  const vocabBpe = '#version: 0.2\n' + seed.merges.map(([a, b]) => `${a} ${b}`).join('\n') + '\n';

  it('the seeds load and round-trip', () => {
    const file = path.join(dir, 'seed.json');
    fs.writeFileSync(file, JSON.stringify(tokenizerJson));
    expect(probe(loadTokenizerJson(file))).toBeUndefined();
    fs.writeFileSync(path.join(dir, 'encoder.json'), JSON.stringify(encoder));
    fs.writeFileSync(path.join(dir, 'vocab.bpe'), vocabBpe);
    expect(probe(loadGPT2(path.join(dir, 'encoder.json'), path.join(dir, 'vocab.bpe')))).toBeUndefined();
  });

  it(
    'every mutated tokenizer.json is a clear error naming the file, or a tokenizer that round-trips',
    async () => {
      const file = path.join(dir, 'tokenizer.json');
      const focus = [['model', 'vocab'], ['model', 'merges'], ['added_tokens'], ['model'], ['pre_tokenizer'], ['decoder'], ['post_processor'], ['normalizer']];
      const report = await fuzz<string, BPETokenizer>({
        name: 'tokenizer.json',
        seed: 'tokenizer-json-1',
        cases: 600,
        generate(rng) {
          let what: string;
          let text: string;
          if (rng.chance(0.2)) {
            const m = mutateText(rng, JSON.stringify(tokenizerJson));
            ((text = m.text), (what = m.what));
          } else {
            // one to three structural changes
            let doc: unknown = tokenizerJson;
            const whats: string[] = [];
            for (let k = 1 + rng.int(3); k > 0; k--) {
              const m = mutateJson(rng, doc, focus);
              doc = m.value;
              whats.push(m.what);
            }
            ((text = jsonText(doc)), (what = whats.join('; ')));
          }
          fs.writeFileSync(file, text);
          return { input: file, what };
        },
        parse: (f) => loadTokenizerJson(f),
        checkError: (f, message) => (message.includes(f) ? undefined : 'does not name the file'),
        check: (_f, tok) => probe(tok),
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  it(
    'every mutated encoder.json / vocab.bpe pair is a clear error naming the files, or a tokenizer that round-trips',
    async () => {
      const enc = path.join(dir, 'encoder.json');
      const bpe = path.join(dir, 'vocab.bpe');
      const report = await fuzz<string, BPETokenizer>({
        name: 'GPT-2 encoder.json + vocab.bpe',
        seed: 'gpt2-files-1',
        cases: 600,
        generate(rng) {
          let encText = JSON.stringify(encoder);
          let bpeText = vocabBpe;
          let what: string;
          const which = rng.int(3);
          if (which === 0) {
            const m = rng.chance(0.8) ? mutateJson(rng, encoder) : mutateText(rng, encText);
            encText = 'value' in m ? jsonText(m.value) : m.text;
            what = `encoder.json: ${m.what}`;
          } else if (which === 1) {
            const m = mutateMerges(rng, bpeText);
            ((bpeText = m.text), (what = m.what));
          } else {
            const a = mutateJson(rng, encoder);
            const b = mutateMerges(rng, bpeText);
            ((encText = jsonText(a.value)), (bpeText = b.text), (what = `encoder.json: ${a.what}; ${b.what}`));
          }
          fs.writeFileSync(enc, encText);
          fs.writeFileSync(bpe, bpeText);
          return { input: what, what };
        },
        parse: () => loadGPT2(enc, bpe, { extraSpecialTokens: SPECIALS }),
        checkError: (_w, message) => (message.includes(enc) || message.includes(bpe) ? undefined : 'names neither file'),
        check: (_w, tok) => probe(tok),
      });
      expect(describeFailures(report)).toBe('');
    },
    fuzzTimeout(60_000),
  );

  // One regression case for each bug the fuzzer found (the inputs it failed on, reduced).
  describe('regressions', () => {
    const write = (name: string, text: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      return file;
    };
    it('two vocab entries with one id (was accepted: "Ġthe" decoded as the other entry)', () => {
      const json = structuredClone(tokenizerJson) as { model: { vocab: Record<string, number> } };
      json.model.vocab['x'] = json.model.vocab['y'];
      const file = write('dup.json', JSON.stringify(json));
      expect(() => loadTokenizerJson(file)).toThrow(
        `cannot load ${JSON.stringify(file)}: vocab entries "x" and "y" both have id ${json.model.vocab['y']}; every token needs its own id`,
      );
      const enc = write('dup-encoder.json', JSON.stringify({ ...encoder, Ġcat: encoder['Ġsat'] }));
      expect(() => loadGPT2(enc, write('dup.bpe', vocabBpe))).toThrow(
        /cannot load the GPT-2 tokenizer ".*dup-encoder.json" \+ ".*dup.bpe": vocab entries .* both have id/,
      );
    });
    it("a vocab entry that takes a special token's id (was accepted when the vocab also listed the special token)", () => {
      const json = structuredClone(tokenizerJson) as { model: { vocab: Record<string, number> } };
      const vocab: Record<string, number> = { x: json.model.vocab['<|bos|>'] };
      for (const [k, v] of Object.entries(json.model.vocab)) if (k !== 'x') vocab[k] = v;
      json.model.vocab = vocab;
      expect(() => loadTokenizerJson(write('special.json', JSON.stringify(json)))).toThrow(/vocab entries "x" and "<\|bos\|>" both have id/);
    });
    it('added_tokens that is not a list (was a TypeError "... .entries is not a function")', () => {
      const file = write('added.json', JSON.stringify({ ...tokenizerJson, added_tokens: 'Infinity' }));
      expect(() => loadTokenizerJson(file)).toThrow(`cannot load ${JSON.stringify(file)}: tokenizer.json added_tokens must be a list`);
    });
    it('errors name the files (they said "tokenizer.json ..." or "merges line 3 ..." without a path)', () => {
      const file = write('nomodel.json', '{"model": 1}');
      expect(() => loadTokenizerJson(file)).toThrow(`cannot load ${JSON.stringify(file)}: tokenizer.json must be an object with a "model" object`);
      const enc = write('encoder.json', JSON.stringify(encoder));
      const bpe = write('bad.bpe', '#version: 0.2\na  b\n');
      expect(() => loadGPT2(enc, bpe)).toThrow(
        `cannot load the GPT-2 tokenizer ${JSON.stringify(enc)} + ${JSON.stringify(bpe)}: merges line 2 is "a  b"; expected two tokens separated by one space`,
      );
    });
    it('an encoder.json of 300,000 entries (was a RangeError: Maximum call stack size exceeded)', () => {
      const big: Record<string, number> = { ...encoder };
      let id = seed.vocabSize;
      for (let i = 0; i < 300_000; i++) big[`tok${i}`] = id++;
      const tok = (() => {
        const enc = write('big-encoder.json', JSON.stringify(big));
        return loadGPT2(enc, write('big.bpe', vocabBpe), { extraSpecialTokens: ['<|new|>'] });
      })();
      expect(tok.tokenToId('<|new|>')).toBe(id);
    });
  });
});
