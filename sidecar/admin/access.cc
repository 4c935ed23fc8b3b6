#include "admin/access.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace forkd::admin {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Splits a Host header into name (IPv6 without brackets) and port (80 when
// absent, as for plain http). False when it is not of that shape.
bool SplitHost(const std::string& host, std::string* name, int* port) {
  std::string rest;
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    *name = host.substr(1, close - 1);
    rest = host.substr(close + 1);
  } else {
    const size_t colon = host.find(':');
    *name = host.substr(0, colon);
    rest = colon == std::string::npos ? "" : host.substr(colon);
  }
  if (name->empty()) return false;
  if (rest.empty()) {
    *port = 80;
    return true;
  }
  if (rest[0] != ':' || rest.size() < 2 || rest.size() > 6) return false;
  for (size_t i = 1; i < rest.size(); ++i) {
    if (rest[i] < '0' || rest[i] > '9') return false;
  }
  *port = std::atoi(rest.c_str() + 1);
  return true;
}

// Prints a header value from the request safely inside a message.
std::string Quoted(const std::string& v) {
  std::string out = "'";
  for (unsigned char c : v.substr(0, 100)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out + (v.size() > 100 ? "...'" : "'");
}

Verdict Refuse(int status, std::string message, bool challenge = false) {
  return Verdict{status, std::move(message), challenge};
}

}  // namespace

bool TokenEquals(const std::string& given, const std::string& expected) {
  // Every byte of `expected` is visited whatever `given` holds; a length
  // difference is folded in instead of returning early.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

Access::Access(Listen address, std::string token, AccessWords words)
    : address_(std::move(address)), token_(std::move(token)), words_(std::move(words)) {}

Verdict Access::Read(const RequestHeaders& h) const {
  if (h.host.size() > 1) return Refuse(403, "more than one Host header");
  if (!address_.loopback) return {};
  if (h.host.empty()) return Refuse(403, "a Host header is required");
  std::string name;
  int port = 0;
  if (!SplitHost(h.host[0], &name, &port) || !IsLoopbackName(name) || port != address_.port) {
    return Refuse(403, "Host " + Quoted(h.host[0]) +
                           " is not this " + words_.server + ": it serves only localhost, 127.0.0.1 or "
                           "[::1] on port " +
                           std::to_string(address_.port) +
                           " (other names are refused against DNS rebinding)");
  }
  return {};
}

Verdict Access::Change(const RequestHeaders& h) const {
  Verdict v = Read(h);
  if (!v.allowed()) return v;
  if (h.origin.size() > 1) return Refuse(403, "more than one Origin header");
  if (h.authorization.size() > 1) return Refuse(403, "more than one Authorization header");
  if (!h.origin.empty()) {
    const std::string origin = Lower(h.origin[0]);
    const std::string host = h.host.empty() ? "" : Lower(h.host[0]);
    if (host.empty() || (origin != "http://" + host && origin != "https://" + host)) {
      std::string m = "cross-origin request refused: Origin " + Quoted(h.origin[0]) +
                      " is not this " + words_.server + "'s own (http://" +
                      (h.host.empty() ? std::string("<Host>") : h.host[0]) + ")";
      if (token_.empty()) {
        m += "; without a token, state-changing requests are taken only from local clients "
             "that are not web pages (curl, forkd dlq): to allow others, " +
             words_.how_to_set;
      }
      return Refuse(403, m);
    }
  }
  if (token_.empty()) {
    if (!h.authorization.empty()) {
      return Refuse(403,
                    "this forkd has no " + words_.token +
                        " configured, yet the request carries an Authorization header: give "
                        "forkd the same token (" +
                        words_.how_to_set + ") or send none");
    }
    return {};
  }
  if (h.authorization.empty()) {
    return Refuse(401, "this endpoint needs `Authorization: Bearer <token>` (the " + words_.token + ")",
                  /*challenge=*/true);
  }
  const std::string& a = h.authorization[0];
  const size_t sp = a.find(' ');
  if (sp == std::string::npos || Lower(a.substr(0, sp)) != "bearer") {
    return Refuse(403, "the Authorization header must be `Bearer <token>`");
  }
  const size_t start = a.find_first_not_of(' ', sp);
  const std::string given = start == std::string::npos ? "" : a.substr(start);
  if (!TokenEquals(given, token_)) return Refuse(403, "wrong " + words_.token);
  return {};
}

}  // namespace forkd::admin
