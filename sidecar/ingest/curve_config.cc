#include "ingest/curve_config.h"

#include <zmq.h>

#include <algorithm>
#include <cstring>

#include "core/fs.h"

namespace forkd::ingest {
namespace {

constexpr char kZ85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

bool ValidCurveKey(std::string_view text, std::string* error) {
  if (text.size() != kCurveKeyTextSize) {
    *error = "is " + std::to_string(text.size()) + " characters; a CURVE key is " +
             std::to_string(kCurveKeyTextSize) +
             " Z85 characters, as `forkd keygen` prints it (quote it in YAML: Z85 uses # : [ { "
             "and other characters YAML treats specially)";
    return false;
  }
  // Each group of five characters is a base-85 number that must fit 32 bits
  // (libzmq's decoder does not check every version).
  for (size_t g = 0; g < text.size(); g += 5) {
    uint64_t value = 0;
    for (size_t i = g; i < g + 5; ++i) {
      const char* p = std::strchr(kZ85, text[i]);
      if (text[i] == 0 || p == nullptr) {
        *error = "holds '" + std::string(1, text[i]) + "' at position " + std::to_string(i + 1) +
                 ", which is not a Z85 character";
        return false;
      }
      value = value * 85 + static_cast<uint64_t>(p - kZ85);
    }
    if (value > 0xffffffffull) {
      *error = "is not a valid Z85 encoding (characters " + std::to_string(g + 1) + "-" +
               std::to_string(g + 5) + " are out of range)";
      return false;
    }
  }
  return true;
}

std::string CurvePublicKey(const std::string& secret_key) {
  char pub[kCurveKeyTextSize + 1] = {};
  if (zmq_curve_public(pub, secret_key.c_str()) != 0) return "";
  return pub;
}

bool CurveAvailable() { return zmq_has("curve") != 0; }

bool GenerateCurveKeyPair(CurveKeyPair* out, std::string* error) {
  char pub[kCurveKeyTextSize + 1] = {}, sec[kCurveKeyTextSize + 1] = {};
  if (!CurveAvailable() || zmq_curve_keypair(pub, sec) != 0) {
    *error = "this libzmq was built without CURVE (libsodium)";
    return false;
  }
  out->public_key = pub;
  out->secret_key = sec;
  return true;
}

std::string FormatCurveKeyPair(const CurveKeyPair& pair) {
  return "public: " + pair.public_key + "\nsecret: " + pair.secret_key + "\n";
}

bool ReadCurveKeyFile(const std::string& path, std::string_view which, std::string* key,
                      std::string* error) {
  std::string text;
  if (Status s = fs::ReadFile(path, &text); !s.ok()) {
    *error = s.message();
    return false;
  }
  std::string first;
  const std::string label = std::string(which) + ":";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = Trim(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(label, 0) == 0) {
      *key = Trim(std::string_view(line).substr(label.size()));
      return true;
    }
    if (first.empty() && line.find(": ") == std::string::npos) first = line;
  }
  if (first.empty()) {
    *error = path + " has no '" + label + " <key>' line";
    return false;
  }
  *key = first;
  return true;
}

const std::vector<OptionSpec>& CurveOptions() {
  static const std::vector<OptionSpec> specs = {
      {"secret_key", OptType::kString, "",
       "forkd's secret key (Z85, from `forkd keygen`); use ${ENV} rather than writing it in "
       "the file. Clients need the matching public key (curveServerKey)"},
      {"secret_key_file", OptType::kString, "",
       "File holding the secret key: its `secret:` line (`forkd keygen --out FILE` writes "
       "one) or its first line; relative to the config file. Instead of secret_key"},
      {"clients", OptType::kNode, "",
       "Public keys (Z85) of the clients allowed to connect; unset: any client that knows "
       "forkd's public key"},
      {"clients_file", OptType::kString, "",
       "File of allowed client public keys, one a line (`public: KEY` lines and # comments "
       "allowed); relative to the config file. Adds to clients"},
  };
  return specs;
}

void ParseCurveConfig(const YAML::Node& node, const std::string& file,
                      const std::function<std::string(const std::string&)>& resolve,
                      CurveConfig* out, std::vector<ConfigError>* errors) {
  *out = CurveConfig{};
  if (!node.IsDefined() || node.IsNull()) return;
  out->mark = MarkOf(node);
  auto error = [&](Mark at, const std::string& message) {
    errors->push_back({file, at, message});
  };
  if (!node.IsMap()) {
    error(out->mark, "curve: expected a map {secret_key | secret_key_file, clients?}");
    return;
  }
  Options o;
  if (!ParseOptions(node, CurveOptions(), {}, "curve", file, &o, errors)) return;
  if (!CurveAvailable()) {
    error(out->mark, "curve: this forkd's libzmq was built without CURVE (libsodium)");
    return;
  }
  std::string secret;
  Mark secret_mark = out->mark;
  if (o.Has("secret_key") && o.Has("secret_key_file")) {
    error(o.Get("secret_key_file").mark, "curve: set secret_key or secret_key_file, not both");
    return;
  }
  if (o.Has("secret_key")) {
    secret = o.Str("secret_key");
    secret_mark = o.Get("secret_key").mark;
    out->secret_source = "curve.secret_key";
    if (std::string why; !ValidCurveKey(secret, &why)) {
      error(secret_mark, "curve.secret_key: the key " + why);
      return;
    }
  } else if (o.Has("secret_key_file")) {
    const std::string path = resolve(o.Str("secret_key_file"));
    secret_mark = o.Get("secret_key_file").mark;
    std::string why;
    if (!ReadCurveKeyFile(path, "secret", &secret, &why)) {
      error(secret_mark, "curve.secret_key_file: " + why);
      return;
    }
    out->secret_source = "curve.secret_key_file " + path;
    if (!ValidCurveKey(secret, &why)) {
      error(secret_mark, "curve.secret_key_file: the key in " + path + " " + why);
      return;
    }
  } else {
    error(out->mark,
          "curve: secret_key or secret_key_file is required (`forkd keygen --out FILE` makes "
          "a key pair)");
    return;
  }
  out->secret_key = secret;
  out->public_key = CurvePublicKey(secret);

  auto add_client = [&](const std::string& key, Mark at, const std::string& where) {
    if (std::string why; !ValidCurveKey(key, &why)) {
      error(at, where + ": the key " + why);
      return;
    }
    if (std::find(out->clients.begin(), out->clients.end(), key) == out->clients.end()) {
      out->clients.push_back(key);
    }
  };
  if (const YAML::Node& list = o.Node("clients"); o.Has("clients")) {
    if (!list.IsSequence()) {
      error(o.Get("clients").mark, "curve.clients: expected a list of public keys (Z85)");
    } else {
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string where = "curve.clients[" + std::to_string(i) + "]";
        if (!list[i].IsScalar()) {
          error(MarkOf(list[i]), where + ": expected a public key (Z85)");
          continue;
        }
        std::string key, missing;
        if (!Interpolate(list[i].Scalar(), &key, &missing)) {
          error(MarkOf(list[i]), where + ": environment variable ${" + missing + "} is not set");
          continue;
        }
        add_client(Trim(key), MarkOf(list[i]), where);
      }
    }
  }
  if (o.Has("clients_file")) {
    const std::string path = resolve(o.Str("clients_file"));
    const Mark at = o.Get("clients_file").mark;
    std::string text;
    if (Status s = fs::ReadFile(path, &text); !s.ok()) {
      error(at, "curve.clients_file: " + s.message());
      return;
    }
    size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = Trim(std::string_view(text).substr(pos, end - pos));
      pos = end + 1;
      ++line_no;
      if (line.empty() || line[0] == '#') continue;
      if (line.rfind("public:", 0) == 0) line = Trim(std::string_view(line).substr(7));
      add_client(line, at, "curve.clients_file: " + path + ":" + std::to_string(line_no));
    }
  }
}

}  // namespace forkd::ingest
