// Where a replay of one destination starts (`forkd replay`): the first
// retained entry received at or after a time, or the entry with a given
// event id (its idempotencyKey, or client id and sequence). Moving the
// destination's cursor back there re-delivers what follows; the sinks'
// idempotency (_fork_id) absorbs the copies.
//
// Threads: any; it reads the log through its own reader. The caller keeps
// the segments from being deleted meanwhile (retention runs under the same
// lock as a replay in forkd; a stopped forkd deletes nothing).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "log/log.h"

namespace forkd::log {

struct ReplayRequest {
  bool by_time = true;
  int64_t since_us = 0;  // by_time: wall clock, microseconds
  std::string id;        // otherwise: the event id
};

struct ReplayPlan {
  Position from;            // where the cursor goes (the cursor's own when it is already there)
  int64_t from_recv_us = 0; // receipt time of the entry at `from` (0: none, the log's end)
  uint64_t events = 0;      // entries routed to the destination in [from, what it delivered)
  uint64_t oldest_lsn = 0;  // the oldest retained entry
  int64_t oldest_recv_us = 0;
};

// Plans a replay of `destination`, whose cursor resumes at `cursor_lsn`
// and which has delivered below `delivered_lsn` (past its cursor when its
// sink is idempotent and the commit was deferred; those are delivered again
// in any case), over the log below `end_lsn`. NotFound (the message says how far back the
// log goes) when the id is not in the retained log, or when events received
// since `since_us` may be missing from it (entries older than the oldest
// retained were deleted, and it is newer than since_us).
[[nodiscard]] Status PlanReplay(Log* log, const std::string& destination,
                                const ReplayRequest& request, uint64_t cursor_lsn,
                                uint64_t delivered_lsn, uint64_t end_lsn, ReplayPlan* out);

// "2026-12-04T22:30:00Z".
std::string FormatUtc(int64_t wall_us);

}  // namespace forkd::log
