// The broker's Prometheus metrics. One registry per process (prom-client's default), so
// the embedded mode exposes broker and proxy metrics on one /metrics.
import { Counter, Gauge, Histogram } from 'prom-client';

export const brokerMetrics = {
  bytesIn: new Counter({ name: 'skiff_broker_bytes_in_total', help: 'Record-batch bytes appended to partitions' }),
  recordsIn: new Counter({ name: 'skiff_broker_records_in_total', help: 'Records appended to partitions' }),
  bytesOut: new Counter({ name: 'skiff_broker_bytes_out_total', help: 'Record-batch bytes served to fetches', labelNames: ['source'] }),
  flushes: new Counter({ name: 'skiff_broker_flushes_total', help: 'WAL objects committed' }),
  flushBytes: new Histogram({
    name: 'skiff_broker_flush_bytes',
    help: 'Size of committed WAL objects',
    buckets: [1e3, 1e4, 1e5, 1e6, 4e6, 16e6, 64e6],
  }),
  flushSeconds: new Histogram({
    name: 'skiff_broker_flush_seconds',
    help: 'Time from flush start to commit',
    buckets: [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5],
  }),
  flushStageSeconds: new Histogram({
    name: 'skiff_broker_flush_stage_seconds',
    help: 'Steps of a flush: wait (oldest batch appended to flush start), write (WAL object put), commit (from the object written to its commit record durable; records of objects written meanwhile share one transaction)',
    labelNames: ['stage'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5],
  }),
  commitGroupSize: new Histogram({
    name: 'skiff_broker_commit_group_size',
    help: 'WAL objects committed by one metadata transaction (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
  }),
  hedgedWrites: new Counter({ name: 'skiff_broker_hedged_writes_total', help: 'WAL objects written a second time under another key because the first write was slow (--put-hedge-ms)' }),
  hedgeWins: new Counter({ name: 'skiff_broker_hedge_wins_total', help: 'Hedged WAL objects by the copy that landed first and was committed: first or hedge', labelNames: ['copy'] }),
  flushRetries: new Counter({ name: 'skiff_broker_flush_retries_total', help: 'Failed WAL puts or commits that were retried', labelNames: ['stage'] }),
  unflushedBytes: new Gauge({ name: 'skiff_broker_unflushed_bytes', help: 'Bytes appended but not yet committed' }),
  partitions: new Gauge({ name: 'skiff_broker_partitions', help: 'Partitions on this broker by state', labelNames: ['state'] }),
  transitions: new Counter({ name: 'skiff_broker_partition_transitions_total', help: 'Partition state transitions', labelNames: ['from', 'to'] }),
  checkpoints: new Counter({ name: 'skiff_broker_checkpoints_total', help: 'Partition checkpoints written' }),
  rollBacklogBytes: new Gauge({ name: 'skiff_broker_roll_backlog_bytes', help: 'WAL bytes beyond a full segment in partitions waiting for a segment roll' }),
  cacheBytes: new Gauge({ name: 'skiff_broker_cache_bytes', help: 'Committed batches held in the tail cache' }),
  storageReads: new Counter({ name: 'skiff_broker_storage_reads_total', help: 'Range reads from object storage', labelNames: ['result'] }),
  segmentsRolled: new Counter({ name: 'skiff_broker_segments_rolled_total', help: 'Segment objects written from WAL extents' }),
  segmentBytes: new Counter({
    name: 'skiff_broker_segment_bytes_total',
    help: 'Bytes rolled into segments, by where they came from (the tail cache or a read back from storage)',
    labelNames: ['source'],
  }),
  gcDeleted: new Counter({ name: 'skiff_broker_gc_deleted_objects_total', help: 'Unreferenced objects deleted by garbage collection' }),
  corruptReads: new Counter({ name: 'skiff_broker_corrupt_reads_total', help: 'Reads whose checksum did not match; never served' }),
};
