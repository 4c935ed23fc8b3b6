// CURVE keys (ZeroMQ's CurveZMQ: Curve25519 key pairs written in Z85, 40
// characters each) and the `curve:` section of fork.yaml, which makes forkd's
// client socket encrypt every connection and authenticate the clients:
//
//   listen: tcp://0.0.0.0:7600
//   curve:
//     secret_key_file: /run/secrets/forkd.key    # written by `forkd keygen --out`
//     # or secret_key: ${FORK_CURVE_SECRET_KEY}
//     clients: [ "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7" ]   # optional allow-list
//     # or clients_file: ./clients.keys                         # one public key a line
//
// A tcp:// `listen` needs `curve` or `insecure_tcp: true` (config.cc checks
// it). Key files hold `public: <key>` / `secret: <key>` lines, as `forkd
// keygen` writes them; a file holding only a key on its first line also
// works. Secret keys are never logged.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"

namespace forkd::ingest {

// Z85 text of a 32-byte key.
inline constexpr size_t kCurveKeyTextSize = 40;

// True when `text` is a CURVE key in Z85: 40 characters of the Z85 alphabet.
// Otherwise false with *error saying what is wrong ("is 12 characters; a
// CURVE key is 40 (Z85) ...").
bool ValidCurveKey(std::string_view text, std::string* error);

// The public key of a valid secret key, in Z85.
std::string CurvePublicKey(const std::string& secret_key);

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// A new random key pair; false (and *error) when libzmq has no CURVE.
bool GenerateCurveKeyPair(CurveKeyPair* out, std::string* error);

// The text `forkd keygen` prints and writes: "public: ...\nsecret: ...\n".
std::string FormatCurveKeyPair(const CurveKeyPair& pair);

// Reads a key file: the value of its `secret:` (or `public:`, per `which`)
// line, else its first non-comment line. False with *error naming the file.
bool ReadCurveKeyFile(const std::string& path, std::string_view which, std::string* key,
                      std::string* error);

// Whether this libzmq can do CURVE (zmq_has("curve")).
bool CurveAvailable();

struct CurveConfig {
  std::string secret_key;   // Z85; empty: no CURVE
  std::string public_key;   // of secret_key: what clients pass as curveServerKey
  std::string secret_source;  // "curve.secret_key" or "curve.secret_key_file <path>", for logs
  // Public keys (Z85) allowed to connect; empty: any key may (connections are
  // still encrypted and the server authenticated).
  std::vector<std::string> clients;
  Mark mark;  // of the `curve` value

  bool enabled() const { return !secret_key.empty(); }
};

// The section's options, for parsing and docs.
const std::vector<OptionSpec>& CurveOptions();

// Reads the top-level `curve` value (a map) into *out; problems are appended
// to *errors as `file:line:col: curve...: message`. `resolve` turns the
// files' paths into absolute ones (relative to the config file).
void ParseCurveConfig(const YAML::Node& node, const std::string& file,
                      const std::function<std::string(const std::string&)>& resolve,
                      CurveConfig* out, std::vector<ConfigError>* errors);

}  // namespace forkd::ingest
