import { Command } from 'commander';
import { UsageError } from '../errors';
import { parseRuntimeFlags } from '../runtime-flags';
import { SERVE_LIMITS } from '../serve/api';
import { loadStudioModels } from '../serve/models';
import { createStudio, isLoopback } from '../serve/server';

interface ServeFlags {
  model?: string[];
  port: string;
  host: string;
  threads?: string;
}

/** --port: 0 (any free port) to 65535. */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || port > 65535) throw new UsageError(`--port: expected 0 to 65535 (0: any free port), got '${value}'`);
  return port;
}

/**
 * `causalfusion serve`: the studio, a local web page over the CLI's own functions: sample and watch the AR
 * steps fill the image, paint a mask and edit, text-to-image and captions. It serves the shipped models
 * and the `--model` folders, on loopback unless told otherwise, until Ctrl-C (or SIGTERM).
 */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('the studio: a local web page to sample (watching the AR steps), paint a mask and edit, generate from a prompt and caption')
    .option('--model <dir...>', 'model folders to serve besides the shipped ones (class-conditional, or multimodal); requests reach no other path')
    .option('--port <n>', 'port to listen on (0: any free port)', '8080')
    .option('--host <address>', 'address to listen on; anything but loopback (127.0.0.1, ::1, localhost) opens the studio to the network', '127.0.0.1')
    .option('--threads <n>', 'onnxruntime CPU threads of a class-conditional model (default: the cores, at most 4)')
    .action(async (flags: ServeFlags) => {
      const port = parsePort(flags.port);
      const runtime = parseRuntimeFlags({ threads: flags.threads });
      const models = loadStudioModels(flags.model ?? [], runtime, SERVE_LIMITS.queue);
      if (!models.length) throw new UsageError('no models to serve: the shipped ones are not trained; give --model DIR');
      if (!isLoopback(flags.host)) {
        process.stderr.write(
          `warning: --host ${flags.host} serves the studio to the network: it has no login, so anyone who can reach this address can use it and this machine's CPU\n`,
        );
      }
      const studio = createStudio({ models, host: flags.host });
      await new Promise<void>((resolve, reject) => {
        studio.server.once('error', (e: NodeJS.ErrnoException) => {
          if (e.code === 'EADDRINUSE') reject(new UsageError(`--port: ${port} is in use on ${flags.host}; choose another, or --port 0 for any free one`));
          else reject(new UsageError(`--host: cannot listen on ${flags.host}:${port} (${e.code ?? e.message})`));
        });
        studio.server.listen(port, flags.host, resolve);
      });
      const address = studio.server.address();
      const actual = typeof address === 'object' && address ? address.port : port;
      const host = flags.host.includes(':') && !flags.host.startsWith('[') ? `[${flags.host}]` : flags.host;
      for (const m of models) console.log(`model ${m.id}: ${m.name}, ${m.folder.dir}`);
      console.log(`causalfusion studio: http://${host}:${actual}/ (Ctrl-C stops it)`);
      // Serve until a signal, then close the connections and free the models.
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          console.log(`${signal}: stopping`);
          studio.close().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
