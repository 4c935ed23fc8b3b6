// The `kafka` source: a consumer in a Kafka consumer group whose messages
// are taken into the log as if a client had sent them.
//
// Each message's value (a JSON object: what a kafka destination writes, or
// any producer's JSON) becomes an event's payload, sent through an
// in-process wire client (ingest/inproc_client.h), so routes, limits,
// backpressure, group commit and idempotency keys are the addon's:
//  - destinations: the source's `to:`, or none (the routes decide);
//  - idempotency key: the `fork-id` header (a kafka destination sets it),
//    else a leading `_fork_id` member of the value, else
//    "kafka:<topic>:<partition>:<offset>". The event keeps the edge's id,
//    and a message consumed twice (after a crash or a rebalance) is
//    deduplicated within the dedupe window; a leading `_fork_id` member is
//    taken off the payload.
//
// Offsets: a message's offset is stored for commit only once ingest has
// acknowledged its event, i.e. once the log made it durable; librdkafka
// commits stored offsets every second and when partitions are revoked.
// A message ingest refuses for good (not a JSON object, over
// limits.max_event, naming an unknown destination) is counted, logged with
// its topic, partition and offset, and passed over: it stays in the topic.
// Backpressure or a timeout: the same messages are sent again (their keys
// make that safe) until ingest takes them.
//
// Threads: one consumer thread per source; Start and Stop from the
// server's thread; the stats from any thread.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "kafka/kafka_conf.h"
#include "sources/source.h"

namespace forkd::sources {

struct KafkaSourceStats {
  std::atomic<uint64_t> consumed{0};  // messages read from the topic
  std::atomic<uint64_t> ingested{0};  // acknowledged by ingest: durable in the log
  std::atomic<uint64_t> rejected{0};  // refused for good and passed over
  std::atomic<uint64_t> retries{0};   // batches sent again (backpressure, timeout)
  std::atomic<int64_t> assigned_partitions{0};
  std::atomic<int64_t> lag_messages{-1};  // behind the high watermarks; -1 unknown
};

class KafkaSource : public Source {
 public:
  struct Settings {
    std::string name;
    std::string brokers;
    std::string topic;
    std::string group;
    bool from_earliest = true;  // a group without committed offsets starts at the oldest
    std::vector<std::string> to;  // empty: the routes decide
    kafka::Properties properties;
    std::string instance;
    // Ingest's in-process endpoint and its context (outlive this object),
    // its limits.
    void* zmq_ctx = nullptr;
    std::string endpoint;
    size_t max_event = 1u << 20;
    size_t max_frame = 16u << 20;
    std::string error;  // the options were refused: Start reports it
  };
  explicit KafkaSource(Settings s);
  ~KafkaSource() override;  // Stop()
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  // Creates the consumer and joins the group, in the background. Fatal when
  // librdkafka refuses the settings.
  [[nodiscard]] Status Start() override;
  // Finishes the batch being sent (at most a few seconds), stores its
  // offsets, leaves the group (committing them). Idempotent.
  void Stop() override;
  void Metrics(std::vector<SourceMetric>* out) const override;

  const std::string& name() const { return s_.name; }
  const KafkaSourceStats& stats() const { return stats_; }
  std::string last_error() const override;

 private:
  void Run();
  void UpdateLag();
  void SetError(std::string e);

  Settings s_;
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  KafkaSourceStats stats_;
  mutable std::mutex error_mu_;
  std::string last_error_;
};

// Builds a kafka source from its config section.
std::unique_ptr<Source> CreateKafkaSource(const SourceContext& ctx);

// Fork's properties for a source's consumer, refused under `options:`.
const kafka::Properties& KafkaSourceReserved();

// Exposed for tests: the payload and key of one message value. A value
// starting with a `_fork_id` member loses it: *payload is the rest of the
// object, *id_from_value its string. Otherwise *payload is the value.
void SplitForkId(std::string_view value, std::string_view* payload_rest, std::string* id_from_value);

}  // namespace forkd::sources
