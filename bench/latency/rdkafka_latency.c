/*
 * rdkafka_latency: fixed-rate produce with librdkafka, measuring per message
 *   - produce latency: produce() call -> delivery report (the broker's ack), and
 *   - end-to-end latency: produce() call -> receipt by a consumer in this process,
 * and printing one JSON line with the percentiles.
 *
 * Written for Skiff's benchmarks (bench/build.sh builds it against Debian's librdkafka-dev).
 * rdkafka_performance -l measures the same two things, but its -r rate limiter busy-waits
 * (rd_kafka_poll(rk, 0) in a loop) whenever messages are less than 1 ms apart, which takes a
 * whole core away from the server on a small machine. This paces by the clock instead: every
 * ~100 us it sends the messages that are due, then sleeps.
 *
 *   rdkafka_latency -b host:port -t topic [-s size] [-r msgs/s] [-d seconds] [-w warmup-seconds]
 *                   [-a acks] [-p partitions] [-X prop=value ...] [-C prop=value ...]
 *                   [-A series-file] [-q]
 *
 * -X sets a producer property, -C a consumer property (e.g. -C fetch.message.max.bytes=8388608).
 *
 * -A writes one line per delivered message: its send time (ms since the start) and its produce
 * latency (ms), to see when latency spikes happen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t run = 1;
static volatile int consumer_run = 1;

static int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct samples {
        double *v;
        size_t n, cap;
};

static void add(struct samples *s, double x) {
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 1 << 16;
                s->v   = realloc(s->v, s->cap * sizeof(double));
                if (!s->v) {
                        fprintf(stderr, "rdkafka_latency: out of memory\n");
                        exit(1);
                }
        }
        s->v[s->n++] = x;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double q) {
        size_t i;
        if (s->n == 0)
                return -1;
        i = (size_t)(q * (double)s->n + 0.999999);
        if (i < 1)
                i = 1;
        if (i > s->n)
                i = s->n;
        return s->v[i - 1];
}

static void print_samples(const char *name, struct samples *s) {
        double sum = 0;
        size_t i;
        qsort(s->v, s->n, sizeof(double), cmp);
        for (i = 0; i < s->n; i++)
                sum += s->v[i];
        printf("\"%s\":{\"count\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}", name, s->n, pct(s, 0.5),
               pct(s, 0.9), pct(s, 0.99), pct(s, 0.999), s->n ? s->v[s->n - 1] : -1, s->n ? sum / (double)s->n : -1);
}

static int64_t t_warm, t_start;
static FILE *series; /* -A: "send_ms produce_latency_ms" per delivered message */
static struct samples prod_lat, e2e_lat;
static int64_t delivered, failed;
static volatile int64_t received;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        int64_t sent = (int64_t)(intptr_t)m->_private;
        (void)rk;
        (void)opaque;
        if (m->err) {
                if (failed++ < 5)
                        fprintf(stderr, "%% delivery failed: %s\n", rd_kafka_err2str(m->err));
                return;
        }
        delivered++;
        if (series)
                fprintf(series, "%.3f %.3f\n", (double)(sent - t_start) / 1e6, (double)(now_ns() - sent) / 1e6);
        if (sent >= t_warm)
                add(&prod_lat, (double)(now_ns() - sent) / 1e6);
}

struct consumer_args {
        rd_kafka_t *rk;
};

static void *consume(void *arg) {
        struct consumer_args *a = arg;
        while (consumer_run) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(a->rk, 100);
                int64_t ts;
                if (!m)
                        continue;
                if (!m->err && m->len >= 8) {
                        int64_t now = now_ns();
                        memcpy(&ts, m->payload, 8);
                        received++;
                        if (ts >= t_warm)
                                add(&e2e_lat, (double)(now - ts) / 1e6);
                } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        fprintf(stderr, "%% consumer: %s\n", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

static void stop(int sig) {
        (void)sig;
        run = 0;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
        char err[512];
        if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "rdkafka_latency: %s=%s: %s\n", k, v, err);
                exit(2);
        }
}

/* Sets each "prop=value" of a -X or -C list; exits on one without '='. */
static void set_all(rd_kafka_conf_t *c, char **props, int n, char flag) {
        for (int i = 0; i < n; i++) {
                char *eq = strchr(props[i], '=');
                if (!eq) {
                        fprintf(stderr, "rdkafka_latency: -%c wants prop=value, not %s\n", flag, props[i]);
                        exit(2);
                }
                *eq = '\0';
                set(c, props[i], eq + 1);
        }
}

int main(int argc, char **argv) {
        const char *brokers = "127.0.0.1:9092", *topic = NULL, *acks = "-1";
        int size = 1024, partitions = 1, quiet = 0, opt, i;
        double rate = 1000, seconds = 10, warmup = 1;
        char *xs[64], *cs[64];
        int nx = 0, nc = 0;
        char err[512];

        while ((opt = getopt(argc, argv, "b:t:s:r:d:w:a:p:X:C:A:q")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 's': size = atoi(optarg); break;
                case 'r': rate = atof(optarg); break;
                case 'd': seconds = atof(optarg); break;
                case 'w': warmup = atof(optarg); break;
                case 'a': acks = optarg; break;
                case 'p': partitions = atoi(optarg); break;
                case 'X':
                        if (nx < 64)
                                xs[nx++] = optarg;
                        break;
                case 'C':
                        if (nc < 64)
                                cs[nc++] = optarg;
                        break;
                case 'q': quiet = 1; break;
                case 'A':
                        if (!(series = fopen(optarg, "w"))) {
                                fprintf(stderr, "rdkafka_latency: %s: %s\n", optarg, strerror(errno));
                                return 2;
                        }
                        break;
                default:
                        fprintf(stderr,
                                "usage: %s -b brokers -t topic [-s size] [-r rate] [-d seconds] [-w warmup] [-a acks] [-p partitions] [-X k=v] [-C k=v] [-A series-file] [-q]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (!topic || size < 8 || rate <= 0 || partitions < 1) {
                fprintf(stderr, "rdkafka_latency: need -t topic, -s >= 8, -r > 0, -p >= 1\n");
                return 2;
        }
        signal(SIGINT, stop);
        signal(SIGTERM, stop);

        /* consumer first, reading only what is produced from now on */
        rd_kafka_conf_t *cc = rd_kafka_conf_new();
        set(cc, "bootstrap.servers", brokers);
        set(cc, "group.id", "skiff-bench-latency");
        set(cc, "enable.auto.commit", "false");
        set(cc, "enable.partition.eof", "false");
        set_all(cc, cs, nc, 'C');
        rd_kafka_t *crk = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
        if (!crk) {
                fprintf(stderr, "rdkafka_latency: consumer: %s\n", err);
                return 1;
        }
        rd_kafka_poll_set_consumer(crk);
        rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(partitions);
        for (i = 0; i < partitions; i++)
                rd_kafka_topic_partition_list_add(tp, topic, i)->offset = RD_KAFKA_OFFSET_END;
        rd_kafka_resp_err_t e = rd_kafka_assign(crk, tp);
        rd_kafka_topic_partition_list_destroy(tp);
        if (e) {
                fprintf(stderr, "rdkafka_latency: assign: %s\n", rd_kafka_err2str(e));
                return 1;
        }
        struct consumer_args ca = {crk};
        pthread_t ct;
        t_warm = INT64_MAX;
        pthread_create(&ct, NULL, consume, &ca);

        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        set(pc, "bootstrap.servers", brokers);
        set(pc, "acks", acks);
        set(pc, "linger.ms", "1");
        set_all(pc, xs, nx, 'X');
        rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "rdkafka_latency: producer: %s\n", err);
                return 1;
        }
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

        /* let the consumer resolve the end offset and start fetching, the producer connect */
        {
                const struct rd_kafka_metadata *md;
                if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        rd_kafka_metadata_destroy(md);
        }
        usleep(1500 * 1000);

        char *buf = malloc((size_t)size);
        for (i = 0; i < size; i++)
                buf[i] = (char)('a' + i % 26);

        int64_t start = now_ns();
        t_start       = start;
        int64_t end   = start + (int64_t)(seconds * 1e9);
        int64_t sent = 0, backpressure = 0, last_report = start;
        t_warm = start + (int64_t)(warmup * 1e9);
        struct timespec nap = {0, 100 * 1000};

        while (run) {
                int64_t now = now_ns();
                if (now >= end)
                        break;
                int64_t due = (int64_t)((double)(now - start) * rate / 1e9);
                while (sent < due && run) {
                        int64_t ts = now_ns();
                        memcpy(buf, &ts, 8);
                        rd_kafka_resp_err_t pe = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                                                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(buf, (size_t)size),
                                                                   RD_KAFKA_V_OPAQUE((void *)(intptr_t)ts), RD_KAFKA_V_END);
                        if (pe == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                backpressure++;
                                rd_kafka_poll(rk, 1);
                                continue;
                        }
                        if (pe) {
                                fprintf(stderr, "rdkafka_latency: produce: %s\n", rd_kafka_err2str(pe));
                                run = 0;
                                break;
                        }
                        sent++;
                }
                rd_kafka_poll(rk, 0);
                if (!quiet && now - last_report >= 1000000000LL) {
                        double el = (double)(now - start) / 1e9;
                        fprintf(stderr, "%% %.1fs sent %" PRId64 " delivered %" PRId64 " received %" PRId64 " (%.0f msgs/s)\n", el, sent,
                                delivered, (int64_t)received, (double)delivered / el);
                        last_report = now;
                }
                nanosleep(&nap, NULL);
        }
        double send_secs = (double)(now_ns() - start) / 1e9;
        rd_kafka_flush(rk, 30000);
        /* give the consumer a moment for the last messages */
        for (i = 0; i < 200 && received < delivered; i++)
                usleep(10 * 1000);
        consumer_run = 0;
        pthread_join(ct, NULL);

        printf("{\"rate\":%.1f,\"seconds\":%.3f,\"sent\":%" PRId64 ",\"achieved_msgs_per_sec\":%.1f,\"delivered\":%" PRId64
               ",\"failed\":%" PRId64 ",\"received\":%" PRId64 ",\"backpressure\":%" PRId64 ",\"size\":%d,\"acks\":\"%s\",",
               rate, send_secs, sent, (double)sent / send_secs, delivered, failed, (int64_t)received, backpressure, size, acks);
        print_samples("produce_ms", &prod_lat);
        printf(",");
        print_samples("e2e_ms", &e2e_lat);
        printf("}\n");
        fflush(stdout);

        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        rd_kafka_consumer_close(crk);
        rd_kafka_destroy(crk);
        free(buf);
        if (series)
                fclose(series);
        return failed ? 1 : 0;
}
