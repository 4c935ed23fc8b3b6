// The `admin:` section of fork.yaml: where the admin HTTP server listens and
// the token that guards the endpoints that change state.
//
//   admin: 127.0.0.1:8787                    # short form: the address only
//   admin:
//     listen: 0.0.0.0:8787
//     token_file: /run/secrets/fork-admin    # or token: ${FORK_ADMIN_SECRET}
//
// The token is the first of: admin.token; the first line of admin.token_file;
// FORK_ADMIN_TOKEN in the environment of the process reading the config
// (`forkd run`, and `forkd dlq` / `forkd cursors` sending it). Setting both
// token and token_file is an error; so is a listen address that is not
// loopback (localhost, 127.0.0.0/8, ::1) without a token. The token is never
// logged; token_source says where it came from.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/options.h"

namespace forkd::admin {

// Read from the environment when the config names no token.
inline constexpr char kTokenEnv[] = "FORK_ADMIN_TOKEN";
// Shorter tokens are refused: guessable over the network.
inline constexpr size_t kMinTokenLength = 16;

// A parsed `host:port` or `[v6]:port`.
struct Listen {
  std::string host;  // without brackets ("::1"); never empty
  int port = 0;      // 1-65535
  bool loopback = false;  // localhost, 127.0.0.0/8 or ::1: only this machine can connect
};

// False with *error ("expected host:port ...") when `text` is not one.
bool ParseListen(const std::string& text, Listen* out, std::string* error);

// Whether `name` (a host without port; IPv6 without brackets) is a loopback
// name or address.
bool IsLoopbackName(const std::string& name);

// False with *error when `token` cannot be a token: too short, or holding
// characters an Authorization header cannot carry (spaces, controls).
bool ValidToken(const std::string& token, std::string* error);

struct AdminConfig {
  std::string listen;  // as written ("127.0.0.1:8787"); empty: no admin server
  Listen address;      // listen, parsed
  std::string token;   // empty: none configured
  // Where the token came from, for logs and messages: "admin.token",
  // "admin.token_file <path>" or "FORK_ADMIN_TOKEN"; empty without one.
  std::string token_source;
  Mark mark;  // of the `admin` value

  bool enabled() const { return !listen.empty(); }
};

// The map form's options, for parsing and docs.
const std::vector<OptionSpec>& AdminOptions();

// Reads the top-level `admin` value (a string or a map) into *out; problems
// are appended to *errors as `file:line:col: admin...: message`. `resolve`
// turns token_file into an absolute path (relative to the config file).
void ParseAdminConfig(const YAML::Node& node, const std::string& file,
                      const std::function<std::string(const std::string&)>& resolve,
                      AdminConfig* out, std::vector<ConfigError>* errors);

}  // namespace forkd::admin
