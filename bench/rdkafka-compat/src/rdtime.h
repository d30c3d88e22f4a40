/*
 * Stand-in for librdkafka's private src/rdtime.h (see rd.h beside it):
 * rd_ts_t and rd_clock(), a monotonic clock in microseconds.
 */
#ifndef SKIFF_BENCH_RDTIME_H
#define SKIFF_BENCH_RDTIME_H

#include <stdint.h>
#include <time.h>

typedef int64_t rd_ts_t;

static inline rd_ts_t rd_clock(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ((rd_ts_t)ts.tv_sec * 1000000LL) + ((rd_ts_t)ts.tv_nsec / 1000);
}

#endif
