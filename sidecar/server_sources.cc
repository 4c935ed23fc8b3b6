// The server's sources: started after ingest binds (their events go through
// its in-process endpoint), restarted by a reload when their section
// changed, stopped before ingest stops so the batch each is sending is
// acknowledged and its offsets stored.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "server.h"
#include "sinks/common/json.h"
#include "sources/registry.h"

namespace forkd {

void Server::ApplySources(const Config& config) {
  std::vector<RunningSource> keep, stop;
  {
    std::lock_guard<std::mutex> lock(sources_mu_);
    for (auto& r : sources_) {
      const auto it = std::find_if(config.sources.begin(), config.sources.end(),
                                   [&](const SourceConfig& s) { return s.name == r.name; });
      (it != config.sources.end() && it->fingerprint == r.fingerprint ? keep : stop).push_back(std::move(r));
    }
    sources_.clear();
  }
  for (auto& r : stop) {
    spdlog::info("source {}: stopping", r.name);
    r.source->Stop();
  }
  for (const SourceConfig& sc : config.sources) {
    if (stopping_.load()) break;
    if (std::any_of(keep.begin(), keep.end(), [&](const RunningSource& r) { return r.name == sc.name; })) continue;
    const sources::SourceType* type = sources::FindSourceType(sc.type);
    if (type == nullptr || type->create == nullptr) continue;  // refused by the config already
    sources::SourceContext ctx;
    ctx.config = &config;
    ctx.source = &sc;
    ctx.zmq_ctx = ingest_->context();
    ctx.endpoint = ingest::Ingest::kInprocEndpoint;
    std::unique_ptr<sources::Source> src = type->create(ctx);
    if (Status s = src->Start(); !s.ok()) {
      spdlog::error("source {}: not started: {}", sc.name, s.message());
      continue;
    }
    keep.push_back(RunningSource{sc.name, sc.type, sc.fingerprint, std::move(src)});
  }
  std::lock_guard<std::mutex> lock(sources_mu_);
  sources_ = std::move(keep);
}

void Server::StopSources() {
  std::vector<RunningSource> stop;
  {
    std::lock_guard<std::mutex> lock(sources_mu_);
    stop.swap(sources_);
  }
  for (auto& r : stop) r.source->Stop();
}

void Server::SourceMetricsText(std::string* m) const {
  std::lock_guard<std::mutex> lock(sources_mu_);
  std::vector<std::vector<sources::SourceMetric>> per(sources_.size());
  for (size_t i = 0; i < sources_.size(); ++i) sources_[i].source->Metrics(&per[i]);
  std::vector<std::string_view> done;
  for (const auto& metrics : per) {
    for (const auto& g : metrics) {
      if (std::find(done.begin(), done.end(), g.name) != done.end()) continue;
      done.push_back(g.name);
      *m += "# HELP " + std::string(g.name) + " " + std::string(g.help) + "\n";
      *m += "# TYPE " + std::string(g.name) + " " + std::string(g.type) + "\n";
      for (size_t i = 0; i < per.size(); ++i) {
        for (const auto& o : per[i]) {
          if (o.name != g.name) continue;
          char v[64];
          std::snprintf(v, sizeof v, "%.17g", o.value);
          *m += std::string(g.name) + "{source=\"" + sources_[i].name + "\"} " + v + "\n";
        }
      }
    }
  }
}

void Server::SourcesJson(std::string* j) const {
  std::lock_guard<std::mutex> lock(sources_mu_);
  j->append("\"sources\":[");
  for (size_t i = 0; i < sources_.size(); ++i) {
    const RunningSource& r = sources_[i];
    if (i > 0) j->push_back(',');
    j->append("{\"name\":");
    sinks::AppendJsonString(r.name, j);
    j->append(",\"type\":");
    sinks::AppendJsonString(r.type, j);
    j->append(",\"last_error\":");
    sinks::AppendJsonString(r.source->last_error(), j);
    std::vector<sources::SourceMetric> metrics;
    r.source->Metrics(&metrics);
    for (const auto& g : metrics) {
      std::string_view key = g.name;
      key.remove_prefix(std::string_view("fork_source_").size());
      if (key.size() > 6 && key.substr(key.size() - 6) == "_total") key.remove_suffix(6);
      char v[64];
      std::snprintf(v, sizeof v, "%.17g", g.value);
      j->append(",\"").append(key).append("\":").append(v);
    }
    j->push_back('}');
  }
  j->append("],");
}

}  // namespace forkd
