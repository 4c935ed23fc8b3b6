#include "pipeline/dry_run.h"

#include <algorithm>

#include "pipeline/router.h"
#include "pipeline/shaper.h"
#include "sinks/common/json.h"
#include "wire/protocol.h"

namespace forkd::pipeline {

const char* DryRun(const Config& config, const DryRunEvent& event, DryRunResult* out,
                   std::string* error) {
  out->destinations.clear();
  const auto* payload = reinterpret_cast<const uint8_t*>(event.payload.data());
  std::vector<std::string> names;
  for (const auto& d : config.destinations) names.push_back(d.name);
  std::vector<uint32_t> named;
  for (const std::string& n : event.destinations) {
    const DestinationConfig* d = config.Find(n);
    if (!d) {
      std::string known;
      for (const auto& k : names) known += (known.empty() ? "" : ", ") + k;
      *error = "unknown destination '" + n + "' (configured: " + known + ")";
      return wire::kCodeUnknownDestination;
    }
    named.push_back(static_cast<uint32_t>(d - config.destinations.data()));
  }
  Router router(config.routes, names, config.unmatched);
  transforms::Doc doc;
  doc.Load(payload, event.payload.size());
  transforms::Arena scratch;
  Router::Decision decision;
  if (!named.empty() && !router.has_also()) {
    for (uint32_t d : named) decision.targets.push_back({d, {}});
  } else if (!router.Route(doc, named, event.event_id, &scratch, &decision)) {
    *error = "no destination given and no route matches";
    return wire::kCodeUnknownDestination;
  }
  std::vector<uint32_t> targets;
  for (const auto& t : decision.targets) targets.push_back(t.dest);
  const auto* options = reinterpret_cast<const uint8_t*>(event.options.data());
  if (const char* code = CheckCallOptions(config, event.options.empty() ? nullptr : options,
                                          event.options.size(), targets, error)) {
    return code;
  }
  // Config order, like the pipelines.
  std::sort(decision.targets.begin(), decision.targets.end(),
            [](const Router::Target& a, const Router::Target& b) { return a.dest < b.dest; });
  for (const auto& t : decision.targets) {
    const DestinationConfig& d = config.destinations[t.dest];
    DryRunResult::Destination res;
    res.name = d.name;
    wire::Buffer route_t;
    if (!t.transforms.empty()) {
      wire::Writer w(&route_t);
      w.ArrayHeader(static_cast<uint32_t>(1 + t.transforms.size()));
      w.Str(d.name);
      for (const std::string* n : t.transforms) w.Str(*n);
    }
    Shaper shaper(d.chain, config.templates);
    Shaper::EventParts parts;
    parts.options = event.options.empty() ? nullptr : options;
    parts.route_t = route_t.empty() ? nullptr : route_t.data();
    parts.route_t_count = static_cast<uint32_t>(t.transforms.size());
    parts.bound = std::max(event.options.size(), route_t.size());
    parts.payload = payload;
    parts.payload_size = event.payload.size();
    parts.recv_us = event.recv_us;
    parts.event_id = event.event_id;
    std::string reason;
    const uint8_t* rec;
    size_t rec_size;
    switch (shaper.Shape(parts, &reason, &rec, &rec_size)) {
      case Shaper::Result::kWrite:
        res.records.emplace_back(event.event_id,
                                 std::string(reinterpret_cast<const char*>(rec), rec_size));
        break;
      case Shaper::Result::kDropped: ++res.filtered; break;
      case Shaper::Result::kDeadLetter: res.dead_letters.push_back(reason); break;
      case Shaper::Result::kAbsorbed:
        shaper.aggregator()->Emit([&](std::string_view id, const wire::Buffer& row) {
          std::string why;
          const uint8_t* r;
          size_t n;
          const Shaper::Result s = shaper.ShapeRow(id, row, event.recv_us, &why, &r, &n);
          if (s == Shaper::Result::kWrite) {
            res.records.emplace_back(std::string(id), std::string(reinterpret_cast<const char*>(r), n));
          } else if (s == Shaper::Result::kDeadLetter) {
            res.dead_letters.push_back(why);
          } else {
            ++res.filtered;
          }
        });
        break;
    }
    out->destinations.push_back(std::move(res));
  }
  return nullptr;
}

std::string DryRunResult::ToJson(bool with_ids) const {
  std::string j = "{";
  for (size_t i = 0; i < destinations.size(); ++i) {
    const Destination& d = destinations[i];
    if (i) j.push_back(',');
    sinks::AppendJsonString(d.name, &j);
    j.append(":[");
    for (size_t k = 0; k < d.records.size(); ++k) {
      if (k) j.push_back(',');
      const auto* p = reinterpret_cast<const uint8_t*>(d.records[k].second.data());
      if (with_ids) {
        sinks::AppendJsonLine(d.records[k].first, p, d.records[k].second.size(), &j);
        j.pop_back();  // the line's '\n'
      } else {
        sinks::AppendJson(p, &j);
      }
    }
    j.push_back(']');
  }
  j.push_back('}');
  return j;
}

}  // namespace forkd::pipeline
