#include "core/config.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>

#include "core/instance.h"

namespace forkd {
namespace {

// An optional sub-map: the node, or an empty map when it is unset.
YAML::Node MapOrEmpty(const YAML::Node& n) {
  return n.IsDefined() && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map);
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

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

// Checks that `name` is a configured destination.
bool KnownDestination(const Config& c, const YAML::Node& at, const std::string& where,
                      const std::string& name, const transforms::ParseContext& pc) {
  if (c.Find(name)) return true;
  std::vector<std::string_view> names;
  for (const auto& d : c.destinations) names.push_back(d.name);
  std::string m = "unknown destination '" + name + "'";
  const std::string dym = DidYouMean(name, names);
  if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
  pc.Error(at, where, m);
  return false;
}

// A name or a non-empty list of names.
bool NameList(const YAML::Node& n, const std::string& where, const transforms::ParseContext& pc,
              std::vector<std::pair<std::string, YAML::Node>>* out) {
  if (n.IsScalar()) {
    out->emplace_back(n.Scalar(), n);
    return true;
  }
  if (!n.IsSequence() || n.size() == 0) {
    pc.Error(n, where, "expected a name or a non-empty list of names");
    return false;
  }
  for (const auto& item : n) {
    if (!item.IsScalar()) {
      pc.Error(item, where, "expected a name");
      return false;
    }
    out->emplace_back(item.Scalar(), item);
  }
  return true;
}

void ParseRoutes(const Options& top, const std::string& path, const transforms::ParseContext& pc,
                 Config* out) {
  std::vector<ConfigError>* errors = pc.errors;
  if (top.Has("unmatched")) {
    KnownDestination(*out, top.Node("unmatched"), "unmatched", top.Str("unmatched"), pc);
    out->unmatched = top.Str("unmatched");
  }
  const YAML::Node& rn = top.Node("routes");
  if (!rn.IsDefined() || rn.IsNull()) return;
  if (!rn.IsSequence()) {
    errors->push_back({path, MarkOf(rn), "routes: expected a list of {when, to}"});
    return;
  }
  for (size_t i = 0; i < rn.size(); ++i) {
    const YAML::Node node = rn[i];
    const std::string where = "routes[" + std::to_string(i) + "]";
    Options o;
    if (!ParseOptions(node, RouteOptions(), {}, where, path, &o, errors)) continue;
    RouteConfig r;
    r.mark = MarkOf(node);
    bool ok = true;
    if (o.Has("when")) {
      auto prog = std::make_shared<transforms::expr::Program>();
      std::string error;
      size_t col = 0;
      if (!transforms::expr::Program::Compile(o.Str("when"), prog.get(), &error, &col)) {
        pc.ErrorAt(transforms::MarkInScalar(o.Node("when"), col), where + ".when",
                   error + " at column " + std::to_string(col + 1));
        ok = false;
      } else {
        r.when = std::move(prog);
      }
    }
    std::vector<std::pair<std::string, YAML::Node>> names;
    if (NameList(o.Node("to"), where + ".to", pc, &names)) {
      for (const auto& [n, at] : names) {
        if (KnownDestination(*out, at, where + ".to", n, pc)) r.to.push_back(n);
        else ok = false;
      }
    } else {
      ok = false;
    }
    r.also = o.Bool("also");
    r.shadow = o.Bool("shadow");
    if (o.Has("transform")) {
      names.clear();
      if (NameList(o.Node("transform"), where + ".transform", pc, &names)) {
        for (const auto& [n, at] : names) {
          auto t = out->templates.find(n);
          if (t == out->templates.end()) {
            std::vector<std::string_view> known;
            for (const auto& [k, v] : out->templates) known.push_back(k);
            std::string m = "unknown transform template '" + n + "'";
            const std::string dym = DidYouMean(n, known);
            if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
            pc.Error(at, where + ".transform", m);
            ok = false;
          } else if (t->second.aggregate) {
            pc.Error(at, where + ".transform",
                     "template '" + n + "' aggregates; an aggregate belongs in a destination's "
                     "transforms, where its state is kept");
            ok = false;
          } else {
            r.transform.push_back(n);
          }
        }
      } else {
        ok = false;
      }
    }
    if (o.Has("rollout")) {
      Options ro;
      const std::string rw = where + ".rollout";
      if (ParseOptions(o.Node("rollout"), RolloutOptions(), {}, rw, path, &ro, errors)) {
        char* end = nullptr;
        const std::string& pt = ro.Str("percent");
        const double pct = std::strtod(pt.c_str(), &end);
        if (pt.empty() || *end != 0 || !(pct >= 0 && pct <= 100)) {
          pc.Error(ro.Node("percent"), rw + ".percent",
                   "expected a number from 0 to 100, got '" + pt + "'");
          ok = false;
        } else {
          r.rollout_bp = static_cast<int64_t>(pct * 100 + 0.5);
        }
        if (ro.Has("key")) {
          r.has_rollout_key =
              transforms::ParseFieldPath(ro.Node("key"), rw + ".key", pc, &r.rollout_key);
          ok = ok && r.has_rollout_key;
        }
      } else {
        ok = false;
      }
    }
    if (ok) out->routes.push_back(std::move(r));
  }
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

const std::vector<OptionSpec>& WalOptions() {
  static const std::vector<OptionSpec> specs = {
      {"fsync", OptType::kEnum, "batch",
       "batch: acknowledge after fdatasync (group commit); never: after write()",
       false, {"batch", "never"}},
      {"batch_ms", OptType::kInt, "2",
       "How long a group commit waits for more events before it syncs", false, {}, 0, 1000},
      {"segment_bytes", OptType::kSize, "64MiB", "Roll to a new segment file past this size",
       false, {}, 1 << 16, 1ll << 32},
      {"retention", OptType::kNode, "",
       "How long segments every destination has passed are kept: {max_age, max_bytes} (see "
       "below)"},
  };
  return specs;
}

const std::vector<OptionSpec>& RetentionOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_age", OptType::kDuration, "24h",
       "A segment every cursor has passed is deleted once its newest event is this old; 0: "
       "at once (no history kept)",
       false, {}, 0, 3650ll * 86400 * 1000},
      {"max_bytes", OptType::kSize, "1GiB",
       "Most bytes of passed segments kept; past it the oldest go first, whatever their age",
       false, {}, 0, 1ll << 50},
  };
  return specs;
}

const std::vector<OptionSpec>& LimitsOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_frame", OptType::kSize, "16MiB", "Largest ZeroMQ message accepted", false, {},
       1 << 10, 1 << 30},
      {"max_event", OptType::kSize, "1MiB", "Largest encoded event accepted", false, {}, 64,
       64 << 20},
      {"max_depth", OptType::kInt, "64", "Deepest nesting of arrays and maps in a payload",
       false, {}, 1, 100},
      {"max_pending", OptType::kSize, "64MiB",
       "Most event bytes held before they are durable; past it forkd stops reading clients "
       "until the commit in flight completes",
       false, {}, 1 << 20, 1ll << 36},
      {"max_clients", OptType::kInt, "10000",
       "Most clients remembered; past it the least recently active one with nothing in flight "
       "is forgotten",
       false, {}, 16, 10000000},
      {"client_idle", OptType::kDuration, "10m",
       "A client with nothing in flight that sent nothing for this long is forgotten (it says "
       "hello again)",
       false, {}, 1000, 30ll * 86400 * 1000},
  };
  return specs;
}

const std::vector<OptionSpec>& DedupeOptions() {
  static const std::vector<OptionSpec> specs = {
      {"window", OptType::kDuration, "24h",
       "How long an idempotencyKey repeated to a destination is acknowledged without being "
       "delivered to it again",
       false, {}, 0, 30ll * 86400 * 1000},
      {"max_keys", OptType::kInt, "1000000",
       "Most (idempotencyKey, destination) pairs remembered; the oldest are forgotten first",
       false, {}, 0,
       100000000},
      {"recover_bytes", OptType::kSize, "128MiB",
       "At start, the newest log bytes scanned to remember client sequence numbers and keys",
       false, {}, 0, 1ll << 40},
  };
  return specs;
}

const std::vector<OptionSpec>& DestinationOptions() {
  static const std::vector<OptionSpec> specs = {
      {"type", OptType::kEnum, "", "The sink type", true, {}},
      {"batch", OptType::kNode, "", "Batching: max_events, max_bytes, max_wait"},
      {"retry", OptType::kNode, "", "Retries of a failed flush (see below)"},
      {"breaker", OptType::kNode, "", "Circuit breaker (see below)"},
      {"rate_limit", OptType::kNode, "",
       "Most events per second delivered: a number, or {rate, burst} (see below); off when unset"},
      {"backlog", OptType::kNode, "",
       "How much log the destination may hold back, and what happens past it (see below)"},
      {"priority", OptType::kEnum, "normal",
       "CPU share of the delivery thread: high ones are served first, low ones are throttled "
       "while a high one lags",
       false, {"high", "normal", "low"}},
      {"transforms", OptType::kNode, "",
       "Steps applied to every record before the sink: template names or inline steps"},
      {"from", OptType::kEnum, "latest",
       "Where a destination new to this data_dir starts: at the log's end, or at the oldest "
       "event still retained (older events then go through today's routes)",
       false, {"latest", "earliest"}},
  };
  return specs;
}

const std::vector<OptionSpec>& BatchOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_events", OptType::kInt, "10000", "Flush after this many events", false, {}, 1,
       1000000},
      {"max_bytes", OptType::kSize, "8MiB", "Flush after this many bytes of output", false, {},
       1024, 1ll << 30},
      {"max_wait", OptType::kDuration, "100ms", "Flush at the latest this long after the first "
       "event of a batch", false, {}, 0, 3600000},
  };
  return specs;
}

const std::vector<OptionSpec>& RetryOptions() {
  static const std::vector<OptionSpec> specs = {
      {"initial", OptType::kDuration, "100ms", "First backoff after a failed flush", false, {},
       1, 3600000},
      {"max", OptType::kDuration, "30s", "Largest backoff", false, {}, 1, 86400000},
      {"max_attempts", OptType::kInt, "0",
       "Give up on a batch after this many failed attempts, sending its records to dead "
       "letters; 0: never",
       false, {}, 0, 1000000000},
      {"max_age", OptType::kDuration, "0",
       "Give up on a batch failing for this long, sending its records to dead letters; 0: never",
       false, {}, 0, 365ll * 86400000},
  };
  return specs;
}

const std::vector<OptionSpec>& BreakerOptions() {
  static const std::vector<OptionSpec> specs = {
      {"failures", OptType::kInt, "5",
       "Consecutive failed flushes that open the breaker; 0: no breaker", false, {}, 0, 1000000},
      {"cooldown", OptType::kDuration, "10s",
       "How long it stays open before one half-open probe", false, {}, 1, 86400000},
  };
  return specs;
}

const std::vector<OptionSpec>& RateLimitOptions() {
  static const std::vector<OptionSpec> specs = {
      {"rate", OptType::kInt, "", "Events per second", true, {}, 1, 100000000},
      {"burst", OptType::kInt, "0", "Events allowed at once after idling; 0: one second's worth",
       false, {}, 0, 100000000},
  };
  return specs;
}

const std::vector<OptionSpec>& BacklogOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_bytes", OptType::kSize, "1GiB",
       "Log bytes held for this destination (from its cursor to the log's end) before the "
       "policy applies; 0: no limit",
       false, {}, 0, 1ll << 50},
      {"max_events", OptType::kInt, "0",
       "Log entries held for this destination before the policy applies; 0: no limit", false,
       {}, 0, 1ll << 50},
      {"policy", OptType::kEnum, "block",
       "block: refuse new events for it with FORK_BACKPRESSURE; shed: skip ahead, recording "
       "the skipped range in dead letters",
       false, {"block", "shed"}},
  };
  return specs;
}

const std::vector<OptionSpec>& RouteOptions() {
  static const std::vector<OptionSpec> specs = {
      {"when", OptType::kString, "", "Condition on the payload (the expression language); "
                                     "always true when unset"},
      {"to", OptType::kNode, "", "Destination name or list of names", true},
      {"also", OptType::kBool, "false",
       "Applies even when the caller named destinations (adds these to them)"},
      {"transform", OptType::kNode, "",
       "Template name (or list) applied to this route's destinations for matching events"},
      {"rollout", OptType::kNode, "", "Send only a share of matching traffic: {percent, key}"},
      {"shadow", OptType::kBool, "false",
       "Delivers, but is counted as shadow traffic in metrics"},
  };
  return specs;
}

const std::vector<OptionSpec>& RolloutOptions() {
  static const std::vector<OptionSpec> specs = {
      {"percent", OptType::kString, "", "Share of matching events, 0 to 100 (decimals allowed)",
       true},
      {"key", OptType::kString, "",
       "Field whose value picks the share by a stable hash (the same key always gets the same "
       "answer); the event id when unset or missing"},
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
                std::vector<ConfigError>* errors, const SinkCheck& check) {
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

  if (const YAML::Node& wal = top.Node("wal"); wal.IsDefined() && !wal.IsNull()) {
    Options w;
    if (ParseOptions(wal, WalOptions(), {}, "wal", path, &w, errors)) {
      out->fsync = w.Str("fsync") == "never" ? log::FsyncPolicy::kNever : log::FsyncPolicy::kBatch;
      out->batch_ms = w.Int("batch_ms");
      out->segment_bytes = w.Bytes("segment_bytes");
      if (const YAML::Node& r = w.Node("retention"); r.IsDefined() && !r.IsNull()) {
        Options ro;
        if (ParseOptions(r, RetentionOptions(), {}, "wal.retention", path, &ro, errors)) {
          out->retention_max_age_ms = ro.Millis("max_age");
          out->retention_max_bytes = ro.Bytes("max_bytes");
        }
      }
    }
  }
  if (const YAML::Node& lim = top.Node("limits"); lim.IsDefined() && !lim.IsNull()) {
    Options l;
    if (ParseOptions(lim, LimitsOptions(), {}, "limits", path, &l, errors)) {
      out->max_frame = l.Bytes("max_frame");
      out->max_event = l.Bytes("max_event");
      out->limits.max_depth = static_cast<uint32_t>(l.Int("max_depth"));
      out->max_pending = l.Bytes("max_pending");
      out->max_clients = l.Int("max_clients");
      out->client_idle_ms = l.Millis("client_idle");
    }
  }
  if (const YAML::Node& dd = top.Node("dedupe"); dd.IsDefined() && !dd.IsNull()) {
    Options o;
    if (ParseOptions(dd, DedupeOptions(), {}, "dedupe", path, &o, errors)) {
      out->dedupe_window_ms = o.Millis("window");
      out->dedupe_max_keys = o.Int("max_keys");
      out->dedupe_recover_bytes = o.Bytes("recover_bytes");
    }
  }
  out->limits.max_string = static_cast<uint32_t>(out->max_event);
  out->limits.max_container = static_cast<uint32_t>(out->max_event);

  transforms::ParseContext pc;
  pc.file = path;
  pc.errors = errors;
  pc.templates = &out->templates;
  std::map<std::string, YAML::Node> template_nodes;
  if (const YAML::Node& tn = top.Node("transforms"); tn.IsDefined() && !tn.IsNull()) {
    if (!tn.IsMap()) {
      errors->push_back({path, MarkOf(tn), "transforms: expected a map of name: [steps]"});
    } else {
      // In file order: a template may use the templates defined above it.
      for (auto it = tn.begin(); it != tn.end(); ++it) {
        const std::string name = it->first.Scalar();
        if (!ValidName(name)) {
          errors->push_back({path, MarkOf(it->first),
                             "transforms." + name + ": names are 1-64 letters, digits, _ or -"});
          continue;
        }
        transforms::Chain chain;
        if (transforms::ParseChain(it->second, "transforms." + name, pc, &chain)) {
          out->templates.emplace(name, std::move(chain));
          template_nodes[name] = it->second;
        }
      }
    }
  }
  // The text of a chain and every template it names, for fingerprints.
  std::function<void(const YAML::Node&, std::string*, int)> chain_text =
      [&](const YAML::Node& list, std::string* outs, int depth) {
        outs->append(YAML::Dump(list)).append("\n");
        if (!list.IsSequence() || depth > 16) return;
        for (const auto& item : list) {
          if (!item.IsScalar()) continue;
          auto t = template_nodes.find(item.Scalar());
          if (t != template_nodes.end()) chain_text(t->second, outs, depth + 1);
        }
      };

  // Missing or empty, it is reported as a required option already (and Node()
  // of an option that failed is a null node, which is defined).
  const YAML::Node& dests = top.Node("destinations");
  if (dests.IsDefined() && !dests.IsNull() && !dests.IsMap()) {
    errors->push_back({path, MarkOf(dests), "destinations: expected a map of name: {type: ...}"});
  } else if (dests.IsMap()) {
    if (dests.size() == 0) {
      errors->push_back({path, MarkOf(dests), "destinations: at least one is needed"});
    }
    std::vector<OptionSpec> dest_specs = DestinationOptions();
    dest_specs[0].choices = sink_types;
    for (auto it = dests.begin(); it != dests.end(); ++it) {
      DestinationConfig d;
      d.name = it->first.Scalar();
      d.mark = MarkOf(it->first);
      const std::string where = "destinations." + d.name;
      if (!ValidName(d.name)) {
        errors->push_back({path, d.mark, where + ": names are 1-64 letters, digits, _ or -"});
        continue;
      }
      if (!it->second.IsMap()) {
        errors->push_back({path, MarkOf(it->second), where + ": expected a map with a type"});
        continue;
      }
      // The keys every destination has are read here; the rest belong to the
      // sink and are checked against its table (unknown keys reported once).
      std::vector<std::string> present;
      for (auto kv = it->second.begin(); kv != it->second.end(); ++kv) {
        present.push_back(kv->first.Scalar());
      }
      std::vector<std::string_view> present_views(present.begin(), present.end());
      const size_t errors_before = errors->size();
      ParseOptions(it->second, dest_specs, present_views, where, path, &d.common, errors);
      d.type = d.common.Str("type");
      const std::vector<OptionSpec>* sink_specs =
          d.type.empty() ? nullptr : sinks(d.type);
      if (sink_specs == nullptr) continue;  // the bad type is reported already
      YAML::Node sink_node(YAML::NodeType::Map);
      for (auto kv = it->second.begin(); kv != it->second.end(); ++kv) {
        const std::string k = kv->first.Scalar();
        if (std::none_of(dest_specs.begin(), dest_specs.end(),
                         [&](const OptionSpec& s) { return s.name == k; })) {
          sink_node[k] = kv->second;
        }
      }
      std::vector<std::string_view> common_names;
      for (const auto& s : dest_specs) common_names.push_back(s.name);
      // Missing required options are reported at the destination's name.
      for (const auto& spec : *sink_specs) {
        const YAML::Node v = it->second[std::string(spec.name)];
        if (spec.required && (!v.IsDefined() || v.IsNull())) {
          errors->push_back({path, d.mark, where + "." + std::string(spec.name) +
                                               ": required option is missing (" +
                                               std::string(spec.description) + ")"});
        }
      }
      std::vector<OptionSpec> optional_specs = *sink_specs;
      for (auto& spec : optional_specs) spec.required = false;
      ParseOptions(sink_node, optional_specs, common_names, where, path, &d.sink, errors,
                   &it->second);
      if (errors->size() != errors_before) continue;
      if (std::string error; check && !check(d.type, d.sink, &error)) {
        // Reported at the option it names ("columns.x: ..." -> columns).
        const std::string option = error.substr(0, error.find_first_of(".:"));
        const auto v = d.sink.values.find(option);
        const Mark mark = v != d.sink.values.end() && v->second.mark.line > 0 ? v->second.mark : d.mark;
        errors->push_back({path, mark, where + "." + error});
        continue;
      }

      Options batch;
      const YAML::Node bn = d.common.Node("batch");
      ParseOptions(bn.IsDefined() && !bn.IsNull() ? bn : YAML::Node(YAML::NodeType::Map),
                   BatchOptions(), {}, where + ".batch", path, &batch, errors);
      d.batch_max_events = batch.Int("max_events");
      d.batch_max_bytes = batch.Bytes("max_bytes");
      d.batch_max_wait_ms = batch.Millis("max_wait");
      Options retry;
      const YAML::Node rn = d.common.Node("retry");
      ParseOptions(rn.IsDefined() && !rn.IsNull() ? rn : YAML::Node(YAML::NodeType::Map),
                   RetryOptions(), {}, where + ".retry", path, &retry, errors);
      d.retry_initial_ms = retry.Millis("initial");
      d.retry_max_ms = retry.Millis("max");
      d.retry_max_attempts = retry.Int("max_attempts");
      d.retry_max_age_ms = retry.Millis("max_age");
      Options breaker;
      ParseOptions(MapOrEmpty(d.common.Node("breaker")), BreakerOptions(), {},
                   where + ".breaker", path, &breaker, errors);
      d.breaker_failures = breaker.Int("failures");
      d.breaker_cooldown_ms = breaker.Millis("cooldown");
      if (const YAML::Node rl = d.common.Node("rate_limit"); rl.IsDefined() && !rl.IsNull()) {
        if (rl.IsScalar()) {
          // The short form: events per second.
          YAML::Node m(YAML::NodeType::Map);
          m["rate"] = rl;
          Options o;
          if (ParseOptions(m, RateLimitOptions(), {}, where + ".rate_limit", path, &o, errors,
                           &rl)) {
            d.rate_limit = o.Int("rate");
          }
        } else {
          Options o;
          if (ParseOptions(rl, RateLimitOptions(), {}, where + ".rate_limit", path, &o, errors)) {
            d.rate_limit = o.Int("rate");
            d.rate_burst = o.Int("burst");
          }
        }
        if (d.rate_burst == 0) d.rate_burst = d.rate_limit;
      }
      Options backlog;
      ParseOptions(MapOrEmpty(d.common.Node("backlog")), BacklogOptions(), {},
                   where + ".backlog", path, &backlog, errors);
      d.backlog_max_bytes = backlog.Bytes("max_bytes");
      d.backlog_max_events = backlog.Int("max_events");
      d.backlog_shed = backlog.Str("policy") == "shed";
      const std::string& prio = d.common.Str("priority");
      d.priority = prio == "high" ? Priority::kHigh : prio == "low" ? Priority::kLow
                                                                     : Priority::kNormal;
      d.from_earliest = d.common.Str("from") == "earliest";
      d.fingerprint = YAML::Dump(it->second);
      if (const YAML::Node tn = d.common.Node("transforms"); tn.IsDefined() && !tn.IsNull()) {
        transforms::ParseChain(tn, where + ".transforms", pc, &d.chain);
        chain_text(tn, &d.fingerprint, 0);
      }
      if (d.backlog_shed && d.chain.aggregate) {
        errors->push_back({path, backlog.Get("policy").mark,
                           where + ".backlog.policy: shed cannot be used with an aggregate step "
                                   "(its windows would silently miss events); use block"});
      }
      out->destinations.push_back(std::move(d));
    }
  }
  if (out->destinations.size() > 64) {
    errors->push_back({path, MarkOf(dests), "destinations: at most 64 are supported, not " +
                                                std::to_string(out->destinations.size())});
  }
  ParseRoutes(top, path, pc, out);
  // Every destination named in the file counts, parsed or not: one with an
  // error is reported already, not again as unknown.
  std::vector<std::string> names;
  if (dests.IsMap()) {
    for (auto it = dests.begin(); it != dests.end(); ++it) names.push_back(it->first.Scalar());
  }
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
