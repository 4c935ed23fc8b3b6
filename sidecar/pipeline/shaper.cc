#include "pipeline/shaper.h"

namespace forkd::pipeline {

Shaper::Shaper(const transforms::Chain& chain,
               const std::map<std::string, transforms::Chain, std::less<>>& templates)
    : chain_(chain), templates_(templates) {
  if (chain_.aggregate) aggregator_ = std::make_unique<transforms::Aggregator>(chain_.aggregate);
  timestamp_step_ = transforms::MakeTimestampStep("timestamp", false);
}

Shaper::Result Shaper::Shape(const EventParts& e, std::string* reason, const uint8_t** out,
                             size_t* out_size) {
  // Per-call options: {timestamp, aggregate, transform, key}.
  bool stamp = false;
  std::shared_ptr<const transforms::Step> custom_stamp;
  int64_t window_ms = 0;
  const uint8_t* call_t = nullptr;  // str or array of str
  if (e.options && *e.options != 0xc0) {
    wire::Reader rd(e.options, e.bound);
    const wire::Value m = rd.Next();
    for (uint32_t i = 0; m.kind == wire::Kind::kMap && i < m.len; ++i) {
      const wire::Value k = rd.Next();
      const uint8_t* v = rd.pos();
      const wire::Value val = rd.Peek();
      const std::string_view key = k.kind == wire::Kind::kStr ? k.str() : std::string_view();
      if (key == "timestamp") {
        if (val.kind == wire::Kind::kBool) {
          stamp = val.b;
        } else if (val.kind == wire::Kind::kMap) {
          // {field, format}
          wire::Reader t(v, e.bound);
          const wire::Value tm = t.Next();
          std::string field = "timestamp";
          bool epoch = false;
          for (uint32_t j = 0; j < tm.len; ++j) {
            const wire::Value tk = t.Next();
            const wire::Value tv = t.Next();
            if (tv.kind == wire::Kind::kStr && tk.str() == "field") field.assign(tv.str());
            if (tv.kind == wire::Kind::kStr && tk.str() == "format") epoch = tv.str() == "epoch_ms";
            if (tv.kind == wire::Kind::kArray || tv.kind == wire::Kind::kMap) {
              for (uint32_t x = 0; x < (tv.kind == wire::Kind::kMap ? tv.len * 2 : tv.len); ++x) t.Skip();
            }
          }
          custom_stamp = transforms::MakeTimestampStep(field, epoch);
          stamp = true;
        }
      } else if (key == "aggregate") {
        std::string_view w;
        if (val.kind == wire::Kind::kStr) {
          w = val.str();
        } else if (val.kind == wire::Kind::kMap) {
          wire::Reader t(v, e.bound);
          const wire::Value tm = t.Next();
          for (uint32_t j = 0; j < tm.len; ++j) {
            const wire::Value tk = t.Next();
            const wire::Value tv = t.Peek();
            if (tk.kind == wire::Kind::kStr && tk.str() == "window" && tv.kind == wire::Kind::kStr) {
              w = tv.str();
            }
            t.Skip();
          }
        }
        if (!w.empty()) (void)transforms::ParseWindow(w, &window_ms);
      } else if (key == "transform") {
        call_t = v;
      }
      rd.Skip();
    }
  }
  const bool extra = stamp || call_t != nullptr || e.route_t != nullptr;
  *out = e.payload;
  *out_size = e.payload_size;
  if (!extra && chain_.empty()) return Result::kWrite;  // as it came: no copy

  doc_.Load(e.payload, e.payload_size);
  scratch_.Reset();
  transforms::StepContext ctx;
  ctx.doc = &doc_;
  ctx.scratch = &scratch_;
  ctx.recv_us = e.recv_us;
  ctx.event_id = e.event_id;
  transforms::Outcome o = transforms::Outcome::kKeep;
  if (stamp) o = (custom_stamp ? custom_stamp : timestamp_step_)->Apply(&ctx);
  // Route templates, then the call's, then the destination's own chain.
  auto run_named = [&](std::string_view name) {
    if (o != transforms::Outcome::kKeep) return;
    auto it = templates_.find(name);
    if (it == templates_.end()) {
      ctx.reason = "transform template '" + std::string(name) + "' is not configured";
      o = transforms::Outcome::kDeadLetter;
      return;
    }
    o = transforms::RunSteps(it->second.pre, &ctx);
  };
  if (e.route_t) {
    wire::Reader t(e.route_t, e.bound);
    t.Next();
    t.Next();  // the destination's name
    for (uint32_t i = 0; i < e.route_t_count; ++i) run_named(t.Next().str());
  }
  if (call_t) {
    wire::Reader t(call_t, e.bound);
    const wire::Value v = t.Next();
    if (v.kind == wire::Kind::kStr) {
      run_named(v.str());
    } else if (v.kind == wire::Kind::kArray) {
      for (uint32_t i = 0; i < v.len; ++i) {
        const wire::Value n = t.Next();
        if (n.kind == wire::Kind::kStr) run_named(n.str());
      }
    }
  }
  if (o == transforms::Outcome::kKeep) o = transforms::RunSteps(chain_.pre, &ctx);
  if (o == transforms::Outcome::kKeep && aggregator_) {
    o = aggregator_->Add(doc_, e.recv_us, window_ms, &ctx.reason);
    if (o == transforms::Outcome::kKeep) return Result::kAbsorbed;
  }
  return Finish(o, &ctx, reason, out, out_size);
}

Shaper::Result Shaper::Finish(transforms::Outcome o, transforms::StepContext* ctx,
                              std::string* reason, const uint8_t** out, size_t* out_size) {
  switch (o) {
    case transforms::Outcome::kKeep:
      out_.clear();
      doc_.Serialize(&out_);
      *out = out_.data();
      *out_size = out_.size();
      return Result::kWrite;
    case transforms::Outcome::kDrop: return Result::kDropped;
    case transforms::Outcome::kDeadLetter: *reason = std::move(ctx->reason); return Result::kDeadLetter;
  }
  return Result::kDropped;
}

Shaper::Result Shaper::ShapeRow(std::string_view id, const wire::Buffer& row, int64_t now_us,
                                std::string* reason, const uint8_t** out, size_t* out_size) {
  *out = row.data();
  *out_size = row.size();
  if (chain_.post.empty()) return Result::kWrite;
  doc_.Load(row.data(), row.size());
  scratch_.Reset();
  transforms::StepContext ctx;
  ctx.doc = &doc_;
  ctx.scratch = &scratch_;
  ctx.recv_us = now_us;
  ctx.event_id = id;
  return Finish(transforms::RunSteps(chain_.post, &ctx), &ctx, reason, out, out_size);
}


}  // namespace forkd::pipeline
