/**
 * The tfjs model holds exactly the parameters of @causalfusion/config's table.
 */
import { initBackend, MultimodalModel, multimodalParamEntries, type MultimodalConfig } from './index';

const CONFIG: MultimodalConfig = {
  imageHeight: 8,
  imageWidth: 12,
  channels: 1,
  patchSize: 2,
  textLength: 8,
  vocabSize: 24,
  hiddenSize: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  captionDropoutProb: 0.1,
};

beforeAll(() => initBackend({ backend: 'cpu', quiet: true }));

describe('the parameters', () => {
  it('are multimodalParamEntries: keys, order, training-layout shapes, transposition, trainability', () => {
    for (const config of [CONFIG, { ...CONFIG, depth: 3, mlpRatio: 1.5, channels: 3 }]) {
      const model = new MultimodalModel(config);
      try {
        expect(model.stateEntries().map((e) => [e.key, [...e.variable.shape], e.transposed, e.variable.trainable])).toEqual(
          multimodalParamEntries(config).map((e) => [e.key, e.shape, e.transposed, e.trainable]),
        );
      } finally {
        model.dispose();
      }
    }
  });
});
