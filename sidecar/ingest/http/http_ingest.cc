#include "ingest/http/http_ingest.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include <httplib.h>

#include "admin/access.h"
#include "core/clock.h"
#include "ingest/http/json_events.h"
#include "ingest/inproc_client.h"
#include "wire/codec.h"
#include "wire/random.h"

namespace forkd::ingest::http {

namespace {

constexpr int64_t kHelloTimeoutMs = 2000;
constexpr const char* kAgent = "forkd/http-ingest";

int64_t NowMs() { return MonoMicros() / 1000; }

int StatusFor(const std::string& code) {
  if (code == wire::kCodeInvalidPayload || code == wire::kCodeUnknownDestination) return 400;
  if (code == wire::kCodeTooLarge) return 413;
  if (code == wire::kCodeBackpressure) return 429;
  if (code == wire::kCodeUnavailable) return 503;
  if (code == "FORK_TIMEOUT") return 504;
  return 422;  // FORK_REJECTED
}

void AppendError(const std::string& code, const std::string& message, const std::string& path,
                 std::string* out) {
  *out += "{\"code\":";
  AppendJsonString(code, out);
  *out += ",\"message\":";
  AppendJsonString(message, out);
  *out += ",\"path\":";
  AppendJsonString(path, out);
}

void SendError(httplib::Response& res, int status, const std::string& code,
               const std::string& message, const std::string& path = "") {
  std::string body = "{\"error\":";
  AppendError(code, message, path, &body);
  body += "}}\n";
  res.status = status;
  if (status == 429 || status == 503) res.set_header("Retry-After", "1");
  res.set_content(body, "application/json");
}

}  // namespace

HttpIngest::HttpIngest(void* zmq_ctx, std::string endpoint, HttpIngestConfig config,
                       size_t max_event, size_t max_frame)
    : ctx_(zmq_ctx), endpoint_(std::move(endpoint)), config_(std::move(config)),
      max_event_(max_event), max_frame_(max_frame) {}

HttpIngest::~HttpIngest() { Stop(); }

Status HttpIngest::Start() {
  server_ = std::make_unique<httplib::Server>();
  const size_t threads = static_cast<size_t>(config_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  auto access = std::make_shared<admin::Access>(
      config_.address, config_.token,
      admin::AccessWords{"HTTP ingest server", "ingest token",
                         "set http_ingest: {listen, token} (or token_file) in the config, or "
                         "FORK_INGEST_TOKEN in forkd's environment"});
  server_->set_pre_routing_handler([this, access](const httplib::Request& req,
                                                  httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    // Before the body is read: who, where, what. A refusal here leaves the
    // body unread, so the connection is closed after the answer.
    res.set_header("Connection", "close");
    admin::RequestHeaders h;
    auto collect = [&](const char* name, std::vector<std::string>* out) {
      const size_t n = req.get_header_value_count(name);
      for (size_t i = 0; i < n; ++i) out->push_back(req.get_header_value(name, i));
    };
    collect("Host", &h.host);
    collect("Origin", &h.origin);
    collect("Authorization", &h.authorization);
    const admin::Verdict v = access->Change(h);
    if (!v.allowed()) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      if (v.challenge) res.set_header("WWW-Authenticate", "Bearer realm=\"forkd ingest\"");
      SendError(res, v.status, "FORK_REJECTED", v.message);
      return R::Handled;
    }
    if (req.path != "/v1/events") {
      SendError(res, 404, "FORK_REJECTED", "not found: HTTP ingest serves POST /v1/events");
      return R::Handled;
    }
    if (req.method != "POST") {
      res.set_header("Allow", "POST");
      SendError(res, 405, "FORK_REJECTED",
                "method " + req.method + " not allowed: send events with POST /v1/events");
      return R::Handled;
    }
    std::string type = req.get_header_value("Content-Type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (type != "application/json" && type != "application/x-ndjson") {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      SendError(res, 415, wire::kCodeInvalidPayload,
                "Content-Type must be application/json (one event or an array) or "
                "application/x-ndjson (one event per line), got '" +
                    req.get_header_value("Content-Type") + "'");
      return R::Handled;
    }
    // A body over max_body is refused before it is read (the library would
    // read and drop all of it first).
    const std::string length = req.get_header_value("Content-Length");
    if (!length.empty() &&
        (length.size() > 18 || std::strtoll(length.c_str(), nullptr, 10) > config_.max_body)) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      SendError(res, 413, wire::kCodeTooLarge,
                "the body is " + length + " bytes; http_ingest.max_body is " +
                    std::to_string(config_.max_body) + ": send fewer events per request");
      return R::Handled;
    }
    res.headers.erase("Connection");
    return R::Unhandled;
  });
  server_->Post("/v1/events",
                [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;  // answered by Handle or the pre-routing checks
    if (res.status == 413) {
      SendError(res, 413, wire::kCodeTooLarge,
                "the body is larger than http_ingest.max_body: send fewer events per request");
    } else if (res.body.empty()) {
      SendError(res, res.status, "FORK_REJECTED", "HTTP " + std::to_string(res.status));
    }
  });
  server_->set_payload_max_length(static_cast<size_t>(config_.max_body));
  server_->set_tcp_nodelay(true);  // an answer is written in pieces: no 40 ms Nagle wait
  server_->set_keep_alive_max_count(100000);
  server_->set_keep_alive_timeout(5);
  server_->set_read_timeout(10, 0);
  if (!server_->bind_to_port(config_.address.host.c_str(), config_.address.port)) {
    return Status::IoError("http_ingest: cannot listen on " + config_.listen);
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/http");
    server_->listen_after_bind();
  });
  if (!config_.warning.empty()) spdlog::warn("{}", config_.warning);
  if (config_.token.empty()) {
    spdlog::info("http ingest on http://{}/v1/events without a token", config_.listen);
  } else {
    spdlog::info("http ingest on http://{}/v1/events (requests need the token from {})",
                 config_.listen, config_.token_source);
  }
  return Status::Ok();
}

void HttpIngest::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopping_.store(true);
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(conns_mu_);
  idle_.clear();
  stopped_ = true;
}

std::unique_ptr<InprocClient> HttpIngest::TakeConn(std::string* error) {
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return OpenInprocClient(ctx_, endpoint_, error);
}

void HttpIngest::ReturnConn(std::unique_ptr<InprocClient> c) {
  std::lock_guard<std::mutex> lock(conns_mu_);
  if (!stopping_.load()) idle_.push_back(std::move(c));
}

void HttpIngest::Handle(const httplib::Request& req, httplib::Response& res) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  std::string type = req.get_header_value("Content-Type");
  const BodyFormat format = type.find("ndjson") != std::string::npos ? BodyFormat::kNdjson
                                                                     : BodyFormat::kJson;
  InprocCall call;
  BodyError berr;
  EventLimits limits;
  limits.max_event = max_event_;
  if (!ParseEvents(req.body, format, limits, &call.events, &berr)) {
    stats_.refused.fetch_add(1, std::memory_order_relaxed);
    SendError(res, StatusFor(berr.code), berr.code, berr.message, berr.path);
    return;
  }
  if (stopping_.load()) {
    SendError(res, 503, wire::kCodeUnavailable, "forkd is shutting down");
    return;
  }
  std::string error;
  std::unique_ptr<InprocClient> conn = TakeConn(&error);
  if (conn && !conn->ready && !Hello(conn.get(), kAgent, NowMs() + kHelloTimeoutMs, &error)) conn.reset();
  if (!conn) {
    stats_.refused.fetch_add(1, std::memory_order_relaxed);
    SendError(res, 503, wire::kCodeUnavailable, "forkd cannot take events now: " + error);
    return;
  }
  RouteSettings rs;
  rs.agent = kAgent;
  rs.max_frame = max_frame_;
  rs.timeout_ms = config_.timeout_ms;
  Route(conn.get(), &call, rs, stopping_);
  uint8_t client_id[wire::kClientIdSize];
  std::memcpy(client_id, conn->id, sizeof client_id);
  ReturnConn(std::move(conn));

  // The answer: the receipts; or the first failure, with each event's result.
  const size_t n = call.events.events.size();
  char id[wire::kMaxEventIdSize];
  auto outcomes = [&](const InprocCall::State& s, const std::vector<std::string>& dests,
                      std::string* out) {
    *out += "\"outcomes\":{";
    for (size_t k = 0; k < dests.size(); ++k) {
      const char* kind = wire::OutcomeName(wire::OutcomeKind::kDelivered);
      for (const auto& o : s.outcomes) {
        if (o.destination == dests[k]) kind = wire::OutcomeName(o.kind);
      }
      if (k) out->push_back(',');
      AppendJsonString(dests[k], out);
      out->push_back(':');
      AppendJsonString(kind, out);
    }
    out->push_back('}');
  };
  auto event_id = [&](size_t i) {
    const Event& ev = call.events.events[i];
    if (!ev.key.empty()) return std::string_view(ev.key);
    return std::string_view(id, wire::FormatEventIdTo(client_id, call.first_seq + i, id));
  };
  auto result = [&](size_t i, std::string* out) {
    const Event& ev = call.events.events[i];
    const InprocCall::State& s = call.states[i];
    const auto& dests = s.has_routed ? s.routed : ev.destinations;
    if (s.state == InprocCall::State::kFailed) {
      *out += "{\"error\":";
      AppendError(s.code, s.message, call.events.single ? "" : "[" + std::to_string(i) + "]", out);
      *out += ",\"id\":";
      AppendJsonString(event_id(i), out);
      if (s.outcomes_known) {
        for (const auto& o : s.outcomes) {
          if (o.kind == wire::OutcomeKind::kFiltered) continue;
          *out += ",\"destination\":";
          AppendJsonString(o.destination, out);
          *out += ",\"reason\":";
          AppendJsonString(o.reason.empty() ? wire::OutcomeName(o.kind) : o.reason, out);
          break;
        }
        out->push_back(',');
        outcomes(s, dests, out);
      }
      *out += "}}";
      return;
    }
    *out += "{\"id\":";
    AppendJsonString(event_id(i), out);
    *out += ",\"ack\":\"";
    *out += AckLevelName(s.reached);
    *out += "\",\"destinations\":[";
    for (size_t k = 0; k < dests.size(); ++k) {
      if (k) out->push_back(',');
      AppendJsonString(dests[k], out);
    }
    out->push_back(']');
    if (s.reached == AckLevel::kDelivered) {
      out->push_back(',');
      outcomes(s, dests, out);
    }
    out->push_back('}');
  };
  size_t failed = n;
  for (size_t i = 0; i < n && failed == n; ++i) {
    if (call.states[i].state == InprocCall::State::kFailed) failed = i;
  }
  std::string body;
  body.reserve(n * 100 + 64);
  if (failed == n) {
    stats_.events.fetch_add(n, std::memory_order_relaxed);
    if (call.events.single) {
      result(0, &body);
    } else {
      body.push_back('[');
      for (size_t i = 0; i < n; ++i) {
        if (i) body.push_back(',');
        result(i, &body);
      }
      body.push_back(']');
    }
    body.push_back('\n');
    res.status = 200;
    res.set_content(std::move(body), "application/json");
    return;
  }
  stats_.refused.fetch_add(1, std::memory_order_relaxed);
  const InprocCall::State& f = call.states[failed];
  const int status = StatusFor(f.code);
  if (call.events.single) {
    result(0, &body);
  } else {
    // {"error": <the first failure>, "results": [...]}
    std::string first;
    result(failed, &first);
    body = "{\"error\":";
    body.append(first, std::string_view("{\"error\":").size(),
                first.size() - std::string_view("{\"error\":").size() - 1);
    body += ",\"results\":[";
    for (size_t i = 0; i < n; ++i) {
      if (i) body.push_back(',');
      result(i, &body);
    }
    body += "]}";
  }
  body.push_back('\n');
  res.status = status;
  if (status == 429 || status == 503) res.set_header("Retry-After", "1");
  res.set_content(std::move(body), "application/json");
}

}  // namespace forkd::ingest::http
