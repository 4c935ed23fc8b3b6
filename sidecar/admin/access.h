// Who may use the admin server: the checks a request passes before its
// handler runs. Pure functions of the request's headers, so they are tested
// without sockets; admin_server.cc applies them. docs/security.md explains
// the threat model behind each rule.
//
// Every request, on a loopback listen address: the Host header must name
// this machine (localhost, 127.0.0.0/8, [::1]) and the port served. A web
// page whose own name an attacker re-points at 127.0.0.1 (DNS rebinding)
// sends its own name as Host and is refused. On any other listen address
// the Host can legitimately be anything (a load balancer's name, a pod IP),
// so it is not checked; the token guards what matters.
//
// A request that changes state (a POST), in this order:
//   1. the Host rule above;
//   2. an Origin header, when present, must be http://<Host> or
//      https://<Host> (a TLS proxy in front): a page of another origin is
//      refused even when the browser attaches credentials;
//   3. with a token configured: `Authorization: Bearer <token>`, 401 (with
//      WWW-Authenticate: Bearer) when absent, 403 when wrong. Without one
//      (only possible on loopback): no Authorization header may be sent, so
//      a client that believes it is using a token learns that forkd has
//      none.
// Repeated Host, Origin or Authorization headers are refused: which one a
// proxy honoured is unknowable.
#pragma once

#include <string>
#include <vector>

#include "admin/admin_config.h"

namespace forkd::admin {

// The headers that matter, each with every value the request carried.
struct RequestHeaders {
  std::vector<std::string> host;
  std::vector<std::string> origin;
  std::vector<std::string> authorization;
};

struct Verdict {
  int status = 200;        // 200: go on; else 401 or 403
  std::string message;     // why not, for the response body
  bool challenge = false;  // answer with WWW-Authenticate: Bearer

  bool allowed() const { return status == 200; }
};

// Compares in time that depends only on expected.size(), never on where the
// first difference is.
bool TokenEquals(const std::string& given, const std::string& expected);

// How refusals name the server and its token: the admin server's by
// default; HTTP ingest (ingest/http/) names its own.
struct AccessWords {
  std::string server = "admin server";
  std::string token = "admin token";
  std::string how_to_set =
      "set admin: {listen, token_file} (or token) in the config, or FORK_ADMIN_TOKEN in forkd's "
      "environment";
};

class Access {
 public:
  Access(Listen address, std::string token, AccessWords words = {});

  // Any request (the Host rule).
  Verdict Read(const RequestHeaders& h) const;
  // A request that changes state: Host, Origin, token.
  Verdict Change(const RequestHeaders& h) const;

  bool has_token() const { return !token_.empty(); }

 private:
  Listen address_;
  std::string token_;
  AccessWords words_;
};

}  // namespace forkd::admin
