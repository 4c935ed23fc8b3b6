#include "ingest/http/http_ingest.h"

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
#include "wire/codec.h"
#include "wire/random.h"

namespace forkd::ingest::http {

namespace {

constexpr int64_t kHelloTimeoutMs = 2000;
constexpr int64_t kStopGraceMs = 2000;

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

// One in-process DEALER with its own client id; used by one request at a time.
struct HttpIngest::Conn {
  void* socket = nullptr;
  uint8_t id[wire::kClientIdSize] = {};
  uint8_t session[wire::kClientIdSize] = {};
  uint64_t next_seq = 1;
  bool ready = false;  // welcomed, and not told to say hello again
  wire::Buffer frame;
  ~Conn() {
    if (socket != nullptr) zmq_close(socket);
  }
};

// One request's events and what became of each.
struct HttpIngest::Call {
  Events events;
  uint64_t first_seq = 0;
  struct State {
    enum { kPending, kAccepted, kDone, kFailed } state = kPending;
    AckLevel reached = AckLevel::kNone;
    std::string code, message;
    bool has_routed = false;
    std::vector<std::string> routed;
    std::vector<wire::DestinationOutcome> outcomes;  // not plainly delivered
    bool outcomes_known = false;
    int64_t deadline_ms = 0;
  };
  std::vector<State> states;
  size_t open = 0;  // events not yet settled
};

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
  thread_ = std::thread([this] { server_->listen_after_bind(); });
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

std::unique_ptr<HttpIngest::Conn> HttpIngest::TakeConn(std::string* error) {
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<Conn>();
  c->socket = zmq_socket(ctx_, ZMQ_DEALER);
  if (c->socket == nullptr) {
    *error = std::string("cannot open a connection to ingest: ") + zmq_strerror(errno);
    return nullptr;
  }
  wire::FillRandom(c->id, sizeof c->id);
  wire::FillRandom(c->session, sizeof c->session);
  const int linger = 0;
  zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(c->socket, ZMQ_ROUTING_ID, c->id, sizeof c->id);
  if (zmq_connect(c->socket, endpoint_.c_str()) != 0) {
    *error = std::string("cannot connect to ingest: ") + zmq_strerror(errno);
    return nullptr;
  }
  return c;
}

void HttpIngest::ReturnConn(std::unique_ptr<Conn> c) {
  std::lock_guard<std::mutex> lock(conns_mu_);
  if (!stopping_.load()) idle_.push_back(std::move(c));
}

bool HttpIngest::Hello(Conn* c, int64_t deadline_ms, std::string* error) {
  wire::Hello h;
  std::memcpy(h.client_id, c->id, sizeof c->id);
  h.agent = "forkd/http-ingest";
  h.outcomes = true;
  h.has_session = true;
  std::memcpy(h.session, c->session, sizeof c->session);
  c->frame.clear();
  wire::EncodeHello(h, &c->frame);
  if (zmq_send(c->socket, c->frame.data(), c->frame.size(), ZMQ_DONTWAIT) < 0) {
    *error = "ingest takes no more frames (forkd is overloaded)";
    return false;
  }
  for (;;) {
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      *error = "ingest did not answer the hello";
      return false;
    }
    zmq_pollitem_t item{c->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, static_cast<long>(std::min<int64_t>(left, 100))) <= 0) continue;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->socket, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&msg);
      continue;
    }
    const auto* data = static_cast<const uint8_t*>(zmq_msg_data(&msg));
    const size_t size = zmq_msg_size(&msg);
    wire::FrameType type;
    std::string ignored;
    bool welcomed = false;
    if (wire::PeekHeader(data, size, &type, &ignored)) {
      if (type == wire::FrameType::kWelcome) {
        welcomed = true;
      } else if (type == wire::FrameType::kNack) {
        wire::Nack n;
        if (wire::DecodeNack(data, size, &n, &ignored) && n.range.first == 0 &&
            n.code != wire::kCodeHelloRequired) {
          *error = "ingest refused the hello: " + n.message;
          zmq_msg_close(&msg);
          return false;
        }
      }
    }
    zmq_msg_close(&msg);
    if (welcomed) {
      c->ready = true;
      return true;
    }
  }
}

// Sends the call's events and waits until each is settled or past its deadline.
void HttpIngest::Route(Conn* c, Call* call) {
  const size_t n = call->events.events.size();
  call->first_seq = c->next_seq;
  c->next_seq += n;
  const int64_t now = NowMs();
  call->states.resize(n);
  call->open = n;
  int64_t last_deadline = now;
  for (size_t i = 0; i < n; ++i) {
    const Event& ev = call->events.events[i];
    call->states[i].deadline_ms = now + (ev.timeout_ms > 0 ? ev.timeout_ms : config_.timeout_ms);
    last_deadline = std::max(last_deadline, call->states[i].deadline_ms);
  }
  auto fail = [&](size_t i, const char* code, const std::string& message) {
    Call::State& s = call->states[i];
    if (s.state == Call::State::kDone || s.state == Call::State::kFailed) return;
    s.state = Call::State::kFailed;
    s.code = code;
    s.message = message;
    --call->open;
  };
  auto settle = [&](size_t i, AckLevel reached) {
    Call::State& s = call->states[i];
    if (s.state == Call::State::kDone || s.state == Call::State::kFailed) return;
    s.reached = reached;
    s.state = Call::State::kDone;
    --call->open;
  };
  // Frames of at most max_frame bytes, in order.
  std::vector<std::pair<size_t, size_t>> frames;  // [first, last) event indexes
  {
    size_t start = 0, bytes = wire::kRouteHeaderSize;
    for (size_t i = 0; i < n; ++i) {
      const size_t add = wire::kRouteEntryHeaderSize + call->events.events[i].size;
      if (i > start && bytes + add > max_frame_) {
        frames.emplace_back(start, i);
        start = i;
        bytes = wire::kRouteHeaderSize;
      }
      bytes += add;
    }
    frames.emplace_back(start, n);
  }
  auto send_all = [&]() -> bool {
    for (const auto& [first, last] : frames) {
      wire::Buffer& f = c->frame;
      f.clear();
      f.Resize(wire::kRouteHeaderSize);
      for (size_t i = first; i < last; ++i) {
        const Event& ev = call->events.events[i];
        wire::AppendRouteEntry(&f, ev.ack == AckLevel::kDelivered ? wire::kFlagWantDelivered : 0,
                               call->events.wire.data() + ev.offset,
                               static_cast<uint32_t>(ev.size));
      }
      wire::WriteRouteHeader(f.data(), call->first_seq + first,
                             static_cast<uint32_t>(last - first));
      // A full pipe means ingest stopped reading (limits.max_pending): wait
      // a little, as the addon would, then give up with backpressure.
      const int64_t until = std::min(last_deadline, NowMs() + 1000);
      for (;;) {
        if (zmq_send(c->socket, f.data(), f.size(), ZMQ_DONTWAIT) >= 0) break;
        if (errno != EAGAIN || NowMs() >= until || stopping_.load()) {
          for (size_t i = first; i < n; ++i) {
            if (call->states[i].state == Call::State::kPending) {
              fail(i, wire::kCodeBackpressure,
                   "forkd is not taking events fast enough (its pending bytes are at "
                   "limits.max_pending); retry later");
            }
          }
          return false;
        }
        zmq_pollitem_t item{c->socket, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&item, 1, 10);
      }
      for (size_t i = first; i < last; ++i) {
        if (call->events.events[i].ack == AckLevel::kNone) settle(i, AckLevel::kNone);
      }
    }
    return true;
  };
  send_all();
  bool rehello = false;
  while (call->open > 0) {
    int64_t t = NowMs();
    if (stopping_.load()) last_deadline = std::min(last_deadline, t + kStopGraceMs);
    for (size_t i = 0; i < n; ++i) {
      Call::State& s = call->states[i];
      if ((s.state == Call::State::kPending || s.state == Call::State::kAccepted) &&
          (t >= s.deadline_ms || t >= last_deadline)) {
        const int64_t ms = call->events.events[i].timeout_ms > 0 ? call->events.events[i].timeout_ms
                                                                 : config_.timeout_ms;
        if (s.state == Call::State::kAccepted) {
          fail(i, "FORK_TIMEOUT",
               "forkd accepted the event, but not every destination confirmed delivery within " +
                   std::to_string(ms) + " ms");
        } else {
          fail(i, "FORK_TIMEOUT",
               "forkd did not acknowledge the event within " + std::to_string(ms) + " ms");
        }
      }
    }
    if (call->open == 0) break;
    if (rehello) {
      rehello = false;
      std::string error;
      if (!Hello(c, std::min<int64_t>(last_deadline, NowMs() + kHelloTimeoutMs), &error)) {
        for (size_t i = 0; i < n; ++i) fail(i, wire::kCodeUnavailable, error);
        break;
      }
      send_all();
      continue;
    }
    zmq_pollitem_t item{c->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 50) <= 0) continue;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, c->socket, ZMQ_DONTWAIT) >= 0) {
      const auto* data = static_cast<const uint8_t*>(zmq_msg_data(&msg));
      const size_t size = zmq_msg_size(&msg);
      wire::FrameType type;
      std::string error;
      if (!wire::PeekHeader(data, size, &type, &error)) continue;
      // Answers about earlier requests (timed out) have seqs below first_seq.
      auto index = [&](uint64_t seq, size_t* i) {
        if (seq < call->first_seq || seq >= call->first_seq + n) return false;
        *i = static_cast<size_t>(seq - call->first_seq);
        return true;
      };
      switch (type) {
        case wire::FrameType::kAck: {
          wire::Ack a;
          if (!wire::DecodeAck(data, size, &a, &error)) break;
          for (auto& r : a.routed) {
            size_t i;
            if (index(r.seq, &i)) {
              call->states[i].has_routed = true;
              call->states[i].routed = std::move(r.destinations);
            }
          }
          for (const auto& r : a.ranges) {
            for (uint64_t seq = std::max(r.first, call->first_seq);
                 seq <= r.last && seq < call->first_seq + n; ++seq) {
              size_t i = static_cast<size_t>(seq - call->first_seq);
              Call::State& s = call->states[i];
              if (s.state != Call::State::kPending) continue;
              if (call->events.events[i].ack == AckLevel::kDelivered) {
                s.state = Call::State::kAccepted;
              } else {
                settle(i, AckLevel::kAccepted);
              }
            }
          }
          break;
        }
        case wire::FrameType::kNack: {
          wire::Nack nk;
          if (!wire::DecodeNack(data, size, &nk, &error)) break;
          if (nk.code == wire::kCodeHelloRequired) {
            // Ingest forgot this client while it was idle: hello, then the
            // events again (those it took are acked again, not doubled).
            if (nk.range.last >= call->first_seq) rehello = true;
            break;
          }
          for (uint64_t seq = std::max(nk.range.first, call->first_seq);
               seq <= nk.range.last && seq < call->first_seq + n; ++seq) {
            fail(static_cast<size_t>(seq - call->first_seq),
                 nk.code == wire::kCodeInvalidPayload || nk.code == wire::kCodeUnknownDestination ||
                         nk.code == wire::kCodeTooLarge || nk.code == wire::kCodeBackpressure ||
                         nk.code == wire::kCodeUnavailable
                     ? nk.code.c_str()
                     : wire::kCodeRejected,
                 nk.message);
            // fail() keeps a copy of the code string.
          }
          break;
        }
        case wire::FrameType::kDelivered: {
          wire::Delivered d;
          if (!wire::DecodeDelivered(data, size, &d, &error)) break;
          std::unordered_map<uint64_t, std::vector<wire::DestinationOutcome>*> trailer;
          for (auto& o : d.outcomes) trailer[o.seq] = &o.outcomes;
          for (const auto& r : d.ranges) {
            for (uint64_t seq = std::max(r.first, call->first_seq);
                 seq <= r.last && seq < call->first_seq + n; ++seq) {
              size_t i = static_cast<size_t>(seq - call->first_seq);
              Call::State& s = call->states[i];
              if (s.state != Call::State::kAccepted && s.state != Call::State::kPending) continue;
              s.outcomes_known = true;
              auto it = trailer.find(seq);
              if (it != trailer.end()) s.outcomes = std::move(*it->second);
              const wire::DestinationOutcome* bad = nullptr;
              for (const auto& o : s.outcomes) {
                if (o.kind != wire::OutcomeKind::kFiltered) {
                  bad = &o;
                  break;
                }
              }
              if (bad != nullptr) {
                fail(i, wire::kCodeRejected, wire::DescribeOutcome(*bad));
              } else {
                settle(i, AckLevel::kDelivered);
              }
            }
          }
          break;
        }
        default:
          break;
      }
    }
    zmq_msg_close(&msg);
  }
}

void HttpIngest::Handle(const httplib::Request& req, httplib::Response& res) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  std::string type = req.get_header_value("Content-Type");
  const BodyFormat format = type.find("ndjson") != std::string::npos ? BodyFormat::kNdjson
                                                                     : BodyFormat::kJson;
  Call call;
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
  std::unique_ptr<Conn> conn = TakeConn(&error);
  if (conn && !conn->ready && !Hello(conn.get(), NowMs() + kHelloTimeoutMs, &error)) conn.reset();
  if (!conn) {
    stats_.refused.fetch_add(1, std::memory_order_relaxed);
    SendError(res, 503, wire::kCodeUnavailable, "forkd cannot take events now: " + error);
    return;
  }
  Route(conn.get(), &call);
  uint8_t client_id[wire::kClientIdSize];
  std::memcpy(client_id, conn->id, sizeof client_id);
  ReturnConn(std::move(conn));

  // The answer: the receipts; or the first failure, with each event's result.
  const size_t n = call.events.events.size();
  char id[wire::kMaxEventIdSize];
  auto outcomes = [&](const Call::State& s, const std::vector<std::string>& dests,
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
    const Call::State& s = call.states[i];
    const auto& dests = s.has_routed ? s.routed : ev.destinations;
    if (s.state == Call::State::kFailed) {
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
    if (call.states[i].state == Call::State::kFailed) failed = i;
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
  const Call::State& f = call.states[failed];
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
