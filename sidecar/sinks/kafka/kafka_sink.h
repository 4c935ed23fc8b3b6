// The `kafka` sink: each record becomes one message of `topic`, its value
// the record as JSON with its event id as `_fork_id` (the object the file
// sink writes as a line), its key the record's `key` field (no key when the
// record lacks it), and its headers `fork-id` (the event id),
// `fork-destination` (this destination), `fork-instance` (this forkd) and
// the configured `headers`.
//
// The producer is librdkafka's, idempotent (enable.idempotence, acks=all),
// partitioned by murmur2 of the key as Java clients do, so one key's
// records stay in order in one partition and other clients agree on it.
// A Flush hands the batch to librdkafka and waits, up to `timeout`, for the
// broker to acknowledge every message: only then is it ok and the pipeline
// commits its cursor. Messages librdkafka still holds when `timeout` ends
// stay with it (it keeps retrying them until message.timeout.ms); the Flush
// answers retry and the next one waits for them again, so nothing is sent
// twice by Fork. A message the broker refuses for good (kafka::IsPermanent:
// too large, not authorized) makes the Flush fatal with the broker's error,
// and the pipeline splits the batch down to it; messages the broker took
// are not sent again while it does. Any other error is a retry.
//
// With `batch.in_flight` > 1 the pipeline Sends batches to the one producer
// without waiting and Awaits each in turn (the same wait, per batch). A sent
// batch that does not come back ok is sent again by the pipeline from the
// log with Flush, so its messages the broker did take, and those of the
// batches after it, may reach the topic twice.
//
// Delivery is at least once: a forkd killed between the broker's
// acknowledgement and the cursor commit sends those messages again on
// restart. Consumers dedupe on the `fork-id` header (the kafka source does).
//
// Threads: the pipeline's thread only, apart from the gauges, which the
// admin server reads.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/options.h"
#include "kafka/kafka_conf.h"
#include "sinks/sink.h"
#include "transforms/record.h"

namespace forkd::sinks {

const std::vector<OptionSpec>& KafkaSinkOptions();
std::unique_ptr<Sink> CreateKafkaSink(const SinkContext& ctx);
// For `forkd check`: brokers, key, headers and every librdkafka property.
bool CheckKafkaOptions(const Options& o, std::string* error);

class KafkaSink : public Sink {
 public:
  struct Settings {
    std::string brokers;
    std::string topic;
    std::string key;  // a field path; empty: no key
    std::vector<std::pair<std::string, std::string>> headers;
    kafka::Properties properties;  // `options:`
    int64_t timeout_ms = 30000;
    std::string client_id;
    std::string destination;
    std::string instance;
    std::string error;  // the options were refused: Open reports it
  };
  explicit KafkaSink(Settings s);
  ~KafkaSink() override;
  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return bytes_; }
  Status Flush() override;
  void Discard() override;
  // One producer for every batch on its way, so one key's records keep
  // their order (librdkafka's idempotent producer keeps it per partition).
  bool pipelines() const override { return true; }
  Status Send(uint64_t ticket) override;
  Status Await(uint64_t ticket) override;
  void Gauges(std::vector<Gauge>* out) const override;

 private:
  enum class State : uint8_t { kToSend, kInFlight, kDone, kRetry, kRefused };
  struct Message {
    uint64_t serial = 0;  // librdkafka's opaque for its delivery report
    uint64_t lsn = 0;
    uint32_t id_off = 0, id_len = 0;  // in the batch's arena
    uint32_t key_off = 0, key_len = 0;
    uint32_t value_off = 0, value_len = 0;
    bool has_key = false;
    State state = State::kToSend;
    std::string error;
  };
  // A batch's messages, their ids, keys and values in one arena: a few
  // allocations a batch, not three a message, and reused.
  struct Batch {
    std::vector<Message> msgs;
    std::string arena;
    uint64_t first_serial = 0;  // serial of msgs.front()
    std::string_view id(const Message& m) const { return {arena.data() + m.id_off, m.id_len}; }
    std::string_view key(const Message& m) const { return {arena.data() + m.key_off, m.key_len}; }
    std::string_view value(const Message& m) const {
      return {arena.data() + m.value_off, m.value_len};
    }
    void clear() {
      msgs.clear();
      arena.clear();
    }
  };
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);
  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void Delivered(const rd_kafka_message_t* m);
  Status Connect();
  void Close();
  Message* BySerial(uint64_t serial);
  // Hands the messages not yet with librdkafka to it.
  void Produce(Batch* batch);
  // Waits, up to `timeout`, for the broker's answer to every message of
  // `batch`: ok, retry, or fatal with the refused ones (see above).
  Status Answer(Batch* batch);
  void Clear();

  Settings s_;
  transforms::Path key_path_;
  std::string error_;  // from the options; Open reports it
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  bool opened_ = false;

  Batch batch_;
  // Batches sent (Send) and not yet awaited, in the order sent.
  struct Flight {
    uint64_t ticket = 0;
    Batch batch;
  };
  std::deque<Flight> flights_;
  std::vector<Batch> spare_;  // awaited batches, kept for their capacity
  uint64_t next_serial_ = 1;
  size_t bytes_ = 0;
  transforms::Doc doc_;
  std::string last_error_;  // the latest broker-level error (all brokers down ...)

  // Records of a refused batch that the broker did take: skipped when the
  // pipeline writes them again while splitting the batch, forgotten once it
  // writes past the batch.
  std::unordered_set<std::string> done_;
  uint64_t done_until_lsn_ = 0;

  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> queued_{0};
};

}  // namespace forkd::sinks
