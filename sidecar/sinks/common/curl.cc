#include "sinks/common/curl.h"

#include <curl/curl.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>

namespace forkd::sinks {
namespace {

bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The CA bundle for https: libcurl's own default when it was built with one
// (a distribution's libcurl), else SSL_CERT_FILE or the first bundle found
// where the mainstream distributions keep it (the static prebuilt forkd
// runs on all of them).
const char* CaBundle() {
  static const std::string bundle = [] {
    const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
    if (info->cainfo != nullptr || info->capath != nullptr) return std::string();
    if (const char* env = std::getenv("SSL_CERT_FILE"); env != nullptr && *env != 0) return std::string(env);
    for (const char* path : {"/etc/ssl/certs/ca-certificates.crt",   // Debian, Ubuntu, Alpine, Arch
                             "/etc/pki/tls/certs/ca-bundle.crt",     // RHEL, Fedora, Amazon Linux
                             "/etc/ssl/ca-bundle.pem",               // openSUSE
                             "/etc/ssl/cert.pem"}) {                 // Alpine, BSDs
      if (::access(path, R_OK) == 0) return std::string(path);
    }
    return std::string();
  }();
  return bundle.empty() ? nullptr : bundle.c_str();
}

}  // namespace

std::string SafeUrl(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url.substr(0, url.find_first_of("?#"));
  const size_t host = scheme_end + 3;
  size_t end = url.find_first_of("?#", host);
  if (end == std::string::npos) end = url.size();
  const size_t path = std::min(url.find('/', host), end);  // the authority ends here
  const size_t at = url.rfind('@', path);
  const size_t from = (at != std::string::npos && at >= host && at < path) ? at + 1 : host;
  return url.substr(0, host) + url.substr(from, end - from);
}

std::string Excerpt(const std::string& body, size_t max) {
  std::string out = body.substr(0, max);
  if (body.size() > max) {
    // Drop a multi-byte sequence the cut left incomplete.
    size_t lead = out.size();
    while (lead > 0 && out.size() - lead < 4 &&
           (static_cast<unsigned char>(out[lead - 1]) & 0xc0) == 0x80) {
      --lead;
    }
    if (lead > 0) {
      const auto b = static_cast<unsigned char>(out[lead - 1]);
      const size_t want = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (out.size() - (lead - 1) < want) out.resize(lead - 1);
    }
  }
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string CheckHttpUrl(const std::string& url) {
  if (!IStartsWith(url, "http://") && !IStartsWith(url, "https://")) {
    const size_t colon = url.find("://");
    const bool scheme = colon != std::string::npos && colon > 0 &&
                        std::all_of(url.begin(), url.begin() + colon, [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '+' ||
                                 c == '-' || c == '.';
                        });
    return "url must start with http:// or https://, got " +
           (scheme ? url.substr(0, colon + 3) : std::string("no scheme"));
  }
  if (url.find_first_of(" \t\r\n") != std::string::npos) {
    return "url " + SafeUrl(url) + " contains white space";
  }
  return {};
}

CurlConnection::CurlConnection() { GlobalInit(); }

CurlConnection::~CurlConnection() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

size_t CurlConnection::Keep(char* p, size_t size, size_t n, void* user) {
  auto* self = static_cast<CurlConnection*>(user);
  const size_t len = size * n;
  if (self->body_.size() < self->keep_) {
    self->body_.append(p, std::min(len, self->keep_ - self->body_.size()));
  }
  return len;
}

bool CurlConnection::Init(int64_t timeout_ms, int64_t connect_timeout_ms) {
  if (curl_ == nullptr) {
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return false;
  }
  CURL* c = curl_;
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (const char* ca = CaBundle()) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "forkd");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buf_);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CurlConnection::Keep);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
  return true;
}

bool CurlConnection::Perform() {
  Begin();
  return Finish(curl_easy_perform(curl_));
}

void CurlConnection::Begin() {
  body_.clear();
  error_.clear();
  status_ = 0;
  error_buf_[0] = 0;
  finished_ = false;
}

bool CurlConnection::Finish(int curl_code) {
  finished_ = true;
  const auto rc = static_cast<CURLcode>(curl_code);
  if (rc != CURLE_OK) {
    error_ = error_buf_[0] != 0 ? error_buf_ : curl_easy_strerror(rc);
    return false;
  }
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status_);
  return true;
}

CurlMulti::CurlMulti() {
  GlobalInit();
  multi_ = curl_multi_init();
}

CurlMulti::~CurlMulti() {
  Abort();
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
}

bool CurlMulti::Start(CurlConnection* c) {
  c->Begin();
  if (multi_ == nullptr) return c->Finish(CURLE_OUT_OF_MEMORY);
  const CURLMcode rc = curl_multi_add_handle(multi_, c->get());
  if (rc != CURLM_OK) return c->Finish(CURLE_FAILED_INIT);
  running_.push_back(c);
  return true;
}

void CurlMulti::Wait(CurlConnection* c) {
  CURLM* m = multi_;
  while (!c->finished()) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      Abort();
      return;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      for (size_t i = 0; i < running_.size(); ++i) {
        if (running_[i]->get() != msg->easy_handle) continue;
        curl_multi_remove_handle(m, msg->easy_handle);
        running_[i]->Finish(msg->data.result);
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    if (c->finished()) return;
    curl_multi_poll(m, nullptr, 0, 100, nullptr);
  }
}

void CurlMulti::Abort() {
  for (CurlConnection* c : running_) {
    curl_multi_remove_handle(multi_, c->get());
    c->Finish(CURLE_ABORTED_BY_CALLBACK);
  }
  running_.clear();
}

CurlLane::~CurlLane() { SetHeaders(nullptr); }

void CurlLane::SetHeaders(curl_slist* h) {
  if (headers != nullptr) curl_slist_free_all(headers);
  headers = h;
}

CurlLanes::~CurlLanes() { multi_.Abort(); }

CurlLane* CurlLanes::Take(uint64_t ticket, int64_t timeout_ms, int64_t connect_timeout_ms) {
  CurlLane* lane = nullptr;
  for (auto& l : lanes_) {
    if (l->ticket == 0) {
      lane = l.get();
      break;
    }
  }
  if (lane == nullptr) {
    auto made = std::make_unique<CurlLane>();
    if (!made->conn.Init(timeout_ms, connect_timeout_ms)) return nullptr;
    lanes_.push_back(std::move(made));
    lane = lanes_.back().get();
  }
  lane->ticket = ticket;
  return lane;
}

void CurlLanes::Post(CurlLane* lane) {
  CURL* c = lane->conn.get();
  curl_easy_setopt(c, CURLOPT_URL, lane->url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, lane->headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, lane->body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(lane->body.size()));
  (void)multi_.Start(&lane->conn);
}

CurlLane* CurlLanes::Await(uint64_t ticket) {
  for (auto& l : lanes_) {
    if (l->ticket != ticket) continue;
    l->ticket = 0;
    multi_.Wait(&l->conn);
    return l.get();
  }
  return nullptr;
}

}  // namespace forkd::sinks
