#include "ingest/http/http_ingest_config.h"

#include <cstdlib>

#include "core/fs.h"

namespace forkd::ingest::http {

const std::vector<OptionSpec>& HttpIngestOptions() {
  static const std::vector<OptionSpec> specs = {
      {"listen", OptType::kString, "",
       "host:port to serve POST /v1/events on (plain HTTP: put a TLS proxy in front for other "
       "machines)",
       true},
      {"token", OptType::kString, "",
       "Bearer token every request must carry (16+ printable ASCII characters); use ${ENV} "
       "rather than writing it in the file. Default: $FORK_INGEST_TOKEN"},
      {"token_file", OptType::kString, "",
       "File holding the token (its first line); relative to the config file. Instead of "
       "token"},
      {"timeout", OptType::kDuration, "5s",
       "Deadline of a request that sets no options.timeoutMs", false, {}, 1, 2147483647},
      {"max_body", OptType::kSize, "16MiB",
       "Largest request body; larger ones are refused with 413 before they are read", false, {},
       1024, 1ll << 30},
      {"threads", OptType::kInt, "4", "Requests served at once (one connection each)", false, {}, 1,
       256},
  };
  return specs;
}

void ParseHttpIngestConfig(const YAML::Node& node, const std::string& file,
                           const std::function<std::string(const std::string&)>& resolve,
                           HttpIngestConfig* out, std::vector<ConfigError>* errors) {
  *out = HttpIngestConfig{};
  if (!node.IsDefined() || node.IsNull()) return;
  out->mark = MarkOf(node);
  auto error = [&](Mark at, const std::string& message) {
    errors->push_back({file, at, message});
  };
  Mark listen_mark = out->mark;
  if (node.IsScalar()) {
    std::string missing;
    if (!Interpolate(node.Scalar(), &out->listen, &missing)) {
      error(out->mark, "http_ingest: environment variable ${" + missing + "} is not set");
      return;
    }
    if (out->listen.empty()) return;  // off
  } else if (node.IsMap()) {
    Options o;
    if (!ParseOptions(node, HttpIngestOptions(), {}, "http_ingest", file, &o, errors)) return;
    out->listen = o.Str("listen");
    listen_mark = o.Get("listen").mark;
    out->timeout_ms = o.Millis("timeout");
    out->max_body = o.Bytes("max_body");
    out->threads = o.Int("threads");
    if (o.Has("token") && o.Has("token_file")) {
      error(o.Get("token_file").mark, "http_ingest: set token or token_file, not both");
      return;
    }
    if (o.Has("token")) {
      out->token = o.Str("token");
      out->token_source = "http_ingest.token";
      if (std::string why; !admin::ValidToken(out->token, &why)) {
        error(o.Get("token").mark, "http_ingest.token: the token " + why);
      }
    } else if (o.Has("token_file")) {
      const std::string path = resolve(o.Str("token_file"));
      std::string text;
      Status s = fs::ReadFile(path, &text);
      if (!s.ok()) {
        error(o.Get("token_file").mark, "http_ingest.token_file: " + s.message());
        return;
      }
      text = text.substr(0, text.find('\n'));
      if (!text.empty() && text.back() == '\r') text.pop_back();
      out->token = text;
      out->token_source = "http_ingest.token_file " + path;
      if (std::string why; !admin::ValidToken(out->token, &why)) {
        error(o.Get("token_file").mark, "http_ingest.token_file: the token in " + path + " " + why);
      }
    }
  } else {
    error(out->mark, "http_ingest: expected host:port or a map {listen, token | token_file}");
    return;
  }
  if (std::string why; !admin::ParseListen(out->listen, &out->address, &why)) {
    error(listen_mark, (node.IsMap() ? "http_ingest.listen: " : "http_ingest: ") + why);
    return;
  }
  if (out->token_source.empty()) {
    const char* env = std::getenv(kTokenEnv);
    if (env != nullptr && *env != 0) {
      out->token = env;
      out->token_source = kTokenEnv;
      if (std::string why; !admin::ValidToken(out->token, &why)) {
        error(out->mark, std::string("http_ingest: the token in ") + kTokenEnv + " " + why);
      }
    }
  }
  if (!out->address.loopback && out->token.empty()) {
    out->warning = "http_ingest: " + out->address.host +
                   " is not a loopback address and there is no token: anyone who can reach " +
                   out->listen + " can send events (set http_ingest.token or " + kTokenEnv + ")";
  }
}

}  // namespace forkd::ingest::http
