// timestamp: stamps the record with the time forkd received it, or with a
// time copied (and normalized) from one of its fields.
#include "transforms/steps.h"

namespace forkd::transforms {
namespace {

class TimestampStep final : public Step {
 public:
  TimestampStep(Path field, bool epoch_ms, bool has_from, Path from)
      : field_(std::move(field)), epoch_ms_(epoch_ms), has_from_(has_from), from_(std::move(from)) {}

  std::string_view kind() const override { return "timestamp"; }

  Outcome Apply(StepContext* ctx) const override {
    int64_t ms = ctx->recv_us / 1000;
    if (has_from_) {
      const RawValue v = ctx->doc->Lookup(from_);
      if (v.found()) {
        wire::Reader rd(v.data, v.size);
        if (!ReadTime(rd.Next(), &ms)) {
          ctx->reason = "timestamp: " + from_.text +
                        " is not a time (expected epoch milliseconds or ISO-8601 text)";
          return Outcome::kDeadLetter;
        }
      }
    }
    RawValue out;
    if (epoch_ms_) {
      out = EncodeInt(ms, &ctx->doc->arena());
    } else {
      std::string& s = text_;
      s.clear();
      FormatIsoMillis(ms, &s);
      out = EncodeString(s, &ctx->doc->arena());
    }
    ctx->doc->Replace(field_, out, /*create=*/true);
    return Outcome::kKeep;
  }

 private:
  Path field_;
  bool epoch_ms_;
  bool has_from_;
  Path from_;
  static thread_local std::string text_;
};

thread_local std::string TimestampStep::text_;

}  // namespace

const std::vector<OptionSpec>& TimestampOptions() {
  static const std::vector<OptionSpec> specs = {
      {"field", OptType::kString, "timestamp", "Field to write the time to"},
      {"format", OptType::kEnum, "iso8601", "ISO-8601 UTC text, or epoch milliseconds", false,
       {"iso8601", "iso", "epoch_ms"}},
      {"from", OptType::kString, "", "Field to copy the time from; the receipt time when unset"},
  };
  return specs;
}

std::shared_ptr<const Step> MakeTimestampStep(std::string field, bool epoch_ms) {
  Path p;
  std::string error;
  if (!ParsePath(field, &p, &error)) {
    p.segs = {PathSeg{field}};
    p.text = field;
  }
  return std::make_shared<TimestampStep>(std::move(p), epoch_ms, false, Path{});
}

std::shared_ptr<const Step> ParseTimestamp(const YAML::Node& args, const std::string& path,
                                           const ParseContext& pc) {
  if (args.IsNull() || (args.IsScalar() && args.Scalar() == "true")) {
    return MakeTimestampStep("timestamp", false);
  }
  Options o;
  if (!ParseOptions(args, TimestampOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  Path field, from;
  // An option left out has a null node (which is "defined"): use the default's text.
  if (!ParseFieldPath(o.Has("field") ? o.Node("field") : YAML::Node(o.Str("field")),
                      path + ".field", pc, &field)) {
    return nullptr;
  }
  const bool has_from = o.Has("from");
  if (has_from && !ParseFieldPath(o.Node("from"), path + ".from", pc, &from)) return nullptr;
  return std::make_shared<TimestampStep>(std::move(field), o.Str("format") == "epoch_ms", has_from,
                                         std::move(from));
}

}  // namespace forkd::transforms
