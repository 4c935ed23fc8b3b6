// One pipeline per destination: it follows the log from its own cursor,
// picks the entries routed to its destination, hands them to the sink in
// batches, and commits the cursor once the sink has flushed. A slow or dead
// destination only lags; it never holds up the others.
//
// Threads: the pipeline owns one thread. Start/Stop and the accessors are for
// the owner's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/config.h"
#include "log/cursors.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/shaper.h"
#include "sinks/sink.h"
#include "transforms/aggregate.h"
#include "transforms/record.h"
#include "transforms/transform.h"

namespace forkd::pipeline {

struct PipelineStats {
  std::atomic<uint64_t> read{0};           // entries read from the log
  std::atomic<uint64_t> received{0};       // entries routed to this destination
  std::atomic<uint64_t> delivered{0};      // flushed and committed
  std::atomic<uint64_t> delivered_bytes{0};
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> failed{0};         // flush errors (retry or fatal)
  std::atomic<uint64_t> dead_lettered{0};
  std::atomic<uint64_t> filtered{0};       // dropped by a filter or validate step
  std::atomic<uint64_t> aggregated{0};     // folded into the aggregate
  std::atomic<uint64_t> rows_emitted{0};   // aggregate rows written
  std::atomic<uint64_t> corrupt_regions{0};
  std::atomic<int64_t> last_delivered_recv_us{0};
};

class Pipeline : private log::Reporter {
 public:
  // `templates`: the config's named transform templates, for the ones an
  // event's route or call names.
  Pipeline(const DestinationConfig& dest, const Config& config, std::unique_ptr<sinks::Sink> sink,
           log::Log* log, log::CursorStore* cursors, DeadLetters* dead_letters);
  ~Pipeline() override;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Loads the cursor and starts the thread.
  [[nodiscard]] Status Start();
  // Stops the thread. With `drain`, first delivers everything durable in the
  // log, for at most `drain_timeout_ms`.
  void Stop(bool drain, int64_t drain_timeout_ms);

  const std::string& name() const { return name_; }
  const std::string& type() const { return dest_.type; }
  // Every entry below this lsn that was routed here has been delivered.
  uint64_t delivered_next_lsn() const { return delivered_next_lsn_.load(std::memory_order_acquire); }
  // The lsn committed in the cursor (segments below it can go).
  uint64_t committed_next_lsn() const { return committed_next_lsn_.load(std::memory_order_acquire); }
  const PipelineStats& stats() const { return stats_; }
  bool healthy() const { return healthy_.load(); }
  std::string last_error() const;

 private:
  void Run();
  // Flushes until ok, fatal, or stop; returns the final status.
  Status FlushWithRetry();
  Status Commit(const log::Position& pos, const std::string* aggregate_state = nullptr);
  // Flushes the batch of `n` records read between `start` and `end`: on
  // fatal, its records go to dead letters. False when stopping mid-retry.
  bool FlushBatch(const log::Position& start, const log::Position& end, int64_t n,
                  int64_t last_recv_us);
  // Starts the sink's next output unit, retrying; false when stopping.
  bool RotateWithRetry(const sinks::Record& r);
  // The parts of a stored event this pipeline needs.
  struct Selected {
    const uint8_t* options = nullptr;   // msgpack map or nil
    const uint8_t* route_t = nullptr;   // the [name, template...] entry, or null
    uint32_t route_t_count = 0;
  };
  // Is this destination among the event's? Fills the record's parts.
  bool Select(const log::Entry& e, sinks::Record* r, Selected* sel = nullptr);
  enum class Shaped { kWrite, kSkip };
  // Runs the record through its transforms. kWrite: *r now holds the output;
  // kSkip: filtered, folded into the aggregate, or dead-lettered.
  Shaped Shape(const log::Entry& e, const Selected& sel, sinks::Record* r);
  // Writes the aggregate's changed rows to the sink and flushes them,
  // committing `pos`; false when stopping.
  bool EmitAggregate(const log::Position& pos);
  // Cursor state: the sink's, plus the aggregate's checkpoint.
  std::string CursorState(const std::string* aggregate_state) const;
  void DeadLetterNow(std::string_view id, std::string_view reason, const uint8_t* payload);
  bool WritePendingDeadLetters();
  void DeadLetterRange(const log::Position& from, uint64_t end_lsn, const std::string& reason);
  void SetError(const std::string& e);
  bool SleepInterruptible(int64_t ms);
  void Corruption(uint64_t offset, size_t bytes, const std::string& reason) override;

  const DestinationConfig dest_;
  const std::string name_;
  const std::map<std::string, transforms::Chain, std::less<>> templates_;
  std::string pending_dl_;  // dead letters to append before the next commit
  uint64_t pending_dl_count_ = 0;
  int64_t last_emit_us_ = 0;
  std::unique_ptr<sinks::Sink> sink_;
  log::Log* log_;
  log::CursorStore* cursors_;
  DeadLetters* dead_letters_;
  std::unique_ptr<log::TailReader> reader_;
  Shaper shaper_;
  transforms::Aggregator* aggregator_;  // the shaper's, or null
  std::string loaded_state_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> drain_{false};
  std::atomic<int64_t> drain_deadline_us_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;

  std::atomic<uint64_t> delivered_next_lsn_{1};
  std::atomic<uint64_t> committed_next_lsn_{1};
  std::atomic<bool> healthy_{true};
  mutable std::mutex err_mu_;
  std::string last_error_;
  PipelineStats stats_;
  char id_buf_[64];
};

}  // namespace forkd::pipeline
