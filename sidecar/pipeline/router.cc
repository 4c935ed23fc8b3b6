#include "pipeline/router.h"

#include <algorithm>

#include "config/config.h"
#include "transforms/aggregate.h"
#include "wire/protocol.h"

namespace forkd::pipeline {

uint32_t RolloutBucket(std::string_view key) {
  // FNV-1a, then a 64-bit finalizer so that keys differing only in their
  // last characters (user-1, user-2 ...) spread evenly.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h % 10000);
}

Router::Router(const std::vector<RouteConfig>& routes,
               const std::vector<std::string>& destinations, const std::string& unmatched)
    : routes_(routes) {
  auto index = [&](const std::string& name) -> int64_t {
    auto it = std::find(destinations.begin(), destinations.end(), name);
    return it == destinations.end() ? -1 : it - destinations.begin();
  };
  for (const RouteConfig& r : routes_) {
    std::vector<uint32_t> to;
    for (const std::string& n : r.to) {
      const int64_t i = index(n);
      if (i >= 0) to.push_back(static_cast<uint32_t>(i));  // the config loader checked names
    }
    to_.push_back(std::move(to));
    stats_.push_back(std::make_unique<RouteStats>());
    has_also_ = has_also_ || r.also;
  }
  if (!unmatched.empty()) unmatched_ = index(unmatched);
}

void Router::Add(uint32_t dest, const RouteConfig* r, Decision* out) {
  for (Target& t : out->targets) {
    if (t.dest == dest) {
      if (r) {
        for (const std::string& name : r->transform) t.transforms.push_back(&name);
      }
      return;
    }
  }
  Target t{dest, {}};
  if (r) {
    for (const std::string& name : r->transform) t.transforms.push_back(&name);
  }
  out->targets.push_back(std::move(t));
}

bool Router::Route(const transforms::Doc& payload, const std::vector<uint32_t>& named,
                   std::string_view fallback_key, transforms::Arena* scratch, Decision* out) {
  out->targets.clear();
  out->routed = false;
  for (uint32_t d : named) Add(d, nullptr, out);
  const bool caller_named = !named.empty();
  for (size_t i = 0; i < routes_.size(); ++i) {
    const RouteConfig& r = routes_[i];
    if (caller_named && !r.also) continue;
    if (r.when && !r.when->Test(payload, scratch)) continue;
    if (r.rollout_bp < 10000) {
      std::string_view key = fallback_key;
      if (r.has_rollout_key) {
        const transforms::RawValue v = payload.Lookup(r.rollout_key);
        if (v.found()) {
          key_text_.clear();
          transforms::AppendText(v.data, &key_text_);
          key = key_text_;
        }
      }
      if (RolloutBucket(key) >= r.rollout_bp) continue;
    }
    stats_[i]->matched.fetch_add(1, std::memory_order_relaxed);
    for (uint32_t d : to_[i]) Add(d, &r, out);
    out->routed = true;
  }
  if (out->targets.empty()) {
    if (unmatched_ < 0) return false;
    Add(static_cast<uint32_t>(unmatched_), nullptr, out);
    out->routed = true;
  }
  return true;
}

const char* CheckCallOptions(const Config& config, const uint8_t* options, size_t options_size,
                             const std::vector<uint32_t>& targets, std::string* error) {
  if (options != nullptr && options_size > 0 && *options != 0xc0) {
    wire::Reader rd(options, options_size);
    const wire::Value m = rd.Next();
    for (uint32_t i = 0; m.kind == wire::Kind::kMap && i < m.len; ++i) {
      const wire::Value k = rd.Next();
      const uint8_t* v = rd.pos();
      rd.Skip();
      if (k.kind != wire::Kind::kStr) continue;
      wire::Reader vr(v, static_cast<size_t>(rd.pos() - v));
      const wire::Value val = vr.Next();
      if (k.str() == "transform") {
        const uint32_t count = val.kind == wire::Kind::kArray ? val.len : 1;
        for (uint32_t j = 0; j < count; ++j) {
          const wire::Value n = val.kind == wire::Kind::kArray ? vr.Next() : val;
          if (n.kind != wire::Kind::kStr) {
            *error = "options.transform: expected a template name or a list of names";
            return wire::kCodeInvalidPayload;
          }
          auto t = config.templates.find(n.str());
          if (t == config.templates.end()) {
            std::string known;
            for (const auto& [name, chain] : config.templates) known += (known.empty() ? "" : ", ") + name;
            *error = "options.transform: unknown transform template '" + std::string(n.str()) +
                     "' (configured: " + (known.empty() ? "none" : known) + ")";
            return wire::kCodeRejected;
          }
          if (t->second.aggregate) {
            *error = "options.transform: template '" + std::string(n.str()) +
                     "' aggregates; use it in a destination's transforms and send the event there "
                     "with { aggregate: 'daily' }";
            return wire::kCodeRejected;
          }
        }
      } else if (k.str() == "aggregate") {
        std::string_view w;
        if (val.kind == wire::Kind::kStr) {
          w = val.str();
        } else if (val.kind == wire::Kind::kMap) {
          for (uint32_t j = 0; j < val.len; ++j) {
            const wire::Value wk = vr.Next();
            const wire::Value wv = vr.Peek();
            if (wk.kind == wire::Kind::kStr && wk.str() == "window" && wv.kind == wire::Kind::kStr) {
              w = wv.str();
            }
            vr.Skip();
          }
        }
        int64_t ms;
        if (w.empty() || !transforms::ParseWindow(w, &ms)) {
          *error = "options.aggregate: expected a window such as 'daily', 'hourly', '15m' or "
                   "{ window: '1h' }";
          return wire::kCodeInvalidPayload;
        }
        // It applies to the targets that aggregate (an `also` route may add
        // others, which take the event as it is); refused when none does.
        bool any = false;
        std::string names;
        for (uint32_t t : targets) {
          any = any || config.destinations[t].chain.aggregate != nullptr;
          names += (names.empty() ? "'" : ", '") + config.destinations[t].name + "'";
        }
        if (!any) {
          *error = targets.size() == 1
                       ? "options.aggregate: destination " + names +
                             " has no aggregate step in its transforms"
                       : "options.aggregate: none of the destinations " + names +
                             " has an aggregate step in its transforms";
          return wire::kCodeRejected;
        }
      }
    }
  }
  return nullptr;
}

}  // namespace forkd::pipeline
