#include "tools/dry_run_cli.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <iostream>

#include "core/clock.h"
#include "pipeline/dry_run.h"
#include "sinks/common/json.h"
#include "transforms/record.h"
#include "transforms/yaml_value.h"

namespace forkd::tools {
namespace {

// JSON text with map keys sorted at every level, so records compare by
// content whatever order their fields were written in.
const uint8_t* CanonicalJson(const uint8_t* p, std::string* out) {
  wire::Reader rd(p, SIZE_MAX / 2);
  const wire::Value v = rd.Peek();
  if (v.kind == wire::Kind::kArray) {
    rd.Next();
    out->push_back('[');
    const uint8_t* q = rd.pos();
    for (uint32_t i = 0; i < v.len; ++i) {
      if (i) out->push_back(',');
      q = CanonicalJson(q, out);
    }
    out->push_back(']');
    return q;
  }
  if (v.kind == wire::Kind::kMap) {
    rd.Next();
    std::vector<std::pair<std::string, std::string>> entries;
    const uint8_t* q = rd.pos();
    for (uint32_t i = 0; i < v.len; ++i) {
      std::string k, val;
      q = sinks::AppendJsonKey(q, &k);
      q = CanonicalJson(q, &val);
      entries.emplace_back(std::move(k), std::move(val));
    }
    std::sort(entries.begin(), entries.end());
    out->push_back('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out->push_back(',');
      out->append(entries[i].first).push_back(':');
      out->append(entries[i].second);
    }
    out->push_back('}');
    return q;
  }
  return sinks::AppendJson(p, out);
}

bool ToMsgpack(const YAML::Node& n, std::string* out, std::string* error) {
  wire::Buffer b;
  wire::Writer w(&b);
  if (!transforms::YamlToMsgpack(n, &w, error)) return false;
  out->assign(reinterpret_cast<const char*>(b.data()), b.size());
  return true;
}

bool ParseJsonArg(const std::string& text, const char* what, std::string* out) {
  YAML::Node n;
  try {
    n = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::cerr << "forkd: " << what << ": not valid JSON: " << e.msg << " at column "
              << e.mark.column + 1 << "\n";
    return false;
  }
  if (!n.IsMap()) {
    std::cerr << "forkd: " << what << ": expected a JSON object\n";
    return false;
  }
  std::string error;
  if (!ToMsgpack(n, out, &error)) {
    std::cerr << "forkd: " << what << ": " << error << "\n";
    return false;
  }
  return true;
}

bool ParseTime(const std::string& text, int64_t* recv_us) {
  if (text.empty()) {
    *recv_us = WallMicros();
    return true;
  }
  int64_t ms;
  if (!transforms::ParseIsoTime(text, &ms)) return false;
  *recv_us = ms * 1000;
  return true;
}

// The record without _fork_id (compared only when the expectation has one).
std::string RecordJson(const std::string& id, const std::string& msgpack, bool with_id) {
  std::string j;
  if (!with_id) {
    CanonicalJson(reinterpret_cast<const uint8_t*>(msgpack.data()), &j);
    return j;
  }
  // Add the id as a field, then canonicalize.
  wire::Buffer b;
  wire::Writer w(&b);
  wire::Reader rd(reinterpret_cast<const uint8_t*>(msgpack.data()), msgpack.size());
  const wire::Value m = rd.Next();
  w.MapHeader(m.len + 1);
  w.Str("_fork_id");
  w.Str(id);
  w.Raw(rd.pos(), msgpack.size() - static_cast<size_t>(rd.pos() - reinterpret_cast<const uint8_t*>(msgpack.data())));
  CanonicalJson(b.data(), &j);
  return j;
}

}  // namespace

int Explain(const Config& config, const ExplainArgs& args) {
  pipeline::DryRunEvent ev;
  if (!ParseJsonArg(args.payload_json, "--payload", &ev.payload)) return 2;
  if (!args.options_json.empty() && !ParseJsonArg(args.options_json, "--options", &ev.options)) {
    return 2;
  }
  if (!ParseTime(args.received_at, &ev.recv_us)) {
    std::cerr << "forkd: --received-at: expected ISO-8601 like 2026-11-21T10:00:00Z\n";
    return 2;
  }
  if (!args.id.empty()) ev.event_id = args.id;
  ev.destinations = args.destinations;
  pipeline::DryRunResult res;
  std::string error;
  if (const char* code = pipeline::DryRun(config, ev, &res, &error)) {
    std::cerr << code << ": " << error << "\n";
    return 1;
  }
  std::cout << res.ToJson(/*with_ids=*/true) << "\n";
  for (const auto& d : res.destinations) {
    for (const auto& why : d.dead_letters) std::cerr << d.name << ": dead letter: " << why << "\n";
    if (d.filtered) std::cerr << d.name << ": filtered out\n";
  }
  return 0;
}

int RunCases(const Config& config, const std::string& cases_path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(cases_path);
  } catch (const YAML::BadFile&) {
    std::cerr << cases_path << ": cannot read the file\n";
    return 2;
  } catch (const YAML::ParserException& e) {
    std::cerr << cases_path << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg
              << "\n";
    return 2;
  }
  const YAML::Node cases = root.IsMap() ? root["cases"] : root;
  if (!cases.IsSequence()) {
    std::cerr << cases_path << ": expected a list of cases (or a map with `cases:`)\n";
    return 2;
  }
  auto where = [&](const YAML::Node& n) {
    return cases_path + ":" + std::to_string(n.Mark().line + 1) + ":" +
           std::to_string(n.Mark().column + 1);
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const YAML::Node c = cases[i];
    const std::string name =
        c["name"] ? c["name"].as<std::string>() : "case " + std::to_string(i + 1);
    for (auto it = c.begin(); c.IsMap() && it != c.end(); ++it) {
      static const std::vector<std::string_view> kKeys = {
          "name", "input", "destinations", "options", "received_at", "id", "expect",
          "dead_letters", "error"};
      const std::string k = it->first.Scalar();
      if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
        std::string m = where(it->first) + ": " + name + ": unknown key '" + k + "'";
        const std::string dym = DidYouMean(k, kKeys);
        if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
        std::cerr << m << "\n";
        return 2;
      }
    }
    pipeline::DryRunEvent ev;
    std::string error;
    if (!c.IsMap() || !c["input"] || !c["input"].IsMap() || !ToMsgpack(c["input"], &ev.payload, &error)) {
      std::cerr << where(c) << ": " << name << ": `input` must be a map (the event's payload)"
                << (error.empty() ? "" : ": " + error) << "\n";
      return 2;
    }
    if (c["destinations"]) {
      const YAML::Node d = c["destinations"];
      if (d.IsScalar()) ev.destinations.push_back(d.Scalar());
      for (size_t k = 0; d.IsSequence() && k < d.size(); ++k) ev.destinations.push_back(d[k].Scalar());
    }
    if (c["options"] && !ToMsgpack(c["options"], &ev.options, &error)) {
      std::cerr << where(c["options"]) << ": " << name << ": " << error << "\n";
      return 2;
    }
    if (!ParseTime(c["received_at"] ? c["received_at"].Scalar() : "2026-01-01T00:00:00Z", &ev.recv_us)) {
      std::cerr << where(c["received_at"]) << ": " << name << ": received_at: expected ISO-8601\n";
      return 2;
    }
    if (c["id"]) ev.event_id = c["id"].Scalar();
    pipeline::DryRunResult res;
    std::string refusal;
    const char* code = pipeline::DryRun(config, ev, &res, &refusal);
    std::vector<std::string> problems;
    if (c["error"]) {
      const std::string want = c["error"].Scalar();
      if (!code) problems.push_back("expected the event to be refused with " + want + ", but it was routed");
      else if (want != code) problems.push_back("expected " + want + ", got " + code + ": " + refusal);
    } else if (code) {
      problems.push_back(std::string("refused: ") + code + ": " + refusal);
    }
    if (!code && c["expect"]) {
      const YAML::Node expect = c["expect"];
      if (!expect.IsMap()) {
        std::cerr << where(expect) << ": " << name << ": `expect` maps destinations to lists of records\n";
        return 2;
      }
      for (const auto& d : res.destinations) {
        if (!expect[d.name]) {
          problems.push_back("reached " + d.name + ", which `expect` does not list");
        }
      }
      for (auto it = expect.begin(); it != expect.end(); ++it) {
        const std::string dest = it->first.Scalar();
        const auto found = std::find_if(res.destinations.begin(), res.destinations.end(),
                                        [&](const auto& d) { return d.name == dest; });
        if (found == res.destinations.end()) {
          problems.push_back("expected records for " + dest + ", which the event does not reach");
          continue;
        }
        const YAML::Node want = it->second;
        if (!want.IsSequence()) {
          std::cerr << where(want) << ": " << name << ": expect." << dest << ": expected a list of records\n";
          return 2;
        }
        std::string diff;
        const size_t n = std::max<size_t>(want.size(), found->records.size());
        bool same = want.size() == found->records.size();
        for (size_t k = 0; k < n; ++k) {
          std::string w, a;
          bool with_id = false;
          if (k < want.size()) {
            with_id = want[k].IsMap() && want[k]["_fork_id"];
            std::string mp;
            if (!ToMsgpack(want[k], &mp, &error)) {
              std::cerr << where(want[k]) << ": " << error << "\n";
              return 2;
            }
            CanonicalJson(reinterpret_cast<const uint8_t*>(mp.data()), &w);
          }
          if (k < found->records.size()) {
            a = RecordJson(found->records[k].first, found->records[k].second, with_id);
          }
          if (w == a) {
            diff += "      " + w + "\n";
          } else {
            same = false;
            if (!w.empty()) diff += "    - " + w + "\n";
            if (!a.empty()) diff += "    + " + a + "\n";
          }
        }
        if (!same) problems.push_back(dest + ": records differ (- expected, + actual):\n" + diff);
      }
    }
    if (!code && c["dead_letters"]) {
      for (auto it = c["dead_letters"].begin(); it != c["dead_letters"].end(); ++it) {
        const std::string dest = it->first.Scalar();
        const auto found = std::find_if(res.destinations.begin(), res.destinations.end(),
                                        [&](const auto& d) { return d.name == dest; });
        const std::string want = it->second.Scalar();
        bool hit = false;
        if (found != res.destinations.end()) {
          for (const auto& why : found->dead_letters) hit = hit || why.find(want) != std::string::npos;
        }
        if (!hit) problems.push_back(dest + ": expected a dead letter whose reason contains '" + want + "'");
      }
    }
    if (problems.empty()) {
      ++passed;
      std::cout << "ok    " << name << "\n";
    } else {
      ++failed;
      std::cout << "FAIL  " << name << " (" << where(c) << ")\n";
      for (const auto& p : problems) std::cout << "  " << p << (p.back() == '\n' ? "" : "\n");
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace forkd::tools
