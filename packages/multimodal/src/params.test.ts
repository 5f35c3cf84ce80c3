/**
 * The tfjs model holds exactly the parameters of @causalfusion/config's table.
 */
import { initBackend, MultimodalModel, multimodalParamEntries, type MultimodalConfig } from './index';
import { TINY_MULTIMODAL_CONFIG } from '../../../test-utils/multimodal';

const CONFIG: MultimodalConfig = TINY_MULTIMODAL_CONFIG;

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
