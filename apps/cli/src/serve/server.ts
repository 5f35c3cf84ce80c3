/**
 * The studio's HTTP server (Node's http module): the page at `/`, the model list at `/api/models`, and one
 * POST endpoint per command (./api). It is built to stay up whatever arrives:
 * - bodies are bounded (413 past SERVE_LIMITS.bodyBytes, declared or streamed), POSTs must be JSON (415;
 *   this also keeps other web sites' plain form posts out), JSON is parsed and checked field by field (400);
 * - each model serves one request at a time with a bounded line (429 when full);
 * - a client that goes away cancels its request (waiting: it leaves the line; running: the sampler stops
 *   before its next diffusion step);
 * - on a loopback address only requests addressed to a loopback name are answered (403 otherwise), so a web
 *   page cannot reach the studio through a DNS name of its own;
 * - any error is a JSON `{"error": "<one line>"}` (the CLI's message for bad input), never a crash;
 * - one log line per request.
 * Nothing in a request is used as a path: models are named by id, uploads stay in memory.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { OutputPathError } from '@causalfusion/safetensors';
import { ORDER_NAMES, EDIT_REGIONS } from '@causalfusion/sampler';
import { UsageError } from '../errors';
import { DEFAULT_CFG, DEFAULT_EDIT_CFG, FALLBACK_SAMPLING } from '../generation';
import { defaultZoom } from '../images';
import { LIMITS } from '../limits';
import { captionEndpoint, editEndpoint, generateEndpoint, sampleEndpoint, SERVE_LIMITS, type ApiResult, type Endpoint, type JobEvents } from './api';
import type { StudioModel } from './models';
import { QueueFullError } from './queue';

/** The page: one self-contained HTML file (inline CSS and JS, no external assets). */
export const PAGE_FILE = path.resolve(__dirname, '../../assets/studio.html');

/** The page may use only itself: no CDN, no external fetch, images from data: / blob: URLs. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'";

const ENDPOINTS: Record<string, Endpoint> = {
  '/api/sample': sampleEndpoint,
  '/api/edit': editEndpoint,
  '/api/generate': generateEndpoint,
  '/api/caption': captionEndpoint,
};

export interface StudioOptions {
  models: StudioModel[];
  /** The address it listens on; on a loopback one, requests must name a loopback host. */
  host: string;
  /** Where the request lines go (default: stdout). */
  log?: (line: string) => void;
  /** Bytes of a request body (default SERVE_LIMITS.bodyBytes). */
  maxBodyBytes?: number;
}

export interface Studio {
  server: http.Server;
  /** Stop listening, end every connection (running requests are cancelled) and free the models. */
  close(): Promise<void>;
}

/** A failure with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The client went away: its request is cancelled. */
class ClientGone extends Error {
  override name = 'ClientGone';
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** A request error's status: the CLI's input problems are the client's (400), as they exit with 2 there. */
function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof QueueFullError) return 429;
  if (e instanceof UsageError || e instanceof RangeError || e instanceof TypeError || e instanceof OutputPathError) return 400;
  return 500;
}

const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** The request's body, at most `limit` bytes: past it, a 413 at once (what still arrives is dropped, not kept). */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooBig = (size: string) => new HttpError(413, `the request body is ${size} the limit of ${limit} bytes; send a smaller image`);
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooBig(`${declared} bytes, over`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else {
        chunks.length = 0;
        reject(tooBig('over'));
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // a client that leaves mid-upload: nothing to answer (the request is logged as cancelled)
    req.on('close', () => reject(new ClientGone('the client went away')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** A server-sent-events stream: `event: NAME` / `data: JSON` pairs; writes after the client left are dropped. */
function eventStream(res: http.ServerResponse) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  return (event: string, data: unknown) => {
    if (!res.destroyed && !res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
}

const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** GET /api/models: what the page offers, with each model's classes or words and the flags' defaults. */
function describeModels(models: StudioModel[]) {
  return {
    models: models.map((m) =>
      m.kind === 'class'
        ? {
            id: m.id,
            name: m.name,
            kind: m.kind,
            classes: m.folder.meta.classNames,
            imageSize: m.folder.tokenizer.imageSize,
            channels: m.folder.tokenizer.channels,
            tokens: m.folder.tokenizer.numTokens,
            hasNullClass: m.folder.config.classDropoutProb > 0,
            zoom: defaultZoom(m.folder.tokenizer.imageSize),
            // what sample / edit use when the field is left out: the model's meta.json "sampling", else the flags' defaults
            defaults: {
              steps: m.folder.meta.sampling?.steps ?? FALLBACK_SAMPLING.steps,
              sampler: m.folder.meta.sampling?.sampler ?? FALLBACK_SAMPLING.sampler,
              cfg: m.folder.config.classDropoutProb > 0 ? (m.folder.meta.sampling?.cfg ?? DEFAULT_CFG) : 1,
              editCfg: m.folder.config.classDropoutProb > 0 ? DEFAULT_EDIT_CFG : 1,
            },
          }
        : {
            id: m.id,
            name: m.name,
            kind: m.kind,
            words: m.folder.meta.words,
            width: m.folder.config.imageWidth,
            height: m.folder.config.imageHeight,
            tokens: (m.folder.config.imageWidth / m.folder.config.patchSize) * (m.folder.config.imageHeight / m.folder.config.patchSize),
          },
    ),
    orders: ORDER_NAMES,
    regions: EDIT_REGIONS,
    limits: { bodyBytes: SERVE_LIMITS.bodyBytes, images: SERVE_LIMITS.images, queue: SERVE_LIMITS.queue, imagePixels: LIMITS.imagePixels },
  };
}

export function createStudio(options: StudioOptions): Studio {
  const { models } = options;
  const print = options.log ?? ((line: string) => console.log(line));
  // one line, whatever a request sent: control characters (newlines, escapes) are shown as '?'
  const log = (line: string) => print(line.replace(/[\x00-\x1f\x7f]/g, '?'));
  const maxBody = options.maxBodyBytes ?? SERVE_LIMITS.bodyBytes;
  const page = fs.readFileSync(PAGE_FILE);
  const loopback = isLoopback(options.host);

  /** The request's route, or an HttpError; the log line's note is set on `note`. */
  async function handle(req: http.IncomingMessage, res: http.ServerResponse, note: { text: string }, signal: AbortSignal): Promise<void> {
    if (loopback) {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!isLoopback(host)) throw new HttpError(403, `this studio answers requests to localhost / 127.0.0.1 only, not to '${host.slice(0, 100)}'`);
    }
    const url = new URL(req.url ?? '/', 'http://studio');
    const route = url.pathname;
    const endpoint = Object.hasOwn(ENDPOINTS, route) ? ENDPOINTS[route] : undefined;
    const allowed = route === '/' || route === '/api/models' ? 'GET, HEAD' : endpoint ? 'POST' : null;
    if (!allowed) throw new HttpError(404, `no such page or endpoint: ${route.slice(0, 100)}; the API is /api/models, ${Object.keys(ENDPOINTS).join(', ')}`);
    if (!allowed.split(', ').includes(req.method ?? '')) {
      res.setHeader('Allow', allowed);
      throw new HttpError(405, `${req.method} ${route}: use ${allowed}`);
    }
    if (route === '/') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Length': page.length,
        'Content-Security-Policy': PAGE_POLICY,
        'Cache-Control': 'no-store',
      });
      res.end(page); // (no body for HEAD: Node leaves it out)
      return;
    }
    if (route === '/api/models') return sendJson(res, 200, describeModels(models));

    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpError(415, `${route} takes a JSON body: send Content-Type: application/json`);
    }
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `the request body is not JSON (${oneLine(e)})`);
    }
    const prepared = await endpoint!(body, models);
    const { model } = prepared;
    note.text = `model ${model.id}`;
    if (model.queue.full)
      throw new QueueFullError(
        `busy: model ${model.id} is serving a request and ${model.queue.maxWaiting} more are waiting (at most ${model.queue.maxWaiting}); try again shortly`,
      );

    const streaming = prepared.streams && /text\/event-stream/.test(req.headers.accept ?? '');
    if (!streaming) {
      const result = await model.queue.run(signal, () => prepared.run(signal, null));
      note.text = `model ${model.id}: ${result.summary}`;
      if (res.destroyed) return; // (a caption cannot be stopped midway; its client left)
      if ('png' in result) {
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': result.png.length, 'Cache-Control': 'no-store' });
        res.end(result.png);
      } else sendJson(res, 200, result.json);
      return;
    }
    // Streaming: from here on the status is 200 and a failure is an `error` event.
    const send = eventStream(res);
    const events: JobEvents = {
      queued: (position) => send('queued', { position }),
      progress: ({ arStep, arSteps, step, steps }) => send('progress', { arStep, arSteps, step, steps }),
      frame: (png, arStep) => send('frame', { arStep, image: dataUrl(png) }),
    };
    let result: ApiResult;
    try {
      result = await model.queue.run(signal, () => prepared.run(signal, events), events.queued);
    } catch (e) {
      if (signal.aborted) throw e;
      send('error', { error: oneLine(e), status: statusOf(e) });
      note.text = `model ${model.id}: ${statusOf(e)} ${oneLine(e)}`;
      res.end();
      return;
    }
    note.text = `model ${model.id}: ${result.summary}`;
    send('done', 'png' in result ? { image: dataUrl(result.png), summary: result.summary } : { ...result.json, summary: result.summary });
    res.end();
  }

  const server = http.createServer((req, res) => {
    const started = Date.now();
    const note = { text: '' };
    const controller = new AbortController();
    res.on('close', () => {
      const cancelled = !res.writableFinished;
      if (cancelled) controller.abort(new ClientGone('the client went away'));
      const status = cancelled ? 'cancelled' : String(res.statusCode);
      const route = (req.url ?? '').split('?')[0].slice(0, 200);
      log(`${new Date().toISOString()} ${req.method} ${route} ${status} ${Date.now() - started}ms${note.text ? ` ${note.text}` : ''}`);
    });
    handle(req, res, note, controller.signal).catch((e) => {
      if (controller.signal.aborted) return; // nobody to answer; logged as cancelled
      const status = statusOf(e);
      note.text = `${note.text ? `${note.text}: ` : ''}${oneLine(e)}`;
      if (status === 500 && process.env.CAUSALFUSION_DEBUG) console.error((e as Error).stack);
      // a refused body is not read on: close the connection once the answer is out
      sendJson(res, status, { error: oneLine(e) }, status === 413 ? { Connection: 'close' } : {});
      if (res.headersSent && !res.writableEnded) res.end();
    });
  });
  // a slow or stalled upload is cut off instead of holding a connection open
  server.requestTimeout = 60_000;

  return {
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const m of models) await m.close();
    },
  };
}
