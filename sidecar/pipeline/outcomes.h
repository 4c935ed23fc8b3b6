// What became of the events clients wait on with ack 'delivered', per
// destination. An event is delivered at a destination once its pipeline's
// delivered_next_lsn() passes it, unless that pipeline filtered,
// dead-lettered or shed it: then the pipeline recorded so here first.
//
// The handshake: ingest watches an event's lsn at each target destination
// when it appends the event (before it is durable, so before any pipeline can
// read it); a pipeline that does not store a watched lsn records why before
// its delivered_next_lsn() passes it; once it has passed, ingest takes the
// outcome. Events nobody waits on cost a pipeline one relaxed atomic load per
// record it does not store, and nothing for the records it stores.
//
// Threads: every method is thread-safe. The watches of a destination outlive
// its pipeline (a pipeline restarted by a reload finds them again).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "wire/codec.h"

namespace forkd::pipeline {

// A reason longer than this is cut: it travels to the client in one frame
// with many others.
inline constexpr size_t kMaxOutcomeReason = 1024;

// What a pipeline noted for the lsns [first, last] of its destination (one
// lsn, or a shed range). The lsns not watched among them are ignored.
struct NotedOutcome {
  uint64_t first = 0;
  uint64_t last = 0;
  wire::OutcomeKind kind = wire::OutcomeKind::kFiltered;
  std::string reason;
};

// One destination's watched lsns.
class OutcomeWatch {
 public:
  // [ingest] Watches `lsn`. Watching an lsn again (a repeated idempotency
  // key) counts once more: every Watch is matched by one Take or Unwatch.
  void Watch(uint64_t lsn);
  // [ingest] Undoes one Watch: the event never became durable.
  void Unwatch(uint64_t lsn);
  // [ingest] Once delivered_next_lsn() has passed `lsn`: what the pipeline
  // recorded for it (kDelivered when nothing), and one watch fewer.
  struct Outcome {
    wire::OutcomeKind kind = wire::OutcomeKind::kDelivered;
    std::string reason;
  };
  Outcome Take(uint64_t lsn);

  // [pipeline] Whether any lsn is watched. A relaxed load: a watch is made
  // before its event is durable, so a pipeline that reads the event sees it.
  bool active() const { return watched_.load(std::memory_order_relaxed) != 0; }
  // [pipeline] Records `notes` for the watched lsns among them, before
  // delivered_next_lsn() passes them. The first outcome recorded for an lsn
  // stands (an event filtered and then caught in a shed range was filtered).
  void Record(const NotedOutcome* notes, size_t n);

 private:
  struct Entry {
    uint32_t watchers = 0;
    bool recorded = false;
    Outcome outcome;
  };
  std::mutex mu_;
  std::map<uint64_t, Entry> by_lsn_;   // guarded by mu_
  std::atomic<size_t> watched_{0};     // by_lsn_.size()
};

// The watches of every destination, by name.
class Outcomes {
 public:
  // The watch of destination `name`, made on first use; valid as long as
  // this object.
  OutcomeWatch* For(std::string_view name);

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<OutcomeWatch>, std::less<>> by_name_;  // guarded by mu_
};

}  // namespace forkd::pipeline
