/*
 * Stand-in for librdkafka's private src/rd.h, just enough to build the
 * examples/rdkafka_performance.c that Debian's librdkafka-dev ships against
 * the public <librdkafka/rdkafka.h>. Not part of librdkafka; written for
 * Skiff's benchmarks (bench/build.sh).
 */
#ifndef SKIFF_BENCH_RD_H
#define SKIFF_BENCH_RD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/time.h>
#include <sys/types.h>

#define rd_snprintf(...) snprintf(__VA_ARGS__)

#ifndef RD_MAX
#define RD_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#ifndef RD_MIN
#define RD_MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

#include "rdtime.h"

#endif
