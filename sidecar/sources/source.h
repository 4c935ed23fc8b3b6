// The contract between the server and a source: something that feeds the
// log besides clients (a Kafka topic; later an outbox table), sending its
// events through ingest like a client (ingest/inproc_client.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace forkd {
struct Config;
struct SourceConfig;
}  // namespace forkd

namespace forkd::sources {

// One figure of a source for /metrics and /api/status.
struct SourceMetric {
  std::string_view name;  // fork_source_...
  std::string_view type;  // counter, gauge
  std::string_view help;
  double value = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // Starts its thread. Fatal when its settings are refused.
  [[nodiscard]] virtual Status Start() = 0;
  // Stops taking new input, finishes what ingest is taking, releases what
  // it holds (a consumer group leaves). Idempotent; called before ingest
  // stops.
  virtual void Stop() = 0;
  // Thread-safe.
  virtual void Metrics(std::vector<SourceMetric>* out) const = 0;
  virtual std::string last_error() const = 0;
};

struct SourceContext {
  const Config* config = nullptr;
  const SourceConfig* source = nullptr;
  // Ingest's context and in-process endpoint; they outlive the source.
  void* zmq_ctx = nullptr;
  std::string endpoint;
};

}  // namespace forkd::sources
