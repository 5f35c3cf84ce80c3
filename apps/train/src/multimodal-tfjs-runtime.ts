/**
 * The tfjs runtime of `--task multimodal`: @causalfusion/multimodal's model and `multimodalLosses` under
 * tf.variableGrads, on one replica. The weights arrive as host arrays each step (the trainer owns them),
 * as for the onnxruntime session. Loaded only when `--runtime tfjs` is chosen.
 */
import { initBackend, tf } from '@causalfusion/backend';
import type { MultimodalConfig, MultimodalStepInputs } from '@causalfusion/config';
import type { GaussianDiffusion } from '@causalfusion/diffusion';
import { MultimodalModel, multimodalLosses } from '@causalfusion/multimodal';

export async function createMultimodalTfjsRuntime(config: MultimodalConfig, diffusion: GaussianDiffusion, backend?: 'tensorflow' | 'wasm' | 'cpu') {
  const name = await initBackend({ backend, quiet: true });
  const model = new MultimodalModel(config);
  const variables = model.stateEntries().map((e) => e.variable);
  return {
    name: 'tfjs' as const,
    description: `tfjs ${name}`,
    async lossAndGrads(params: Float32Array[], step: MultimodalStepInputs) {
      tf.tidy(() => variables.forEach((v, i) => v.assign(tf.tensor(params[i], v.shape))));
      let textLoss = NaN;
      let imageLoss = NaN;
      const { value, grads } = tf.variableGrads(() => {
        const l = multimodalLosses(model, diffusion, step.batch, step.rnd, step.recipe, step.nullCaption);
        textLoss = l.text.dataSync()[0];
        imageLoss = l.image.dataSync()[0];
        return l.total;
      }, variables);
      const loss = value.dataSync()[0];
      const arrays = variables.map((v) => (grads[v.name] ? Float32Array.from(grads[v.name].dataSync() as Float32Array) : null));
      tf.dispose([value, ...Object.values(grads)]);
      return { loss, textLoss, imageLoss, grads: arrays };
    },
    async close() {
      model.dispose();
    },
  };
}
