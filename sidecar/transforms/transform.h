// Transforms: the steps a destination's pipeline applies to each record
// before its sink sees it. Steps are compiled from the config once; a step
// is immutable afterwards and may be shared by several pipelines, so all the
// state of one record lives in the StepContext.
//
// A chain is a list of steps with at most one `aggregate`: the steps before
// it shape each event, the aggregate folds events into rows keyed by (window,
// group), and the steps after it shape those rows.
//
// Threads: Apply is called on a pipeline's thread (or the CLI's); a Step is
// safe to share between threads.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "transforms/record.h"

namespace forkd::transforms {

enum class Outcome : uint8_t {
  kKeep,        // pass the record on
  kDrop,        // filtered out: not delivered, not an error
  kDeadLetter,  // cannot be delivered: to dead letters with ctx->reason
};

struct StepContext {
  Doc* doc = nullptr;
  Arena* scratch = nullptr;   // strings made while evaluating expressions
  int64_t recv_us = 0;        // when forkd received the event
  std::string_view event_id;
  std::string reason;         // why, with kDeadLetter
};

class Step {
 public:
  virtual ~Step() = default;
  virtual Outcome Apply(StepContext* ctx) const = 0;
  // The step's name in the config ("rename"), for messages and metrics.
  virtual std::string_view kind() const = 0;
};

using StepList = std::vector<std::shared_ptr<const Step>>;

struct AggregateSpec;  // transforms/aggregate.h

struct Chain {
  StepList pre;                                  // every step when there is no aggregate
  std::shared_ptr<const AggregateSpec> aggregate;
  StepList post;                                 // applied to the aggregate's rows
  bool empty() const { return pre.empty() && !aggregate && post.empty(); }
  // Appends `other` (which must not aggregate if this chain does).
  void Append(const Chain& other);
};

// Runs `steps` in order until one does not keep the record.
Outcome RunSteps(const StepList& steps, StepContext* ctx);

// Where a step is parsed, for messages.
struct ParseContext {
  std::string file;
  std::vector<ConfigError>* errors = nullptr;
  // Named templates defined so far (a list may name one instead of a step).
  const std::map<std::string, Chain, std::less<>>* templates = nullptr;

  // Adds an error at `at`: "<path>: <message>".
  void Error(const YAML::Node& at, const std::string& path, const std::string& message) const;
  // The same at an explicit position (a column inside a scalar).
  void ErrorAt(Mark mark, const std::string& path, const std::string& message) const;
};

// Parses a list of steps (`[{rename: {...}}, {filter: '...'}, template_name]`)
// at `path` ("transforms.clean_purchase"). Returns false after adding errors.
bool ParseChain(const YAML::Node& list, const std::string& path, const ParseContext& pc,
                Chain* out);

// The step that per-call `timestamp: true` (or {field, format}) adds.
std::shared_ptr<const Step> MakeTimestampStep(std::string field, bool epoch_ms);

// For docs/configuration.md: each step kind, its form and its options.
struct StepDoc {
  std::string_view name;
  std::string_view form;     // how it is written
  std::string_view summary;
  const std::vector<OptionSpec>* options;  // nullptr when not a map of options
};
const std::vector<StepDoc>& StepDocs();

// Compiles a field path from the config, reporting errors at `node`.
bool ParseFieldPath(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                    Path* out);

// Where inside a scalar a column of its text falls (for expression errors).
Mark MarkInScalar(const YAML::Node& scalar, size_t column);

}  // namespace forkd::transforms
