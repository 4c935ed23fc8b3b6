#include "kafka/kafka_conf.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace forkd::kafka {

bool CheckBrokers(std::string_view brokers, std::string* error) {
  if (brokers.empty()) {
    *error = "expected host:port[,host:port...], got nothing";
    return false;
  }
  size_t start = 0;
  while (start <= brokers.size()) {
    size_t end = brokers.find(',', start);
    if (end == std::string_view::npos) end = brokers.size();
    std::string_view entry = brokers.substr(start, end - start);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    const std::string shown(entry.substr(0, 80));
    if (entry.find("://") != std::string_view::npos) {
      *error = "'" + shown + "' has a scheme; give host:port (TLS and SASL are set under options: "
               "security.protocol)";
      return false;
    }
    const size_t colon = entry.rfind(':');
    if (entry.empty() || colon == std::string_view::npos || colon == 0 ||
        colon + 1 == entry.size()) {
      *error = "'" + shown + "' is not host:port";
      return false;
    }
    std::string_view host = entry.substr(0, colon);
    const std::string_view port = entry.substr(colon + 1);
    if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const bool port_digits =
        port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    const long p = port_digits ? std::strtol(std::string(port).c_str(), nullptr, 10) : 0;
    if (!port_digits || p < 1 || p > 65535) {
      *error = "'" + shown + "': the port must be 1-65535";
      return false;
    }
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_' || c == ':';
      if (!ok) {
        *error = "'" + shown + "': the host has a character not allowed in a name or address";
        return false;
      }
    }
    if (end == brokers.size()) break;
    start = end + 1;
  }
  return true;
}

bool ReadProperties(const YAML::Node& node, const Properties& reserved, Properties* out,
                    std::string* error, Mark* at) {
  out->clear();
  if (!node.IsDefined() || node.IsNull()) return true;
  if (!node.IsMap()) {
    *error = "options: expected a map of librdkafka properties (name: value)";
    if (at != nullptr) *at = MarkOf(node);
    return false;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = it->first.Scalar();
    if (at != nullptr) *at = MarkOf(it->first);
    for (const auto& [r, why] : reserved) {
      if (name == r) {
        *error = "options." + name + ": " + why;
        return false;
      }
    }
    if (!it->second.IsScalar()) {
      *error = "options." + name + ": expected a scalar value (librdkafka takes every property as text)";
      if (at != nullptr) *at = MarkOf(it->second);
      return false;
    }
    std::string value, missing;
    if (!Interpolate(it->second.Scalar(), &value, &missing)) {
      *error = "options." + name + ": ${" + missing + "} is not set";
      if (at != nullptr) *at = MarkOf(it->second);
      return false;
    }
    out->emplace_back(name, std::move(value));
  }
  return true;
}

rd_kafka_conf_t* NewConf(std::string_view brokers, const Properties& defaults,
                         const Properties& user, const Properties& forced, std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  auto set = [&](const std::string& name, const std::string& value, bool from_user) {
    errstr[0] = '\0';
    const rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr);
    if (r == RD_KAFKA_CONF_OK) return true;
    const std::string prefix = from_user ? "options." + name + ": " : name + ": ";
    if (r == RD_KAFKA_CONF_UNKNOWN) {
      *error = prefix + "librdkafka has no such property";
    } else {
      *error = prefix + "librdkafka refuses '" + value.substr(0, 80) + "': " + errstr;
    }
    return false;
  };
  bool ok = set("bootstrap.servers", std::string(brokers), false);
  for (const auto& [k, v] : defaults) ok = ok && set(k, v, false);
  for (const auto& [k, v] : user) ok = ok && set(k, v, true);
  for (const auto& [k, v] : forced) ok = ok && set(k, v, false);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  return conf;
}

bool CheckProperties(std::string_view brokers, const Properties& user, std::string* error) {
  rd_kafka_conf_t* conf = NewConf(brokers, {}, user, {}, error);
  if (conf == nullptr) return false;
  rd_kafka_conf_destroy(conf);
  return true;
}

bool IsPermanent(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
      return true;
    default:
      return false;
  }
}

namespace {

void LogLine(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  const char* name = rk != nullptr ? rd_kafka_name(rk) : "kafka";
  // syslog levels: 0-3 errors, 4 warning, 5-6 notice/info, 7 debug.
  if (level <= 3) {
    spdlog::error("{}: {}: {}", name, fac, buf);
  } else if (level == 4) {
    spdlog::warn("{}: {}: {}", name, fac, buf);
  } else if (level <= 6) {
    spdlog::info("{}: {}: {}", name, fac, buf);
  } else {
    spdlog::debug("{}: {}: {}", name, fac, buf);
  }
}

}  // namespace

void RouteLogs(rd_kafka_conf_t* conf) { rd_kafka_conf_set_log_cb(conf, &LogLine); }

}  // namespace forkd::kafka
