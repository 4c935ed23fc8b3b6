#include "admin/admin_server.h"

#include <pthread.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "admin/dashboard_html.h"
#include "admin/history.h"
#include "sinks/common/json.h"

namespace forkd::admin {
namespace {

RequestHeaders HeadersOf(const httplib::Request& req) {
  RequestHeaders h;
  auto all = [&](const char* name, std::vector<std::string>* out) {
    auto range = req.headers.equal_range(name);
    for (auto it = range.first; it != range.second; ++it) out->push_back(it->second);
  };
  all("Host", &h.host);
  all("Origin", &h.origin);
  all("Authorization", &h.authorization);
  return h;
}


}  // namespace

namespace {

// httplib's ThreadPool starts all its threads at once; stream subscribers
// need up to a thousand or more, most of the time none. This pool starts a
// thread only when a request finds none idle, up to `max`, and keeps it for
// the next ones. A request beyond `max` waits in the queue.
class GrowingPool : public httplib::TaskQueue {
 public:
  explicit GrowingPool(size_t max) : max_(max) {}
  ~GrowingPool() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(fn));
      if (idle_ == 0 && threads_.size() < max_) {
        threads_.emplace_back([this] { Work(); });
        return;
      }
    }
    cv_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      while (jobs_.empty() && !stop_) {
        ++idle_;
        cv_.wait(lock);
        --idle_;
      }
      if (jobs_.empty()) return;  // stopping, nothing left
      std::function<void()> fn = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }
  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace

AdminServer::AdminServer(Handlers h) : h_(std::move(h)) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start(const AdminConfig& config) {
  access_ = std::make_unique<Access>(config.address, config.token);
  server_ = std::make_unique<httplib::Server>();
  // Each handler checks access itself rather than in a pre-routing hook:
  // handlers run after httplib has read the body, so a refused request
  // never leaves unread bytes on a keep-alive connection.
  auto read = [this](Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (Allowed(access_->Read(HeadersOf(req)), req, res)) handler(req, res);
    };
  };
  auto change = [this](Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (Allowed(access_->Change(HeadersOf(req)), req, res)) handler(req, res);
    };
  };
  server_->Get("/healthz", read([](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  }));
  server_->Get("/readyz", read([this](const httplib::Request&, httplib::Response& res) {
    const bool ready = h_.ready();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "starting\n", "text/plain");
  }));
  server_->Get("/metrics", read([this](const httplib::Request&, httplib::Response& res) {
    res.set_content(h_.metrics(), "text/plain; version=0.0.4");
  }));
  server_->Get("/api/status", read([this](const httplib::Request&, httplib::Response& res) {
    res.set_content(h_.status(), "application/json");
  }));
  server_->Get("/api/history", read([this](const httplib::Request& req, httplib::Response& res) {
    HistoryRequest(req, res);
  }));
  server_->Get(R"(/api/events/([\s\S]*))", read([this](const httplib::Request& req,
                                                  httplib::Response& res) {
    std::string body;
    res.status = h_.event ? h_.event(req.matches[1], &body) : 404;
    res.set_content(body, "application/json");
  }));
  server_->Get(R"(/streams/([^/]{1,128}))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    const Handlers::StreamPolicy p = h_.stream_policy ? h_.stream_policy(name) : Handlers::StreamPolicy{};
    if (!p.found) {
      // Named like the other refusals; never a destination of another type.
      res.status = 404;
      std::string body = "{\"error\":";
      sinks::AppendJsonString("no stream destination '" + name + "'", &body);
      res.set_content(body + "}\n", "application/json");
      return;
    }
    if (p.is_public) {
      res.set_header("Access-Control-Allow-Origin", "*");
    } else if (!p.token.empty()) {
      std::string given = req.get_param_value("token");
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
      if (given.empty() || !TokenEquals(given, p.token)) {
        res.status = given.empty() ? 401 : 403;
        if (given.empty()) res.set_header("WWW-Authenticate", "Bearer realm=\"forkd stream\"");
        res.set_content(given.empty() ? "{\"error\":\"this stream needs its token: Authorization: Bearer <token>, or ?token=\"}\n"
                                      : "{\"error\":\"wrong stream token\"}\n",
                        "application/json");
        return;
      }
    } else if (!Allowed(access_->Read(HeadersOf(req)), req, res)) {
      return;
    }
    h_.stream(name, req, res);
  });
  server_->Get("/", read([](const httplib::Request&, httplib::Response& res) {
    res.set_content(kDashboardHtml, kDashboardHtmlSize, "text/html; charset=utf-8");
    // Everything it needs is in the page: no other origin is ever asked.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'");
    res.set_header("Cache-Control", "no-store");
  }));
  // Every other method is refused after its body is read, so a keep-alive
  // connection never mistakes an unread body for the next request.
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET");
    res.set_content("method not allowed: only POST /api/dlq/replay, /api/dlq/drop, "
                    "/api/cursors/drop and /api/replay change anything\n",
                    "text/plain");
  };
  server_->Post(R"(/api/dlq/(replay|drop))",
                change([this](const httplib::Request& req, httplib::Response& res) {
                  std::vector<std::string> ids;
                  auto range = req.params.equal_range("id");
                  for (auto it = range.first; it != range.second; ++it) ids.push_back(it->second);
                  std::string body;
                  res.status = h_.dlq ? h_.dlq(req.matches[1], req.get_param_value("destination"),
                                               ids, &body)
                                      : 404;
                  res.set_content(body, "application/json");
                }));
  server_->Post("/api/cursors/drop",
                change([this](const httplib::Request& req, httplib::Response& res) {
                  std::string body;
                  res.status =
                      h_.cursor_drop ? h_.cursor_drop(req.get_param_value("destination"), &body)
                                     : 404;
                  res.set_content(body, "application/json");
                }));
  server_->Post("/api/replay",
                change([this](const httplib::Request& req, httplib::Response& res) {
                  std::string body;
                  res.status = h_.replay ? h_.replay(req.get_param_value("destination"),
                                                     req.get_param_value("since"),
                                                     req.get_param_value("from_id"), &body)
                                         : 404;
                  res.set_content(body, "application/json");
                }));
  server_->Post(".*", refuse);
  server_->Put(".*", refuse);
  server_->Patch(".*", refuse);
  server_->Delete(".*", refuse);
  if (h_.stream_threads > 0) {
    const size_t n = std::max<size_t>(8, std::thread::hardware_concurrency()) + h_.stream_threads;
    server_->new_task_queue = [n] { return new GrowingPool(n); };
  }
  // httplib answers a request line over its limit (8 KiB) itself: say why.
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 414 && res.body.empty()) {
      res.set_content("{\"error\":\"request target too long (over 8192 bytes)\"}\n",
                      "application/json");
    }
  });
  server_->set_payload_max_length(64 * 1024);
  server_->set_keep_alive_max_count(100);
  server_->set_keep_alive_timeout(2);
  server_->set_read_timeout(5, 0);
  if (!server_->bind_to_port(config.address.host.c_str(), config.address.port)) {
    return Status::IoError("admin: cannot listen on " + config.listen);
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/admin");
    server_->listen_after_bind();
  });
  return Status::Ok();
}

namespace {
void JsonError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  std::string body = "{\"error\":";
  sinks::AppendJsonString(message, &body);
  body.append("}\n");
  res.set_content(body, "application/json");
}
}  // namespace

void AdminServer::HistoryRequest(const httplib::Request& req, httplib::Response& res) {
  // The page polls with ?since=<unix s>; anything else is a mistake to
  // name, not to guess around.
  constexpr size_t kMaxTarget = 256;
  if (req.target.size() > kMaxTarget) {
    return JsonError(res, 400,
                     "query too long (" + std::to_string(req.target.size()) +
                         " bytes; GET /api/history takes only ?since=<unix seconds>)");
  }
  for (const auto& [key, value] : req.params) {
    if (key != "since") {
      std::string shown = key.size() > 40 ? key.substr(0, 40) + "..." : key;
      return JsonError(res, 400,
                       "unknown parameter '" + shown + "' (GET /api/history takes only since)");
    }
  }
  if (req.params.count("since") > 1) return JsonError(res, 400, "since: given more than once");
  int64_t since = 0;
  std::string error;
  if (!ParseSince(req.get_param_value("since"), &since, &error)) {
    return JsonError(res, 400, error);
  }
  if (!h_.history) return JsonError(res, 404, "no history in this forkd");
  res.set_content(h_.history(since), "application/json");
  res.set_header("Cache-Control", "no-store");
}

bool AdminServer::Allowed(const Verdict& v, const httplib::Request& req, httplib::Response& res) {
  if (v.allowed()) return true;
  res.status = v.status;
  if (v.challenge) res.set_header("WWW-Authenticate", "Bearer realm=\"forkd admin\"");
  std::string body = "{\"error\":";
  sinks::AppendJsonString(v.message, &body);
  body.append("}\n");
  res.set_content(body, "application/json");
  // One line a second at most: a scanner hammering the port must not flood
  // the log. The message never holds the token.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  const uint64_t count = refused_.fetch_add(1) + 1;
  int64_t last = last_refusal_log_ms_.load();
  if (now - last >= 1000 && last_refusal_log_ms_.compare_exchange_strong(last, now)) {
    const uint64_t since = count - refused_logged_.exchange(count);
    spdlog::warn("admin: refused {} {} from {} ({}): {}{}", req.method, req.path, req.remote_addr,
                 v.status, v.message,
                 since > 1 ? " (" + std::to_string(since - 1) + " more refused since the last "
                                 "such line)"
                           : "");
  }
  return false;
}

void AdminServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace forkd::admin
