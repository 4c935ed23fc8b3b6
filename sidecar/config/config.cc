#include "config/config.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>

#include "core/instance.h"

namespace forkd {
namespace {

std::string Absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char buf[PATH_MAX];
  std::string cwd = ::getcwd(buf, sizeof(buf)) ? buf : ".";
  return cwd + "/" + p;
}

// Removes "./" and "x/.." segments so paths read well in messages.
std::string Normalize(const std::string& p) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string seg = p.substr(i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == ".." && !parts.empty() && parts.back() != "..") {
      parts.pop_back();
      continue;
    }
    parts.push_back(seg);
  }
  std::string out;
  for (const auto& s : parts) out += "/" + s;
  if (out.empty()) out = "/";
  if (!p.empty() && p.back() == '/' && out != "/") out += "/";
  return out;
}

}  // namespace

const std::vector<OptionSpec>& TopLevelOptions() {
  static const std::vector<OptionSpec> specs = {
      {"data_dir", OptType::kString, "./.fork",
       "Directory for the log, cursors and the socket; relative to the config file"},
      {"instance", OptType::kString, "",
       "This forkd's id among the replicas that feed the same stores (e.g. ${HOSTNAME}); "
       "1-64 of A-Z a-z 0-9 . _ -. Unset: created once as <hostname>-<8 hex>. Kept in "
       "<data_dir>/instance: once a data_dir has an id, it keeps it"},
      {"listen", OptType::kString, "",
       "ZeroMQ endpoint for clients: ipc://PATH or tcp://HOST:PORT (which needs curve or "
       "insecure_tcp); default ipc://<data_dir>/fork.sock"},
      {"curve", OptType::kNode, "",
       "CURVE encryption and client authentication on listen: {secret_key | secret_key_file, "
       "clients | clients_file} (see below)"},
      {"insecure_tcp", OptType::kBool, "false",
       "Allow a tcp:// listen without curve: anyone who can reach the port can send events "
       "and read acks in clear; forkd warns at every start"},
      {"admin", OptType::kNode, "",
       "The admin HTTP server: host:port, or {listen, token or token_file} (see below); off "
       "when unset"},
      {"http_ingest", OptType::kNode, "",
       "HTTP ingest (POST /v1/events) for callers without the addon: host:port, or {listen, "
       "token or token_file, ...} (see below); off when unset"},
      {"wal", OptType::kNode, "", "Write-ahead log settings (see below)"},
      {"limits", OptType::kNode, "", "Limits on what clients may send (see below)"},
      {"dedupe", OptType::kNode, "", "Duplicate detection for resends and idempotency keys"},
      {"sources", OptType::kNode, "",
       "Named sources that feed the log besides clients: name: {type, to, ...} (see below)"},
      {"destinations", OptType::kNode, "", "Named destinations", true},
      {"transforms", OptType::kNode, "",
       "Named transform templates: each a list of steps, usable by destinations, routes and "
       "calls"},
      {"routes", OptType::kNode, "", "Routing rules, in order (see below)"},
      {"unmatched", OptType::kString, "",
       "Destination for events that name none and match no route; unset, they are rejected "
       "with FORK_UNKNOWN_DESTINATION"},
      {"alerts", OptType::kNode, "",
       "Rules over forkd's own signals, and the destinations their events go to (see below)"},
      {"verify", OptType::kNode, "",
       "`forkd verify` run by forkd on a schedule: {every, destinations, since} (see below)"},
  };
  return specs;
}

const DestinationConfig* Config::Find(std::string_view name) const {
  for (const auto& d : destinations) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string Config::Resolve(const std::string& p) const {
  if (!p.empty() && p[0] == '/') return Normalize(p);
  return Normalize(base_dir + "/" + p);
}

bool LoadConfig(const std::string& path, const SinkOptionsLookup& sinks,
                const std::vector<std::string_view>& sink_types, Config* out,
                std::vector<ConfigError>* errors, const SinkCheck& check,
                const SourceOptionsLookup& sources,
                const std::vector<std::string_view>& source_types,
                const SourceCheck& source_check) {
  const size_t before = errors->size();
  out->path = path;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    errors->push_back({path, {}, "cannot read the file"});
    return false;
  } catch (const YAML::ParserException& e) {
    errors->push_back({path, {e.mark.line + 1, e.mark.column + 1}, e.msg});
    return false;
  }
  if (!root.IsMap()) {
    errors->push_back({path, MarkOf(root), "the file must be a map with a destinations key"});
    return false;
  }
  const std::string abs = Absolute(path);
  out->base_dir = abs.substr(0, abs.rfind('/'));

  Options top;
  ParseOptions(root, TopLevelOptions(), {}, "config", path, &top, errors);
  out->data_dir = out->Resolve(top.Str("data_dir"));
  if (!out->data_dir.empty() && out->data_dir.back() == '/') out->data_dir.pop_back();
  out->instance = top.Str("instance");
  if (top.Has("instance") && !ValidInstanceId(out->instance)) {
    errors->push_back({path, top.Get("instance").mark,
                       "instance: expected 1-64 characters of A-Z a-z 0-9 . _ -, got '" +
                           out->instance.substr(0, 80) + "'"});
  }
  out->listen = top.Has("listen") ? top.Str("listen") : "ipc://" + out->data_dir + "/fork.sock";
  if (out->listen.rfind("ipc://", 0) == 0 && out->listen.size() - 6 > 107) {
    errors->push_back({path, top.Get("listen").mark,
                       "listen: the socket path " + out->listen.substr(6) + " is longer than "
                       "the 107 bytes a Unix socket allows; set a shorter data_dir or listen"});
  }
  ingest::ParseCurveConfig(top.Node("curve"), path,
                           [&](const std::string& p) { return out->Resolve(p); }, &out->curve,
                           errors);
  out->insecure_tcp = top.Bool("insecure_tcp");
  if (out->listen.rfind("ipc://", 0) != 0 && !out->curve.enabled() && !out->insecure_tcp &&
      !top.Has("curve")) {
    // Only the data_dir's permissions guard an ipc socket; anything else
    // (tcp://, ws:// ...) is open to whoever reaches the address.
    errors->push_back(
        {path, top.Get("listen").mark,
         "listen: " + out->listen + " can be reached over the network, so it needs CURVE keys: "
         "run `forkd keygen --out forkd.key` and set curve: { secret_key_file: forkd.key } "
         "(clients then pass curveServerKey), or set insecure_tcp: true to accept events "
         "from anyone who can reach the port"});
  }
  admin::ParseAdminConfig(top.Node("admin"), path,
                          [&](const std::string& p) { return out->Resolve(p); }, &out->admin,
                          errors);
  ingest::http::ParseHttpIngestConfig(
      top.Node("http_ingest"), path, [&](const std::string& p) { return out->Resolve(p); },
      &out->http_ingest, errors);

  log::LogConfig wal;
  log::ParseLogConfig(top.Node("wal"), path, &wal, errors);
  out->fsync = wal.fsync;
  out->batch_ms = wal.batch_ms;
  out->segment_bytes = wal.segment_bytes;
  out->retention_max_age_ms = wal.retention_max_age_ms;
  out->retention_max_bytes = wal.retention_max_bytes;

  ingest::IngestConfig client_limits;
  ingest::ParseLimits(top.Node("limits"), path, &client_limits, errors);
  ingest::ParseDedupe(top.Node("dedupe"), path, &client_limits, errors);
  out->max_frame = client_limits.max_frame;
  out->max_event = client_limits.max_event;
  out->limits.max_depth = client_limits.max_depth;
  out->max_pending = client_limits.max_pending;
  out->max_clients = client_limits.max_clients;
  out->client_idle_ms = client_limits.client_idle_ms;
  out->dedupe_window_ms = client_limits.dedupe_window_ms;
  out->dedupe_max_keys = client_limits.dedupe_max_keys;
  out->dedupe_recover_bytes = client_limits.dedupe_recover_bytes;
  out->limits.max_string = static_cast<uint32_t>(out->max_event);
  out->limits.max_container = static_cast<uint32_t>(out->max_event);

  transforms::ParseContext pc;
  pc.file = path;
  pc.errors = errors;
  pc.templates = &out->templates;
  transforms::TemplateNodes template_nodes;
  transforms::ParseTemplates(top.Node("transforms"), pc, &out->templates, &template_nodes);

  // Missing or empty, it is reported as a required option already (and Node()
  // of an option that failed is a null node, which is defined).
  const YAML::Node& dests = top.Node("destinations");
  ParseDestinations(dests, sinks, sink_types, check, pc, template_nodes, &out->destinations);
  if (top.Has("unmatched")) {
    KnownDestination(out->destinations, top.Node("unmatched"), "unmatched",
                     top.Str("unmatched"), pc);
    out->unmatched = top.Str("unmatched");
  }
  ParseRoutes(top.Node("routes"), out->destinations, out->templates, pc, &out->routes);
  // Every destination named in the file counts, parsed or not: one with an
  // error is reported already, not again as unknown.
  std::vector<std::string> names;
  if (dests.IsMap()) {
    for (auto it = dests.begin(); it != dests.end(); ++it) names.push_back(it->first.Scalar());
  }
  ParseSources(top.Node("sources"), path, sources, source_types, source_check, names,
               &out->sources, errors);
  alerts::ParseAlertsConfig(top.Node("alerts"), path, names, &out->alerts, errors);
  std::vector<std::pair<std::string, std::string>> typed;
  if (dests.IsMap()) {
    for (auto it = dests.begin(); it != dests.end(); ++it) {
      const YAML::Node t = it->second.IsMap() ? it->second["type"] : YAML::Node();
      typed.emplace_back(it->first.Scalar(), t && t.IsScalar() ? t.Scalar() : "");
    }
  }
  verify::ParseScheduleConfig(top.Node("verify"), path, typed, &out->verify, errors);
  return errors->size() == before;
}

}  // namespace forkd
