// `forkd dlq list|show|replay|drop --config F --destination D [--id ID...]`:
// the dead letters of one destination.
//   list    one line per dead letter: when, id, attempts, reason
//   show    the stored JSON of each (all, or --id)
//   replay  back into the log for D, through the running forkd's admin API;
//           removed from the dead letters once durable in the log. Each
//           letter is checked as ingest checks an event; one that fails
//           stays, named on stderr, the others are replayed, and the exit
//           is 1
//   drop    deletes them (works with or without forkd running)
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace forkd::tools {

struct DlqArgs {
  std::string action;  // list, show, replay, drop
  std::string destination;
  std::vector<std::string> ids;
  bool json = false;  // list: the stored lines instead of the table
};

// Exit 0; 1 when the action could not be done (forkd not running, a letter
// that failed its check, ...);
// 2 for bad arguments (an unknown destination).
int Dlq(const Config& config, const DlqArgs& args);

}  // namespace forkd::tools
