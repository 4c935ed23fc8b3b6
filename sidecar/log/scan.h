// Reads a log's entries without opening it: no recovery, no lock, nothing
// written. For tools that look at the log of a forkd that may be running
// (`forkd verify`): each segment is read up to its size when the scan
// reaches it, a torn or still-growing tail reads as its end, and every entry
// handed on passed wire::CheckStoredEvent (damage is counted and skipped).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "log/entry.h"

namespace forkd::log {

struct ScanInfo {
  uint64_t first_lsn = 0;  // the oldest retained entry's (0: an empty log)
  int64_t first_recv_us = 0;
  uint64_t next_lsn = 0;   // past the last entry read
  uint64_t entries = 0;
  uint64_t damaged = 0;    // records skipped as damaged
};

// Calls `fn` for each entry with lsn >= from_lsn and < until_lsn (0: no
// bound), in order, from the segments in `dir`; `fn` returns false to stop.
// The entry's views are valid only during the call. NotFound when `dir`
// does not exist.
[[nodiscard]] Status ScanLog(const std::string& dir, uint64_t from_lsn, uint64_t until_lsn,
                             const std::function<bool(const Entry&)>& fn, ScanInfo* info);

}  // namespace forkd::log
