// The CLI tools' way into a running forkd: a request to its admin API, with
// the admin token from the same config (admin.token, admin.token_file or
// FORK_ADMIN_TOKEN, as admin_config.h orders them) as `Authorization:
// Bearer`. Blocks for the request (2 s to connect, 30 s to answer).
#pragma once

#include <string>

#include "config/config.h"

namespace forkd::tools {

struct AdminReply {
  int status = 0;
  std::string body;
};

// POSTs `path` (with its query) to config.admin. False with *error ("forkd
// is not answering on 127.0.0.1:8787 (Connection)") when no answer came; an
// answer of any status is true. config.admin must be enabled.
bool AdminPost(const Config& config, const std::string& path, AdminReply* reply,
               std::string* error);

// The same for a GET.
bool AdminGet(const Config& config, const std::string& path, AdminReply* reply,
              std::string* error);

// Whether a forkd runs with this data_dir: it holds <data_dir>/LOCK. When
// none does, *lock_fd keeps the lock taken (so none starts meanwhile; the
// caller closes it).
bool ForkdRunning(const Config& config, int* lock_fd);

// A line for stderr after a 401 or 403, saying what to do; empty otherwise.
std::string AdminRefusalHint(const Config& config, int status);

}  // namespace forkd::tools
