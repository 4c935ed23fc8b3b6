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
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config/config.h"
#include "log/cursors.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/flow.h"
#include "pipeline/outcomes.h"
#include "pipeline/router.h"
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
  std::atomic<uint64_t> failed{0};         // flush errors (retry or fatal): stage "send"
  std::atomic<uint64_t> failed_transform{0};  // records a transform refused (dead letters)
  std::atomic<uint64_t> failed_open{0};    // the sink could not open or start a new output
  std::atomic<uint64_t> failed_read{0};    // log reads that failed
  std::atomic<uint64_t> failed_commit{0};  // cursor commits that failed
  std::atomic<uint64_t> dead_lettered{0};
  std::atomic<uint64_t> filtered{0};       // dropped by a filter or validate step
  std::atomic<uint64_t> aggregated{0};     // folded into the aggregate
  std::atomic<uint64_t> rows_emitted{0};   // aggregate rows written
  std::atomic<uint64_t> corrupt_regions{0};
  std::atomic<uint64_t> shed{0};           // skipped past the backlog quota
  std::atomic<uint64_t> gave_up{0};        // batches given up after retry limits
  std::atomic<uint64_t> bisections{0};     // refused batches split to find the bad records
  std::atomic<uint64_t> throttled_ms{0};   // waited for the rate limit or priority
  std::atomic<int64_t> in_flight{0};       // batches sent and not yet answered (pipelining)
  std::atomic<uint64_t> resends{0};        // pipelined batches read again after a failed one
};

// Why `batch.in_flight` above 1 has no effect for destination `d` writing
// through `sink`, or "" when it pipelines as asked. Said at start and by
// `forkd check`.
std::string InFlightIgnored(const DestinationConfig& d, const sinks::Sink& sink);

class Pipeline : private log::Reporter {
 public:
  // `templates`: the config's named transform templates, for the ones an
  // event's route or call names.
  // `gate` (shared by every pipeline, may be null) carries priority.
  // `outcomes` (may be null; outlives the pipeline): this destination's
  // watches, where it records what it did not store of the events clients
  // wait on.
  Pipeline(const DestinationConfig& dest, const Config& config, std::unique_ptr<sinks::Sink> sink,
           log::Log* log, log::CursorStore* cursors, DeadLetters* dead_letters,
           PriorityGate* gate = nullptr, OutcomeWatch* outcomes = nullptr);
  ~Pipeline() override;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Loads the cursor and starts the thread.
  [[nodiscard]] Status Start();
  // Stops the thread. With `drain`, first delivers everything durable in the
  // log, for at most `drain_timeout_ms`.
  void Stop(bool drain, int64_t drain_timeout_ms);

  // Thread-safe: the config's templates after a reload, for the events
  // whose route or call names them; taken before the next record.
  void SetTemplates(const std::map<std::string, transforms::Chain, std::less<>>& templates);

  const std::string& name() const { return name_; }
  const std::string& type() const { return dest_.type; }
  // Every entry below this lsn that was routed here is done with: in the
  // store (flushed, and the cursor committed or, for an idempotent sink,
  // its commit deferred), or filtered, dead-lettered or shed — and then
  // recorded in the OutcomeWatch when watched. An event folded into the
  // aggregate is done once its row is.
  uint64_t delivered_next_lsn() const { return delivered_next_lsn_.load(std::memory_order_acquire); }
  // Thread-safe: delivered_next_lsn() with where it is in the log (a hint
  // for a reader, as in a cursor), so that the entry there — the oldest
  // one not done with — can be read in one go: its receipt time gives the
  // lag in seconds.
  log::Position delivered_position() const;
  // The lsn committed in the cursor (segments below it can go).
  uint64_t committed_next_lsn() const { return committed_next_lsn_.load(std::memory_order_acquire); }
  const PipelineStats& stats() const { return stats_; }
  // The sink's own gauges. Any thread.
  void SinkGauges(std::vector<sinks::Gauge>* out) const { sink_->Gauges(out); }
  bool healthy() const { return healthy_.load(); }
  Breaker::State breaker_state() const { return breaker_.state(); }
  uint64_t breaker_opens() const { return breaker_.opens(); }
  // The log held for this destination: entries and bytes from its committed
  // cursor to the log's end.
  uint64_t held_events() const;
  uint64_t held_bytes() const;
  // held / quota, the larger of events and bytes; 0 without a quota.
  double backlog_fill() const;
  const DestinationConfig& config() const { return dest_; }
  std::string last_error() const;
  // Failed flush attempts of the batch being delivered now (0 when its
  // first try has not failed). Any thread.
  int64_t attempts() const { return attempts_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // The end of flushing the buffered batch, retries included.
  struct Delivery {
    enum Kind { kOk, kFatal, kGaveUp, kStopped, kShed } kind = kOk;
    std::string error;  // fatal: the store's answer; gave up: why
    int64_t attempts = 0;
    std::string first_error, last_error;
  };
  Delivery Deliver();
  // Counts a failed attempt (the store did not answer) toward the breaker,
  // saying so when it opens.
  void BreakerFailed(int64_t now_ms, const std::string& error);
  // Old callers' form: ok, fatal, or retry when stopped or given up.
  Status FlushWithRetry();
  Status Commit(const log::Position& pos, const std::string* aggregate_state = nullptr);
  // Flushes the batch of `n` records read between `start` and `end`. A
  // batch refused as fatal is split in halves until only the records the
  // store refuses are left, and those go to dead letters; a batch given up
  // after the retry limits goes there whole.
  enum class Flushed { kDone, kStopped, kShed, kRewound };
  Flushed FlushBatch(const log::Position& start, const log::Position& end, int64_t n);
  // Re-reads the batch and delivers it in halves. Counts what it delivers.
  Flushed Bisect(const log::Position& start, const log::Position& end, const Delivery& first);
  // Pipelining (pipeline_flights.cc): with a sink that pipelines and
  // `batch.in_flight` > 1, each batch read is Sent and queued as a Flight
  // with the log range it covers; flights are answered in the order sent,
  // and only then does the cursor move past them. A range with nothing of
  // ours to send (others' events, filtered records) queues too, so the
  // cursor never passes a batch still on its way.
  struct Flight {
    uint64_t ticket = 0;  // 0: nothing was sent for this range
    Status send;          // the Send's own failure (then it is not awaited)
    log::Position start, end;
    int64_t n = 0;        // records sent
    uint64_t consumed = 0;  // log entries read
    bool flushed = false;   // its records went by Flush (after a failed flight)
    uint64_t bytes = 0;
    std::string dead_letters;  // what the transforms refused in the range
    uint64_t dead_letter_count = 0;
    // The counters as they were before the range was read: put back when
    // it is read again after a failure, so nothing is counted twice.
    uint64_t read0 = 0, filtered0 = 0, failed_transform0 = 0;
  };
  struct Counted {
    uint64_t read, filtered, failed_transform;
  };
  Counted CountedNow() const;
  // Sends the batch just read ([start, end), n records in the sink) or,
  // after a failed flight, flushes it the old way; then answers the oldest
  // flights while `batch.in_flight` are on their way, or all of them when
  // `settle` (caught up, or stopping).
  Flushed SendBatch(const log::Position& start, const log::Position& end, int64_t n,
                    uint64_t consumed, const Counted& before, bool settle);
  // Answers the oldest flight and commits past it. A failure awaits the
  // others, forgets them, and moves the reader back to its start: kRewound.
  Flushed Reap();
  // Answers every flight (stopping at a rewind).
  Flushed ReapAll();
  // Commits and advances past `end` after a delivered range: at most once a
  // second, with nothing to dead-letter, for an idempotent sink or a range
  // where nothing of ours was delivered (`sent` false).
  void Delivered(const log::Position& end, bool sent);
  bool pipelined_ = false;
  int64_t in_flight_ = 1;  // batch.in_flight, or the sink's default
  static constexpr int64_t kDefaultInFlight = 4;
  int64_t resend_wait_ms_ = 0;  // the store's Retry-After on the failed flight
  std::deque<Flight> flights_;
  int64_t sending_ = 0;        // flights_ with a ticket
  uint64_t next_ticket_ = 1;
  bool resend_ = false;        // after a failed flight: the next batch goes by Flush
  int64_t last_commit_us_ = 0;
  // Past the backlog quota with policy shed?
  bool ShedDue() const;
  // Skips to the log's end: the batch in hand and everything after `from`
  // are recorded in dead letters as one shed range.
  void Shed(const log::Position& from);
  // Sleeps `ms` in slices, returning early (false) when stopping or when a
  // shed is due (then *shed is set).
  bool WaitRetry(int64_t ms, bool* shed);
  void Throttle(int64_t ms);
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
  // For an event logged before this destination existed (a `from: earliest`
  // backfill): would today's routes send it here? `by_routes`: the caller
  // named no destination; `d`: the stored destination list.
  bool Backfilled(const wire::Value& d, const uint8_t* dests, bool by_routes,
                  const sinks::Record& r, Selected* sel);
  enum class Shaped { kWrite, kSkip };
  // Runs the record through its transforms. kWrite: *r now holds the output;
  // kSkip: filtered, folded into the aggregate, or dead-lettered.
  Shaped Shape(const log::Entry& e, const Selected& sel, sinks::Record* r);
  // Writes the aggregate's changed rows to the sink and flushes them,
  // committing `pos`; false when stopping.
  bool EmitAggregate(const log::Position& pos);
  // Cursor state: the sink's, plus the aggregate's checkpoint.
  std::string CursorState(const std::string* aggregate_state) const;
  void DeadLetterNow(const Letter& l);
  bool WritePendingDeadLetters();
  // Notes that lsns [first, last] of ours were not stored, when anyone
  // watches (cheap otherwise).
  void Note(uint64_t first, uint64_t last, wire::OutcomeKind kind, const std::string& reason);
  // Records the notes below `next` in the watch, then moves
  // delivered_next_lsn to `next`.
  void Advance(const log::Position& next);
  // Every record of ours in [from, end_lsn) that reaches the sink goes to
  // dead letters with `d`'s reason and attempts.
  void DeadLetterRange(const log::Position& from, uint64_t end_lsn, const Delivery& d);
  void SetError(const std::string& e);
  bool SleepInterruptible(int64_t ms);
  void Corruption(uint64_t offset, size_t bytes, const std::string& reason) override;

  const DestinationConfig dest_;
  const std::string name_;
  std::map<std::string, transforms::Chain, std::less<>> templates_;  // the shaper reads it
  std::unique_ptr<std::map<std::string, transforms::Chain, std::less<>>> next_templates_;  // mu_
  std::atomic<bool> templates_pending_{false};
  void TakeTemplates();
  std::string pending_dl_;  // dead letters to append before the next commit
  uint64_t pending_dl_count_ = 0;
  int64_t last_emit_us_ = 0;
  bool uncommitted_ = false;  // delivered past the committed cursor (idempotent sinks)
  static constexpr int64_t kIdempotentCommitUs = 1000000;
  std::unique_ptr<sinks::Sink> sink_;
  log::Log* log_;
  log::CursorStore* cursors_;
  DeadLetters* dead_letters_;
  std::unique_ptr<log::TailReader> reader_;
  PriorityGate* gate_;
  OutcomeWatch* outcomes_;
  std::vector<NotedOutcome> noted_;  // not yet recorded: above delivered_next_lsn
  Breaker breaker_;
  TokenBucket bucket_;
  std::atomic<uint64_t> committed_segment_{0};  // with committed_next_lsn_: the position
  std::atomic<uint64_t> committed_offset_{0};
  // `from: earliest`: events below backfill_until_ are chosen by today's
  // routes (evaluated here, on this pipeline's thread) instead of their
  // stored destination list.
  uint64_t backfill_until_ = 0;
  std::unique_ptr<Router> backfill_router_;
  uint32_t self_index_ = 0;
  std::vector<std::string> dest_names_;
  transforms::Doc backfill_doc_;
  transforms::Arena backfill_scratch_;
  Router::Decision backfill_decision_;
  std::vector<uint32_t> backfill_named_;
  wire::Buffer backfill_route_t_;
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
  mutable std::mutex delivered_mu_;
  log::Position delivered_position_;  // delivered_mu_; moved with delivered_next_lsn_
  std::atomic<uint64_t> committed_next_lsn_{1};
  std::atomic<bool> healthy_{true};
  std::atomic<int64_t> attempts_{0};  // attempts()
  mutable std::mutex err_mu_;
  std::string last_error_;
  PipelineStats stats_;
  char id_buf_[64];
};

}  // namespace forkd::pipeline
