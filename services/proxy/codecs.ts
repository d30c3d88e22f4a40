// The codecs of the APIs Skiff speaks: what clients send a proxy and what a proxy sends brokers,
// the same set (versions.ts). Loaded by key rather than through messages/index.ts, which holds
// the codecs of all 88 APIs, 176 modules: the ones never used cost every process about 4 MB.
import { loadApis } from '../protocol/messages/api-keys.js';
import { SUPPORTED } from './versions.js';

export const codecs = await loadApis(SUPPORTED.keys());
