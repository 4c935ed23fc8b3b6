// What the kafka destination and the kafka source share: the `brokers`
// list, the librdkafka properties under `options:` (checked by librdkafka
// itself, so `forkd check` knows every property the library knows), and
// which broker errors can never succeed.
#pragma once

#include <librdkafka/rdkafka.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/options.h"

namespace forkd::kafka {

using Properties = std::vector<std::pair<std::string, std::string>>;

// "host:port[,host:port...]"; false with *error saying which entry is wrong.
[[nodiscard]] bool CheckBrokers(std::string_view brokers, std::string* error);

// The `options:` map as librdkafka properties (scalar values, ${ENV}
// interpolated). False with *error as "options.<name>: message" and *at the
// entry's position; properties Fork sets itself are refused (`reserved`:
// name -> why).
[[nodiscard]] bool ReadProperties(const YAML::Node& node, const Properties& reserved,
                                  Properties* out, std::string* error, Mark* at = nullptr);

// A librdkafka conf with `defaults`, then `user`, then `forced` set, and
// bootstrap.servers = brokers. nullptr with *error ("options.<name>: ...")
// when librdkafka refuses a property: an unknown name, a bad value.
rd_kafka_conf_t* NewConf(std::string_view brokers, const Properties& defaults,
                         const Properties& user, const Properties& forced, std::string* error);

// Validates `user` against librdkafka without creating a client, for
// `forkd check`: the same conf as NewConf would build.
[[nodiscard]] bool CheckProperties(std::string_view brokers, const Properties& user,
                                   std::string* error);

// True when a produce error means the broker will never take the message
// as it is (too large, not authorized, invalid): it goes to dead letters.
// Everything else (a broker down, leadership moving, a timeout) is retried.
bool IsPermanent(rd_kafka_resp_err_t err);

// librdkafka's log lines go to spdlog, tagged with `who`.
void RouteLogs(rd_kafka_conf_t* conf);

}  // namespace forkd::kafka
