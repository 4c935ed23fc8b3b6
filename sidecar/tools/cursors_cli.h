// `forkd cursors list|drop --config F [NAME]`: the cursors in
// <data_dir>/cursors, one per destination.
//   list  each cursor: its destination, its lsn, whether it is configured. A
//         cursor of a destination no longer configured holds the log from
//         its lsn (its undelivered events stay until it is configured again).
//   drop  deletes the cursor of NAME, a destination no longer configured, so
//         the log it held can go: its undelivered events are given up.
//         Through the running forkd's admin API, or straight on the files
//         when no forkd runs with this data_dir.
#pragma once

#include <string>

#include "config/config.h"

namespace forkd::tools {

struct CursorsArgs {
  std::string action;  // list, drop
  std::string destination;
};

// Exit 0; 1 when the action could not be done (forkd not answering, ...);
// 2 for bad arguments (no such cursor, a configured destination).
int Cursors(const Config& config, const CursorsArgs& args);

}  // namespace forkd::tools
