// `forkd verify`: does each store hold what forkd was asked to put there?
//
// From the log's retained range it recomputes, for each destination, what
// the store must hold: the entries routed there, through the destination's
// transforms exactly as its pipeline runs them (pipeline/shaper.h), up to
// the destination's committed cursor; for an aggregate, the window rows (for
// an aggregate shared by instances, this instance's partial rows). It reads
// the store back (verify/store.h) and compares the two by `_fork_id`, which
// is also the upsert key of aggregate rows:
//   missing     expected and not in the store
//   unexpected  in the store, with an id the retained log does not explain
//   differing   in the store with other values than forkd wrote
// Rows it cannot judge are counted apart and never called wrong: ids of
// events not yet delivered (past the cursor), of events dead-lettered or
// older than --since, windows that began before the retained log, other
// instances' rows of a shared aggregate, and — once retention has deleted
// the log's start — rows whose ids it no longer has (outside the retained
// range).
//
// It reads the log without opening it (log/scan.h) and the store in one
// consistent view, so it runs beside a working forkd as well as without one.
// `repair` writes the missing and differing records through the
// destination's own sink (idempotent: an id the store has is replaced or
// ignored), deleting differing rows of append tables first, then verifies
// again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"

namespace forkd::verify {

struct VerifyOptions {
  std::vector<std::string> destinations;  // empty: every one whose store can be read back
  int64_t since_ms = 0;                   // judge only events received this recently; 0: all
  bool repair = false;
  size_t samples = 5;                     // ids shown per kind of difference
  std::string instance;                   // this forkd's instance id (core/instance.h)
};

struct DestinationReport {
  std::string name;
  std::string type;
  std::string error;        // the store could not be read (a connection error...)
  uint64_t expected = 0;
  uint64_t matching = 0;
  uint64_t missing = 0;
  uint64_t unexpected = 0;
  uint64_t differing = 0;
  uint64_t not_judged = 0;   // in flight, dead-lettered, before --since, other instances'
  uint64_t outside = 0;      // ids the retained log no longer has
  uint64_t repaired = 0;     // records written again by --repair
  std::string note;          // what --repair could not do (files are not repaired)
  std::vector<std::string> missing_samples, unexpected_samples, differing_samples;
  bool agrees() const { return error.empty() && missing == 0 && unexpected == 0 && differing == 0; }
};

struct VerifyReport {
  std::vector<DestinationReport> destinations;
  uint64_t log_first_lsn = 0;  // the retained log: [first, next)
  uint64_t log_next_lsn = 0;
  int64_t log_first_recv_us = 0;
  int64_t at_us = 0;           // when it ran (wall clock)
  int64_t took_us = 0;
  bool agrees() const;
  bool errors() const;  // any destination could not be read
  // NAME: E expected, M missing, X unexpected, D differing — and samples.
  std::string Text() const;
  std::string Json() const;
};

// Verifies (and with options.repair, repairs) the destinations. Fails only
// for a problem of the request (an unknown destination, one whose store
// cannot be read back, an unreadable log); a store's own errors are in its
// DestinationReport.
[[nodiscard]] Status Verify(const Config& config, const VerifyOptions& options, VerifyReport* out);

// The instance id stored in data_dir (read only), else the config's.
std::string StoredInstance(const Config& config);

}  // namespace forkd::verify
