// The ObjectStore port: where every byte of partition data lives.
// Adapters: fs-object-store.ts (embedded, a local directory) and s3-object-store.ts (S3 API).
// A resolved put() means the object is durable; objects are immutable once written.

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  /**
   * A large write that others are waiting behind (segment rolls that have fallen behind): make
   * it fast rather than keep it from delaying smaller writes meanwhile. A function is asked
   * again as the write goes on.
   */
  bulk?: boolean | (() => boolean);
  /**
   * Nothing reads, lists for reading or replaces this key before the put resolves, and an
   * object a crash left partly written is never read: a WAL object, which only the commit
   * record written after its put makes visible (and which GC deletes when none does). An
   * adapter may then write it in place rather than make it appear at once; a retried put of
   * the key replaces whatever the failed one wrote.
   */
  unpublished?: boolean;
}

/**
 * Part of a put's body that is already stored: the bytes at [start, end) of the object `key`
 * in the same store. An adapter that can refer to stored bytes (a local directory, by hard
 * link) need not write them again; the others write `bytes`, which must be those same bytes.
 */
export interface StoredRange {
  key: string;
  start: number;
  end: number;
  bytes: Buffer[];
}

/** An object's bytes in order: callers hand over batches without concatenating them first. */
export type PutBody = Buffer | Array<Buffer | StoredRange>;

/** The body as plain buffers, for adapters that write every byte. */
export function bodyBuffers(body: PutBody): Buffer[] {
  if (Buffer.isBuffer(body)) return [body];
  const out: Buffer[] = [];
  for (const part of body) {
    if (Buffer.isBuffer(part)) out.push(part);
    else for (const b of part.bytes) out.push(b);
  }
  return out;
}

export interface ObjectStore {
  /** Writes the whole object; resolves once it is durable. Overwrites are not used by Skiff. */
  put(key: string, body: PutBody, options?: PutOptions): Promise<void>;
  /** Reads the object, or a byte range of it. Rejects with ObjectNotFoundError when absent. */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  /** Size of the object, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Deletes the object; deleting an absent object is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with prefix, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * The key of an unpublished put to come (the next WAL objects). An adapter whose puts create
   * files may create this one now, in the background, so that the put only writes its bytes;
   * until then list() and head() do not show it. The caller puts the key or gives it back
   * with unreserve(); close() gives back the rest (a crash leaves an empty object, an orphan
   * for GC). Optional: S3 has nothing to prepare.
   */
  reserve?(key: string): void;
  /** Gives back a reservation that will not be put: whatever it made is removed. */
  unreserve?(key: string): Promise<void>;
  close(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
  }
}
