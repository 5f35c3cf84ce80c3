/** The official parity data and error measures (test-utils/official-reference.ts), and the reference model's config. */
import { configFromJson, type ModelConfig } from '@causalfusion/config';

export * from '../../../test-utils/official-reference';

export const refConfig = (json: { model_config: unknown }): ModelConfig => configFromJson(json.model_config, 'reference model_config');
