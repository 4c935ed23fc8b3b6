#include "transforms/transform.h"

#include <algorithm>

#include "transforms/aggregate.h"
#include "transforms/steps.h"

namespace forkd::transforms {

void Chain::Append(const Chain& other) {
  StepList& tail = aggregate ? post : pre;
  if (other.aggregate) {
    tail.insert(tail.end(), other.pre.begin(), other.pre.end());
    aggregate = other.aggregate;
    post = other.post;
    return;
  }
  tail.insert(tail.end(), other.pre.begin(), other.pre.end());
}

Outcome RunSteps(const StepList& steps, StepContext* ctx) {
  for (const auto& s : steps) {
    const Outcome o = s->Apply(ctx);
    if (o != Outcome::kKeep) return o;
  }
  return Outcome::kKeep;
}

void ParseContext::Error(const YAML::Node& at, const std::string& path,
                         const std::string& message) const {
  errors->push_back({file, MarkOf(at), path + ": " + message});
}

void ParseContext::ErrorAt(Mark mark, const std::string& path, const std::string& message) const {
  errors->push_back({file, mark, path + ": " + message});
}

Mark MarkInScalar(const YAML::Node& scalar, size_t column) {
  Mark m = MarkOf(scalar);
  if (m.line == 0) return m;
  // A quoted scalar's mark is at its opening quote.
  const size_t quote = scalar.Tag() == "!" ? 1 : 0;
  m.column += static_cast<int>(quote + column);
  return m;
}

bool ScalarText(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                std::string* out) {
  if (!node.IsScalar()) {
    pc.Error(node, path, std::string("expected a string, got a ") +
                             (node.IsMap() ? "map" : node.IsSequence() ? "list" : "null"));
    return false;
  }
  std::string missing;
  if (!Interpolate(node.Scalar(), out, &missing)) {
    pc.Error(node, path, "environment variable ${" + missing + "} is not set");
    return false;
  }
  return true;
}

bool ParseFieldPath(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                    Path* out) {
  std::string text;
  if (!ScalarText(node, path, pc, &text)) return false;
  std::string error;
  size_t col = 0;
  if (!ParsePath(text, out, &error, &col)) {
    pc.ErrorAt(MarkInScalar(node, col), path,
               "bad field path '" + text + "': " + error + " at column " + std::to_string(col + 1));
    return false;
  }
  return true;
}

bool ParsePathList(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                   std::vector<Path>* out) {
  if (node.IsScalar()) {
    Path p;
    if (!ParseFieldPath(node, path, pc, &p)) return false;
    out->push_back(std::move(p));
    return true;
  }
  if (!node.IsSequence() || node.size() == 0) {
    pc.Error(node, path, "expected a field path or a non-empty list of field paths");
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    Path p;
    if (ParseFieldPath(node[i], path + "[" + std::to_string(i) + "]", pc, &p)) {
      out->push_back(std::move(p));
    } else {
      ok = false;
    }
  }
  return ok;
}

namespace {

struct Kind {
  std::string_view name;
  StepParser parse;  // nullptr: aggregate, handled apart
};

const std::vector<Kind>& Kinds() {
  static const std::vector<Kind> kinds = {
      {"timestamp", ParseTimestamp}, {"select", ParseSelect},     {"drop", ParseDrop},
      {"rename", ParseRename},       {"set", ParseSet},           {"cast", ParseCast},
      {"redact", ParseRedact},       {"hash", ParseHash},         {"filter", ParseFilter},
      {"validate", ParseValidate},   {"template", ParseTemplate}, {"aggregate", nullptr},
  };
  return kinds;
}

}  // namespace

bool ParseChain(const YAML::Node& list, const std::string& path, const ParseContext& pc,
                Chain* out) {
  if (!list.IsSequence()) {
    pc.Error(list, path, "expected a list of steps (each a one-key map like {rename: {a: b}}) "
                         "or template names");
    return false;
  }
  const size_t before = pc.errors->size();
  std::vector<std::string_view> kind_names;
  for (const Kind& k : Kinds()) kind_names.push_back(k.name);
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string at = path + "[" + std::to_string(i) + "]";
    if (item.IsScalar()) {
      // A template name.
      const std::string name = item.Scalar();
      auto it = pc.templates ? pc.templates->find(name) : decltype(pc.templates->end()){};
      if (!pc.templates || it == pc.templates->end()) {
        std::vector<std::string_view> names;
        if (pc.templates) {
          for (const auto& [n, c] : *pc.templates) names.push_back(n);
        }
        std::string m = "unknown transform template '" + name + "'";
        const std::string dym = DidYouMean(name, names);
        if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
        if (std::find(kind_names.begin(), kind_names.end(), name) != kind_names.end()) {
          m += "; to use the step '" + name + "' write it as a map: {" + name + ": ...}";
        }
        pc.Error(item, at, m);
        continue;
      }
      if (it->second.aggregate && out->aggregate) {
        pc.Error(item, at, "template '" + name + "' aggregates, and this chain already has an "
                           "aggregate step; a chain has at most one");
        continue;
      }
      out->Append(it->second);
      continue;
    }
    if (!item.IsMap() || item.size() != 1) {
      pc.Error(item, at, "a step is a map with exactly one key, the step's name (one of " +
                             [&] {
                               std::string s;
                               for (auto n : kind_names) s += (s.empty() ? "" : ", ") + std::string(n);
                               return s;
                             }() +
                             ")");
      continue;
    }
    const auto entry = item.begin();
    const std::string kind = entry->first.Scalar();
    const std::string step_path = at + "." + kind;
    const Kind* k = nullptr;
    for (const Kind& c : Kinds()) {
      if (c.name == kind) k = &c;
    }
    if (!k) {
      std::string m = "unknown step '" + kind + "'";
      const std::string dym = DidYouMean(kind, kind_names);
      if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
      pc.Error(entry->first, at, m);
      continue;
    }
    if (!k->parse) {
      auto spec = ParseAggregate(entry->second, step_path, pc);
      if (!spec) continue;
      if (out->aggregate) {
        pc.Error(entry->first, at, "a chain has at most one aggregate step");
        continue;
      }
      out->aggregate = std::move(spec);
      continue;
    }
    auto step = k->parse(entry->second, step_path, pc);
    if (!step) continue;
    (out->aggregate ? out->post : out->pre).push_back(std::move(step));
  }
  return pc.errors->size() == before;
}

const std::vector<StepDoc>& StepDocs() {
  static const std::vector<StepDoc> docs = {
      {"timestamp", "`timestamp: {field, format, from}` or `timestamp: true`",
       "Adds a timestamp: the time forkd received the event, or one copied from a field "
       "(epoch milliseconds, ISO-8601 text or a msgpack timestamp). A missing `from` field "
       "falls back to the receipt time; one that is not a time dead-letters the record.",
       &TimestampOptions()},
      {"select", "`select: [path, ...]`", "Keeps only these fields, in this order.", nullptr},
      {"drop", "`drop: [path, ...]`", "Removes these fields.", nullptr},
      {"rename", "`rename: {from: to, ...}`",
       "Renames fields. `to` is a path from the root: a plain name in the same map renames in "
       "place, anything else moves the value.",
       nullptr},
      {"set", "`set: {path: value, ...}`",
       "Sets fields to constants, or to computed values with `{expr: \"amount * 100\"}`. "
       "Missing maps on the way are created.",
       nullptr},
      {"cast", "`cast: {path: int|float|string|bool, ...}`",
       "Converts values. A value that cannot be converted dead-letters the record with the "
       "reason; a missing field is left alone.",
       nullptr},
      {"redact", "`redact: [path, ...]` or `redact: {fields, mask}`",
       "Removes sensitive fields, or replaces them with `mask`.", &RedactOptions()},
      {"hash", "`hash: {fields, salt}` or `hash: [path, ...]`",
       "Replaces values with the hex SHA-256 of salt + the value's text.", &HashOptions()},
      {"filter", "`filter: 'expression'`",
       "Keeps the records for which the expression is true; drops the rest (counted as "
       "filtered).",
       nullptr},
      {"validate", "`validate: {required, types, ranges, enums, patterns, on_fail}`",
       "Data-quality checks. A failing record is dropped, dead-lettered with the reason, or "
       "passed with the reason in `flag_field`.",
       &ValidateOptions()},
      {"template", "`template: {field, value}`",
       "Sets `field` to a text with `{path}` placeholders: \"{user.name} updated her page's "
       "story\". `{{` and `}}` are literal braces; a missing field reads as empty.",
       &TemplateOptions()},
      {"aggregate", "`aggregate: {window, time_field, group_by, measures, lateness, emit_every}`",
       "Tumbling-window aggregation. Emits one row per (window, group) as an upsert keyed by "
       "both, re-emitted as it changes at most every `emit_every`. Steps after it shape the rows.",
       &AggregateOptions()},
  };
  return docs;
}

}  // namespace forkd::transforms
