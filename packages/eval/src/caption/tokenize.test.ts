import { PTB_PUNCTUATIONS, tokenizeCaption } from './index';

describe('tokenizeCaption (coco-caption PTBTokenizer + punctuation filter)', () => {
  it.each([
    ['A man riding a wave on top of a surfboard.', 'a man riding a wave on top of a surfboard'],
    ["Two dogs don't like the cat's toy.", "two dogs do n't like the cat 's toy"],
    ["He can't... she won't -- they're here, I'm sure; we'd go!", "he ca n't she wo n't they 're here i 'm sure we 'd go"],
    ['A "red" t-shirt, 3.5 inches; 1,000 people at 10:30?', 'a red t-shirt 3.5 inches 1,000 people at 10:30'],
    ['Mr. Smith in the U.S. at 5 a.m.', 'mr. smith in the u.s. at 5 a.m.'],
    ["the dogs' bowls and o'clock", "the dogs bowls and o'clock"],
    ['It’s a “nice” day… isn’t it—yes', "it 's a nice day is n't it yes"],
    ['50% off $5 & more; cannot', '50 % off $ 5 & more can not'],
    ['a black-and-white photo - nice', 'a black-and-white photo nice'],
    ['a dog\nrunning   fast ', 'a dog running fast'],
    ['', ''],
    ['...', ''],
  ])('%j -> %j', (raw, want) => {
    expect(tokenizeCaption(raw)).toBe(want);
  });

  it('keeps brackets as lower-cased -lrb- tokens: the filter lists them upper-case, so they survive', () => {
    expect(PTB_PUNCTUATIONS).toContain('-LRB-');
    expect(tokenizeCaption('a cat (left) [x] {y}')).toBe('a cat -lrb- left -rrb- -lsb- x -rsb- -lcb- y -rcb-');
  });

  it('leaves an already tokenized caption as it is, minus punctuation tokens', () => {
    expect(tokenizeCaption("a little man 's day , 2 of them")).toBe("a little man 's day 2 of them");
    expect(tokenizeCaption("do n't")).toBe("do n't");
  });

  it('rejects a non-string', () => {
    expect(() => tokenizeCaption(42 as unknown as string)).toThrow(/a caption must be a string, got number/);
  });
});
