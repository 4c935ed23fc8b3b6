#include "tools/verify_cli.h"

#include <iostream>

#include "core/options.h"
#include "verify/verify.h"

namespace forkd::tools {

int Verify(const Config& config, const VerifyArgs& args) {
  constexpr int kDiffers = 1;
  constexpr int kError = 2;
  verify::VerifyOptions o;
  o.destinations = args.destinations;
  o.repair = args.repair;
  o.instance = verify::StoredInstance(config);
  if (!args.since.empty() && (!ParseDurationMs(args.since, &o.since_ms) || o.since_ms <= 0)) {
    std::cerr << "forkd verify: --since '" << args.since
              << "' is not a duration (250ms, 30s, 10m, 2h, 1d)\n";
    return kError;
  }
  verify::VerifyReport report;
  const Status s = verify::Verify(config, o, &report);
  if (!s.ok()) {
    std::cerr << "forkd verify: " << s.message() << "\n";
    return kError;
  }
  if (report.destinations.empty()) {
    std::cerr << "forkd verify: " << config.path
              << " has no destination whose store can be read back (sqlite, postgres, "
                 "clickhouse, file)\n";
    return kError;
  }
  if (args.json) {
    std::cout << report.Json() << "\n";
  } else {
    std::cout << report.Text();
  }
  if (report.errors()) return kError;
  return report.agrees() ? 0 : kDiffers;
}

}  // namespace forkd::tools
