// The proxy's Prometheus metrics: requests and latency by API, bytes on the wire, connections,
// and who served fetched data (the proxy from segment objects, or the owning broker).
import { Counter, Gauge, Histogram } from 'prom-client';

export const proxyMetrics = {
  requests: new Counter({ name: 'skiff_proxy_requests_total', help: 'Requests by API', labelNames: ['api'] }),
  errors: new Counter({ name: 'skiff_proxy_request_errors_total', help: 'Requests that closed the connection', labelNames: ['reason'] }),
  latency: new Histogram({
    name: 'skiff_proxy_request_seconds',
    help: 'Request latency by API, from frame received to response queued',
    labelNames: ['api'],
    // Fine between 5 and 100 ms, where durable produce lives and its latency targets are set.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30],
  }),
  bytesIn: new Counter({ name: 'skiff_proxy_bytes_in_total', help: 'Request bytes received' }),
  bytesOut: new Counter({ name: 'skiff_proxy_bytes_out_total', help: 'Response bytes sent' }),
  connections: new Gauge({ name: 'skiff_proxy_connections', help: 'Open client connections' }),
  parkedFetches: new Gauge({ name: 'skiff_proxy_parked_fetches', help: 'Fetches waiting for data' }),
  fetchReads: new Counter({
    name: 'skiff_proxy_fetch_reads_total',
    help: 'Partition reads of fetches (cluster mode): source=segment read by this proxy from a segment object, broker forwarded',
    labelNames: ['source'],
  }),
  fetchBytes: new Counter({ name: 'skiff_proxy_fetch_bytes_total', help: 'Record-batch bytes answered to fetches (cluster mode), by source as above', labelNames: ['source'] }),
  catchUpFallbacks: new Counter({
    name: 'skiff_proxy_catch_up_fallbacks_total',
    help: 'Catch-up reads handed back to the broker: segment object missing, checksum mismatch, other error',
    labelNames: ['reason'],
  }),
  brokersRevoked: new Counter({ name: 'skiff_proxy_dead_broker_leases_revoked_total', help: 'Leases of brokers whose address refused connections, revoked so their partitions move at once' }),
};
