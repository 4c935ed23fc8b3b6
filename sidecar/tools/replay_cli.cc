#include "tools/replay_cli.h"

#include <httplib.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <iostream>
#include <memory>

#include "core/clock.h"
#include "log/cursors.h"
#include "log/log.h"
#include "log/replay.h"
#include "tools/admin_client.h"

namespace forkd::tools {
namespace {

constexpr int kNotRetained = 1;
constexpr int kBadArgs = 2;

std::string Str(const YAML::Node& n, const char* key) {
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

void Print(const std::string& destination, uint64_t events, uint64_t from_lsn,
           const std::string& from_at, uint64_t oldest_lsn, const std::string& oldest_at,
           bool running) {
  std::cout << destination << ": " << events << " events will be delivered again, from lsn "
            << from_lsn;
  if (!from_at.empty()) std::cout << " (received " << from_at << ")";
  std::cout << (running ? "" : " when forkd next runs") << "\n";
  if (oldest_lsn > 0) {
    std::cout << "the log goes back to " << oldest_at << " (lsn " << oldest_lsn << ")\n";
  }
}

// No forkd runs: the cursor file is ours to rewrite (we hold the lock).
int Offline(const Config& config, const ReplayArgs& args) {
  log::CursorStore store(config.data_dir + "/cursors");
  log::Cursor cursor;
  Status s = store.Load(args.destination, &cursor);
  if (!s.ok()) {
    std::cerr << "forkd replay: "
              << (s.IsNotFound() ? "destination '" + args.destination +
                                       "' has no cursor in " + config.data_dir +
                                       "/cursors yet: it has delivered nothing to replay"
                                 : s.message())
              << "\n";
    return kNotRetained;
  }
  log::LogOptions lo;
  lo.dir = config.data_dir + "/wal";
  lo.fsync = config.fsync;
  lo.segment_bytes = static_cast<uint64_t>(config.segment_bytes);
  std::unique_ptr<log::Log> wal;
  log::RecoveryInfo info;
  s = log::Log::Open(lo, &wal, &info);
  if (!s.ok()) {
    std::cerr << "forkd replay: " << s.message() << "\n";
    return kBadArgs;
  }
  log::ReplayRequest request;
  request.by_time = !args.since.empty();
  if (request.by_time) {
    int64_t ms = 0;
    (void)ParseDurationMs(args.since, &ms);  // checked by the caller
    request.since_us = WallMicros() - ms * 1000;
  } else {
    request.id = args.from_id;
  }
  log::ReplayPlan plan;
  s = log::PlanReplay(wal.get(), args.destination, request, cursor.position.next_lsn,
                      cursor.position.next_lsn, wal->durable_next_lsn(), &plan);
  if (!s.ok()) {
    std::cerr << "forkd replay: " << s.message() << "\n";
    return s.IsNotFound() ? kNotRetained : kBadArgs;
  }
  if (plan.from.next_lsn < cursor.position.next_lsn) {
    // The sink's state stays with it: a file sink appends after what it has.
    cursor.position = plan.from;
    s = store.Save(args.destination, cursor);
    if (!s.ok()) {
      std::cerr << "forkd replay: " << s.message() << "\n";
      return kBadArgs;
    }
  }
  Print(args.destination, plan.events, plan.from.next_lsn,
        plan.from_recv_us > 0 ? log::FormatUtc(plan.from_recv_us) : "", plan.oldest_lsn,
        plan.oldest_recv_us > 0 ? log::FormatUtc(plan.oldest_recv_us) : "", false);
  return 0;
}

int Online(const Config& config, const ReplayArgs& args) {
  if (!config.admin.enabled()) {
    std::cerr << "forkd replay: a forkd runs with data_dir " << config.data_dir
              << "; a replay then goes through its admin API: set `admin: 127.0.0.1:PORT` in "
              << config.path << " (or stop it)\n";
    return kBadArgs;
  }
  httplib::Params params{{"destination", args.destination}};
  if (!args.since.empty()) params.emplace("since", args.since);
  if (!args.from_id.empty()) params.emplace("from_id", args.from_id);
  AdminReply res;
  std::string error;
  if (!AdminPost(config, httplib::append_query_params("/api/replay", params), &res, &error)) {
    std::cerr << "forkd replay: " << error << "\n";
    return kBadArgs;
  }
  YAML::Node j;
  try {
    j = YAML::Load(res.body);
  } catch (const YAML::Exception&) {
  }
  if (res.status != 200) {
    const std::string message = j.IsMap() ? Str(j, "error") : res.body;
    std::cerr << "forkd replay: " << (message.empty() ? "HTTP " + std::to_string(res.status)
                                                       : message)
              << "\n";
    if (const std::string hint = AdminRefusalHint(config, res.status); !hint.empty()) {
      std::cerr << "forkd replay: " << hint << "\n";
    }
    return res.status == 422 ? kNotRetained : kBadArgs;
  }
  if (!j.IsMap()) {
    std::cerr << "forkd replay: unexpected answer: " << res.body << "\n";
    return kBadArgs;
  }
  auto num = [&](const char* k) -> uint64_t {
    try {
      return j[k] ? j[k].as<uint64_t>() : 0;
    } catch (const YAML::Exception&) {
      return 0;
    }
  };
  Print(args.destination, num("events"), num("from_lsn"), Str(j, "from_received_at"),
        num("oldest_lsn"), Str(j, "oldest_received_at"), true);
  return 0;
}

}  // namespace

int Replay(const Config& config, const ReplayArgs& args) {
  if (args.since.empty() == args.from_id.empty()) {
    std::cerr << "forkd replay: give one of --since DURATION and --from-id ID\n";
    return kBadArgs;
  }
  int64_t ms = 0;
  if (!args.since.empty() && !ParseDurationMs(args.since, &ms)) {
    std::cerr << "forkd replay: --since '" << args.since
              << "' is not a duration (250ms, 30s, 10m, 2h, 1d)\n";
    return kBadArgs;
  }
  const DestinationConfig* d = config.Find(args.destination);
  if (d == nullptr) {
    std::string known;
    for (const auto& c : config.destinations) known += (known.empty() ? "" : ", ") + c.name;
    std::cerr << "forkd replay: unknown destination '" << args.destination << "' in "
              << config.path << " (configured: " << known << ")\n";
    return kBadArgs;
  }
  if (d->chain.aggregate) {
    std::cerr << "forkd replay: destination '" << args.destination
              << "' aggregates: its rows already count the events, and a replay would count "
                 "them twice\n";
    return kBadArgs;
  }
  int lock_fd = -1;
  if (ForkdRunning(config, &lock_fd)) return Online(config, args);
  const int rc = Offline(config, args);
  if (lock_fd >= 0) ::close(lock_fd);
  return rc;
}

}  // namespace forkd::tools
