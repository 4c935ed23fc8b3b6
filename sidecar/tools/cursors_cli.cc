#include "tools/cursors_cli.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iostream>
#include <vector>

#include "log/cursors.h"
#include "tools/admin_client.h"

namespace forkd::tools {
namespace {

int List(const Config& config) {
  log::CursorStore store(config.data_dir + "/cursors");
  std::vector<std::string> names;
  Status s = store.List(&names);
  if (!s.ok()) {
    if (s.IsNotFound()) {
      std::cout << "no cursors in " << config.data_dir << "/cursors\n";
      return 0;
    }
    std::cerr << "forkd cursors list: " << s.message() << "\n";
    return 1;
  }
  size_t removed = 0;
  for (const auto& name : names) {
    log::Cursor c;
    s = store.Load(name, &c);
    std::string row = name;
    row.resize(std::max<size_t>(row.size() + 2, 24), ' ');
    row += s.ok() ? "lsn " + std::to_string(c.position.next_lsn) : "damaged (" + s.message() + ")";
    row.resize(std::max<size_t>(row.size() + 2, 40), ' ');
    if (config.Find(name) != nullptr) {
      row += "configured";
    } else {
      ++removed;
      row += "not configured: holds the log until configured again or dropped";
    }
    std::cout << row << "\n";
  }
  std::cout << names.size() << " cursors";
  if (removed > 0) {
    std::cout << ", " << removed
              << " of destinations no longer configured (their undelivered events: "
                 "/api/status, removed_destinations)";
  }
  std::cout << "\n";
  return 0;
}

int Drop(const Config& config, const std::string& name) {
  if (config.Find(name) != nullptr) {
    std::cerr << "forkd cursors drop: destination '" << name << "' is configured in "
              << config.path << ": remove it from the config (and reload) first\n";
    return 2;
  }
  int lock_fd = -1;
  if (!ForkdRunning(config, &lock_fd)) {
    // No forkd: the files are ours to change.
    log::CursorStore store(config.data_dir + "/cursors");
    log::Cursor c;
    Status s = store.Load(name, &c);
    if (s.IsNotFound()) {
      if (lock_fd >= 0) ::close(lock_fd);
      std::cerr << "forkd cursors drop: no cursor of '" << name << "' in " << config.data_dir
                << "/cursors\n";
      return 2;
    }
    s = store.Remove(name);
    if (lock_fd >= 0) ::close(lock_fd);
    if (!s.ok()) {
      std::cerr << "forkd cursors drop: " << s.message() << "\n";
      return 1;
    }
    std::cout << "dropped the cursor of " << name
              << ": its undelivered events are given up; forkd deletes the log it held when "
                 "it next runs\n";
    return 0;
  }
  if (!config.admin.enabled()) {
    std::cerr << "forkd cursors drop: a forkd runs with data_dir " << config.data_dir
              << "; dropping a cursor then goes through its admin API: set `admin: "
                 "127.0.0.1:PORT` in "
              << config.path << " (or stop it)\n";
    return 1;
  }
  AdminReply res;
  std::string error;
  if (!AdminPost(config,
                 httplib::append_query_params("/api/cursors/drop",
                                              httplib::Params{{"destination", name}}),
                 &res, &error)) {
    std::cerr << "forkd cursors drop: " << error << "\n";
    return 1;
  }
  std::cout << res.body;
  if (res.status != 200) {
    std::cerr << "forkd cursors drop: HTTP " << res.status << "\n";
    if (const std::string hint = AdminRefusalHint(config, res.status); !hint.empty()) {
      std::cerr << "forkd cursors drop: " << hint << "\n";
    }
    return res.status == 404 || res.status == 409 ? 2 : 1;
  }
  return 0;
}

}  // namespace

int Cursors(const Config& config, const CursorsArgs& args) {
  if (args.action == "list") return List(config);
  if (args.destination.empty()) {
    std::cerr << "forkd cursors drop: which destination? (forkd cursors drop NAME --config F)\n";
    return 2;
  }
  return Drop(config, args.destination);
}

}  // namespace forkd::tools
