// Runs the embedded default (`skiff dev`) inside the test process on free ports and a temp
// data directory, with its logs captured for assertions.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { runDev, type Running } from '../../services/cli/dev.js';
import { SETTINGS } from '../../services/cli/config.js';

const camel = (key: string) => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export interface Embedded extends Running {
  dataDir: string;
  logs: string[];
  restart(): Promise<Embedded>;
  destroy(): Promise<void>;
}

export async function startEmbedded(overrides: Record<string, string | number | boolean> = {}, dataDir?: string): Promise<Embedded> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'skiff-test-')));
  const c: Record<string, string | number | boolean> = {};
  for (const s of SETTINGS) c[camel(s.key)] = s.kind === 'int' ? Number(s.default) : s.kind === 'bool' ? s.default === 'true' : s.default;
  Object.assign(c, { dataDir: dir, port: 0, httpPort: 0, host: '127.0.0.1', groupInitialRebalanceDelayMs: 50 }, overrides);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const running = await runDev(c, pino({ level: 'debug' }, sink));
  const self: Embedded = {
    ...running,
    dataDir: dir,
    logs,
    async restart() {
      await running.stop();
      return startEmbedded(overrides, dir);
    },
    async destroy() {
      await running.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
