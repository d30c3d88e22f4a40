#!/usr/bin/env node
// The `skiff` command. `skiff dev` runs everything in one process (what `npm start` runs);
// `skiff config --markdown` prints the settings table and `skiff metrics --markdown` the
// metrics; `skiff partitions` shows partition states from a running process.
// First, so that no module loaded after it grows the young generation (young-generation.ts).
import { releaseYoungGeneration } from './young-generation.js';
import { Command } from 'commander';
import { pino } from 'pino';
import { addSettings, resolveSettings, settingsMarkdown, ConfigError, type Resolved } from './config.js';

const program = new Command('skiff').description('Kafka-compatible message queue on object storage');

function logger(level: string) {
  return pino({ level, base: { service: 'skiff' } });
}

function shutdownOn(stop: () => Promise<void>, log: ReturnType<typeof logger>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

/** Resolves settings (exit 2 on invalid ones), sets up logging and runs a process kind. */
function serve(scope: 'dev' | 'broker' | 'proxy', run: (c: Resolved, log: ReturnType<typeof logger>) => Promise<{ stop(): Promise<void>; drain?(): Promise<void> }>) {
  return async (opts: Record<string, string>) => {
    let c: Resolved;
    try {
      c = resolveSettings(opts, scope);
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`skiff: ${err.message}`);
        process.exit(2);
      }
      throw err;
    }
    const log = logger(String(c.logLevel));
    process.on('uncaughtException', (err) => log.fatal({ err }, 'uncaught exception'));
    process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
    let running;
    try {
      running = await run(c, log);
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`skiff: ${err.message}`);
        process.exit(2);
      }
      throw err;
    } finally {
      releaseYoungGeneration();
    }
    shutdownOn(running.drain ?? running.stop, log);
  };
}

// Each command loads only its own modules (the embedded mode never loads etcd, NATS or the AWS SDK).
const dev = async () => (await import('./dev.js')).runDev;
const cluster = async () => import('./cluster.js');

addSettings(program.command('dev').description('proxy, broker and coordinator in one process on a local data directory'), 'dev').action(
  serve('dev', async (c, log) => {
    const runDev = await dev();
    // Its start recovers every partition from the data directory, which is garbage as much as
    // state: from here on V8 sizes the young generation as usual.
    releaseYoungGeneration();
    return runDev(c, log);
  }),
);

addSettings(program.command('broker').description('cluster mode: a broker on etcd, NATS and S3'), 'broker').action(
  serve('broker', async (c, log) => (await cluster()).runBroker(c, log)),
);

addSettings(program.command('proxy').description('cluster mode: a stateless Kafka proxy'), 'proxy').action(
  serve('proxy', async (c, log) => (await cluster()).runProxy(c, log)),
);

program
  .command('cluster')
  .description('brokers, proxies, controller and assignments of a cluster')
  .option('--etcd <urls>', 'etcd endpoints', process.env.SKIFF_ETCD ?? 'http://127.0.0.1:2379')
  .option('--json', 'as JSON')
  .action(async (opts: { etcd: string; json?: boolean }) => (await cluster()).printCluster(opts));

program
  .command('config')
  .description('print every setting with its flag, variable and default')
  .option('--markdown', 'as a Markdown table')
  .action(() => console.log(settingsMarkdown()));

program
  .command('metrics')
  .description("print Skiff's own Prometheus metrics with their labels and meaning")
  .option('--markdown', 'as a Markdown table')
  .action(async () => console.log((await import('./metrics-doc.js')).metricsMarkdown()));

program
  .command('partitions')
  .description('partition states of a running process')
  .option('--admin <url>', 'its HTTP endpoint', process.env.SKIFF_ADMIN_URL ?? 'http://localhost:9644')
  .action(async (opts: { admin: string }) => {
    const res = await fetch(`${opts.admin}/v1/partitions`);
    const rows = (await res.json()) as { topic: string; partition: number; state: string; logStartOffset: number; highWatermark: number; extents: number }[];
    console.log(['TOPIC', 'PARTITION', 'STATE', 'LOG-START', 'HIGH-WATERMARK', 'EXTENTS'].join('\t'));
    for (const r of rows) console.log([r.topic, r.partition, r.state, r.logStartOffset, r.highWatermark, r.extents].join('\t'));
  });

program.parseAsync().catch((err) => {
  console.error(err);
  process.exit(1);
});
