// The `http_ingest:` section of fork.yaml: HTTP ingest (POST /v1/events) for
// callers that cannot load the addon (edge runtimes, platforms without a
// prebuilt addon), served by forkd itself.
//
//   http_ingest: { listen: 127.0.0.1:8788, token: ${FORK_INGEST_TOKEN} }
//   http_ingest: 127.0.0.1:8788                 # short form: the address only
//
// The token is the first of: http_ingest.token; the first line of
// http_ingest.token_file; FORK_INGEST_TOKEN in forkd's environment. Setting
// both token and token_file is an error. A listen address that is not
// loopback without a token is allowed, with a warning (`warning`), since
// anyone who can reach it can then send events. TLS is a proxy's job
// (docs/security.md). The token is never logged.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "admin/admin_config.h"
#include "core/options.h"

namespace forkd::ingest::http {

inline constexpr char kTokenEnv[] = "FORK_INGEST_TOKEN";

struct HttpIngestConfig {
  std::string listen;            // as written; empty: no HTTP ingest
  admin::Listen address;         // listen, parsed
  std::string token;             // empty: none; then any caller that reaches listen may send
  std::string token_source;      // "http_ingest.token", "http_ingest.token_file <path>", env
  int64_t timeout_ms = 5000;     // default deadline of a request (options.timeoutMs overrides)
  int64_t max_body = 16ll << 20;  // bytes of one request body
  int64_t threads = 4;           // requests served at once
  std::string warning;           // said at start: e.g. a public listen without a token
  Mark mark;

  bool enabled() const { return !listen.empty(); }
  bool operator==(const HttpIngestConfig& o) const {
    return listen == o.listen && token == o.token && timeout_ms == o.timeout_ms &&
           max_body == o.max_body && threads == o.threads;
  }
};

const std::vector<OptionSpec>& HttpIngestOptions();

// Reads the top-level `http_ingest` value (a string or a map) into *out;
// problems go to *errors as `file:line:col: http_ingest...: message`.
// `resolve` turns token_file into an absolute path.
void ParseHttpIngestConfig(const YAML::Node& node, const std::string& file,
                           const std::function<std::string(const std::string&)>& resolve,
                           HttpIngestConfig* out, std::vector<ConfigError>* errors);

}  // namespace forkd::ingest::http
