import { describe, expect, it } from 'vitest';
import { apis, ApiKey, requestHeaderVersion, responseHeaderVersion } from '../../services/protocol/messages/index.js';
import { loadApis } from '../../services/protocol/messages/api-keys.js';

type Api = (typeof apis)[keyof typeof apis];
const all = Object.entries(apis as Record<number, Api>).map(([key, api]) => [Number(key), api] as const);

describe('api-keys.ts', () => {
  it("gives every API and version the header versions its messages' flexibility calls for", () => {
    for (const [key, api] of all) {
      for (let v = api.request.minVersion; v <= api.request.maxVersion; v++) {
        const request = key === ApiKey.ControlledShutdown && v === 0 ? 0 : api.request.isFlexible(v) ? 2 : 1;
        expect(requestHeaderVersion(key, v), `${api.name} v${v} request`).toBe(request);
        const response = key === ApiKey.ApiVersions ? 0 : api.response.isFlexible(v) ? 1 : 0;
        expect(responseHeaderVersion(key, v), `${api.name} v${v} response`).toBe(response);
      }
    }
  });

  it("loads the same codecs as index.ts's table, for the APIs asked only", async () => {
    const loaded = await loadApis([ApiKey.Produce, ApiKey.SaslHandshake]);
    expect([...loaded.keys()]).toEqual([ApiKey.Produce, ApiKey.SaslHandshake]);
    for (const [key, codecs] of loaded) {
      const api = (apis as Record<number, Api>)[key];
      expect(codecs).toEqual({
        name: api.name,
        request: api.request,
        response: api.response,
        decodeRequest: api.decodeRequest,
        encodeRequest: api.encodeRequest,
        decodeResponse: api.decodeResponse,
        encodeResponse: api.encodeResponse,
      });
    }
    await expect(loadApis([9999])).rejects.toThrow(/unknown api key/);
  });
});
