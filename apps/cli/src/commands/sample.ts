import { Command } from 'commander';
import { sample } from '@causalfusion/sampler';
import {
  addSamplingFlags,
  checkImageCount,
  checkSamplingOutputs,
  parseSamplingFlags,
  progressReporter,
  samplerOptions,
  writeResults,
  type SamplingFlags,
} from '../generation';
import { modelLine, openModel, parseRuntimeFlags, readModelFolder, resolveClasses } from '../model';

/**
 * `causalfusion sample`: class-conditional images with S_eval AR steps, each a full diffusion loop over its
 * own tokens against the cond tokens and the finished ones (the paper's dual factorization). Writes a grid:
 * one row per class, `--num` images per row.
 */
export function registerSample(program: Command): void {
  const cmd = program
    .command('sample')
    .description('generate class-conditional images into an image grid (a row per class; PNG, JPEG or WebP)')
    .option('--class <class...>', 'class names or indices (from the model\'s meta.json), e.g. --class 7 or --class 3,7 (default: every class)')
    .option('--num <n>', 'images per class', '4')
    .option('--out <file.png>', 'the grid to write: .png, .jpg/.jpeg or .webp', 'samples.png');
  addSamplingFlags(cmd, { arSteps: '1', order: 'raster' }).action(async (flags: SamplingFlags) => {
    // Everything that can be wrong with the input is checked before the backend starts.
    const runtime = parseRuntimeFlags(flags);
    const folder = readModelFolder(flags.model, flags.tokenizer);
    const classes = flags.class ? resolveClasses(flags.class, folder.meta) : folder.meta.classNames.map((_, i) => i);
    const settings = parseSamplingFlags(flags, folder.config, folder.tokenizer.numTokens, folder.tokenizer.kind === 'pixel');
    checkImageCount(classes.length, settings.num);
    const conditions = classes.flatMap((c) => Array<number>(settings.num).fill(c));
    const { imageSize } = folder.tokenizer;
    checkSamplingOutputs(flags, conditions.length, settings.num, imageSize, imageSize, settings.zoom);

    const opened = await openModel(folder, runtime);
    process.stderr.write(`${modelLine(folder, opened.where)}\n`);
    const started = Date.now();
    let result;
    try {
      result = await sample(opened.denoiser, {
        ...samplerOptions(settings, conditions, folder.tokenizer.grid, !!flags.progressFrames),
        onProgress: progressReporter('sample'),
      });
    } finally {
      await opened.close();
    }
    const seconds = (Date.now() - started) / 1000;

    await writeResults(folder, result, flags, conditions.length, settings);
    const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
    console.log(
      `wrote ${flags.out}: ${conditions.length} images (${classes.length} rows of ${settings.num}; classes ${names}), ` +
        `${result.splitSizes.length} AR steps [${result.splitSizes.join(', ')}] x ${settings.diffusion.numTimesteps} ` +
        `${settings.method} steps, CFG ${settings.cfgScale}, seed ${settings.seed}, ${seconds.toFixed(1)}s`,
    );
  });
}
