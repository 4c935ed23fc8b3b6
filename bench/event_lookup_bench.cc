// The event index at scale (GET /api/events/<id>): a real log of EVENTS
// entries (purchase-sized, one in ten with an idempotency key), indexed by
// the EventIndexer as forkd does at start-up, then random ids looked up the
// way the admin server does: the index, then the entries read back from the
// log from the nearest checkpoint. The events come from CLIENTS clients in
// turn (Node processes, each with its own receipt ids). Prints the build
// rate, the index's memory per event, and lookup latency (mean, p50, p99,
// max) for ids found, keys unknown and receipt ids unknown. Figures only;
// never fails on timing.
//
//   fork_bench_event_lookup [EVENTS=10000000] [LOOKUPS=100000] [DIR=/tmp] [CLIENTS=1]
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "log/event_indexer.h"
#include "log/log.h"
#include "wire/codec.h"
#include "wire/msgpack.h"

using namespace forkd;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long RssKb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  long kb = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  }
  std::fclose(f);
  return kb;
}

std::string Event(uint64_t i, bool keyed) {
  wire::Buffer b;
  wire::Writer w(&b);
  w.ArrayHeader(4);
  w.ArrayHeader(1);
  w.Str("analytics");
  if (keyed) {
    w.Str("order-" + std::to_string(i));
  } else {
    w.Nil();
  }
  w.Nil();
  w.MapHeader(6);
  w.Str("event");
  w.Str("purchase");
  w.Str("orderId");
  w.Str("o-" + std::to_string(i));
  w.Str("userId");
  w.Str("u-" + std::to_string(i % 1000));
  w.Str("amount");
  w.Uint(i % 5000);
  w.Str("currency");
  w.Str("EUR");
  w.Str("items");
  w.Str(std::string(100, 'x'));  // about the reference workload's size
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void Report(const char* what, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double v : us) sum += v;
  std::printf("%s: %zu lookups, mean %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us\n", what,
              us.size(), sum / static_cast<double>(us.size()), us[us.size() / 2],
              us[us.size() * 99 / 100], us.back());
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000000;
  const size_t lookups = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
  const std::string base = argc > 3 ? argv[3] : "/tmp";
  const uint64_t clients = argc > 4 ? std::max<uint64_t>(1, std::strtoull(argv[4], nullptr, 10)) : 1;
  const std::string dir = base + "/fork-event-lookup-" + std::to_string(::getpid());
  log::LogOptions o;
  o.dir = dir + "/wal";
  o.fsync = log::FsyncPolicy::kNever;
  std::unique_ptr<log::Log> wal;
  log::RecoveryInfo info;
  if (!log::Log::Open(o, &wal, &info).ok()) {
    std::fprintf(stderr, "cannot open a log in %s\n", dir.c_str());
    return 2;
  }
  // Event i (from 1) comes from client (i - 1) % clients, as its seq
  // (i - 1) / clients + 1.
  std::vector<std::array<uint8_t, 16>> client(clients);
  std::mt19937_64 rng(1);
  for (auto& id : client) {
    for (auto& c : id) c = static_cast<uint8_t>(rng());
  }
  auto client_of = [&](uint64_t i) { return client[(i - 1) % clients].data(); };
  auto seq_of = [&](uint64_t i) { return (i - 1) / clients + 1; };
  double t0 = Now();
  auto commit = [&] {
    uint64_t gen;
    if (!wal->StartCommit(&gen)) return;
    pollfd p{wal->completion_fd(), POLLIN, 0};
    ::poll(&p, 1, 60000);
    log::CommitResult r, pf;
    wal->TakeCompletion(&r, &pf);
  };
  for (uint64_t i = 1; i <= n; ++i) {
    const std::string e = Event(i, i % 10 == 0);
    wal->Append(1796432523000000 + static_cast<int64_t>(i), client_of(i), seq_of(i),
                reinterpret_cast<const uint8_t*>(e.data()), e.size());
    if (i % 20000 == 0) commit();
  }
  commit();
  std::printf("log: %llu events from %llu clients, %.0f MiB in %zu segments, written in %.1f s\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(clients),
              static_cast<double>(wal->total_bytes()) / (1 << 20), wal->segment_count(),
              Now() - t0);

  const long rss0 = RssKb();
  log::EventIndexer ix(wal.get());
  t0 = Now();
  size_t step = 0;
  do {
    if (!ix.CatchUp(1 << 20, &step).ok()) return 1;
  } while (step > 0);
  const double build = Now() - t0;
  const long rss1 = RssKb();
  std::printf("index: built in %.2f s (%.0f events/s), %.1f MiB: %.1f bytes per event (RSS +%.1f "
              "MiB)\n",
              build, static_cast<double>(n) / build,
              static_cast<double>(ix.memory_bytes()) / (1 << 20),
              static_cast<double>(ix.memory_bytes()) / static_cast<double>(n),
              static_cast<double>(rss1 - rss0) / 1024);

  std::mt19937_64 pick(9);
  std::vector<double> found_us, missing_us, missing_receipt_us;
  std::vector<log::FoundEntry> out;
  for (size_t k = 0; k < lookups; ++k) {
    const uint64_t i = pick() % n + 1;
    const std::string id =
        i % 10 == 0 ? "order-" + std::to_string(i) : wire::FormatEventId(client_of(i), seq_of(i));
    const double a = Now();
    if (!ix.Find(id, &out).ok() || out.size() != 1 || out[0].header.lsn != i) {
      std::fprintf(stderr, "lookup of %s failed\n", id.c_str());
      return 1;
    }
    found_us.push_back((Now() - a) * 1e6);
  }
  for (size_t k = 0; k < lookups; ++k) {
    const std::string id = "missing-" + std::to_string(pick());
    const double a = Now();
    if (!ix.Find(id, &out).ok() || !out.empty()) return 1;
    missing_us.push_back((Now() - a) * 1e6);
  }
  for (size_t k = 0; k < lookups; ++k) {
    // A seq its client never reached: the range after its last mark is read.
    const uint64_t i = pick() % n + 1;
    const std::string id = wire::FormatEventId(client_of(i), seq_of(n) + 1 + pick() % 1000);
    const double a = Now();
    if (!ix.Find(id, &out).ok() || !out.empty()) return 1;
    missing_receipt_us.push_back((Now() - a) * 1e6);
  }
  Report("found (index + log read)", found_us);
  Report("unknown key (index only)", missing_us);
  Report("unknown receipt id (index + log read)", missing_receipt_us);
  wal.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
