/* The peer of bench/kafka.mjs: librdkafka's own producer, with nothing in
 * front of it. librdkafka's examples/rdkafka_performance.c is the obvious
 * tool, but it includes librdkafka's internal headers (../src/rd.h,
 * rdtime.h, which need its generated config.h), so it does not build
 * against an installed librdkafka-dev; this is the smallest equivalent.
 *
 * It produces the messages of a file to a topic with the kafka
 * destination's settings (enable.idempotence=true, acks=all, linger.ms=5,
 * partitioner murmur2_random, message.timeout.ms 30000) and waits for every
 * delivery report. Each line of the file is `key \t id \t value`: the same
 * keys and values Fork sends, and the same headers (fork-id,
 * fork-destination, fork-instance). One message is produced and flushed
 * before the clock starts, so that the connection and the idempotent
 * producer id are there already, as they are for forkd's long-lived
 * producer.
 *
 *   cc -O2 bench/kafka_peer.c -o build/bench/kafka_peer -lrdkafka
 *   kafka_peer BROKERS TOPIC FILE [property=value ...]
 *
 * Prints one JSON line: {"messages", "delivered", "failed", "bytes",
 * "seconds", "msgs_per_sec", "middle_msgs_per_sec" (the rate between the
 * deliveries of a quarter and of three quarters of the messages: the
 * steady state, without the start and the tail), "first_message_seconds" (the warm-up message,
 * from rd_kafka_new to its delivery report), "cpu_seconds" (the process's
 * CPU, librdkafka's threads included, over the timed messages)}. Exits 1
 * when a message was not delivered.
 */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static long long delivered, failed;
static char first_error[512];
/* When the timed messages' deliveries pass a quarter and three quarters:
 * the rate in between is the producer's steady state. */
static long long q1 = -1, q3 = -1;
static double t_q1, t_q3;
static double now_s(void);

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    if (failed++ == 0) snprintf(first_error, sizeof first_error, "%s", rd_kafka_err2str(m->err));
  } else {
    delivered++;
    if (delivered == q1) t_q1 = now_s();
    if (delivered == q3) t_q3 = now_s();
  }
}

/* CPU seconds of the whole process (every thread: librdkafka's too). */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "kafka_peer: %s=%s: %s\n", name, value, err);
    exit(2);
  }
}

struct msg {
  const char *key, *id, *value;
  size_t key_len, id_len, value_len;
};

static void produce(rd_kafka_t *rk, const char *topic, const struct msg *m) {
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)m->key, m->key_len), RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
        RD_KAFKA_V_HEADER("fork-id", m->id, (ssize_t)m->id_len),
        RD_KAFKA_V_HEADER("fork-destination", "bus", 3),
        RD_KAFKA_V_HEADER("fork-instance", "kafka-peer", 10), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      fprintf(stderr, "kafka_peer: produce: %s\n", rd_kafka_err2str(err));
      exit(1);
    }
    rd_kafka_poll(rk, 5); /* the queue is full: serve delivery reports */
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: kafka_peer BROKERS TOPIC FILE [property=value ...]\n");
    return 2;
  }
  const char *brokers = argv[1], *topic = argv[2], *path = argv[3];

  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 2;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)size + 1);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "kafka_peer: cannot read %s\n", path);
    return 2;
  }
  fclose(f);
  buf[size] = 0;

  size_t n = 0, cap = 1024;
  struct msg *msgs = malloc(cap * sizeof *msgs);
  long long bytes = 0;
  for (char *p = buf; p < buf + size;) {
    char *nl = memchr(p, '\n', (size_t)(buf + size - p));
    if (!nl) nl = buf + size;
    char *t1 = memchr(p, '\t', (size_t)(nl - p));
    char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
    if (!t2) {
      fprintf(stderr, "kafka_peer: line %zu is not key\\tid\\tvalue\n", n + 1);
      return 2;
    }
    if (n == cap) msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
    msgs[n].key = p;
    msgs[n].key_len = (size_t)(t1 - p);
    msgs[n].id = t1 + 1;
    msgs[n].id_len = (size_t)(t2 - t1 - 1);
    msgs[n].value = t2 + 1;
    msgs[n].value_len = (size_t)(nl - t2 - 1);
    bytes += (long long)msgs[n].value_len;
    n++;
    p = nl + 1;
  }
  if (n == 0) {
    fprintf(stderr, "kafka_peer: %s has no messages\n", path);
    return 2;
  }

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", brokers);
  set(conf, "client.id", "fork-bench-peer");
  set(conf, "enable.idempotence", "true");
  set(conf, "acks", "all");
  set(conf, "linger.ms", "5");
  set(conf, "partitioner", "murmur2_random");
  set(conf, "message.timeout.ms", "30000");
  for (int i = 4; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "kafka_peer: %s is not property=value\n", argv[i]);
      return 2;
    }
    *eq = 0;
    set(conf, argv[i], eq + 1);
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char err[512];
  double w0 = now_s();
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kafka_peer: %s\n", err);
    return 2;
  }

  /* Warm up: connected, metadata known, producer id acquired. */
  produce(rk, topic, &msgs[0]);
  rd_kafka_flush(rk, 30000);
  if (delivered != 1) {
    fprintf(stderr, "kafka_peer: the warm-up message was not delivered: %s\n", first_error);
    return 1;
  }
  delivered = 0;
  double warm_s = now_s() - w0;

  q1 = (long long)n / 4;
  q3 = 3 * (long long)n / 4;
  double t0 = now_s(), c0 = cpu_s();
  for (size_t i = 0; i < n; i++) {
    produce(rk, topic, &msgs[i]);
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (delivered + failed < (long long)n) rd_kafka_poll(rk, 50);
  double s = now_s() - t0, cpu = cpu_s() - c0;
  rd_kafka_flush(rk, 10000);
  rd_kafka_destroy(rk);

  const double middle = t_q3 > t_q1 && q3 > q1 ? (double)(q3 - q1) / (t_q3 - t_q1) : 0;
  printf("{\"messages\":%zu,\"delivered\":%lld,\"failed\":%lld,\"bytes\":%lld,\"seconds\":%.4f,"
         "\"msgs_per_sec\":%.0f,\"middle_msgs_per_sec\":%.0f,\"first_message_seconds\":%.4f,\"cpu_seconds\":%.4f%s%s%s}\n",
         n, delivered, failed, bytes, s, (double)n / s, middle, warm_s, cpu, failed ? ",\"error\":\"" : "",
         failed ? first_error : "", failed ? "\"" : "");
  free(msgs);
  free(buf);
  return failed ? 1 : 0;
}
