// Golden frames: every fixture under test/protocol/fixtures/ was captured from a real client or
// broker by tools/record-frames.mjs. Each must decode with the header and body codec of its API
// version, leave no byte unread, and encode back to exactly the bytes on the wire.
// The recording proxy itself is tested here too, since these tests read what it writes.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Reader, Writer } from '../../services/protocol/primitives.js';
import { ApiKey, apis, requestHeaderVersion, responseHeaderVersion } from '../../services/protocol/messages/index.js';
import { decodeRequestHeader, encodeRequestHeader } from '../../services/protocol/messages/request-header.js';
import { decodeResponseHeader, encodeResponseHeader } from '../../services/protocol/messages/response-header.js';
import { defaultApiVersionsResponse } from '../../services/protocol/messages/api-versions-response.js';
import { defaultMetadataResponse } from '../../services/protocol/messages/metadata-response.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const RECORDER = fileURLToPath(new URL('../../tools/record-frames.mjs', import.meta.url));
/** <client>_<api>_<request|response>_v<N>_<NNN>.<bin|hex>, as tools/record-frames.mjs names them. */
const FIXTURE_NAME = /^([A-Za-z0-9-]+)_([a-z0-9_]+)_(request|response)_v(\d+)_(\d+)\.(bin|hex)$/;

type Api = (typeof apis)[keyof typeof apis];
const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
const apiKeyByName = new Map(Object.entries(ApiKey).map(([name, key]) => [snake(name), key as number]));
const apiOf = (key: number): Api => (apis as Record<number, Api>)[key];

interface Fixture {
  file: string;
  api: string;
  kind: 'request' | 'response';
  version: number;
}

function parseName(file: string): Fixture {
  const m = FIXTURE_NAME.exec(file);
  if (!m) throw new Error(`${file} is not named <client>_<api>_<request|response>_v<N>_<NNN>.<bin|hex>`);
  return { file, api: m[2], kind: m[3] as Fixture['kind'], version: Number(m[4]) };
}

function readFrame(dir: string, file: string): Buffer {
  const data = readFileSync(join(dir, file));
  return file.endsWith('.hex') ? Buffer.from(data.toString('utf8').replace(/\s+/g, ''), 'hex') : data;
}

/** Decodes one size-prefixed frame and checks that re-encoding it gives the same bytes. */
function checkFrame(frame: Buffer, { api, kind, version }: Fixture): void {
  const apiKey = apiKeyByName.get(api);
  if (apiKey === undefined) throw new Error(`no API named ${api}`);
  const codec = apiOf(apiKey);
  const info = kind === 'request' ? codec.request : codec.response;
  expect(version, `${api} v${version} is outside ${info.minVersion}..${info.maxVersion}`).toBeGreaterThanOrEqual(info.minVersion);
  expect(version).toBeLessThanOrEqual(info.maxVersion);
  expect(frame.readInt32BE(0), 'size prefix').toBe(frame.length - 4);

  const r = new Reader(frame, 4);
  const w = new Writer().int32(0);
  if (kind === 'request') {
    const headerVersion = requestHeaderVersion(apiKey, version);
    const header = decodeRequestHeader(r, headerVersion);
    expect(header.requestApiKey).toBe(apiKey);
    expect(header.requestApiVersion).toBe(version);
    // The codecs are typed per API; a fixture's API is only known at run time.
    const body = (codec.decodeRequest as (r: Reader, v: number) => unknown)(r, version);
    encodeRequestHeader(w, headerVersion, header);
    (codec.encodeRequest as (w: Writer, v: number, m: unknown) => Writer)(w, version, body);
  } else {
    const headerVersion = responseHeaderVersion(apiKey, version);
    const header = decodeResponseHeader(r, headerVersion);
    const body = (codec.decodeResponse as (r: Reader, v: number) => unknown)(r, version);
    encodeResponseHeader(w, headerVersion, header);
    (codec.encodeResponse as (w: Writer, v: number, m: unknown) => Writer)(w, version, body);
  }
  expect(r.remaining, 'bytes left after the body').toBe(0);
  const again = w.toBuffer();
  again.writeInt32BE(again.length - 4, 0);
  expect(again.toString('hex')).toBe(frame.toString('hex'));
}

const fixtureFiles = (() => {
  try {
    return readdirSync(FIXTURES).filter((f) => /\.(bin|hex)$/.test(f)).sort();
  } catch {
    return []; // the directory test below reports it
  }
})();

describe('header versions', () => {
  it('follow flexibility, with ApiVersions responses and ControlledShutdown v0 requests as the exceptions', () => {
    expect(requestHeaderVersion(ApiKey.Metadata, 8)).toBe(1);
    expect(requestHeaderVersion(ApiKey.Metadata, 9)).toBe(2);
    expect(requestHeaderVersion(ApiKey.ControlledShutdown, 0)).toBe(0);
    expect(responseHeaderVersion(ApiKey.Metadata, 8)).toBe(0);
    expect(responseHeaderVersion(ApiKey.Metadata, 9)).toBe(1);
    expect(responseHeaderVersion(ApiKey.ApiVersions, 3)).toBe(0);
    expect(() => requestHeaderVersion(9999, 0)).toThrow(/unknown api key/);
  });
});

describe('golden frames in test/protocol/fixtures', () => {
  it(`reads the fixture directory, which holds ${fixtureFiles.length} frames named by api, direction and version`, () => {
    expect(() => accessSync(FIXTURES, constants.R_OK)).not.toThrow();
    for (const file of fixtureFiles) expect(() => parseName(file)).not.toThrow();
  });

  it.each(fixtureFiles)('%s decodes and re-encodes byte for byte', (file) => {
    checkFrame(readFrame(FIXTURES, file), parseName(file));
  });
});

// ---------------------------------------------------------------------------------------------
// The recording proxy, between a raw-socket client and a fake broker built on the same codecs.

function frameOf(write: (w: Writer) => void): Buffer {
  const w = new Writer().int32(0);
  write(w);
  const b = w.toBuffer();
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

function request(apiKey: number, version: number, correlationId: number, body: unknown): Buffer {
  return frameOf((w) => {
    encodeRequestHeader(w, requestHeaderVersion(apiKey, version), {
      requestApiKey: apiKey,
      requestApiVersion: version,
      correlationId,
      clientId: 'golden-test',
    });
    (apiOf(apiKey).encodeRequest as (w: Writer, v: number, m: unknown) => Writer)(w, version, body);
  });
}

/** Splits a byte stream into frames. */
function onFrames(socket: Socket, handle: (frame: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const size = 4 + buf.readInt32BE(0);
      handle(buf.subarray(0, size));
      buf = buf.subarray(size);
    }
  });
}

/**
 * Answers ApiVersions and Metadata. It waits for `expected` requests and answers them in reverse
 * order, each response in two writes, so that the proxy has to pair by correlation id and
 * reassemble frames.
 */
function fakeBroker(expected: number): Promise<Server> {
  const server = createServer((socket) => {
    const answers: Buffer[] = [];
    onFrames(socket, (frame) => {
      const apiKey = frame.readInt16BE(4);
      const version = frame.readInt16BE(6);
      const r = new Reader(frame, 4);
      const header = decodeRequestHeader(r, requestHeaderVersion(apiKey, version));
      (apiOf(apiKey).decodeRequest as (r: Reader, v: number) => unknown)(r, version);
      const body =
        apiKey === ApiKey.ApiVersions
          ? {
              ...defaultApiVersionsResponse(),
              apiKeys: Object.values(apis).map((a) => ({ apiKey: a.request.apiKey, minVersion: a.request.minVersion, maxVersion: a.request.maxVersion })),
            }
          : { ...defaultMetadataResponse(), brokers: [{ nodeId: 1, host: '127.0.0.1', port: 9092, rack: null }], controllerId: 1 };
      answers.push(
        frameOf((w) => {
          encodeResponseHeader(w, responseHeaderVersion(apiKey, version), { correlationId: header.correlationId });
          (apiOf(apiKey).encodeResponse as (w: Writer, v: number, m: unknown) => Writer)(w, version, body);
        }),
      );
      if (answers.length === expected) {
        for (const a of answers.reverse()) {
          socket.write(a.subarray(0, 3));
          socket.write(a.subarray(3));
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('tools/record-frames.mjs', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanup.splice(0).reverse()) c();
  });

  it.each(['raw', 'hex'] as const)(
    'records each request and its response as a %s fixture that decodes byte for byte',
    async (format) => {
      const out = mkdtempSync(join(tmpdir(), 'skiff-frames-'));
      cleanup.push(() => rmSync(out, { recursive: true, force: true }));
      const broker = await fakeBroker(3);
      cleanup.push(() => broker.close());
      const target = `127.0.0.1:${(broker.address() as AddressInfo).port}`;

      const proxy: ChildProcess = spawn(process.execPath, [RECORDER, '--listen', '127.0.0.1:0', '--target', target, '--out', out, '--client', 'golden_test', '--format', format], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      cleanup.push(() => proxy.kill());
      let stdout = '';
      let stderr = '';
      proxy.stdout!.on('data', (c) => (stdout += c));
      proxy.stderr!.on('data', (c) => (stderr += c));
      const until = async (what: () => boolean, label: string) => {
        for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
        if (!what()) throw new Error(`timed out waiting for ${label}; proxy said: ${stdout}${stderr}`);
      };
      await until(() => /listening on [^:]+:(\d+)/.test(stdout), 'the proxy to listen');
      const port = Number(/listening on [^:]+:(\d+)/.exec(stdout)![1]);

      const sent = [
        request(ApiKey.ApiVersions, 3, 11, { clientSoftwareName: 'skiff-golden', clientSoftwareVersion: '1.0' }),
        request(ApiKey.Metadata, 1, 12, { topics: null }),
        request(ApiKey.ApiVersions, 0, 13, {}),
      ];
      const received: Buffer[] = [];
      const client = connect(port, '127.0.0.1');
      cleanup.push(() => client.destroy());
      onFrames(client, (f) => received.push(Buffer.from(f)));
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      // Two frames in one write, then one frame a byte at a time.
      client.write(Buffer.concat([sent[0], sent[1]]));
      for (const b of sent[2]) client.write(Buffer.of(b));

      await until(() => received.length === 3, 'three responses');
      await until(() => (stdout.match(/^recorded /gm) ?? []).length === 6, 'six recorded frames');
      expect(received.map((f) => f.readInt32BE(4))).toEqual([13, 12, 11]);

      const ext = format === 'raw' ? 'bin' : 'hex';
      const files = readdirSync(out).sort();
      expect(files).toEqual(
        [
          `golden-test_api_versions_request_v0_000.${ext}`,
          `golden-test_api_versions_request_v3_000.${ext}`,
          `golden-test_api_versions_response_v0_000.${ext}`,
          `golden-test_api_versions_response_v3_000.${ext}`,
          `golden-test_metadata_request_v1_000.${ext}`,
          `golden-test_metadata_response_v1_000.${ext}`,
        ].sort(),
      );
      expect(readFrame(out, `golden-test_api_versions_request_v3_000.${ext}`).equals(sent[0])).toBe(true);
      expect(readFrame(out, `golden-test_metadata_response_v1_000.${ext}`).equals(received[1])).toBe(true);
      for (const file of files) checkFrame(readFrame(out, file), parseName(file));
      expect(stderr).toBe('');
    },
  );
});
