import * as fs from 'fs';
import { Command } from 'commander';
import { edit, editRegion, EDIT_REGIONS } from '@causalfusion/sampler';
import { UsageError } from '../errors';
import {
  addSamplingFlags,
  DEFAULT_EDIT_CFG,
  parseSamplingFlags,
  progressReporter,
  samplerOptions,
  writeResults,
  type SamplingFlags,
} from '../generation';
import { readImage, readMask } from '../images';
import { modelLine, openModel, parseRuntimeFlags, readModelFolder, resolveClasses } from '../model';

interface EditFlags extends SamplingFlags {
  input: string;
  mask: string;
}

/**
 * `causalfusion edit`: zero-shot editing as in the paper. The tokens outside the region are pushed as clean
 * context under the NEW class and the region is regenerated with S_eval AR steps; kept tokens are not
 * touched, so an input already at a pixel model's size keeps those pixels exactly (a latent-space model
 * keeps those latent tokens; the VAE decodes them).
 */
export function registerEdit(program: Command): void {
  const cmd = program
    .command('edit')
    .description('regenerate a region of an image under a (new) class; the rest of the image is kept')
    .requiredOption('--input <image>', 'the image to edit (PNG, JPEG, ...); resized to the model\'s size, gray for 1-channel models')
    .option(
      '--mask <region|mask.png>',
      `what to regenerate: ${EDIT_REGIONS.join(', ')}, or a mask image of the model's size (white = regenerate, ` +
        'black = keep; a token is regenerated if any of its pixels is white)',
      'center',
    )
    .requiredOption('--class <class...>', 'the class (name or index) to regenerate the region as; several give one edit each')
    .option('--num <n>', 'edits per class (different noise)', '1')
    .option('--out <file.png>', 'the edited image (a grid when there are several: a row per class)', 'edit.png');
  addSamplingFlags(cmd, { arSteps: '1', order: 'raster', cfg: DEFAULT_EDIT_CFG }).action(async (flags: EditFlags) => {
    const runtime = parseRuntimeFlags(flags);
    const folder = readModelFolder(flags.model, flags.tokenizer);
    const classes = resolveClasses(flags.class ?? [], folder.meta);
    const { imageSize, channels, pixelsPerToken, grid } = folder.tokenizer;
    const image = await readImage(flags.input, imageSize, channels);
    let region: Uint8Array;
    if ((EDIT_REGIONS as readonly string[]).includes(flags.mask)) region = editRegion(flags.mask, grid, grid);
    else if (fs.existsSync(flags.mask)) region = await readMask(flags.mask, imageSize, pixelsPerToken);
    else throw new UsageError(`--mask: '${flags.mask}' is neither a region (${EDIT_REGIONS.join(', ')}) nor an existing mask image`);
    const regenerated = region.reduce((a, b) => a + b, 0);
    const settings = parseSamplingFlags(flags, folder.config, regenerated, folder.tokenizer.kind === 'pixel', DEFAULT_EDIT_CFG);
    const conditions = classes.flatMap((c) => Array<number>(settings.num).fill(c));

    // Every edit starts from the same tokens; the sampler keeps the ones outside the region bit for bit.
    // (A latent-space model's tokens are the VAE's posterior mean of the image, scaled.)
    const source = await folder.tokenizer.encode(image);
    const tokens = new Float32Array(conditions.length * source.length);
    for (let i = 0; i < conditions.length; i++) tokens.set(source, i * source.length);

    const opened = await openModel(folder, runtime);
    process.stderr.write(`${modelLine(folder, opened.where)}\n`);
    const started = Date.now();
    let result;
    try {
      result = await edit(opened.denoiser, {
        ...samplerOptions(settings, conditions, grid, !!flags.progressFrames),
        tokens,
        region,
        onProgress: progressReporter('edit'),
      });
    } finally {
      await opened.close();
    }
    const seconds = (Date.now() - started) / 1000;

    await writeResults(folder, result, flags, conditions.length, settings);
    const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
    console.log(
      `wrote ${flags.out}: ${conditions.length} edit(s) of ${flags.input} as ${names}; regenerated ${regenerated} of ` +
        `${region.length} tokens in ${result.splitSizes.length} AR steps x ${settings.diffusion.numTimesteps} ` +
        `${settings.method} steps, CFG ${settings.cfgScale}, seed ${settings.seed}, ${seconds.toFixed(1)}s`,
    );
  });
}
