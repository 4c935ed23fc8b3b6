// What the kafka destination and source share: the brokers list, the
// `options:` map read and checked by librdkafka, and which broker errors
// go to dead letters. tests/e2e/kafka.test.mjs runs both against a real
// broker.
#include "kafka/kafka_conf.h"

#include <catch2/catch.hpp>

namespace forkd::kafka {
namespace {

TEST_CASE("brokers: host:port lists, with the entry that is wrong named", "[kafka]") {
  std::string err;
  CHECK(CheckBrokers("k1:9092", &err));
  CHECK(CheckBrokers("k1:9092,k2.internal:19092, 10.0.0.3:9092", &err));
  CHECK(CheckBrokers("[::1]:9092", &err));
  CHECK_FALSE(CheckBrokers("", &err));
  CHECK(err == "expected host:port[,host:port...], got nothing");
  CHECK_FALSE(CheckBrokers("k1", &err));
  CHECK(err == "'k1' is not host:port");
  CHECK_FALSE(CheckBrokers("k1:9092,k2:99999", &err));
  CHECK(err == "'k2:99999': the port must be 1-65535");
  CHECK_FALSE(CheckBrokers("k1:0", &err));
  CHECK_FALSE(CheckBrokers("k1:90x", &err));
  CHECK_FALSE(CheckBrokers("k1:9092,", &err));
  CHECK(err == "'' is not host:port");
  CHECK_FALSE(CheckBrokers("kafka://k1:9092", &err));
  CHECK(err.find("has a scheme") != std::string::npos);
  CHECK_FALSE(CheckBrokers("k 1:9092", &err));
  CHECK(err == "'k 1:9092': the host has a character not allowed in a name or address");
}

TEST_CASE("options: scalars as text, ${ENV} filled in, Fork's own properties refused", "[kafka]") {
  setenv("FORK_TEST_KAFKA_PW", "s3cret", 1);
  const YAML::Node n = YAML::Load(
      "linger.ms: 10\n"
      "sasl.password: ${FORK_TEST_KAFKA_PW}\n"
      "compression.type: lz4\n");
  Properties out;
  std::string err;
  REQUIRE(ReadProperties(n, {}, &out, &err));
  REQUIRE(out.size() == 3);
  CHECK(out[0] == std::pair<std::string, std::string>{"linger.ms", "10"});
  CHECK(out[1].second == "s3cret");

  Mark at;
  CHECK_FALSE(ReadProperties(YAML::Load("linger.ms: 10\nacks: 1\n"), {{"acks", "always all"}}, &out, &err, &at));
  CHECK(err == "options.acks: always all");
  CHECK(at.line == 2);
  CHECK_FALSE(ReadProperties(YAML::Load("a: [1, 2]\n"), {}, &out, &err));
  CHECK(err.rfind("options.a: expected a scalar value", 0) == 0);
  CHECK_FALSE(ReadProperties(YAML::Load("[1]"), {}, &out, &err));
  CHECK(err.rfind("options: expected a map", 0) == 0);
  CHECK_FALSE(ReadProperties(YAML::Load("x: ${FORK_TEST_KAFKA_UNSET_VAR}\n"), {}, &out, &err));
  CHECK(err == "options.x: ${FORK_TEST_KAFKA_UNSET_VAR} is not set");
  CHECK(ReadProperties(YAML::Node(), {}, &out, &err));
  CHECK(out.empty());
}

TEST_CASE("librdkafka checks every property: unknown names and bad values", "[kafka]") {
  std::string err;
  CHECK(CheckProperties("k1:9092", {{"linger.ms", "10"}, {"security.protocol", "SASL_SSL"},
                                    {"sasl.mechanisms", "SCRAM-SHA-512"}, {"sasl.username", "u"},
                                    {"sasl.password", "p"}},
                        &err));
  CHECK_FALSE(CheckProperties("k1:9092", {{"no.such.thing", "1"}}, &err));
  CHECK(err == "options.no.such.thing: librdkafka has no such property");
  CHECK_FALSE(CheckProperties("k1:9092", {{"linger.ms", "soon"}}, &err));
  CHECK(err.rfind("options.linger.ms: librdkafka refuses 'soon': ", 0) == 0);
  CHECK_FALSE(CheckProperties("k1:9092", {{"compression.type", "zstd2"}}, &err));
  CHECK(err.find("zstd2") != std::string::npos);
}

TEST_CASE("permanent produce errors are the ones no retry can fix", "[kafka]") {
  CHECK(IsPermanent(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
  CHECK(IsPermanent(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
  CHECK(IsPermanent(RD_KAFKA_RESP_ERR_INVALID_RECORD));
  CHECK_FALSE(IsPermanent(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
  CHECK_FALSE(IsPermanent(RD_KAFKA_RESP_ERR__TRANSPORT));
  CHECK_FALSE(IsPermanent(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION));
  CHECK_FALSE(IsPermanent(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
  CHECK_FALSE(IsPermanent(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS));
}

}  // namespace
}  // namespace forkd::kafka
