// CURVE keys and the `curve:` section: Z85 validation, key files, the
// allow-list, and the rule that a network listen needs CURVE or insecure_tcp.
#include "ingest/curve_config.h"

#include "config/config.h"
#include "sinks/registry.h"
#include "test_util.h"

namespace forkd::ingest {
namespace {

using test::TempDir;

// The key pair of the CurveZMQ reference (RFC 26 test vectors).
constexpr char kServerPublic[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
constexpr char kServerSecret[] = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
constexpr char kClientPublic[] = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

struct Loaded {
  bool ok = false;
  Config config;
  std::vector<std::string> messages;
  std::string All() const {
    std::string s;
    for (const auto& m : messages) s += m + "\n";
    return s;
  }
};

Loaded Load(const TempDir& dir, const std::string& yaml) {
  Loaded l;
  const std::string path = dir.Join("fork.yaml");
  test::WriteFileOrDie(path, yaml + "destinations:\n  logs: { type: stdout }\n");
  auto lookup = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  std::vector<ConfigError> errors;
  l.ok = LoadConfig(path, lookup, sinks::SinkTypeNames(), &l.config, &errors);
  for (const auto& e : errors) l.messages.push_back(e.ToString());
  return l;
}

TEST_CASE("a CURVE key is 40 Z85 characters whose groups fit 32 bits", "[curve]") {
  std::string error;
  CHECK(ValidCurveKey(kServerPublic, &error));
  CHECK(ValidCurveKey(kServerSecret, &error));

  CHECK_FALSE(ValidCurveKey("abc", &error));
  CHECK(error.find("is 3 characters; a CURVE key is 40 Z85 characters") == 0);
  CHECK_FALSE(ValidCurveKey(std::string(kServerPublic) + "x", &error));
  CHECK(error.find("is 41 characters") == 0);

  std::string bad = kServerPublic;
  bad[7] = ' ';
  CHECK_FALSE(ValidCurveKey(bad, &error));
  CHECK(error == "holds ' ' at position 8, which is not a Z85 character");
  bad[7] = '"';
  CHECK_FALSE(ValidCurveKey(bad, &error));
  CHECK(error == "holds '\"' at position 8, which is not a Z85 character");

  // "#####" is 85^5 - 1, past 2^32 - 1.
  CHECK_FALSE(ValidCurveKey("#####" + std::string(kServerPublic).substr(5), &error));
  CHECK(error == "is not a valid Z85 encoding (characters 1-5 are out of range)");
}

TEST_CASE("the public key derives from the secret key; generated pairs match", "[curve]") {
  CHECK(CurvePublicKey(kServerSecret) == kServerPublic);
  CurveKeyPair pair;
  std::string error;
  REQUIRE(GenerateCurveKeyPair(&pair, &error));
  CHECK(ValidCurveKey(pair.public_key, &error));
  CHECK(ValidCurveKey(pair.secret_key, &error));
  CHECK(CurvePublicKey(pair.secret_key) == pair.public_key);
  CHECK(FormatCurveKeyPair(pair) == "public: " + pair.public_key + "\nsecret: " + pair.secret_key + "\n");
}

TEST_CASE("key files: the labelled line, else the first one", "[curve]") {
  TempDir dir;
  std::string key, error;
  test::WriteFileOrDie(dir.Join("pair"), std::string("# made by forkd keygen\npublic: ") +
                                             kServerPublic + "\nsecret: " + kServerSecret + "\n");
  REQUIRE(ReadCurveKeyFile(dir.Join("pair"), "secret", &key, &error));
  CHECK(key == kServerSecret);
  REQUIRE(ReadCurveKeyFile(dir.Join("pair"), "public", &key, &error));
  CHECK(key == kServerPublic);
  test::WriteFileOrDie(dir.Join("bare"), std::string(kServerSecret) + "\r\n");
  REQUIRE(ReadCurveKeyFile(dir.Join("bare"), "secret", &key, &error));
  CHECK(key == kServerSecret);
  test::WriteFileOrDie(dir.Join("empty"), "# nothing\n\n");
  CHECK_FALSE(ReadCurveKeyFile(dir.Join("empty"), "secret", &key, &error));
  CHECK(error == dir.Join("empty") + " has no 'secret: <key>' line");
  CHECK_FALSE(ReadCurveKeyFile(dir.Join("missing"), "secret", &key, &error));
  CHECK(error.find(dir.Join("missing")) != std::string::npos);
}

TEST_CASE("curve: the secret key from the file or inline, and the allow-list", "[curve][config]") {
  TempDir dir;
  test::WriteFileOrDie(dir.Join("forkd.key"),
                       std::string("public: ") + kServerPublic + "\nsecret: " + kServerSecret + "\n");
  test::WriteFileOrDie(dir.Join("clients.keys"),
                       std::string("# app servers\npublic: ") + kClientPublic + "\n\n" +
                           kServerPublic + "\n");
  SECTION("secret_key_file, relative to the config; clients and clients_file merge") {
    const Loaded l = Load(dir, std::string("listen: tcp://127.0.0.1:7600\n"
                                           "curve:\n"
                                           "  secret_key_file: forkd.key\n"
                                           "  clients: [\"") +
                                   kClientPublic + "\"]\n  clients_file: clients.keys\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.curve.enabled());
    CHECK(l.config.curve.secret_key == kServerSecret);
    CHECK(l.config.curve.public_key == kServerPublic);
    CHECK(l.config.curve.secret_source == "curve.secret_key_file " + dir.Join("forkd.key"));
    CHECK(l.config.curve.clients == std::vector<std::string>{kClientPublic, kServerPublic});
  }
  SECTION("secret_key from the environment") {
    ::setenv("FORK_TEST_CURVE_SECRET", kServerSecret, 1);
    const Loaded l = Load(dir, "listen: tcp://127.0.0.1:7600\n"
                               "curve: { secret_key: \"${FORK_TEST_CURVE_SECRET}\" }\n");
    ::unsetenv("FORK_TEST_CURVE_SECRET");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.curve.public_key == kServerPublic);
    CHECK(l.config.curve.clients.empty());
  }
  SECTION("a bad key is reported at its line and column") {
    const Loaded l = Load(dir, "listen: tcp://127.0.0.1:7600\n"
                               "curve:\n"
                               "  secret_key: short\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find(dir.Join("fork.yaml") +
                             ":3:15: curve.secret_key: the key is 5 characters; a CURVE key is 40") == 0);
  }
  SECTION("a bad client key names its index") {
    const Loaded l = Load(dir, std::string("curve:\n  secret_key_file: forkd.key\n  clients:\n"
                                           "    - \"") + kClientPublic + "\"\n    - nope\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find(dir.Join("fork.yaml") + ":5:7: curve.clients[1]: the key is 4 characters") == 0);
  }
  SECTION("a bad line of clients_file names the file and line") {
    test::WriteFileOrDie(dir.Join("bad.keys"), std::string(kClientPublic) + "\n\nnot-a-key\n");
    const Loaded l = Load(dir, "curve: { secret_key_file: forkd.key, clients_file: bad.keys }\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find("curve.clients_file: " + dir.Join("bad.keys") + ":3: the key is 9 characters") !=
          std::string::npos);
  }
  SECTION("both secret_key and secret_key_file, or neither") {
    Loaded l = Load(dir, std::string("curve: { secret_key: \"") + kServerSecret +
                             "\", secret_key_file: forkd.key }\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find("curve: set secret_key or secret_key_file, not both") != std::string::npos);
    l = Load(dir, std::string("curve: { clients: [\"") + kClientPublic + "\"] }\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find(":1:8: curve: secret_key or secret_key_file is required") != std::string::npos);
  }
  SECTION("a missing key file") {
    const Loaded l = Load(dir, "curve: { secret_key_file: nope.key }\n");
    REQUIRE(l.messages.size() == 1);
    CHECK(l.messages[0].find("curve.secret_key_file: ") != std::string::npos);
    CHECK(l.messages[0].find(dir.Join("nope.key")) != std::string::npos);
  }
}

TEST_CASE("a tcp listen needs curve or insecure_tcp; ipc needs neither", "[curve][config]") {
  TempDir dir;
  Loaded l = Load(dir, "listen: tcp://0.0.0.0:7600\n");
  REQUIRE(l.messages.size() == 1);
  CHECK(l.messages[0].find(dir.Join("fork.yaml") + ":1:9: listen: tcp://0.0.0.0:7600 can be "
                                                   "reached over the network, so it needs CURVE keys") == 0);
  CHECK(l.messages[0].find("insecure_tcp: true") != std::string::npos);

  l = Load(dir, "listen: tcp://0.0.0.0:7600\ninsecure_tcp: true\n");
  INFO(l.All());
  CHECK(l.ok);
  CHECK(l.config.insecure_tcp);
  CHECK_FALSE(l.config.curve.enabled());

  l = Load(dir, "data_dir: d\n");
  CHECK(l.ok);
  CHECK(l.config.listen.rfind("ipc://", 0) == 0);
  CHECK_FALSE(l.config.insecure_tcp);
}

}  // namespace
}  // namespace forkd::ingest
