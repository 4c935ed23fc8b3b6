#include "sources/registry.h"

#include "sources/kafka/kafka_source.h"
#include "sources/kafka/kafka_source_options.h"

namespace forkd::sources {

const std::vector<SourceType>& SourceTypes() {
  static const std::vector<SourceType> types = {
      {"kafka", &KafkaSourceOptions, &CheckKafkaSourceOptions, &CreateKafkaSource},
  };
  return types;
}

const SourceType* FindSourceType(std::string_view name) {
  for (const auto& t : SourceTypes()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::string_view> SourceTypeNames() {
  std::vector<std::string_view> names;
  for (const auto& t : SourceTypes()) names.push_back(t.name);
  return names;
}

const std::vector<OptionSpec>* SourceOptionsOf(std::string_view type) {
  const SourceType* t = FindSourceType(type);
  return t == nullptr ? nullptr : &t->options();
}

bool CheckSourceOptions(std::string_view type, const Options& options, std::string* error) {
  const SourceType* t = FindSourceType(type);
  return t == nullptr || t->check == nullptr || t->check(options, error);
}

}  // namespace forkd::sources
