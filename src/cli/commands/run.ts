import type { CommandModule } from 'yargs';
import { withConfigOptions } from '../config-file';
import { BackendChoice } from '../../model/types';
import { MAX_DURATION_MS, parseDuration } from '../../model/health';
import { Controller } from '../../controller/controller';
import { LOG_FORMATS, LogFormat, createLogger } from '../../controller/log';
import { parseListen } from '../../controller/metrics';
import { Lock } from '../../records/lock';
import { setRecordReporter } from '../../records/netns';
import { refuseWhatCannotRun } from '../../controller/preflight';
import { loadConfigFile } from '../../model/load';
import { waitMs, withWaitOption } from '../writer';

interface Args {
  file: string;
  backend?: BackendChoice;
  'log-format': LogFormat;
  metrics: string;
  resync?: string;
  wait: string;
}

export const DEFAULT_METRICS = '127.0.0.1:9469';

/** --resync in milliseconds: at least 100ms, at most a day (Node fires a longer timer at once). */
function resyncOf(text: string): number | undefined {
  const ms = parseDuration(text);
  return ms !== undefined && ms >= 100 && ms <= MAX_DURATION_MS ? ms : undefined;
}

export const runCommand: CommandModule<object, Args> = {
  command: 'run',
  describe:
    "Apply the config and keep the kernel matching it: health checks set weights, SIGHUP or saving the file reloads, changes made behind slbctl's back are repaired",
  builder: (y) =>
    withWaitOption(withConfigOptions(y))
      .option('log-format', {
        choices: LOG_FORMATS,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'text' as LogFormat,
        describe: 'text: one readable line an event; json: one JSON object a line',
      })
      .option('metrics', {
        type: 'string',
        default: DEFAULT_METRICS,
        describe: 'address:port for the Prometheus /metrics endpoint; "off" for none',
      })
      .option('resync', {
        type: 'string',
        describe: 'how often the kernel is compared with the config, e.g. 500ms (default: the shortest check interval, at least 1s)',
      })
      // Bad values are usage errors, refused before anything starts.
      .check((a) => {
        if (a.metrics !== 'off' && !parseListen(a.metrics))
          throw new Error(`--metrics ${JSON.stringify(a.metrics)} is not address:port (e.g. ${DEFAULT_METRICS}) or off`);
        if (a.resync !== undefined && resyncOf(a.resync) === undefined)
          throw new Error(`--resync ${JSON.stringify(a.resync)} is not a duration from 100ms to one day (e.g. "500ms", "2s")`);
        return true;
      })
      .epilogue(
        'Signals: SIGHUP reloads the file, SIGUSR1 re-applies now, SIGTERM/SIGINT stop checking (the kernel keeps serving what is programmed; `slbctl destroy` removes it).',
      ),
  handler: async (args) => {
    const metrics = args.metrics === 'off' ? undefined : parseListen(args.metrics);
    const resyncMs = args.resync === undefined ? undefined : resyncOf(args.resync);
    const wait = waitMs(args.wait);
    // What would stop the controller is refused first, before it takes the namespace (nothing changed, exit 3).
    refuseWhatCannotRun(loadConfigFile(args.file));
    // One controller per namespace, for its whole life; apply and destroy refuse while it runs.
    const controllerLock = await Lock.acquire('controller', wait);
    const logger = createLogger(args['log-format']);
    // A record left by a dead namespace with this one's inode is reported in the log, not as a stray stderr line.
    setRecordReporter((m) => logger.log('warn', 'record', m));
    // Signals are taken from the start: SIGUSR1's default action would end the process.
    // Signal handlers read it before it is set: a const would throw there (temporal dead zone) instead of seeing undefined.
    // eslint-disable-next-line prefer-const
    let controller: Controller | undefined;
    let stopping = false;
    process.on('SIGHUP', () => void controller?.reload('SIGHUP'));
    process.on('SIGUSR1', () => void controller?.reconcile('SIGUSR1'));
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.log('info', 'stop', `${signal}: stopping; the kernel keeps serving what is programmed`);
        if (controller) void controller.stop().then(resolve);
        else resolve();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    controller = await Controller.start({
      file: args.file,
      logger,
      waitMs: wait,
      ...(args.backend ? { backend: args.backend } : {}),
      ...(metrics ? { metrics } : {}),
      ...(resyncMs ? { resyncMs } : {}),
    });
    if (stopping) await controller.stop();
    await stopped;
    controllerLock.release();
  },
};
