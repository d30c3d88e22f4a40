// Until a process is ready it mostly creates what it keeps: modules, clients, the topic and
// assignment tables. V8 reads that survival as a young generation too small for the load and
// doubles it, three times over during a proxy's start, to 16 MB; an idle process keeps all of
// it, since no collection runs to shrink it back. Growth is held off from the moment this
// module is loaded (main.ts loads it first) until releaseYoungGeneration(), called once the
// process is ready (by `skiff dev` once its modules are loaded, before it recovers partitions):
// that saves a proxy about 7 MB, and the load that follows grows the young generation as usual.
// V8 reads the factor each time it would grow, so setting it at run time takes effect at once.
import { setFlagsFromString } from 'node:v8';

/** V8's default (`node --v8-options`). */
const DEFAULT_GROWTH_FACTOR = 2;

/** An operator's own setting (`node --semi-space-growth-factor=N`) wins: then nothing is changed. */
const setByUser = process.execArgv.some((a) => /semi[-_]space[-_]growth[-_]factor/.test(a));

let held = false;
if (!setByUser) {
  setFlagsFromString('--semi-space-growth-factor=1');
  held = true;
}

/** Lets the young generation grow again, as V8 sees fit. */
export function releaseYoungGeneration(): void {
  if (!held) return;
  held = false;
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
}
