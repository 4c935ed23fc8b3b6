#include "tools/status_cli.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "log/cursors.h"
#include "log/event_indexer.h"
#include "log/scan.h"
#include "pipeline/event_status.h"
#include "tools/admin_client.h"
#include "wire/codec.h"

namespace forkd::tools {
namespace {

constexpr size_t kErrorWidth = 60;

std::string Str(const YAML::Node& n, const char* key) {
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

double Num(const YAML::Node& n, const char* key) {
  const YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return 0;
  try {
    return v.as<double>();
  } catch (const YAML::Exception&) {
    return 0;
  }
}

std::string Count(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

std::string Duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  char buf[64];
  if (s >= 86400) {
    std::snprintf(buf, sizeof(buf), "%lldd %02lldh %02lldm", s / 86400, s % 86400 / 3600,
                  s % 3600 / 60);
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh %02lldm %02llds", s / 3600, s % 3600 / 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm %02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  }
  return buf;
}

// The status JSON's state and breaker, in words: a destination whose breaker
// is open or half-open is failing too, but it is waiting, not retrying.
std::string State(const YAML::Node& d) {
  const std::string state = Str(d, "state");
  const std::string breaker = Str(d, "breaker");
  if (state == "failed") return "failed to start";
  if (breaker == "open") return "breaker open";
  if (breaker == "half-open") return "breaker half-open";
  if (state == "failing") return "retrying";
  if (state == "ok") return "running";
  return state;
}

// One line, at most `width` characters (UTF-8 sequences kept whole).
std::string Truncate(std::string s, size_t width) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (++chars == width) {  // the last one left is the ellipsis
      size_t end = i + 1;
      while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
      if (end < s.size()) return s.substr(0, i) + "\u2026";
      return s;
    }
  }
  return s;
}

// Columns padded to their widest cell; numbers right-aligned.
void PrintTable(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      const std::string pad(width[c] - r[c].size(), ' ');
      if (c + 1 == r.size() && !right[c]) {
        line += r[c];  // no trailing blanks
      } else {
        line += right[c] ? pad + r[c] : r[c] + pad;
        line += "  ";
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

// Percent-encodes an id for a path segment.
std::string EncodePathSegment(const std::string& id) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// One destination's answer, in words.
std::string Detail(const YAML::Node& d) {
  const std::string status = Str(d, "status");
  if (status == "delivered") {
    const std::string at = Str(d, "delivered_at"), after = Str(d, "delivered_after");
    if (!at.empty() && !after.empty()) return "between " + after + " and " + at;
    if (!at.empty()) return "by " + at;
    return "";
  }
  if (status == "pending") {
    std::string s = Str(d, "state");
    const double attempts = Num(d, "attempts");
    if (attempts > 0) s += ", " + Count(attempts) + (attempts == 1 ? " attempt" : " attempts");
    const double ahead = Num(d, "events_ahead");
    if (ahead > 0) s += ", " + Count(ahead) + " log entries before it";
    const std::string err = Str(d, "last_error");
    if (!err.empty()) s += ": " + err;
    return Truncate(s, kErrorWidth + 20);
  }
  if (status == "dead_lettered") {
    std::string s = Str(d, "reason");
    const double attempts = Num(d, "attempts");
    if (attempts > 0) s += " (" + Count(attempts) + (attempts == 1 ? " attempt)" : " attempts)");
    return Truncate(s, kErrorWidth + 20);
  }
  if (status == "filtered") return Truncate(Str(d, "reason"), kErrorWidth + 20);
  return "";
}

// Prints an event's status JSON (`body`) as a table, or as it is with --json.
int PrintEvent(const Config& config, const StatusArgs& args, const std::string& body) {
  if (args.json) {
    std::cout << body;
    if (body.empty() || body.back() != '\n') std::cout << "\n";
    return 0;
  }
  YAML::Node s;
  try {
    s = YAML::Load(body);  // JSON is YAML
  } catch (const YAML::Exception&) {
  }
  if (!s.IsMap()) {
    std::cerr << "forkd status: the answer of " << config.admin.listen
              << " is not an event's status JSON\n";
    return 2;
  }
  std::cout << "event " << Str(s, "id") << "\n";
  if (Str(s, "status") == "expired") {
    std::cout << "expired: older than the retained log, which starts at lsn "
              << Str(s, "retained_from_lsn") << "\n";
    return 0;
  }
  std::cout << "lsn " << Str(s, "lsn") << ", received " << Str(s, "received_at") << "\n\n";
  std::vector<std::vector<std::string>> rows = {{"DESTINATION", "STATUS", "DETAIL"}};
  for (const auto& d : s["destinations"]) {
    std::string status = Str(d, "status");
    if (status == "filtered") status += " (" + Str(d, "by") + ")";
    rows.push_back({Str(d, "name"), status, Detail(d)});
  }
  if (rows.size() == 1) {
    std::cout << "no destinations\n";
  } else {
    PrintTable(rows, {false, false, false});
  }
  return 0;
}

// forkd is stopped: the event from its log (read without opening it), each
// destination's position from its cursor file, and the dead letters.
int OfflineEvent(const Config& config, const StatusArgs& args) {
  if (const std::string why = pipeline::MalformedEventId(args.event); !why.empty()) {
    std::cerr << "forkd status: " << why << "\n";
    return 1;
  }
  std::vector<log::FoundEntry> found;
  log::ScanInfo info;
  char buf[wire::kMaxEventIdSize];
  Status s = log::ScanLog(
      config.data_dir + "/wal", 0, 0,
      [&](const log::Entry& e) {
        if (log::StoredEventId(e, buf) == args.event) {
          log::FoundEntry f;
          f.header = e.header;
          f.event.assign(reinterpret_cast<const char*>(e.event), e.event_size);
          found.push_back(std::move(f));
        }
        return true;
      },
      &info);
  if (!s.ok() && !s.IsNotFound()) {
    std::cerr << "forkd status: reading the log in " << config.data_dir << "/wal: " << s.message()
              << "\n";
    return 2;
  }
  if (found.empty()) {
    std::cerr << "forkd status: no event with id " << args.event << " is in the retained log";
    if (info.entries > 0) std::cerr << " (lsn " << info.first_lsn << " to " << info.next_lsn << ")";
    std::cerr << "; forkd is not running, so its log in " << config.data_dir
              << "/wal was read directly\n";
    return 1;
  }
  const log::CursorStore cursors(config.data_dir + "/cursors");
  const pipeline::DeadLetters dead_letters(config.data_dir + "/dead_letters");
  auto progress = [&](const std::string& name) {
    pipeline::DeliveryProgress dp;
    dp.known = true;
    dp.state = "stopped (forkd is not running)";
    log::Cursor c;
    if (!cursors.Load(name, &c).ok()) return dp;  // nothing committed yet
    dp.next_lsn = c.position.next_lsn;
    // The cursor file was last written when its commit passed the event at
    // the latest: delivered by then.
    struct stat st;
    if (::stat(cursors.PathFor(name).c_str(), &st) == 0) {
      const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000 +
                            st.st_mtim.tv_nsec / 1000;
      dp.passed = [mtime](uint64_t, int64_t* at, int64_t*) { *at = mtime; };
    }
    return dp;
  };
  std::cerr << "forkd status: forkd is not running: read from its log, cursors and dead letters in "
            << config.data_dir << "\n";
  return PrintEvent(config, args,
                    pipeline::EventStatusJson(config, args.event, found, progress, dead_letters));
}

int ShowEvent(const Config& config, const StatusArgs& args) {
  AdminReply res;
  std::string error;
  if (!config.admin.enabled() ||
      !AdminGet(config, "/api/events/" + EncodePathSegment(args.event), &res, &error)) {
    int lock_fd = -1;
    if (!ForkdRunning(config, &lock_fd)) {
      // Held while reading, so no forkd starts meanwhile.
      const int rc = OfflineEvent(config, args);
      if (lock_fd >= 0) ::close(lock_fd);
      return rc;
    }
    std::cerr << "forkd status: forkd runs with " << config.data_dir << " but "
              << (config.admin.enabled() ? "its admin server does not answer (" + error + ")"
                                         : "the admin server is off in " + config.path +
                                               ": add `admin: 127.0.0.1:8787` and restart it")
              << "\n";
    return 2;
  }
  if (res.status != 200) {
    YAML::Node s;
    try {
      s = YAML::Load(res.body);
    } catch (const YAML::Exception&) {
    }
    const std::string message = s.IsMap() ? Str(s, "error") : "";
    std::cerr << "forkd status: "
              << (message.empty() ? "HTTP " + std::to_string(res.status) : message) << "\n";
    if (const std::string hint = AdminRefusalHint(config, res.status); !hint.empty()) {
      std::cerr << "forkd status: " << hint << "\n";
    }
    return res.status == 404 || res.status == 400 ? 1 : 2;
  }
  return PrintEvent(config, args, res.body);
}

}  // namespace

int ShowStatus(const Config& config, const StatusArgs& args) {
  if (!args.event.empty()) return ShowEvent(config, args);
  if (!config.admin.enabled()) {
    std::cerr << "forkd status: the admin server is off in " << config.path
              << ", so a running forkd cannot be asked: add `admin: 127.0.0.1:8787` to it and "
                 "restart forkd\n";
    return 2;
  }
  AdminReply res;
  std::string error;
  if (!AdminGet(config, "/api/status", &res, &error)) {
    std::cerr << "forkd status: forkd is not running (" << error << ", the admin address in "
              << config.path << "); start it with `forkd run --config " << config.path << "`\n";
    return 2;
  }
  if (res.status != 200) {
    std::cerr << "forkd status: the admin server at " << config.admin.listen << " answered HTTP "
              << res.status << "\n";
    if (const std::string hint = AdminRefusalHint(config, res.status); !hint.empty()) {
      std::cerr << "forkd status: " << hint << "\n";
    }
    return 1;
  }
  if (args.json) {
    std::cout << res.body;
    if (res.body.empty() || res.body.back() != '\n') std::cout << "\n";
    return 0;
  }
  YAML::Node s;
  try {
    s = YAML::Load(res.body);  // JSON is YAML
  } catch (const YAML::Exception& e) {
    std::cerr << "forkd status: the answer of " << config.admin.listen
              << " is not the status JSON: " << e.msg << "\n";
    return 1;
  }
  if (!s.IsMap()) {
    std::cerr << "forkd status: the answer of " << config.admin.listen
              << " is not the status JSON\n";
    return 1;
  }
  if (Str(s, "state") == "starting") {
    std::cout << "forkd at " << config.admin.listen << " is starting (recovering its log)\n";
    return 0;
  }
  const YAML::Node in = s["ingest"];
  std::string accepted = Count(Num(in, "events")) + " events";
  const double rejected = Num(in, "rejected"), duplicates = Num(in, "duplicates");
  if (rejected > 0 || duplicates > 0) {
    accepted += " (" + Count(rejected) + " rejected, " + Count(duplicates) + " duplicates)";
  }
  PrintTable({{"instance", Str(s, "instance")},
              {"version", Str(s, "version")},
              {"uptime", Duration(Num(s, "uptime_seconds"))},
              {"listen", Str(s, "listen")},
              {"accepted", accepted}},
             {false, false});
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows = {{"DESTINATION", "TYPE", "STATE", "DELIVERED",
                                                 "PENDING", "LAG (S)", "DEAD LETTERS",
                                                 "LAST ERROR"}};
  for (const auto& d : s["destinations"]) {
    char lag[32];
    std::snprintf(lag, sizeof(lag), "%.1f", Num(d, "lag_seconds"));
    rows.push_back({Str(d, "name"), Str(d, "type"), State(d), Count(Num(d, "delivered")),
                    Count(Num(d, "lag_events")), lag, Count(Num(d, "dead_lettered")),
                    Truncate(Str(d, "last_error"), kErrorWidth)});
  }
  if (rows.size() == 1) {
    std::cout << "no destinations\n";
  } else {
    PrintTable(rows, {false, false, false, true, true, true, true, false});
  }
  const YAML::Node removed = s["removed_destinations"];
  if (removed && removed.size() > 0) std::cout << "\n";
  for (const auto& r : removed) {
    std::cout << "no longer configured: " << Str(r, "name") << " holds "
              << Count(Num(r, "undelivered_events"))
              << " undelivered events in the log (forkd cursors drop " << Str(r, "name")
              << " gives them up)\n";
  }
  return 0;
}

}  // namespace forkd::tools
