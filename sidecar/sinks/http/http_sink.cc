#include "sinks/http/http_sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <mutex>

#include "sinks/common/json.h"

namespace forkd::sinks {
namespace {

constexpr size_t kExcerptBytes = 200;  // of a response body, in messages
constexpr size_t kMaxPlainKey = 200;   // longest event id sent as its own key

// Headers the sink sets itself; configuring them is an error.
constexpr std::string_view kReserved[] = {"content-length", "content-encoding", "transfer-encoding",
                                          "idempotency-key", "x-fork-count"};

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

// An HTTP token (RFC 9110 tchar), as header names are.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// A header value: no CR, LF or other control characters but HTAB.
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The url without user info, query or fragment: what messages may show.
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

// The first bytes of a response body, on one line, never cutting a UTF-8
// sequence in two.
std::string Excerpt(const std::string& body) {
  std::string out = body.substr(0, kExcerptBytes);
  if (body.size() > kExcerptBytes) {
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

size_t KeepExcerpt(char* p, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t len = size * n;
  // One byte past the excerpt says it was cut.
  if (out->size() <= kExcerptBytes) out->append(p, std::min(len, kExcerptBytes + 1 - out->size()));
  return len;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

const std::vector<OptionSpec>& HttpSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"url", OptType::kString, "", "Endpoint that receives each batch (http:// or https://)",
       true},
      {"method", OptType::kEnum, "POST", "HTTP method of each request", false, {"POST", "PUT"}},
      {"format", OptType::kEnum, "ndjson",
       "Request body: ndjson (one JSON object per line) or json (one JSON array)", false,
       {"ndjson", "json"}},
      {"gzip", OptType::kBool, "false", "Gzip the body and send Content-Encoding: gzip"},
      {"headers", OptType::kNode, "",
       "Extra request headers: a map of name to value; values may use ${ENV}"},
      {"timeout", OptType::kDuration, "10s", "Limit on a whole request, connecting included",
       false, {}, 1, 3600000},
      {"connect_timeout", OptType::kDuration, "2s", "Limit on establishing the connection", false,
       {}, 1, 3600000},
  };
  return specs;
}

std::unique_ptr<Sink> CreateHttpSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  HttpSink::Settings s;
  s.url = o.Str("url");
  s.put = o.Str("method") == "PUT";
  s.format = o.Str("format") == "json" ? HttpSink::Format::kJson : HttpSink::Format::kNdjson;
  s.gzip = o.Bool("gzip");
  s.timeout_ms = o.Millis("timeout");
  s.connect_timeout_ms = o.Millis("connect_timeout");
  // The loader leaves a kNode as it is: ${ENV} in the values is read here.
  // Messages name the header and the variable, never a value.
  const YAML::Node& h = o.Node("headers");
  if (h.IsDefined() && !h.IsNull()) {
    if (!h.IsMap()) {
      s.error = "headers: expected a map of header name to value";
    } else {
      for (auto it = h.begin(); it != h.end() && s.error.empty(); ++it) {
        const std::string name = it->first.IsScalar() ? it->first.Scalar() : std::string();
        if (!it->second.IsScalar()) {
          s.error = "headers." + name + ": expected a string value";
          break;
        }
        std::string value, missing;
        if (!Interpolate(it->second.Scalar(), &value, &missing)) {
          s.error = "headers." + name + ": environment variable ${" + missing + "} is not set";
          break;
        }
        s.headers.emplace_back(name, std::move(value));
      }
    }
  }
  return std::make_unique<HttpSink>(std::move(s));
}

HttpSink::HttpSink(Settings s) : s_(std::move(s)) {
  GlobalInit();
  safe_url_ = SafeUrl(s_.url);
  sha_ = EVP_MD_CTX_new();
  sha_fin_ = EVP_MD_CTX_new();
}

HttpSink::~HttpSink() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
  if (z_ != nullptr) {
    deflateEnd(z_);
    delete z_;
  }
  EVP_MD_CTX_free(sha_);
  EVP_MD_CTX_free(sha_fin_);
}

Status HttpSink::Open(const std::string&) {
  if (!s_.error.empty()) return Status::Fatal(s_.error);
  if (!IStartsWith(s_.url, "http://") && !IStartsWith(s_.url, "https://")) {
    // Only a scheme is shown: the rest may hold credentials.
    const size_t colon = s_.url.find("://");
    const bool scheme = colon != std::string::npos && colon > 0 &&
                        std::all_of(s_.url.begin(), s_.url.begin() + colon, [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '+' ||
                                 c == '-' || c == '.';
                        });
    return Status::Fatal("url must start with http:// or https://, got " +
                         (scheme ? s_.url.substr(0, colon + 3) : std::string("no scheme")));
  }
  if (s_.url.find_first_of(" \t\r\n") != std::string::npos) {
    return Status::Fatal("url " + safe_url_ + " contains white space");
  }
  fixed_headers_.clear();
  bool own_type = false;
  for (const auto& [name, value] : s_.headers) {
    if (!IsToken(name)) return Status::Fatal("headers: '" + name + "' is not a valid header name");
    if (!IsFieldValue(value)) {
      return Status::Fatal("headers." + name + ": the value contains a control character");
    }
    for (std::string_view r : kReserved) {
      if (IEquals(name, r)) return Status::Fatal("headers." + name + ": set by the sink itself");
    }
    if (IEquals(name, "content-type")) own_type = true;
    // "Name;" is how curl sends a header with an empty value.
    fixed_headers_.push_back(value.empty() ? name + ";" : name + ": " + value);
  }
  if (!own_type) {
    fixed_headers_.push_back(s_.format == Format::kJson ? "Content-Type: application/json"
                                                        : "Content-Type: application/x-ndjson");
  }
  if (s_.gzip) fixed_headers_.push_back("Content-Encoding: gzip");
  fixed_headers_.push_back("Expect:");  // no 100-continue round trip for large bodies

  if (s_.gzip && z_ == nullptr) {
    z_ = new z_stream{};
    if (deflateInit2(z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      delete z_;
      z_ = nullptr;
      return Status::Fatal("gzip: cannot initialise zlib");
    }
  }
  if (sha_ == nullptr || sha_fin_ == nullptr) return Status::Fatal("cannot allocate SHA-256");
  if (curl_ == nullptr) {
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return Status::Retry("cannot create a curl handle");
  }
  CURL* c = curl_;
  curl_easy_setopt(c, CURLOPT_URL, s_.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(s_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(s_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "forkd");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error_);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &KeepExcerpt);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response_);
  if (s_.put) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  return Status::Ok();
}

void HttpSink::Write(const Record& r) {
  if (count_ == 0) {
    first_id_.assign(r.event_id);
    EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  } else {
    EVP_DigestUpdate(sha_, "\n", 1);
  }
  EVP_DigestUpdate(sha_, r.event_id.data(), r.event_id.size());
  ++count_;
  key_valid_ = gz_valid_ = false;
  if (s_.format == Format::kNdjson) {
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &body_);
    return;
  }
  // The body stays a complete JSON array: "[" or the last "]" becomes the
  // separator, the line's "\n" the closing bracket.
  if (body_.empty()) {
    body_.push_back('[');
  } else {
    body_.back() = ',';
  }
  AppendJsonLine(r.event_id, r.payload, r.payload_size, &body_);
  body_.back() = ']';
}

const std::string& HttpSink::IdempotencyKey() {
  if (key_valid_) return key_;
  key_valid_ = true;
  if (count_ == 1 && first_id_.size() <= kMaxPlainKey && IsPrintableAscii(first_id_)) {
    key_ = first_id_;
    return key_;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Finish a copy: the batch may still grow after a retry.
  EVP_MD_CTX_copy_ex(sha_fin_, sha_);
  EVP_DigestFinal_ex(sha_fin_, md, &len);
  static const char kHex[] = "0123456789abcdef";
  key_.resize(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    key_[2 * i] = kHex[md[i] >> 4];
    key_[2 * i + 1] = kHex[md[i] & 15];
  }
  return key_;
}

Status HttpSink::Compress() {
  if (gz_valid_) return Status::Ok();
  if (deflateReset(z_) != Z_OK) return Status::Fatal("gzip: deflateReset failed");
  gz_.resize(deflateBound(z_, body_.size()));
  z_->next_in = reinterpret_cast<Bytef*>(body_.data());
  size_t in_left = body_.size();
  size_t out = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out == gz_.size()) gz_.resize(gz_.size() * 2 + 64);
    const uInt in_now = static_cast<uInt>(std::min<size_t>(in_left, UINT_MAX));
    const uInt out_now = static_cast<uInt>(std::min<size_t>(gz_.size() - out, UINT_MAX));
    z_->avail_in = in_now;
    z_->next_out = reinterpret_cast<Bytef*>(gz_.data() + out);
    z_->avail_out = out_now;
    rc = deflate(z_, in_now == in_left ? Z_FINISH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      return Status::Fatal("gzip: deflate failed (" + std::to_string(rc) + ")");
    }
    in_left -= in_now - z_->avail_in;
    out += out_now - z_->avail_out;
  }
  gz_.resize(out);
  gz_valid_ = true;
  return Status::Ok();
}

void HttpSink::ReadRetryAfter() {
  struct curl_header* h = nullptr;
  if (curl_easy_header(curl_, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) return;
  std::string_view v = h->value;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds, capped far beyond any backoff so it cannot overflow.
    int64_t secs = 0;
    for (char c : v) {
      secs = secs * 10 + (c - '0');
      if (secs > 1000000000) break;
    }
    retry_after_ms_ = std::min<int64_t>(secs, 1000000000) * 1000;
    return;
  }
  // An HTTP-date.
  const std::string date(v);
  const time_t t = curl_getdate(date.c_str(), nullptr);
  if (t == -1) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  retry_after_ms_ = std::max<int64_t>(0, static_cast<int64_t>(t) * 1000 - now_ms);
}

Status HttpSink::Flush() {
  retry_after_ms_ = -1;
  if (count_ == 0) return Status::Ok();
  if (curl_ == nullptr) return Status::Fatal("http sink flushed before Open");
  const std::string* body = &body_;
  if (s_.gzip) {
    Status st = Compress();
    if (!st.ok()) return st;
    body = &gz_;
  }
  curl_slist* headers = nullptr;
  for (const auto& line : fixed_headers_) headers = curl_slist_append(headers, line.c_str());
  headers = curl_slist_append(headers, ("Idempotency-Key: " + IdempotencyKey()).c_str());
  headers = curl_slist_append(headers, ("X-Fork-Count: " + std::to_string(count_)).c_str());

  CURL* c = curl_;
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  response_.clear();
  curl_error_[0] = 0;
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);

  if (rc != CURLE_OK) {
    // Refused, timed out, unresolvable, reset: the store may be back later.
    const char* why = curl_error_[0] != 0 ? curl_error_ : curl_easy_strerror(rc);
    return Status::Retry(std::string(s_.put ? "PUT " : "POST ") + safe_url_ + " failed: " + why);
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300) {
    Clear();
    return Status::Ok();
  }
  std::string msg = "http " + std::to_string(code) + " from " + safe_url_;
  const std::string excerpt = Excerpt(response_);
  if (!excerpt.empty()) msg += ": " + excerpt;
  if (code == 408 || code == 429 || (code >= 500 && code < 600)) {
    ReadRetryAfter();
    return Status::Retry(std::move(msg));
  }
  return Status::Fatal(std::move(msg));
}

void HttpSink::Clear() {
  body_.clear();
  count_ = 0;
  key_valid_ = gz_valid_ = false;
}

void HttpSink::Discard() { Clear(); }

}  // namespace forkd::sinks
