#include "tools/dlq_cli.h"

#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <iostream>

#include "pipeline/dead_letters.h"
#include "tools/admin_client.h"

namespace forkd::tools {

namespace {

std::string Shorten(std::string s, size_t n) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

// POSTs the action to the running forkd's admin API.
int Remote(const Config& config, const DlqArgs& args) {
  if (!config.admin.enabled()) {
    std::cerr << "forkd dlq " << args.action
              << ": needs the running forkd's admin API: set `admin: 127.0.0.1:PORT` in "
              << config.path << "\n";
    return 1;
  }
  httplib::Params params{{"destination", args.destination}};
  for (const auto& id : args.ids) params.emplace("id", id);
  AdminReply res;
  std::string error;
  if (!AdminPost(config, httplib::append_query_params("/api/dlq/" + args.action, params), &res,
                 &error)) {
    std::cerr << "forkd dlq " << args.action << ": " << error
              << "; start it with `forkd run --config " << config.path << "` and try again\n";
    return 1;
  }
  std::cout << res.body;
  if (res.status != 200) {
    std::cerr << "forkd dlq " << args.action << ": HTTP " << res.status << "\n";
    if (const std::string hint = AdminRefusalHint(config, res.status); !hint.empty()) {
      std::cerr << "forkd dlq " << args.action << ": " << hint << "\n";
    }
    return res.status == 404 ? 2 : 1;
  }
  // Letters left behind are named on stderr; one that failed its check
  // (edited or damaged) makes the replay incomplete, so the exit says so.
  try {
    const YAML::Node answer = YAML::Load(res.body);  // JSON is YAML
    for (const auto& e : answer["errors"]) {
      std::cerr << "forkd dlq " << args.action << ": " << e.as<std::string>() << "\n";
    }
    if (answer["invalid"] && answer["invalid"].as<uint64_t>() > 0) return 1;
  } catch (const YAML::Exception& e) {
    std::cerr << "forkd dlq " << args.action << ": unexpected answer from forkd: " << e.msg
              << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int Dlq(const Config& config, const DlqArgs& args) {
  if (config.Find(args.destination) == nullptr) {
    std::string known;
    for (const auto& d : config.destinations) known += (known.empty() ? "" : ", ") + d.name;
    std::cerr << "forkd dlq: unknown destination '" << args.destination
              << "' (configured: " << known << ")\n";
    return 2;
  }
  if (args.action == "replay") return Remote(config, args);

  pipeline::DeadLetters letters(config.data_dir + "/dead_letters");
  auto wanted = [&](const pipeline::ParsedLetter& l) {
    return args.ids.empty() || std::find(args.ids.begin(), args.ids.end(), l.id) != args.ids.end();
  };
  if (args.action == "drop") {
    // Straight on the file: its lock keeps a running forkd's appends safe.
    size_t removed = 0;
    Status s = letters.Rewrite(
        args.destination,
        [&](const std::string& line) {
          pipeline::ParsedLetter l;
          std::string error;
          return !pipeline::ParseLetter(line, &l, &error) || !wanted(l);
        },
        &removed);
    if (!s.ok()) {
      std::cerr << "forkd dlq drop: " << s.message() << "\n";
      return 1;
    }
    std::cout << "dropped " << removed << " dead letters of " << args.destination << "\n";
    return 0;
  }

  std::vector<std::string> lines;
  std::vector<size_t> numbers;
  Status s = letters.Read(args.destination, &lines, &numbers);
  if (!s.ok()) {
    std::cerr << "forkd dlq: " << s.message() << "\n";
    return 1;
  }
  size_t shown = 0, shed_ranges = 0;
  uint64_t shed_events = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    pipeline::ParsedLetter l;
    std::string error;
    if (!pipeline::ParseLetter(lines[i], &l, &error)) {
      std::cerr << letters.PathFor(args.destination) << ":" << numbers[i] << ": " << error << "\n";
      continue;
    }
    if (!wanted(l)) continue;
    ++shown;
    if (l.shed) {
      ++shed_ranges;
      shed_events += l.shed_events;
    }
    if (args.action == "show" || args.json) {
      std::cout << lines[i] << "\n";
      continue;
    }
    auto row = [](const std::string& at, const std::string& id, const std::string& attempts,
                  const std::string& reason) {
      std::string r = at;
      r.resize(std::max<size_t>(r.size() + 2, 30), ' ');
      r += Shorten(id, 32);
      r.resize(std::max<size_t>(r.size() + 2, 64), ' ');
      r += attempts;
      r.resize(std::max<size_t>(r.size() + 2, 74), ' ');
      return r + Shorten(reason, 120) + "\n";
    };
    if (shown == 1) std::cout << row("at", "id", "attempts", "reason");
    const std::string id = l.shed ? "(shed: " + std::to_string(l.shed_events) + " events)" : l.id;
    std::cout << row(l.at, id, std::to_string(l.attempts), l.reason);
  }
  if (args.action == "list" && !args.json) {
    std::cout << shown << " dead letters of " << args.destination;
    if (shed_ranges > 0) {
      std::cout << " (" << shed_ranges << " shed ranges, " << shed_events << " events skipped)";
    }
    std::cout << "\n";
  }
  if (!args.ids.empty() && shown == 0) {
    std::cerr << "forkd dlq " << args.action << ": no dead letter of " << args.destination
              << " has the id(s) given\n";
    return 1;
  }
  return 0;
}

}  // namespace forkd::tools
