#include "admin/admin_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/fs.h"

namespace forkd::admin {

bool IsLoopbackName(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, n.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, n.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z reaches the IPv4 loopback.
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool ParseListen(const std::string& text, Listen* out, std::string* error) {
  auto fail = [&](const std::string& why) {
    *error = "expected host:port (e.g. 127.0.0.1:8787 or [::1]:8787), got '" + text + "'" +
             (why.empty() ? "" : ": " + why);
    return false;
  };
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return fail("");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return fail("an IPv6 address goes in brackets");
  }
  if (host.empty()) return fail("the host is missing (0.0.0.0 listens on every interface)");
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail("bad port");
  }
  const int p = std::atoi(port.c_str());
  if (p < 1 || p > 65535) return fail("the port must be 1-65535");
  out->host = host;
  out->port = p;
  out->loopback = IsLoopbackName(host);
  return true;
}

bool ValidToken(const std::string& token, std::string* error) {
  if (token.size() < kMinTokenLength) {
    *error = "is " + std::to_string(token.size()) + " characters; at least " +
             std::to_string(kMinTokenLength) + " are needed (e.g. `openssl rand -hex 32`)";
    return false;
  }
  // It travels as `Authorization: Bearer <token>`.
  for (unsigned char c : token) {
    if (c < 0x21 || c > 0x7e) {
      *error = "holds a space, control or non-ASCII character; use printable ASCII only";
      return false;
    }
  }
  return true;
}

const std::vector<OptionSpec>& AdminOptions() {
  static const std::vector<OptionSpec> specs = {
      {"listen", OptType::kString, "",
       "host:port to serve on; a non-loopback address needs a token", true},
      {"token", OptType::kString, "",
       "Bearer token that POST endpoints require (16+ printable ASCII characters); use "
       "${ENV} rather than writing it in the file"},
      {"token_file", OptType::kString, "",
       "File holding the token (its first line); relative to the config file. Instead of "
       "token"},
  };
  return specs;
}

void ParseAdminConfig(const YAML::Node& node, const std::string& file,
                      const std::function<std::string(const std::string&)>& resolve,
                      AdminConfig* out, std::vector<ConfigError>* errors) {
  *out = AdminConfig{};
  if (!node.IsDefined() || node.IsNull()) return;
  out->mark = MarkOf(node);
  auto error = [&](Mark at, const std::string& message) {
    errors->push_back({file, at, message});
  };
  Mark listen_mark = out->mark;
  if (node.IsScalar()) {
    std::string missing;
    if (!Interpolate(node.Scalar(), &out->listen, &missing)) {
      error(out->mark, "config.admin: environment variable ${" + missing + "} is not set");
      return;
    }
    if (out->listen.empty()) return;  // off
  } else if (node.IsMap()) {
    Options o;
    if (!ParseOptions(node, AdminOptions(), {}, "admin", file, &o, errors)) return;
    out->listen = o.Str("listen");
    listen_mark = o.Get("listen").mark;
    if (o.Has("token") && o.Has("token_file")) {
      error(o.Get("token_file").mark, "admin: set token or token_file, not both");
      return;
    }
    if (o.Has("token")) {
      out->token = o.Str("token");
      out->token_source = "admin.token";
      if (std::string why; !ValidToken(out->token, &why)) {
        error(o.Get("token").mark, "admin.token: the token " + why);
      }
    } else if (o.Has("token_file")) {
      const std::string path = resolve(o.Str("token_file"));
      std::string text;
      Status s = fs::ReadFile(path, &text);
      if (!s.ok()) {
        error(o.Get("token_file").mark, "admin.token_file: " + s.message());
        return;
      }
      // The first line, without its end (files written by `echo` end in one).
      text = text.substr(0, text.find('\n'));
      if (!text.empty() && text.back() == '\r') text.pop_back();
      out->token = text;
      out->token_source = "admin.token_file " + path;
      if (std::string why; !ValidToken(out->token, &why)) {
        error(o.Get("token_file").mark, "admin.token_file: the token in " + path + " " + why);
      }
    }
  } else {
    error(out->mark, "admin: expected host:port or a map {listen, token | token_file}");
    return;
  }
  if (std::string why; !ParseListen(out->listen, &out->address, &why)) {
    error(listen_mark, (node.IsMap() ? "admin.listen: " : "admin: ") + why);
    return;
  }
  if (out->token_source.empty()) {
    const char* env = std::getenv(kTokenEnv);
    if (env != nullptr && *env != 0) {
      out->token = env;
      out->token_source = kTokenEnv;
      if (std::string why; !ValidToken(out->token, &why)) {
        error(out->mark, std::string("admin: the token in ") + kTokenEnv + " " + why);
      }
    }
  }
  if (!out->address.loopback && out->token.empty()) {
    error(listen_mark,
          std::string(node.IsMap() ? "admin.listen" : "admin") + ": " + out->address.host +
              " is not a loopback address, so others can reach the admin server: it needs a "
              "token (admin: {listen, token_file} or {listen, token}, or " +
              kTokenEnv + " in forkd's environment)");
  }
}

}  // namespace forkd::admin
