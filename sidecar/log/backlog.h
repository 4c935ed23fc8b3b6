// What the log still holds for destinations that have no running pipeline:
// one removed from the config (its cursor stays behind) or one whose pipeline
// failed to start. Retention keeps everything from their cursors; this counts
// the events among it that were routed to them, so an operator is told what
// is at stake in numbers.
//
// Threads: any; it reads the log through its own reader.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/status.h"
#include "log/entry.h"
#include "log/log.h"

namespace forkd::log {

// True when the stored event ([dests, key, options, payload]) lists
// `destination`: by name, or in a route's [name, template...] entry.
bool RoutedTo(const Entry& e, std::string_view destination);

// For each destination in `from` (name -> the lsn its cursor resumes at),
// counts the entries in [that lsn, end_lsn) routed to it. One pass over the
// log from the lowest of them; entries no longer in the log are not counted.
// *damaged: the regions the reader had to skip (0 on a clean log).
[[nodiscard]] Status CountRouted(Log* log, const std::map<std::string, uint64_t>& from,
                                 uint64_t end_lsn, std::map<std::string, uint64_t>* counts,
                                 uint64_t* damaged = nullptr);

}  // namespace forkd::log
