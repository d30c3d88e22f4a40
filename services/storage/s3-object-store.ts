// S3ObjectStore: the ObjectStore adapter for any S3-compatible service (AWS, MinIO, s3rver).
// It owns the retry policy (backoff with jitter on throttling, 5xx, network errors, timeouts),
// multipart uploads for large bodies, and the rule that put() resolves only once S3 has the object.

import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { storageMetrics as m } from './metrics.js';
import { ObjectNotFoundError, bodyBuffers, type ByteRange, type ObjectInfo, type ObjectStore, type PutBody } from './object-store.js';

export interface S3ObjectStoreOptions {
  /** e.g. http://127.0.0.1:9000 for MinIO or s3rver; unset for AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Unset: the SDK's default credential chain (environment, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** Prepended to every key, so several clusters can share a bucket. */
  prefix?: string;
  /** Bodies larger than this go through a multipart upload. Default 64 MiB. */
  multipartThresholdBytes?: number;
  /** Multipart part size; S3 wants at least 5 MiB for all but the last part. Default 16 MiB. */
  partSizeBytes?: number;
  /** Attempts per request (the first try included) before giving up. Default 8. */
  maxAttempts?: number;
  /** Per-attempt time limit for a request, and idle limit for its socket. Default 30000. */
  requestTimeoutMs?: number;
  /** First retry delay cap; doubles per attempt. Default 100. */
  baseBackoffMs?: number;
  /** Retry delay cap. Default 10000. */
  maxBackoffMs?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). Default 1000. */
  listPageSize?: number;
  /** Parts uploaded at once in a multipart upload. Default 4. */
  partConcurrency?: number;
  logger?: Logger;
}

export class ObjectStoreClosedError extends Error {
  constructor() {
    super('object store is closed');
    this.name = 'ObjectStoreClosedError';
  }
}

/** A request that kept failing with retryable errors until maxAttempts ran out. */
export class S3RetriesExhaustedError extends Error {
  constructor(readonly operation: string, readonly key: string, readonly attempts: number, cause: unknown) {
    super(`${operation} ${key} failed after ${attempts} attempts: ${describe(cause)}`, { cause: quiet(cause) });
    this.name = 'S3RetriesExhaustedError';
  }
}

/** The response body was shorter than its Content-Length: the connection died mid-body. */
export class S3TruncatedBodyError extends Error {
  constructor(readonly key: string, expected: number, got: number) {
    super(`truncated body for ${key}: expected ${expected} bytes, got ${got}`);
    this.name = 'S3TruncatedBodyError';
  }
}

const MAX_PARTS = 10_000;

export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly maxAttempts: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly partConcurrency: number;
  private readonly listPageSize: number;
  private readonly logger: Logger | undefined;
  private readonly aborter = new AbortController();
  private closed = false;

  constructor(options: S3ObjectStoreOptions) {
    const timeout = options.requestTimeoutMs ?? 30_000;
    this.bucket = options.bucket;
    this.keyPrefix = options.prefix ?? '';
    this.multipartThreshold = options.multipartThresholdBytes ?? 64 * 1024 * 1024;
    this.partSize = options.partSizeBytes ?? 16 * 1024 * 1024;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 8);
    this.baseBackoffMs = options.baseBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 4);
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.logger = options.logger;
    // Every in-flight request listens on this one signal; hundreds at once are normal.
    setMaxListeners(Infinity, this.aborter.signal);
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials:
        options.accessKeyId !== undefined
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey ?? '' }
          : undefined,
      // Flexible checksums are not understood by s3rver and some S3-compatible stores; puts
      // carry Content-MD5 instead, which every implementation checks.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Retries are ours (withRetries): one policy, visible in logs, and aware of close().
      maxAttempts: 1,
      requestHandler: {
        connectionTimeout: Math.min(timeout, 10_000),
        requestTimeout: timeout,
        throwOnRequestTimeout: true,
        socketTimeout: timeout,
        httpAgent: { keepAlive: true, maxSockets: 64 },
        httpsAgent: { keepAlive: true, maxSockets: 64 },
      },
    });
    // One count per request sent: the SDK does not retry (maxAttempts 1), so retries, the
    // parts of a multipart upload and the pages of a listing are each counted.
    this.client.middlewareStack.add(
      (next, context) => (args) => {
        m.requests.inc({ store: 's3', request: String(context.commandName ?? 'unknown').replace(/Command$/, '') });
        return next(args);
      },
      { step: 'initialize', name: 'skiffRequestCount' },
    );
  }

  /** Creates the bucket unless it already exists. */
  async ensureBucket(): Promise<void> {
    const Bucket = this.bucket;
    try {
      await this.withRetries('HeadBucket', Bucket, () => this.client.send(new HeadBucketCommand({ Bucket }), this.sendOpts()));
      return;
    } catch (err) {
      if (!isNotFound(err) && errName(err) !== 'NoSuchBucket') throw err;
    }
    try {
      await this.withRetries('CreateBucket', Bucket, () => this.client.send(new CreateBucketCommand({ Bucket }), this.sendOpts()));
    } catch (err) {
      // Someone else (another broker starting at the same time) created it first.
      if (errName(err) !== 'BucketAlreadyOwnedByYou') throw err;
    }
  }

  async put(key: string, parts: PutBody): Promise<void> {
    // The network is the bottleneck here; one contiguous body keeps MD5 and retries simple.
    // (Stored ranges are uploaded again: server-side copy needs parts of 5 MiB or more.)
    const body = Buffer.isBuffer(parts) ? parts : Buffer.concat(bodyBuffers(parts));
    if (body.length > this.multipartThreshold) {
      await this.putMultipart(key, body);
      return;
    }
    const Key = this.keyPrefix + key;
    const ContentMD5 = md5(body);
    await this.withRetries('PutObject', key, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length, ContentMD5 }),
        this.sendOpts(),
      ),
    );
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    // HTTP cannot ask for zero bytes; an empty range is answered without a request.
    if (range && range.end <= range.start) return Buffer.alloc(0);
    const Key = this.keyPrefix + key;
    const Range = range ? `bytes=${Math.max(0, range.start)}-${range.end - 1}` : undefined;
    try {
      return await this.withRetries('GetObject', key, async () => {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }), this.sendOpts());
        if (!res.Body) return Buffer.alloc(0);
        const bytes = await res.Body.transformToByteArray();
        const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        if (res.ContentLength !== undefined && buf.length !== res.ContentLength) {
          throw new S3TruncatedBodyError(key, res.ContentLength, buf.length);
        }
        return buf;
      });
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      // A range starting at or past the end: clamped to nothing, as FsObjectStore does.
      if (httpStatus(err) === 416 || errName(err) === 'InvalidRange') return Buffer.alloc(0);
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.keyPrefix + key;
    try {
      const res = await this.withRetries('HeadObject', key, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), this.sendOpts()),
      );
      return { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.keyPrefix + key;
    try {
      await this.withRetries('DeleteObject', key, () =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), this.sendOpts()),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let ContinuationToken: string | undefined;
    do {
      const res = await this.withRetries('ListObjectsV2', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            ContinuationToken,
            MaxKeys: this.listPageSize,
          }),
          this.sendOpts(),
        ),
      );
      for (const obj of res.Contents ?? []) {
        if (obj.Key === undefined) continue;
        out.push({
          key: obj.Key.slice(this.keyPrefix.length),
          size: obj.Size ?? 0,
          lastModified: obj.LastModified ?? new Date(0),
        });
      }
      ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (ContinuationToken);
    // S3 lists in byte order, but not every S3-compatible server does (s3rver puts 'a/b/c'
    // before 'a/b'); the port promises key order, so make sure of it.
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.aborter.abort();
    this.client.destroy();
  }

  private async putMultipart(key: string, body: Buffer): Promise<void> {
    const Key = this.keyPrefix + key;
    const Bucket = this.bucket;
    const partSize = Math.max(this.partSize, Math.ceil(body.length / MAX_PARTS));
    const created = await this.withRetries('CreateMultipartUpload', key, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket, Key }), this.sendOpts()),
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new S3RetriesExhaustedError('CreateMultipartUpload', key, 1, new Error('no UploadId in response'));
    try {
      const count = Math.ceil(body.length / partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          const i = next++;
          const chunk = body.subarray(i * partSize, Math.min(body.length, (i + 1) * partSize));
          const PartNumber = i + 1;
          const ContentMD5 = md5(chunk);
          const res = await this.withRetries(`UploadPart ${PartNumber}/${count}`, key, () =>
            this.client.send(
              new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: chunk, ContentLength: chunk.length, ContentMD5 }),
              this.sendOpts(),
            ),
          );
          parts[i] = { PartNumber, ETag: res.ETag };
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.partConcurrency, count) }, worker));
      let attempted = false;
      await this.withRetries('CompleteMultipartUpload', key, async () => {
        try {
          await this.client.send(
            new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
            this.sendOpts(),
          );
        } catch (err) {
          // The previous attempt may have completed the upload and lost only its response;
          // the upload id is then gone, and the object is there with our size.
          if (attempted && errName(err) === 'NoSuchUpload') {
            const head = await this.client.send(new HeadObjectCommand({ Bucket, Key }), this.sendOpts());
            if (head.ContentLength === body.length) return;
          }
          throw err;
        } finally {
          attempted = true;
        }
      });
    } catch (err) {
      // Parts of an abandoned upload are billed until aborted.
      if (!this.closed) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }), this.sendOpts())
          .catch((abortErr: unknown) => this.logger?.warn({ err: abortErr, key }, 'could not abort multipart upload'));
      }
      throw err;
    }
  }

  private sendOpts(): { abortSignal: AbortSignal } {
    return { abortSignal: this.aborter.signal };
  }

  private async withRetries<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new ObjectStoreClosedError();
      try {
        return await fn();
      } catch (err) {
        if (this.closed) throw new ObjectStoreClosedError();
        if (!isRetryable(err)) throw err;
        if (attempt >= this.maxAttempts) throw new S3RetriesExhaustedError(operation, key, attempt, err);
        // Full jitter: spreads retries of many brokers hitting the same throttled prefix.
        const cap = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (attempt - 1));
        const delay = Math.random() * cap;
        this.logger?.warn({ operation, key, attempt, delayMs: Math.round(delay), err: describe(err) }, 'S3 request failed, retrying');
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.aborter.signal;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'ProvisionedThroughputExceededException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
]);

/**
 * Everything is retried except a definite client-side refusal (4xx other than timeouts and
 * throttling): a request that died without a verdict (network error, timeout, garbled
 * response) may be repeated, since every request we send is idempotent.
 */
function isRetryable(err: unknown): boolean {
  if (err instanceof S3TruncatedBodyError) return true;
  if (RETRYABLE_NAMES.has(errName(err) ?? '')) return true;
  const status = httpStatus(err);
  if (status === undefined) return true;
  return status >= 500 || status === 408 || status === 429;
}

/** A missing bucket is a configuration error, not a missing object, so it is never mapped to one. */
function isNotFound(err: unknown): boolean {
  const name = errName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

function errName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  return meta?.httpStatusCode;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = httpStatus(err);
  const code = (err as NodeJS.ErrnoException).code;
  return `${err.name}${status ? ` (HTTP ${status})` : ''}${code ? ` [${code}]` : ''}: ${err.message}`;
}

/** SDK errors carry the whole HTTP response (sockets, agents); keep it, but out of logs and test output. */
function quiet(err: unknown): unknown {
  if (err && typeof err === 'object' && '$response' in err) {
    Object.defineProperty(err, '$response', { enumerable: false });
  }
  return err;
}

function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('base64');
}
