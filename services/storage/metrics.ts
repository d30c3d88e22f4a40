// Object-storage requests, the unit an S3 bill counts. On S3 every request the SDK sends
// (each attempt of a retry too) is counted by its API name; the local store counts its
// operations under the name of the S3 request each stands for, so the rate a deployment on
// S3 would pay for can be read off a local run too.
import { Counter } from 'prom-client';

export const storageMetrics = {
  requests: new Counter({
    name: 'skiff_object_store_requests_total',
    help: 'Object-storage requests by store (s3, fs) and S3 API name (PutObject, GetObject, UploadPart, ...)',
    labelNames: ['store', 'request'],
  }),
};
