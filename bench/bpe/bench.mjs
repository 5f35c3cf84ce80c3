#!/usr/bin/env node
// Benchmark of @causalfusion/bpe: GPT-2 encode throughput against js-tiktoken (same GPT-2 ranks, same
// text, same process), and training time for 2 MB of text to an 8k vocabulary.
//
// The text is English prose that ships inside the workspace: the README/CHANGELOG/docs markdown files
// of the installed npm packages (pinned by pnpm-lock.yaml), read in sorted path order and cut at 3M characters.
// Nothing is downloaded. Run from the repository root: `pnpm bench:bpe` (builds the package first).
// Last line: `bpe speedup=<js-tiktoken time / our time>` for encoding the whole text once.
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const pkgDir = join(root, 'packages/bpe');
const require = createRequire(join(pkgDir, 'package.json'));
const { loadGPT2, trainBPE } = require(join(pkgDir, 'dist/index.js'));
const { Tiktoken } = require('js-tiktoken/lite');
const gpt2Ranks = require('js-tiktoken/ranks/gpt2');

const refDir = join(root, '../shared/reference/gpt2');
const TEXT_CHARS = 3 << 20;
const TRAIN_BYTES = 2 << 20;
const ROUNDS = 3;

/** Markdown files under node_modules/.pnpm, sorted, concatenated up to `limit` characters. */
function englishText(limit) {
  const store = join(root, 'node_modules/.pnpm');
  const files = [];
  const walk = (dir, depth) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory() && depth < 8 && e.name !== '.bin') walk(p, depth + 1);
      else if (e.isFile() && e.name.toLowerCase().endsWith('.md')) files.push(p);
    }
  };
  walk(store, 0);
  files.sort();
  let text = '';
  let used = 0;
  const seen = new Set();
  for (const f of files) {
    if (text.length >= limit) break;
    const body = readFileSync(f, 'utf8');
    if (body.length < 2000 || seen.has(body)) continue; // skip stubs and the same file in two versions
    seen.add(body);
    text += body + '\n';
    used++;
  }
  if (text.length < limit / 2) {
    throw new Error(`only ${text.length} characters of markdown under ${relative(root, store)}; run pnpm install first`);
  }
  // Python's and JavaScript's regex disagree on whether U+FEFF (file BOMs), U+0085 and U+001C..U+001F
  // are whitespace; we follow Python (encoder.py), js-tiktoken follows JavaScript. Dropping those
  // characters keeps the id-for-id comparison below meaningful; they are not English text anyway.
  return { text: text.slice(0, limit).replace(/[\ufeff\u0085\u001c-\u001f]/g, ''), files: used };
}

function timeIt(fn) {
  const t0 = process.hrtime.bigint();
  const result = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, result };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { text, files } = englishText(TEXT_CHARS);
const mb = Buffer.byteLength(text) / 2 ** 20;
console.log(`text: ${mb.toFixed(2)} MiB of markdown from ${files} files in node_modules/.pnpm`);

const tiktoken = new Tiktoken(gpt2Ranks);
const ours = [];
const theirs = [];
let oursIds;
let theirIds;
for (let r = 0; r < ROUNDS; r++) {
  // A fresh tokenizer per round: its word cache starts empty, so no round reuses an earlier one.
  const tok = loadGPT2(join(refDir, 'encoder.json'), join(refDir, 'vocab.bpe'));
  const a = timeIt(() => tok.encode(text));
  const b = timeIt(() => tiktoken.encode(text, [], [])); // [] disallowed: <|endoftext|> is plain text, as in encoder.py
  ours.push(a.ms);
  theirs.push(b.ms);
  oursIds = a.result;
  theirIds = b.result;
}
let same = oursIds.length === theirIds.length;
for (let i = 0; same && i < oursIds.length; i++) same = oursIds[i] === theirIds[i];

const warmTok = loadGPT2(join(refDir, 'encoder.json'), join(refDir, 'vocab.bpe'));
warmTok.encode(text);
const warm = median([0, 1, 2].map(() => timeIt(() => warmTok.encode(text)).ms));

const train = timeIt(() => trainBPE([text.slice(0, TRAIN_BYTES)], { vocabSize: 8000, specialTokens: ['<|pad|>', '<|bos|>', '<|eos|>'] }));

const oursMs = median(ours);
const theirMs = median(theirs);
const rows = [
  ['encode GPT-2, @causalfusion/bpe (fresh cache)', oursMs, mb / (oursMs / 1000)],
  ['encode GPT-2, @causalfusion/bpe (warm cache)', warm, mb / (warm / 1000)],
  ['encode GPT-2, js-tiktoken 1.0.21 (reference)', theirMs, mb / (theirMs / 1000)],
];
console.log('');
console.log('| run | median ms | MiB/s |');
console.log('|---|---:|---:|');
for (const [name, ms, rate] of rows) console.log(`| ${name} | ${ms.toFixed(1)} | ${rate.toFixed(2)} |`);
console.log('');
console.log(`tokens: ${oursIds.length}; identical ids to js-tiktoken: ${same ? 'yes' : 'NO'}`);
console.log(
  `train: ${(Math.min(TRAIN_BYTES, text.length) / 2 ** 20).toFixed(2)} MiB -> vocab ${train.result.vocabSize} in ${(train.ms / 1000).toFixed(2)} s ` +
    `(budget 30 s, ratio ${(train.ms / 30000).toFixed(3)})`,
);
console.log(`bpe speedup=${(theirMs / oursMs).toFixed(2)}`);
