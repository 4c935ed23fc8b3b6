// Option tables: each component (a sink, the wal, a destination's batching)
// declares its options once — name, type, default, description — and that
// table drives parsing, the messages of `forkd check`, and the docs.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace forkd {

enum class OptType {
  kString,    // any scalar, with ${ENV} interpolation
  kInt,       // integer
  kBool,      // true/false
  kDuration,  // "250ms", "2s", "5m", "1h", "1d", or an integer of milliseconds
  kSize,      // "512", "64KiB", "64MiB", "1GiB" (also KB/MB/GB as powers of 1000)
  kEnum,      // one of `choices`
  kNode,      // any YAML, validated by its owner
};

struct OptionSpec {
  std::string_view name;
  OptType type;
  std::string_view default_value;  // empty: no default
  std::string_view description;
  bool required = false;
  std::vector<std::string_view> choices = {};
  int64_t min = INT64_MIN;  // for kInt, kDuration (ms) and kSize (bytes)
  int64_t max = INT64_MAX;
};

// Where a value came from, for messages.
struct Mark {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

struct ConfigError {
  std::string file;
  Mark mark;
  std::string message;
  // "fork.yaml:12:5: destinations.logs.format: expected one of jsonl, csv"
  std::string ToString() const;
};

// Parsed, validated values of one option table.
class Options {
 public:
  struct Value {
    std::string str;  // the (interpolated) scalar text
    int64_t num = 0;  // kInt, kDuration (milliseconds), kSize (bytes)
    bool flag = false;
    YAML::Node node;
    Mark mark;
    bool present = false;  // set in the file, not defaulted
  };

  const std::string& Str(std::string_view name) const { return Get(name).str; }
  int64_t Int(std::string_view name) const { return Get(name).num; }
  int64_t Millis(std::string_view name) const { return Get(name).num; }
  int64_t Bytes(std::string_view name) const { return Get(name).num; }
  bool Bool(std::string_view name) const { return Get(name).flag; }
  const YAML::Node& Node(std::string_view name) const { return Get(name).node; }
  bool Has(std::string_view name) const;
  const Value& Get(std::string_view name) const;

  std::map<std::string, Value, std::less<>> values;
};

// Reads `node` (a map) against `specs`. Keys not in `specs` or `also_allowed`
// are errors with a "did you mean" suggestion; `path` prefixes messages
// ("destinations.logs"). Returns false if any error was added. `marks_from`
// is the original map when `node` is a copy (copies lose their positions).
bool ParseOptions(const YAML::Node& node, const std::vector<OptionSpec>& specs,
                  const std::vector<std::string_view>& also_allowed, const std::string& path,
                  const std::string& file, Options* out, std::vector<ConfigError>* errors,
                  const YAML::Node* marks_from = nullptr);

// Helpers shared with the config loader.
Mark MarkOf(const YAML::Node& n);
// Where a component's check error ("option: ...", "option.key: ...") is:
// at `key` inside the option's map when it has that key (a librdkafka
// property under `options`, a column under `columns`), else at the option,
// else `fallback`.
Mark MarkOfCheckError(const Options& o, const std::string& error, Mark fallback);
// Replaces ${NAME} and ${NAME:-default} with environment values. False (and
// *missing set) when a variable without default is unset.
bool Interpolate(const std::string& in, std::string* out, std::string* missing);
bool ParseDurationMs(const std::string& s, int64_t* ms);
bool ParseSize(const std::string& s, int64_t* bytes);
// The closest of `candidates` to `word`, or empty if none is close.
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);
// A component's name (a destination, a source, a template): 1-64 letters,
// digits, _ or -.
bool ValidName(std::string_view name);
// One Markdown table row per option, for docs/configuration.md.
std::string OptionsMarkdown(const std::vector<OptionSpec>& specs);

}  // namespace forkd
