#include "sinks/registry.h"

#include "sinks/clickhouse/clickhouse_sink.h"
#include "sinks/file/file_sink.h"
#include "sinks/http/http_sink.h"
#include "sinks/kafka/kafka_sink.h"
#include "sinks/postgres/postgres_sink.h"
#include "sinks/redis/redis_sink.h"
#include "sinks/sqlite/sqlite_sink.h"
#include "sinks/stdout/stdout_sink.h"
#include "sinks/stream/stream_sink.h"

namespace forkd::sinks {

const std::vector<SinkType>& SinkTypes() {
  static const std::vector<SinkType> types = {
      {"clickhouse", &ClickHouseSinkOptions, &CreateClickHouseSink, &CheckClickHouseOptions},
      {"file", &FileSinkOptions, &CreateFileSink, &CheckFileOptions},
      {"http", &HttpSinkOptions, &CreateHttpSink},
      {"kafka", &KafkaSinkOptions, &CreateKafkaSink, &CheckKafkaOptions},
      {"postgres", &PostgresSinkOptions, &CreatePostgresSink, &CheckPostgresOptions},
      {"redis", &RedisSinkOptions, &CreateRedisSink, &CheckRedisOptions},
      {"sqlite", &SqliteSinkOptions, &CreateSqliteSink, &CheckTableOptions, &InspectSqlite},
      {"stdout", &StdoutSinkOptions, &CreateStdoutSink},
      {"stream", &StreamSinkOptions, &CreateStreamSink, &CheckStreamOptions},
  };
  return types;
}

const SinkType* FindSinkType(std::string_view name) {
  for (const auto& t : SinkTypes()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool CheckSinkOptions(std::string_view type, const Options& options, std::string* error) {
  const SinkType* t = FindSinkType(type);
  return t == nullptr || t->check == nullptr || t->check(options, error);
}

std::vector<std::string_view> SinkTypeNames() {
  std::vector<std::string_view> names;
  for (const auto& t : SinkTypes()) names.push_back(t.name);
  return names;
}

}  // namespace forkd::sinks
