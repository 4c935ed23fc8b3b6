// Routing, transform chains and aggregation over the reference workload,
// measured in the sidecar's own code. Reads events written by
// bench/transforms.mjs (u32 length + msgpack payload, repeated) and prints
// one JSON line per scenario: {"name", "events", "seconds", "ns_per_event"}.
//
//   fork_bench_transforms EVENTS_FILE [ROUNDS]
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "pipeline/router.h"
#include "pipeline/shaper.h"
#include "sinks/common/json.h"
#include "transforms/transform.h"
#include "wire/codec.h"

using namespace forkd;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

transforms::Chain MustChain(const std::string& yaml,
                            const std::map<std::string, transforms::Chain, std::less<>>& templates) {
  std::vector<ConfigError> errors;
  transforms::ParseContext pc;
  pc.file = "bench";
  pc.errors = &errors;
  pc.templates = &templates;
  transforms::Chain c;
  if (!transforms::ParseChain(YAML::Load(yaml), "bench", pc, &c)) {
    for (const auto& e : errors) std::cerr << e.ToString() << "\n";
    std::exit(2);
  }
  return c;
}

struct Events {
  std::vector<std::string> payloads;
};

void Report(const char* name, size_t events, double seconds) {
  std::printf("{\"name\":\"%s\",\"events\":%zu,\"seconds\":%.6f,\"ns_per_event\":%.1f}\n", name,
              events, seconds, seconds * 1e9 / static_cast<double>(events));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: fork_bench_transforms EVENTS_FILE [ROUNDS]\n";
    return 2;
  }
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  Events ev;
  for (size_t at = 0; at + 4 <= all.size();) {
    uint32_t n;
    std::memcpy(&n, all.data() + at, 4);
    ev.payloads.push_back(all.substr(at + 4, n));
    at += 4 + n;
  }
  if (ev.payloads.empty()) {
    std::cerr << "no events in " << argv[1] << "\n";
    return 2;
  }
  const std::map<std::string, transforms::Chain, std::less<>> none;

  // Routing: the example config's routes on the event, as ingest runs them.
  std::vector<RouteConfig> routes(2);
  {
    std::string error;
    size_t col;
    auto w1 = std::make_shared<transforms::expr::Program>();
    auto w2 = std::make_shared<transforms::expr::Program>();
    if (!transforms::expr::Program::Compile("event == \"purchase\"", w1.get(), &error, &col) ||
        !transforms::expr::Program::Compile("event == \"purchase\" && amount > 1000", w2.get(),
                                            &error, &col)) {
      std::cerr << error << "\n";
      return 2;
    }
    routes[0].when = w1;
    routes[0].to = {"production", "analytics", "revenue", "logs"};
    routes[1].when = w2;
    routes[1].to = {"alerts"};
    routes[1].also = true;
  }
  pipeline::Router router(routes, {"production", "analytics", "revenue", "logs", "alerts"}, "");
  const transforms::Chain five = MustChain(
      "[{rename: {amount: total}}, {set: {source: web}}, {cast: {total: float}},"
      " {timestamp: {field: received_at}}, {filter: 'total > 0'}]",
      none);
  const transforms::Chain five_hash = MustChain(
      "[{redact: [card, user.email]}, {hash: {fields: [userId], salt: s3cret}},"
      " {rename: {amount: total}}, {set: {source: web}}, {cast: {total: float}}]",
      none);
  const transforms::Chain agg = MustChain(
      "[{aggregate: {window: 1d, time_field: ts, group_by: [userId],"
      " measures: {revenue: sum(amount), orders: count(), top: max(amount)}}}]",
      none);
  const transforms::Chain empty;

  auto run_chain = [&](const char* name, const transforms::Chain& chain, bool route) {
    pipeline::Shaper shaper(chain, none);
    transforms::Doc doc;
    transforms::Arena scratch;
    pipeline::Router::Decision decision;
    const std::vector<uint32_t> named;
    double best = 1e9;
    size_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
      const double t0 = Now();
      for (size_t i = 0; i < ev.payloads.size(); ++i) {
        const auto* p = reinterpret_cast<const uint8_t*>(ev.payloads[i].data());
        const size_t n = ev.payloads[i].size();
        if (route) {
          doc.Load(p, n);
          scratch.Reset();
          router.Route(doc, named, "id", &scratch, &decision);
          sink += decision.targets.size();
        }
        pipeline::Shaper::EventParts parts;
        parts.payload = p;
        parts.payload_size = n;
        parts.recv_us = 1795300000000000 + static_cast<int64_t>(i);
        parts.event_id = "id";
        std::string reason;
        const uint8_t* out;
        size_t out_size;
        shaper.Shape(parts, &reason, &out, &out_size);
        sink += out_size;
      }
      best = std::min(best, Now() - t0);
    }
    if (sink == 42) std::cerr << "";
    Report(name, ev.payloads.size(), best);
    return shaper.aggregator() ? shaper.aggregator()->groups() : 0;
  };
  run_chain("route_only", empty, true);
  run_chain("route_plus_5_steps", five, true);
  run_chain("route_plus_5_steps_with_hash", five_hash, true);
  const size_t groups = run_chain("aggregate_1d_by_user", agg, false);
  std::printf("{\"name\":\"aggregate_groups\",\"groups\":%zu}\n", groups);

  // What every log reader now does per entry before handing it on (the
  // stored-event check), beside what a file destination does per record
  // anyway (one JSON line), to put its cost in proportion.
  std::vector<std::string> stored;
  for (const auto& p : ev.payloads) {
    wire::Buffer b;
    wire::Writer w(&b);
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str("logs");
    w.Str("order-17");
    w.Nil();
    w.Raw(p.data(), p.size());
    stored.emplace_back(b.view());
  }
  auto time_each = [&](const char* name, const std::function<size_t(size_t)>& one) {
    double best = 1e9;
    size_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
      const double t0 = Now();
      for (size_t i = 0; i < stored.size(); ++i) sink += one(i);
      best = std::min(best, Now() - t0);
    }
    if (sink == 42) std::cerr << "";
    Report(name, stored.size(), best);
  };
  std::string error;
  time_each("stored_event_check", [&](size_t i) {
    return static_cast<size_t>(wire::CheckStoredEvent(
        reinterpret_cast<const uint8_t*>(stored[i].data()), stored[i].size(), &error));
  });
  std::string line;
  time_each("jsonl_line", [&](size_t i) {
    line.clear();
    sinks::AppendJsonLine("order-17", reinterpret_cast<const uint8_t*>(ev.payloads[i].data()),
                          ev.payloads[i].size(), &line);
    return line.size();
  });
  return 0;
}
