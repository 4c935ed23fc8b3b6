// The contract between a pipeline and its sink. A sink buffers the records of
// one batch and makes them durable at its store on Flush, answering ok, retry
// (try the same batch again later) or fatal (it can never succeed). The
// pipeline, not the sink, owns retries, backoff, dead letters and metrics.
//
// Threads: every method is called on the destination's pipeline thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "log/entry.h"

namespace forkd::sinks {

// One record to deliver: the payload (a msgpack map) and its identity.
struct Record {
  const log::EntryHeader* header = nullptr;
  std::string_view event_id;  // the idempotencyKey, or "<client hex>-<seq>"
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

// A sink's own gauge, shown in /metrics beside the pipeline's with the
// destination as label.
struct Gauge {
  std::string_view name;  // fork_destination_<type>_...
  std::string_view help;
  double value = 0;
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Prepares the sink. `state` is what State() returned when the cursor was
  // last committed ("" the first time), so a sink can undo output that was
  // written but never committed.
  [[nodiscard]] virtual Status Open(const std::string& state) = 0;
  // Adds a record to the current batch.
  virtual void Write(const Record& r) = 0;
  // Bytes buffered in the current batch.
  virtual size_t buffered_bytes() const = 0;
  // Delivers the batch. On ok the batch is empty afterwards; on retry it is
  // kept for the next Flush; on fatal the caller Discards it.
  [[nodiscard]] virtual Status Flush() = 0;
  virtual void Discard() = 0;

  // Pipelining, for sinks whose store takes batches in any order without
  // harm (an idempotent insert, a producer that keeps order itself): the
  // pipeline Sends a batch and reads the next while the store works on it,
  // keeping up to `batch.in_flight` on their way, and Awaits them in the
  // order sent before it moves the cursor past them. When one does not
  // answer ok, the pipeline awaits the rest, reads the log again from that
  // batch and delivers it with Flush, retries and splitting included: a
  // pipelined batch is never retried by the sink itself.
  virtual bool pipelines() const { return false; }
  // Whether it pipelines when `batch.in_flight` is not set (4 then), or only
  // when it is (a webhook receiver may rely on the order of batches).
  virtual bool pipelines_by_default() const { return true; }
  // Starts delivering the buffered batch (at least one record was written
  // since the last Send) and returns without its answer; the batch now
  // belongs to `ticket` and the sink is empty. Not ok: nothing more will
  // come of this batch (its Await is not called).
  [[nodiscard]] virtual Status Send(uint64_t ticket) { return Status::Fatal("this sink does not pipeline"); }
  // Waits for the store's answer to Send(ticket): ok, retry or fatal. Called
  // once per ticket sent, in the order sent.
  [[nodiscard]] virtual Status Await(uint64_t ticket) { return Status::Fatal("this sink does not pipeline"); }
  // After a Flush that answered retry: how long the store asked us to wait
  // (an HTTP Retry-After), in milliseconds; -1 when it did not say.
  virtual int64_t retry_after_ms() const { return -1; }
  // True when records delivered again change nothing at the store (an
  // insert that ignores an id it has, an upsert): the pipeline then commits
  // its cursor at most once a second instead of after every batch.
  virtual bool idempotent() const { return false; }
  // True when several forkd may aggregate into this sink's store: the
  // pipeline then emits this instance's partial rows (transforms/aggregate.h),
  // which the store merges (sinks/common/merge.h).
  virtual bool merges_instances() const { return false; }
  // The sink's own gauges (librdkafka's queue ...). Called from the admin
  // server's thread while the pipeline runs: it may read only atomics.
  virtual void Gauges(std::vector<Gauge>* out) const {}
  // Opaque state to commit with the cursor after a successful Flush.
  virtual std::string State() const { return {}; }

  // Sinks that split their output (a new file per time window or size) say
  // so before the record that starts a new unit. The pipeline then flushes
  // and commits the records before it, calls Rotate(r), commits the cursor
  // again with the new State(), and only then writes r: a crash never leaves
  // output that the committed state does not describe.
  virtual bool NeedsRotate(const Record& r) const { return false; }
  // Starts the new unit; called with nothing buffered. Ok, or retry.
  [[nodiscard]] virtual Status Rotate(const Record& r) { return Status::Ok(); }
  // Called while the pipeline is idle (caught up, nothing buffered): a sink
  // whose output units close by time closes the current one here, even when
  // no record comes to start the next. *changed: State() changed, and the
  // pipeline commits it.
  [[nodiscard]] virtual Status Idle(int64_t now_us, bool* changed) {
    *changed = false;
    return Status::Ok();
  }
};

struct SinkContext {
  const Config* config = nullptr;
  const DestinationConfig* destination = nullptr;
};

}  // namespace forkd::sinks
