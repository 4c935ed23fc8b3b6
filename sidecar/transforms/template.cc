// template: semantic events, "{user.name} updated her page's story".
#include "transforms/steps.h"

namespace forkd::transforms {
namespace {

class TemplateStep final : public Step {
 public:
  struct Part {
    std::string text;  // literal, when !is_path
    Path path;
    bool is_path = false;
  };
  TemplateStep(Path field, std::vector<Part> parts) : field_(std::move(field)), parts_(std::move(parts)) {}
  std::string_view kind() const override { return "template"; }
  Outcome Apply(StepContext* ctx) const override {
    static thread_local std::string out;
    out.clear();
    Doc& d = *ctx->doc;
    for (const Part& p : parts_) {
      if (!p.is_path) {
        out.append(p.text);
        continue;
      }
      const RawValue v = d.Lookup(p.path);
      if (v.found()) AppendText(v.data, &out);
    }
    d.Replace(field_, EncodeString(out, &d.arena()), /*create=*/true);
    return Outcome::kKeep;
  }

 private:
  Path field_;
  std::vector<Part> parts_;
};

}  // namespace

const std::vector<OptionSpec>& TemplateOptions() {
  static const std::vector<OptionSpec> specs = {
      {"field", OptType::kString, "", "Field to write the text to", true},
      {"value", OptType::kString, "", "The text, with {path} placeholders", true},
  };
  return specs;
}

std::shared_ptr<const Step> ParseTemplate(const YAML::Node& args, const std::string& path,
                                          const ParseContext& pc) {
  Options o;
  if (!ParseOptions(args, TemplateOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  Path field;
  if (!ParseFieldPath(o.Node("field"), path + ".field", pc, &field)) return nullptr;
  const std::string& v = o.Str("value");
  const YAML::Node vnode = o.Node("value");
  std::vector<TemplateStep::Part> parts;
  TemplateStep::Part lit;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '{' && i + 1 < v.size() && v[i + 1] == '{') {
      lit.text.push_back('{');
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < v.size() && v[i + 1] == '}') {
      lit.text.push_back('}');
      ++i;
      continue;
    }
    if (c == '}') {
      pc.ErrorAt(MarkInScalar(vnode, i), path + ".value",
                 "unmatched '}' at column " + std::to_string(i + 1) + " (write }} for a brace)");
      return nullptr;
    }
    if (c != '{') {
      lit.text.push_back(c);
      continue;
    }
    const size_t close = v.find('}', i);
    if (close == std::string::npos) {
      pc.ErrorAt(MarkInScalar(vnode, i), path + ".value",
                 "unclosed '{' at column " + std::to_string(i + 1) + " (write {{ for a brace)");
      return nullptr;
    }
    if (!lit.text.empty()) parts.push_back(std::move(lit));
    lit = TemplateStep::Part{};
    TemplateStep::Part p;
    p.is_path = true;
    std::string error;
    size_t col = 0;
    std::string inner = v.substr(i + 1, close - i - 1);
    while (!inner.empty() && inner.front() == ' ') {
      inner.erase(0, 1);
      ++col;
    }
    while (!inner.empty() && inner.back() == ' ') inner.pop_back();
    size_t at = 0;
    if (!ParsePath(inner, &p.path, &error, &at)) {
      pc.ErrorAt(MarkInScalar(vnode, i + 1 + col + at), path + ".value",
                 "bad placeholder {" + inner + "}: " + error);
      return nullptr;
    }
    parts.push_back(std::move(p));
    i = close;
  }
  if (!lit.text.empty()) parts.push_back(std::move(lit));
  return std::make_shared<TemplateStep>(std::move(field), std::move(parts));
}

}  // namespace forkd::transforms
