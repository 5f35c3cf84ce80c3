/**
 * The studio's API: one endpoint per CLI command (sample, edit, generate, caption), each over the very
 * functions the command runs. A request is a JSON object whose fields are the command's flags in camelCase
 * (`arSteps` for --ar-steps; numbers or strings, as typed on a command line), checked by the command's own
 * parsers and limits, so a bad field is the CLI's one-line message. Images travel as base64 (or data: URLs)
 * inside the JSON; nothing a request says is ever used as a path.
 *
 * Each endpoint works in two phases: `prepare` checks everything and decodes the uploads (a problem is a
 * 4xx before anything is sent), then `run` computes inside the model's queue, reporting progress and AR-step
 * frames to `events` when the client streams.
 */
import { EDIT_REGIONS, sample, type SampleProgress, type SampleResult } from '@causalfusion/sampler';
import { captionCells, parseCaptionFlags, readCaptionInput } from '../commands/caption';
import { encodePrompt, generateCanvases, parseGenerateFlags } from '../commands/generate';
import { compositeEdits, parseEditFlags, readEditRegion, runEdit } from '../editing';
import { UsageError } from '../errors';
import {
  checkImageCount,
  classConditions,
  encodeProgressFrame,
  parseSamplingFlags,
  samplerOptions,
  type SamplingFlags,
  type SamplingSettings,
} from '../generation';
import { encodeImageGrid, gridSize, readRaw, type ImageBytes } from '../images';
import { resolveClasses } from '../model-folder';
import { checkImageSize } from '../outputs';
import type { ClassModel, PromptModel, StudioModel } from './models';

/** The studio's own bounds, on top of the CLI's (documented in apps/cli/README.md, "causalfusion serve"). */
export const SERVE_LIMITS = {
  /** Bytes of one request body: the JSON, uploads included (base64 makes an image about 4/3 its size). */
  bodyBytes: 8 * 1024 * 1024,
  /** Images one request draws (classes x num, or num for a prompt): every one is a frame in each AR step's update. */
  images: 64,
  /** Requests that may wait for a model while it serves one; one more is refused with 429. */
  queue: 4,
} as const;

/** What a streaming client hears while its request waits and runs. */
export interface JobEvents {
  /** It waits; 1 = next. */
  queued(position: number): void;
  /** After each diffusion step. */
  progress(p: Pick<SampleProgress, 'arStep' | 'arSteps' | 'step' | 'steps'>): void;
  /** The image after an AR step (finished tokens and that step's x0 estimate), as PNG. */
  frame(png: Buffer, arStep: number): void;
}

/** What a request produces: an image (PNG) or JSON, and a line for the log. */
export type ApiResult = { png: Buffer; summary: string } | { json: Record<string, unknown>; summary: string };

/** A checked request, ready to run in its model's queue. */
export interface Prepared {
  model: StudioModel;
  /** Whether it makes progress events and frames (sample, edit, generate) or answers at once (caption). */
  streams: boolean;
  run(signal: AbortSignal, events: JobEvents | null): Promise<ApiResult>;
}

export type Endpoint = (body: unknown, models: StudioModel[]) => Promise<Prepared>;

// ---------------------------------------------------------------- fields -> the CLI's flags

type Fields = Record<string, unknown>;

/** The CLI flag a field stands for: arSteps -> --ar-steps (image -> --input, as edit and caption call it). */
function flagOf(key: string): string {
  if (key === 'image') return '--input';
  if (key === 'model') return 'model';
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

/** The body as an object holding only `allowed` fields (an unknown one is an error: a typo is not silently ignored). */
function fieldsOf(body: unknown, allowed: readonly string[], endpoint: string): Fields {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new UsageError(`${endpoint}: expected a JSON object of fields (${allowed.join(', ')}), got ${describe(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new UsageError(`unknown field '${key}'; ${endpoint} takes ${allowed.join(', ')}`);
  }
  return body as Fields;
}

/** A field as the flag's string (a number as it would be typed), or undefined when absent. */
function text(f: Fields, key: string): string | undefined {
  const v = f[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw new UsageError(`${flagOf(key)}: expected a number or a string, got ${describe(v)}`);
}

function bool(f: Fields, key: string): boolean | undefined {
  const v = f[key];
  if (v === undefined || v === null || typeof v === 'boolean') return v ?? undefined;
  throw new UsageError(`${flagOf(key)}: expected true or false, got ${describe(v)}`);
}

/** `class`: one class or a list of them (names or indices), as --class takes them. */
function classList(f: Fields): string[] {
  const v = f.class;
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((c) => {
    if (typeof c === 'string' || (typeof c === 'number' && Number.isFinite(c))) return String(c);
    throw new UsageError(`--class: expected class names or indices, got ${describe(c)}`);
  });
}

/** An uploaded image: base64, or a data: URL (what a browser's canvas and FileReader give). */
function imageBytes(f: Fields, key: string, name: string): ImageBytes {
  const v = f[key];
  if (typeof v !== 'string' || v === '') throw new UsageError(`${flagOf(key)}: give the image as base64 or a data: URL (PNG, JPEG, WebP)`);
  const base64 = v.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  // Buffer.from would skip anything that is not base64 and decode the rest: refuse instead
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64 === '') {
    throw new UsageError(`${flagOf(key)}: ${name} is neither base64 nor a base64 data: URL`);
  }
  return { name, bytes: Buffer.from(base64, 'base64') };
}

/** The model a request names (by id), of the kind the endpoint needs; the first such model by default. */
function pickModel<K extends StudioModel['kind']>(models: StudioModel[], f: Fields, kind: K, endpoint: string): Extract<StudioModel, { kind: K }> {
  const id = text(f, 'model');
  const what = kind === 'class' ? 'a class-conditional model' : 'a text-to-image + captioning (multimodal) model';
  if (id === undefined) {
    const first = models.find((m) => m.kind === kind);
    if (!first) throw new UsageError(`${endpoint} needs ${what}, and this studio serves none; start it with --model DIR`);
    return first as Extract<StudioModel, { kind: K }>;
  }
  const model = models.find((m) => m.id === id);
  if (!model) throw new UsageError(`model: unknown model '${id}'; this studio serves ${models.map((m) => `${m.id} (${m.name})`).join(', ')}`);
  if (model.kind !== kind) {
    const instead = model.kind === 'class' ? '/api/sample and /api/edit' : '/api/generate and /api/caption';
    throw new UsageError(`model: ${model.id} (${model.name}) is not ${what}; use it with ${instead}`);
  }
  return model as Extract<StudioModel, { kind: K }>;
}

/** The sampling flags of sample / edit, with the commands' defaults. */
function samplingFlags(f: Fields, defaults: { num: string }): Omit<SamplingFlags, 'out'> {
  return {
    num: text(f, 'num') ?? defaults.num,
    arSteps: text(f, 'arSteps') ?? '1',
    order: text(f, 'order') ?? 'raster',
    steps: text(f, 'steps'),
    sampler: text(f, 'sampler'),
    cfg: text(f, 'cfg'),
    cfgInterval: text(f, 'cfgInterval'),
    seed: text(f, 'seed') ?? '0',
    zoom: text(f, 'zoom'),
    clip: bool(f, 'clip'),
  };
}

const IMAGES_HINT = `the studio draws at most ${SERVE_LIMITS.images} images a request; use the command line for more`;
const MAX_IMAGES = { limit: SERVE_LIMITS.images, hint: IMAGES_HINT };

/** The result grid against the CLI's limits on a written image (64 megapixels, the PNG side). */
function checkResultSize(count: number, cols: number, width: number, height: number, zoom: number): void {
  const size = gridSize(count, cols, width, height, zoom);
  checkImageSize(size.width, size.height, 'png', 'the result');
}

// ---------------------------------------------------------------- running

/** Let the server's sockets and timers run between diffusion steps (the tfjs backbone computes synchronously). */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The sampler's onProgress for one request: tell the client, then let the server breathe. */
function progressHook(events: JobEvents | null) {
  return (p: SampleProgress) => {
    events?.progress(p);
    return breathe();
  };
}

/**
 * AR-step frames encoded and sent in order while the sampling goes on (PNG encoding is asynchronous); an
 * encoding error is kept for `flush`, so it fails the request instead of escaping as an unhandled rejection.
 */
function frameSender(events: JobEvents | null) {
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown = null;
  return {
    send(arStep: number, encode: () => Promise<Buffer>): void {
      if (!events) return;
      chain = chain.then(async () => events.frame(await encode(), arStep)).catch((e) => void (failure ??= e));
    },
    /** Every frame sent, or the first encoding error thrown. */
    async flush(): Promise<void> {
      await chain;
      if (failure) throw failure;
    },
  };
}

function describeRun(result: SampleResult, s: SamplingSettings, seconds: number): string {
  return `${result.splitSizes.length} AR steps [${result.splitSizes.join(', ')}] x ${s.diffusion.numTimesteps} ${s.method} steps, CFG ${s.cfgScale}, seed ${s.seed}, ${seconds.toFixed(1)}s`;
}

const since = (started: number) => (Date.now() - started) / 1000;
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

// ---------------------------------------------------------------- the endpoints

const SAMPLING_FIELDS = ['model', 'class', 'num', 'arSteps', 'order', 'steps', 'sampler', 'cfg', 'cfgInterval', 'seed', 'zoom', 'clip'] as const;

/** POST /api/sample: `causalfusion sample` into one grid (a row per class). */
export const sampleEndpoint: Endpoint = async (body, models) => {
  const f = fieldsOf(body, SAMPLING_FIELDS, '/api/sample');
  const model: ClassModel = pickModel(models, f, 'class', '/api/sample');
  const { folder } = model;
  // as the command: every class unless some are named
  const named = classList(f);
  const classes = named.length ? resolveClasses(named, folder.meta) : folder.meta.classNames.map((_, i) => i);
  const settings = parseSamplingFlags(
    samplingFlags(f, { num: '4' }),
    folder.config,
    folder.tokenizer.numTokens,
    folder.tokenizer.kind === 'pixel',
    undefined,
    MAX_IMAGES,
    folder.meta.sampling,
  );
  checkImageCount(classes.length, settings.num, SERVE_LIMITS.images, IMAGES_HINT);
  const conditions = classConditions(classes, settings.num);
  const { imageSize, channels, grid } = folder.tokenizer;
  checkResultSize(conditions.length, settings.num, imageSize, imageSize, settings.zoom);
  return {
    model,
    streams: true,
    async run(signal, events) {
      const started = Date.now();
      const denoiser = await model.denoiser();
      const frames = frameSender(events);
      const result = await sample(denoiser, {
        ...samplerOptions(settings, conditions, grid, !!events),
        signal,
        onProgress: progressHook(events),
        onIntermediate: (frame) => frames.send(frame.arStep, () => encodeProgressFrame(frame, folder, conditions.length, settings.num, settings.zoom)),
      });
      await frames.flush();
      const decoded = await folder.tokenizer.decode(result.tokens);
      const png = await encodeImageGrid(decoded, conditions.length, settings.num, imageSize, imageSize, channels, settings.zoom);
      const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
      return {
        png,
        summary: `${count(conditions.length, 'image')} (${classes.length === 1 ? 'class' : 'classes'} ${names}), ${describeRun(result, settings, since(started))}`,
      };
    },
  };
};

/**
 * POST /api/edit: `causalfusion edit` of an uploaded image: `mask` is a region name or a mask image (white =
 * regenerate). The result keeps the upload's size and every pixel outside the regenerated tokens.
 */
export const editEndpoint: Endpoint = async (body, models) => {
  const f = fieldsOf(body, ['image', 'mask', ...SAMPLING_FIELDS], '/api/edit');
  const model: ClassModel = pickModel(models, f, 'class', '/api/edit');
  const { folder } = model;
  const classes = resolveClasses(classList(f), folder.meta);
  const original = await readRaw(imageBytes(f, 'image', 'the uploaded image'), folder.tokenizer.channels);
  const mask = text(f, 'mask') ?? 'center';
  const region = await readEditRegion((EDIT_REGIONS as readonly string[]).includes(mask) ? mask : imageBytes(f, 'mask', 'the uploaded mask'), folder);
  const settings = parseEditFlags(samplingFlags(f, { num: '1' }), folder, region, MAX_IMAGES);
  checkImageCount(classes.length, settings.num, SERVE_LIMITS.images, IMAGES_HINT);
  const conditions = classConditions(classes, settings.num);
  // as the command: the edits keep the input's size unless a zoom is asked for
  const zoom = f.zoom === undefined ? 1 : settings.zoom;
  const { width, height } = original;
  checkResultSize(conditions.length, settings.num, width, height, zoom);
  return {
    model,
    streams: true,
    async run(signal, events) {
      const started = Date.now();
      const denoiser = await model.denoiser();
      const frames = frameSender(events);
      // frames at the model's size, zoomed as sample's (what edit --progress-frames writes)
      const result = await runEdit(denoiser, folder, original, region, settings, conditions, !!events, {
        signal,
        onProgress: progressHook(events),
        onIntermediate: (frame) => frames.send(frame.arStep, () => encodeProgressFrame(frame, folder, conditions.length, settings.num, settings.zoom)),
      });
      await frames.flush();
      const edits = compositeEdits(original, await folder.tokenizer.decode(result.tokens), conditions.length, folder, region);
      const png = await encodeImageGrid(edits, conditions.length, settings.num, width, height, original.channels, zoom);
      const regenerated = region.reduce((a, b) => a + b, 0);
      const names = classes.map((c) => folder.meta.classNames[c]).join(', ');
      return {
        png,
        summary: `${count(conditions.length, 'edit')} of a ${width}x${height} image as ${names}; regenerated ${regenerated} of ${region.length} tokens in ${describeRun(result, settings, since(started))}`,
      };
    },
  };
};

/** POST /api/generate: `causalfusion generate` (text-to-image with a multimodal model), a row of images. */
export const generateEndpoint: Endpoint = async (body, models) => {
  const f = fieldsOf(body, ['model', 'prompt', 'num', 'sampler', 'arSteps', 'steps', 'cfg', 'seed', 'zoom'], '/api/generate');
  const model: PromptModel = pickModel(models, f, 'prompt', '/api/generate');
  const prompt = text(f, 'prompt');
  if (prompt === undefined) throw new UsageError("required option '--prompt <text>' not specified");
  const flags = {
    num: text(f, 'num') ?? '4',
    // absent: the model's own defaults (meta.json sampling), as `causalfusion generate`
    sampler: text(f, 'sampler'),
    arSteps: text(f, 'arSteps'),
    steps: text(f, 'steps'),
    cfg: text(f, 'cfg'),
    seed: text(f, 'seed') ?? '0',
    zoom: text(f, 'zoom') ?? '2',
  };
  const s = parseGenerateFlags(flags, model.folder, SERVE_LIMITS.images);
  const { imageHeight: H, imageWidth: W } = model.folder.config;
  checkResultSize(s.num, s.num, W, H, s.zoom);
  // the prompt is checked against the model's words before the request waits in line
  const { codec } = await model.load();
  const caption = encodePrompt(codec, prompt);
  return {
    model,
    streams: true,
    async run(signal, events) {
      const started = Date.now();
      const { model: mm } = await model.load();
      const frames = frameSender(events);
      const images = await generateCanvases(mm, codec, caption, s, {
        signal,
        onProgress: progressHook(events),
        onArStep: events ? (canvases, arStep) => frames.send(arStep, () => encodeImageGrid(canvases, s.num, s.num, W, H, 1, s.zoom)) : undefined,
      });
      await frames.flush();
      const png = await encodeImageGrid(images, s.num, s.num, W, H, 1, s.zoom);
      return {
        png,
        summary: `${count(s.num, 'image')} for "${prompt}", ${s.arSteps} AR steps x ${s.steps} ${s.sampler.toUpperCase()} steps, CFG ${s.cfg}, seed ${s.seed}, ${since(started).toFixed(1)}s`,
      };
    },
  };
};

/** POST /api/caption: `causalfusion caption` of an uploaded image (the model's canvas, or a row of them, at any integer zoom). */
export const captionEndpoint: Endpoint = async (body, models) => {
  const f = fieldsOf(body, ['model', 'image', 'greedy', 'topK', 'topP', 'temperature', 'num', 'seed'], '/api/caption');
  const model: PromptModel = pickModel(models, f, 'prompt', '/api/caption');
  const { options, num } = parseCaptionFlags({
    greedy: bool(f, 'greedy'),
    topK: text(f, 'topK'),
    topP: text(f, 'topP'),
    temperature: text(f, 'temperature'),
    num: text(f, 'num') ?? '1',
    seed: text(f, 'seed') ?? '0',
  });
  const { imageHeight: H, imageWidth: W } = model.folder.config;
  const { cells } = await readCaptionInput(imageBytes(f, 'image', 'the uploaded image'), H, W);
  return {
    model,
    streams: false,
    async run() {
      const { model: mm, codec } = await model.load();
      const captions = captionCells(mm, codec, cells, num, options);
      return { json: { captions }, summary: `${count(cells.length, 'image')}, ${count(num, 'caption')} each` };
    },
  };
};
