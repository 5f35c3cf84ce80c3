import { Command } from 'commander';
import { EDIT_REGIONS } from '@causalfusion/sampler';
import { compositeEdits, parseEditFlags, readEditRegion, runEdit } from '../editing';
import {
  addSamplingFlags,
  checkImageCount,
  checkSamplingOutputs,
  classConditions,
  DEFAULT_EDIT_CFG,
  progressReporter,
  writeResults,
  type SamplingFlags,
} from '../generation';
import { describeFit, readRaw } from '../images';
import { modelLine, openModel, parseRuntimeFlags } from '../runtime-flags';
import { readModelFolder, resolveClasses } from '../model-folder';

interface EditFlags extends SamplingFlags {
  input: string;
  mask: string;
}

/**
 * `causalfusion edit`: zero-shot editing as in the paper. The tokens outside the region are pushed as clean
 * context under the NEW class and the region is regenerated with S_eval AR steps at the model's size. The
 * regenerated tokens' pixels are then put back into the ORIGINAL image at its own resolution (an input of
 * another size is brought to the model's size by block averaging for an integer zoom, by area otherwise), so
 * every kept pixel of the output is the input's, bit for bit, whatever its size (and for latent-space models).
 */
export function registerEdit(program: Command): void {
  const cmd = program
    .command('edit')
    .description('regenerate a region of an image under a (new) class; the rest of the image is kept')
    .requiredOption(
      '--input <image>',
      'the image to edit (PNG, JPEG, ...), any size; gray for 1-channel models; the output keeps its size and its pixels outside the region',
    )
    .option(
      '--mask <region|mask.png>',
      `what to regenerate: ${EDIT_REGIONS.join(', ')}, or a mask image, any size (the input's is natural; white = regenerate, ` +
        'black = keep; a token is regenerated if any white mask pixel touches it)',
      'center',
    )
    .requiredOption('--class <class...>', 'the class (name or index) to regenerate the region as; several give one edit each')
    .option('--num <n>', 'edits per class (different noise)', '1')
    .option('--out <file.png>', 'the edited image, .png, .jpg/.jpeg or .webp (a grid when there are several: a row per class)', 'edit.png');
  const zoomHelp = "enlarge the edited image n times (nearest neighbour; default 1: the input's size; at most 16)";
  addSamplingFlags(cmd, { arSteps: '1', order: 'raster', cfg: DEFAULT_EDIT_CFG, zoomHelp }).action(async (flags: EditFlags) => {
    const runtime = parseRuntimeFlags(flags);
    const folder = readModelFolder(flags.model, flags.tokenizer);
    const classes = resolveClasses(flags.class ?? [], folder.meta);
    const note = (message: string) => process.stderr.write(`note: ${message}\n`);
    // The input at its own resolution (the output keeps it); runEdit brings it to the model's size.
    const original = await readRaw(flags.input, folder.tokenizer.channels);
    const { width, height } = original;
    const fit = describeFit(width, height, folder.tokenizer.imageSize);
    if (fit) note(`--input: ${flags.input} is ${width}x${height}, ${fit} for the model; the edit is put back into its ${width}x${height} pixels`);
    const region = await readEditRegion(flags.mask, folder, note);
    const regenerated = region.reduce((a, b) => a + b, 0);
    const settings = parseEditFlags(flags, folder, region);
    checkImageCount(classes.length, settings.num);
    const conditions = classConditions(classes, settings.num);
    // The edits have the input's size unless --zoom enlarges them (progress frames: the model's size, zoomed as for sample).
    const outZoom = flags.zoom === undefined ? 1 : settings.zoom;
    checkSamplingOutputs(flags, conditions.length, settings.num, width, height, outZoom);

    const opened = await openModel(folder, runtime);
    process.stderr.write(`${modelLine(folder, opened.where)}\n`);
    const started = Date.now();
    let result;
    try {
      result = await runEdit(opened.denoiser, folder, original, region, settings, conditions, !!flags.progressFrames, { onProgress: progressReporter('edit') });
    } finally {
      await opened.close();
    }
    const seconds = (Date.now() - started) / 1000;

    // Each edit goes back into the original pixels: only the regenerated tokens' pixels change.
    await writeResults(folder, result, flags, conditions.length, settings, {
      width,
      height,
      zoom: outZoom,
      images: (decoded) => compositeEdits(original, decoded, conditions.length, folder, region),
    });
    const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
    console.log(
      `wrote ${flags.out}: ${conditions.length} edit(s) of ${flags.input} as ${names}; regenerated ${regenerated} of ` +
        `${region.length} tokens in ${result.splitSizes.length} AR steps x ${settings.diffusion.numTimesteps} ` +
        `${settings.method} steps, CFG ${settings.cfgScale}, seed ${settings.seed}, ${seconds.toFixed(1)}s`,
    );
  });
}
