/**
 * A caption tokenizer that does to English captions what coco-caption's PTBTokenizer does: Stanford
 * CoreNLP 3.4.1's PTBTokenizer (`-preserveLines -lowerCase`) followed by pycocoevalcap's filter, which
 * drops every token in its PUNCTUATIONS list. In short: lower-case, split off punctuation and clitics
 * ("don't" -> "do n't", "dog's" -> "dog 's"), then remove the punctuation.
 *
 * What it reproduces from the Stanford tokenizer (the cases captions hit):
 * - clitics 's 're 've 'll 'd 'm and n't become their own tokens ("can't" -> "ca n't"), "cannot" -> "can not";
 * - hyphenated words stay one token ("t-shirt", "black-and-white"), as do numbers with separators
 *   ("1,000", "3.5", "10:30"), acronyms ("u.s.", "a.m.") and common abbreviations ("mr.", "st.");
 * - quotes become `` / '' and curly quotes/apostrophes are read as straight ones; dashes become "--",
 *   ellipses "..."; all of these are then removed by the filter;
 * - brackets become -lrb- -rrb- -lsb- -rsb- -lcb- -rcb- and are KEPT: the filter lists "-LRB-" etc. in
 *   upper case, but the tokenizer has already lower-cased them, so they never match.
 * Not reproduced: Stanford's British-to-American respelling ("colour" -> "color", "grey" -> "gray"),
 * escaping of "/" and "*", and its handling of URLs, e-mail addresses and emoticons.
 */

/** pycocoevalcap's PUNCTUATIONS (tokenizer/ptbtokenizer.py): tokens dropped after tokenizing. */
export const PTB_PUNCTUATIONS: readonly string[] = ["''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';'];
const DROPPED = new Set(PTB_PUNCTUATIONS);

const BRACKETS: Record<string, string> = {
  '(': '-lrb-',
  ')': '-rrb-',
  '[': '-lsb-',
  ']': '-rsb-',
  '{': '-lcb-',
  '}': '-rcb-',
};

// Words that keep their final period ("mr. smith"), as in the Stanford tokenizer's abbreviation lists.
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'st', 'jr', 'sr', 'mt', 'ave', 'blvd', 'rd', 'etc', 'vs', 'inc', 'ltd', 'co', 'corp']);

const CLITIC = /^(.+?)('s|'re|'ve|'ll|'d|'m)$/;

// One token at a time, tried in this order at each position (sticky regular expressions).
const ACRONYM = /(?:\p{L}\.){2,}/uy; // "u.s.", "a.m.", "e.g."
const NUMBER = /\p{N}+(?:[.,:/]\p{N}+)+/uy; // "3.5", "1,000", "10:30", "1/2"
const WORD = /[\p{L}\p{N}\p{M}]+(?:['-][\p{L}\p{N}\p{M}]+)*/uy; // letters/digits, inner hyphens and apostrophes
const LONE_CLITIC = /'(?:s|re|ve|ll|d|m)(?![\p{L}\p{N}])/uy; // an already split "'s"
const DOTS = /\.{2,}/y;
const DASHES = /-{2,}/y;

/** Split one whitespace-free chunk (already lower-cased) into PTB tokens. */
function tokenizeChunk(chunk: string, out: string[]): void {
  let i = 0;
  const match = (re: RegExp): string | null => {
    re.lastIndex = i;
    const m = re.exec(chunk);
    if (m === null) return null;
    i += m[0].length;
    return m[0];
  };
  while (i < chunk.length) {
    const tok = match(ACRONYM) ?? match(NUMBER) ?? match(LONE_CLITIC);
    if (tok !== null) {
      out.push(tok);
      continue;
    }
    const word = match(WORD);
    if (word !== null) {
      if (ABBREVIATIONS.has(word) && chunk[i] === '.') {
        i++;
        out.push(`${word}.`);
      } else {
        splitClitics(word, out);
      }
      continue;
    }
    if (match(DOTS) !== null) {
      out.push('...');
      continue;
    }
    if (match(DASHES) !== null) {
      out.push('--');
      continue;
    }
    const c = String.fromCodePoint(chunk.codePointAt(i)!);
    i += c.length;
    if (c === '"')
      out.push("''"); // `` or '' in the PTB output: removed either way
    else out.push(BRACKETS[c] ?? c);
  }
}

/** "don't" -> "do n't", "dog's" -> "dog 's", "cannot" -> "can not"; other words unchanged. */
function splitClitics(word: string, out: string[]): void {
  if (word === 'cannot') {
    out.push('can', 'not');
  } else if (word.length > 3 && word.endsWith("n't")) {
    out.push(word.slice(0, -3), "n't");
  } else {
    const m = CLITIC.exec(word);
    if (m !== null) out.push(m[1], m[2]);
    else out.push(word);
  }
}

/**
 * Tokenize a raw caption as coco-caption does before scoring: returns the kept tokens joined by single
 * spaces (what pycocoevalcap hands to its scorers).
 *
 * ```ts
 * tokenizeCaption('A dog\'s ball, "red" (new)!'); // "a dog 's ball red -lrb- new -rrb-"
 * ```
 */
export function tokenizeCaption(raw: string): string {
  if (typeof raw !== 'string') throw new TypeError(`a caption must be a string, got ${typeof raw}`);
  const text = raw
    .toLowerCase()
    .replace(/[\u2018\u2019\u201b\u2032]/g, "'") // curly apostrophes / single quotes
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/\u2026/g, '...')
    .replace(/[\u2012-\u2015]/g, '--'); // figure/en/em dashes, horizontal bar
  const tokens: string[] = [];
  for (const chunk of text.split(/\s+/)) if (chunk.length > 0) tokenizeChunk(chunk, tokens);
  return tokens.filter((t) => !DROPPED.has(t)).join(' ');
}
