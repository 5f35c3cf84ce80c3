import { InceptionScoreAccumulator } from './inception-score';

// Expected values: the ADM evaluator's inception_score formula run with numpy on these logits.
const LOGITS = [1, 2, 3, 0, 0, 0, 3, 1, -1, 2, 2, 5, 0.5, -1, 1];

describe('Inception Score (ADM evaluator formula)', () => {
  test('one chunk', () => {
    const is = new InceptionScoreAccumulator(3);
    is.add(LOGITS);
    expect(Math.abs(is.score() - 1.3295264305206664)).toBeLessThan(1e-14);
  });

  test('chunks of 2 with a partial last chunk, fed in uneven pieces', () => {
    const is = new InceptionScoreAccumulator(3, 2);
    is.add(LOGITS.slice(0, 9));
    is.add(LOGITS.slice(9));
    expect(Math.abs(is.score() - 1.248181737555367)).toBeLessThan(1e-14);
  });

  test('bad input', () => {
    expect(() => new InceptionScoreAccumulator(3).add([1, 2])).toThrow(/not a multiple of 3 classes/);
    expect(() => new InceptionScoreAccumulator(3).score()).toThrow(/zero images/);
  });
});
