/**
 * Captioning metrics exactly as pycocoevalcap computes them: CIDEr-D, BLEU-1..4, and a PTB-style
 * caption tokenizer, plus a COCO-format front end (`evaluateCaptions`) that scores both metrics from
 * one n-gram count.
 */
export { ciderD } from './cider';
export type { CiderOptions, CiderResult } from './cider';
export { bleu } from './bleu';
export type { BleuResult } from './bleu';
export { tokenizeCaption, PTB_PUNCTUATIONS } from './tokenize';
export { evaluateCaptions } from './evaluate';
export type { CaptionEvaluation, CaptionScores, CocoCandidates, CocoReferences, EvaluateOptions } from './evaluate';
export { splitWords } from './ngrams';
export type { ById, ImageId } from './ngrams';
