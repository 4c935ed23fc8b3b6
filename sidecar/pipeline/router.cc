#include "pipeline/router.h"

#include <algorithm>

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

}  // namespace forkd::pipeline
