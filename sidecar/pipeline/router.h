// Routing rules: which destinations an event goes to when the caller names
// none, and which are added even when it does (`also: true`).
//
// Routes are evaluated once, at ingest, and the outcome is stored with the
// event in the log: the destination list of the stored event is the routed
// one, and a destination that a route's `transform` applies to is stored as
// [name, template...]. Pipelines therefore never evaluate routes, a restart
// or a config reload never changes where an already-acknowledged event goes,
// and the ack can tell the caller where its event went.
//
// Threads: Route() is called on the ingest thread; the counters may be read
// from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/options.h"
#include "transforms/expr.h"
#include "transforms/record.h"

namespace forkd {

struct Config;

struct RouteConfig {
  std::shared_ptr<const transforms::expr::Program> when;  // null: always
  std::vector<std::string> to;
  bool also = false;
  std::vector<std::string> transform;  // template names applied on this route's destinations
  int64_t rollout_bp = 10000;          // share of traffic in basis points (0..10000)
  bool has_rollout_key = false;
  transforms::Path rollout_key;
  bool shadow = false;
  Mark mark;
};

namespace pipeline {

// A stable hash of a rollout key into [0, 10000).
uint32_t RolloutBucket(std::string_view key);

struct RouteStats {
  std::atomic<uint64_t> matched{0};
};

// Checks the per-call options that name config — transform templates and an
// aggregate window — against the event's destinations (indices). Returns a
// nack code (wire/protocol.h) with *error, or nullptr.
const char* CheckCallOptions(const Config& config, const uint8_t* options, size_t options_size,
                             const std::vector<uint32_t>& targets, std::string* error);

class Router {
 public:
  // `destinations`: the configured names, in config order (their indices are
  // what Route returns).
  Router(const std::vector<RouteConfig>& routes, const std::vector<std::string>& destinations,
         const std::string& unmatched);

  struct Target {
    uint32_t dest;                               // index into destinations
    std::vector<const std::string*> transforms;  // route templates, in route order
  };
  struct Decision {
    std::vector<Target> targets;
    bool routed = false;  // routes changed or chose the set
  };

  // `named`: the indices the caller named (empty: the routes decide).
  // `fallback_key`: hashed for rollouts whose key field is missing. False when
  // the caller named nothing, no route matched and there is no `unmatched`.
  bool Route(const transforms::Doc& payload, const std::vector<uint32_t>& named,
             std::string_view fallback_key, transforms::Arena* scratch, Decision* out);

  bool empty() const { return routes_.empty(); }
  bool has_also() const { return has_also_; }
  size_t size() const { return routes_.size(); }
  const RouteConfig& route(size_t i) const { return routes_[i]; }
  const RouteStats& stats(size_t i) const { return *stats_[i]; }

 private:
  void Add(uint32_t dest, const RouteConfig* r, Decision* out);

  std::vector<RouteConfig> routes_;
  std::vector<std::vector<uint32_t>> to_;  // per route, destination indices
  std::vector<std::unique_ptr<RouteStats>> stats_;
  int64_t unmatched_ = -1;
  bool has_also_ = false;
  std::string key_text_;
};

}  // namespace pipeline
}  // namespace forkd
