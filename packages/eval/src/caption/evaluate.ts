/**
 * COCO-format caption evaluation, as pycocoevalcap's COCOEvalCap runs it: references in COCO
 * annotations format, candidates in COCO results format, both PTB-tokenized, then CIDEr-D and
 * BLEU-1..4 over the images that have a candidate.
 */
import { bleuScores } from './bleu';
import { ciderScores, mean } from './cider';
import { countCorpus } from './ngrams';
import { tokenizeCaption } from './tokenize';

/** COCO annotations format (captions_val2014.json and the like); other fields are ignored. */
export interface CocoReferences {
  annotations: { image_id: string | number; caption: string }[];
}

/** COCO results format: one entry per image. */
export type CocoCandidates = { image_id: string | number; caption: string }[];

export interface CaptionScores {
  CIDEr: number;
  BLEU_1: number;
  BLEU_2: number;
  BLEU_3: number;
  BLEU_4: number;
}

export interface CaptionEvaluation extends CaptionScores {
  /** Scores of each candidate image, keyed by its image_id. */
  perImage: Record<string, CaptionScores>;
}

export interface EvaluateOptions {
  /** PTB-tokenize references and candidates first, as COCOEvalCap does (default true). Without it,
   * captions are split on whitespace as they are. */
  tokenize?: boolean;
  /** Names used in error messages (default 'refs.json' and 'cands.json'). */
  refsName?: string;
  candsName?: string;
  /** Called once when the references hold images that have no candidate: COCOEvalCap skips them
   * (and they do not count towards CIDEr's document frequencies). */
  onUnscoredImages?: (count: number, total: number) => void;
}

function describeEntry(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Check one {image_id, caption} entry; returns its id as a string key. */
function checkEntry(entry: unknown, where: string): string {
  if (entry === null || typeof entry !== 'object') throw new TypeError(`${where} is not an object: ${describeEntry(entry)}`);
  const { image_id: id, caption } = entry as Record<string, unknown>;
  if ((typeof id !== 'number' || !Number.isFinite(id)) && (typeof id !== 'string' || id === '')) {
    throw new TypeError(`${where} has no image_id (a number or a string): ${describeEntry(entry)}`);
  }
  if (typeof caption !== 'string') throw new TypeError(`${where} (image_id ${id}) has no "caption" string: ${describeEntry(entry)}`);
  return String(id);
}

/**
 * Score COCO-format captions: CIDEr-D and BLEU-1..4 for the corpus and for each candidate image.
 * Throws an error naming the offending entry when the ids do not match up.
 *
 * ```ts
 * const refs = { annotations: [{ image_id: 1, caption: 'A dog runs.' }, { image_id: 1, caption: 'A dog is running.' }] };
 * const { CIDEr, BLEU_4, perImage } = evaluateCaptions(refs, [{ image_id: 1, caption: 'a dog runs' }]);
 * ```
 */
export function evaluateCaptions(refs: unknown, cands: unknown, options: EvaluateOptions = {}): CaptionEvaluation {
  const { tokenize = true, refsName = 'refs.json', candsName = 'cands.json' } = options;
  const prepare = tokenize ? tokenizeCaption : (c: string) => c;

  const annotations = (refs as CocoReferences | null)?.annotations;
  if (refs === null || typeof refs !== 'object' || !Array.isArray(annotations)) {
    throw new TypeError(`${refsName} must be COCO annotations: {"annotations": [{"image_id": ..., "caption": ...}, ...]}`);
  }
  if (annotations.length === 0) throw new RangeError(`${refsName} has no annotations`);
  const refsById = new Map<string, string[]>();
  annotations.forEach((a, i) => {
    const key = checkEntry(a, `${refsName} annotations[${i}]`);
    const list = refsById.get(key) ?? [];
    list.push(prepare(a.caption));
    refsById.set(key, list);
  });

  if (!Array.isArray(cands)) {
    throw new TypeError(`${candsName} must be COCO results: [{"image_id": ..., "caption": ...}, ...]`);
  }
  if (cands.length === 0) throw new RangeError(`${candsName} is empty: it needs one {"image_id", "caption"} per image`);
  const ids: string[] = [];
  const hyps: string[] = [];
  const seen = new Set<string>();
  cands.forEach((c, i) => {
    const key = checkEntry(c, `${candsName}[${i}]`);
    if (seen.has(key)) throw new RangeError(`image_id ${key} appears twice in ${candsName} (entry ${i}); give one caption per image`);
    if (!refsById.has(key)) throw new RangeError(`candidate for image_id ${key} (${candsName}[${i}]) has no references in ${refsName}`);
    seen.add(key);
    ids.push(key);
    hyps.push(prepare((c as { caption: string }).caption));
  });
  if (seen.size < refsById.size) options.onUnscoredImages?.(refsById.size - seen.size, refsById.size);

  const corpus = countCorpus({ ids, refs: ids.map((id) => refsById.get(id)!), hyps }, 4);
  const cider = ciderScores(corpus);
  const bleu = bleuScores(corpus);
  // fromEntries defines own properties, so even an image_id of "__proto__" is an ordinary key.
  const perImage: Record<string, CaptionScores> = Object.fromEntries(
    ids.map((id, i) => {
      const [b1, b2, b3, b4] = bleu.perImage[i];
      return [id, { CIDEr: cider[i], BLEU_1: b1, BLEU_2: b2, BLEU_3: b3, BLEU_4: b4 }];
    }),
  );
  const [b1, b2, b3, b4] = bleu.scores;
  return { CIDEr: mean(cider), BLEU_1: b1, BLEU_2: b2, BLEU_3: b3, BLEU_4: b4, perImage };
}
