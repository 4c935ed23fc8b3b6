#include "transforms/record.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>

#include "sinks/common/json.h"

namespace forkd::transforms {

// ---- Arena ----

uint8_t* Arena::Alloc(size_t n) {
  if (n == 0) n = 1;
  if (blocks_.empty() || used_ + n > cap_) {
    const size_t size = n > kBlock ? n : kBlock;
    if (n > kBlock && !blocks_.empty()) {
      // A large value gets a block of its own, slotted in before the current
      // one so the current block's free space is not wasted.
      auto big = std::make_unique<uint8_t[]>(size);
      last_ = big.get();
      blocks_.insert(blocks_.end() - 1, std::move(big));
      return last_;
    }
    blocks_.push_back(std::make_unique<uint8_t[]>(size));
    used_ = 0;
    cap_ = size;
  }
  last_ = blocks_.back().get() + used_;
  used_ += n;
  return last_;
}

const uint8_t* Arena::CopyTo(const uint8_t* p, size_t n) {
  if (n) std::memcpy(last_, p, n);
  return last_;
}

std::string_view Arena::Copy(std::string_view s) {
  uint8_t* p = Alloc(s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return {reinterpret_cast<const char*>(p), s.size()};
}

void Arena::Reset() {
  used_ = 0;
  last_ = nullptr;
  if (blocks_.size() == 1 && cap_ == kBlock) return;
  if (!blocks_.empty() && cap_ == kBlock) {
    // Large values had blocks of their own: free them, keep the standard one.
    auto keep = std::move(blocks_.back());
    blocks_.clear();
    blocks_.push_back(std::move(keep));
    return;
  }
  blocks_.clear();
  cap_ = 0;
}

// ---- Path ----

namespace {

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c == '@';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '-'; }

}  // namespace

bool ParsePath(std::string_view text, Path* out, std::string* error, size_t* column) {
  out->segs.clear();
  out->text.assign(text);
  size_t i = 0;
  auto fail = [&](size_t at, const std::string& why) {
    if (column) *column = at;
    *error = why;
    return false;
  };
  if (text.empty()) return fail(0, "empty field path");
  bool expect_name = true;  // at the start or after '.'
  while (i < text.size()) {
    const char c = text[i];
    if (c == '[') {
      if (expect_name && !out->segs.empty()) return fail(i, "expected a name after '.'");
      size_t j = i + 1;
      PathSeg seg;
      if (j < text.size() && (text[j] == '"' || text[j] == '\'')) {
        const char q = text[j];
        size_t k = j + 1;
        while (k < text.size() && text[k] != q) {
          if (text[k] == '\\' && k + 1 < text.size()) ++k;
          seg.key.push_back(text[k]);
          ++k;
        }
        if (k >= text.size()) return fail(j, "unterminated quoted key");
        j = k + 1;
      } else {
        int64_t v = 0;
        const size_t digits_at = j;
        while (j < text.size() && text[j] >= '0' && text[j] <= '9') {
          if (v > (INT64_MAX - 9) / 10) return fail(digits_at, "array index too large");
          v = v * 10 + (text[j] - '0');
          ++j;
        }
        if (j == digits_at) return fail(digits_at, "expected an array index or a quoted key");
        if (out->segs.empty()) return fail(i, "a path starts with a field name, not an index");
        seg.index = v;
      }
      if (j >= text.size() || text[j] != ']') return fail(j, "expected ']'");
      out->segs.push_back(std::move(seg));
      i = j + 1;
      expect_name = false;
      continue;
    }
    if (c == '.') {
      if (expect_name) return fail(i, "expected a name before '.'");
      expect_name = true;
      ++i;
      continue;
    }
    if (!expect_name) return fail(i, std::string("unexpected '") + c + "' in field path");
    if (!IsIdentStart(c) && !(c >= '0' && c <= '9')) {
      return fail(i, std::string("unexpected '") + c + "' in field path");
    }
    size_t j = i;
    while (j < text.size() && IsIdentChar(text[j])) ++j;
    PathSeg seg;
    seg.key.assign(text.substr(i, j - i));
    out->segs.push_back(std::move(seg));
    i = j;
    expect_name = false;
  }
  if (expect_name) return fail(text.size(), "field path ends with '.'");
  return true;
}

// ---- Doc ----

void Doc::Load(const uint8_t* map, size_t size) {
  fields_.clear();
  arena_.Reset();
  wire::Reader rd(map, size);
  const wire::Value m = rd.Peek();
  if (m.kind != wire::Kind::kMap) {
    fields_.push_back(Field{"value", RawValue{map, static_cast<uint32_t>(size)}});
    return;
  }
  rd.Next();
  for (uint32_t i = 0; i < m.len; ++i) {
    const wire::Value k = rd.Next();
    std::string_view key;
    if (k.kind == wire::Kind::kStr) {
      key = k.str();
    } else {
      // Non-string keys are rare; keep their text form.
      if (k.kind == wire::Kind::kArray || k.kind == wire::Kind::kMap) {
        // Skip the container key's contents, already partly consumed.
        for (uint32_t j = 0; j < (k.kind == wire::Kind::kMap ? k.len * 2 : k.len); ++j) rd.Skip();
      }
      std::string text;
      if (k.kind == wire::Kind::kInt) text = std::to_string(k.i);
      else if (k.kind == wire::Kind::kUint) text = std::to_string(k.u);
      else text = "?";
      key = arena_.Copy(text);
    }
    const uint8_t* v = rd.pos();
    rd.Skip();
    // Duplicate keys are kept as they are (Find sees the last one): checking
    // for them here would make a hostile map of many keys quadratic.
    fields_.push_back(Field{key, RawValue{v, static_cast<uint32_t>(rd.pos() - v)}});
  }
}

const Field* Doc::Find(std::string_view key) const {
  for (size_t i = fields_.size(); i-- > 0;) {
    if (fields_[i].key == key) return &fields_[i];
  }
  return nullptr;
}

Field* Doc::Find(std::string_view key) {
  for (size_t i = fields_.size(); i-- > 0;) {
    if (fields_[i].key == key) return &fields_[i];
  }
  return nullptr;
}

void Doc::Set(std::string_view key, RawValue v) {
  if (Field* f = Find(key)) {
    f->value = v;
  } else {
    fields_.push_back(Field{key, v});
  }
}

bool Doc::Erase(std::string_view key) {
  const size_t before = fields_.size();
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(),
                               [&](const Field& f) { return f.key == key; }),
                fields_.end());
  return fields_.size() != before;
}

namespace {

// Finds `seg` inside the container at `v`; returns its value's bytes.
RawValue Step(RawValue v, const PathSeg& seg) {
  wire::Reader rd(v.data, v.size);
  const wire::Value c = rd.Next();
  if (seg.is_index()) {
    if (c.kind != wire::Kind::kArray || static_cast<uint64_t>(seg.index) >= c.len) return {};
    for (int64_t i = 0; i < seg.index; ++i) rd.Skip();
    const uint8_t* p = rd.pos();
    rd.Skip();
    return RawValue{p, static_cast<uint32_t>(rd.pos() - p)};
  }
  if (c.kind != wire::Kind::kMap) return {};
  RawValue found;
  for (uint32_t i = 0; i < c.len; ++i) {
    const wire::Value k = rd.Peek();
    bool match = false;
    if (k.kind == wire::Kind::kStr) {
      rd.Next();
      match = k.str() == seg.key;
    } else {
      rd.Skip();
    }
    const uint8_t* p = rd.pos();
    rd.Skip();
    if (match) found = RawValue{p, static_cast<uint32_t>(rd.pos() - p)};  // last one wins
  }
  return found;
}

}  // namespace

RawValue Doc::Lookup(const Path& path) const {
  if (path.segs.empty()) return {};
  const Field* f = Find(path.segs[0].key);
  if (!f) return {};
  RawValue v = f->value;
  for (size_t i = 1; i < path.segs.size() && v.found(); ++i) v = Step(v, path.segs[i]);
  return v;
}

namespace {

struct EditOp {
  int kind;  // 0 replace, 1 remove, 2 rename
  RawValue value;
  std::string_view new_key;
  bool create;
};

// Writes container `v` with the edit applied at segs[i..]. Returns false
// (writing nothing useful) when the path does not resolve.
bool Rewrite(RawValue v, const std::vector<PathSeg>& segs, size_t i, const EditOp& op,
             wire::Buffer* out) {
  wire::Writer w(out);
  const PathSeg& seg = segs[i];
  const bool last = i + 1 == segs.size();
  wire::Reader rd(v.data, v.size);
  const wire::Value c = v.found() ? rd.Next() : wire::Value{};
  if (seg.is_index()) {
    if (!v.found() || c.kind != wire::Kind::kArray || static_cast<uint64_t>(seg.index) >= c.len) {
      return false;
    }
    const uint32_t n = op.kind == 1 && last ? c.len - 1 : c.len;
    if (op.kind == 2 && last) return false;  // an element has no name to change
    w.ArrayHeader(n);
    for (uint32_t k = 0; k < c.len; ++k) {
      const uint8_t* p = rd.pos();
      rd.Skip();
      const RawValue elem{p, static_cast<uint32_t>(rd.pos() - p)};
      if (static_cast<int64_t>(k) != seg.index) {
        w.Raw(elem.data, elem.size);
      } else if (last) {
        if (op.kind == 0) w.Raw(op.value.data, op.value.size);
      } else if (!Rewrite(elem, segs, i + 1, op, out)) {
        return false;
      }
    }
    return true;
  }
  if (v.found() && c.kind != wire::Kind::kMap) return false;
  if (!v.found() && !(op.kind == 0 && op.create)) return false;
  const uint32_t len = v.found() ? c.len : 0;
  // First pass: is the key there?
  bool present = false;
  {
    wire::Reader scan(v.data, v.size);
    if (v.found()) scan.Next();
    for (uint32_t k = 0; k < len; ++k) {
      const wire::Value key = scan.Peek();
      if (key.kind == wire::Kind::kStr) {
        scan.Next();
        if (key.str() == seg.key) present = true;
      } else {
        scan.Skip();
      }
      scan.Skip();
    }
  }
  if (!present && !(op.kind == 0 && op.create)) return false;
  uint32_t n = len;
  if (!present) ++n;
  if (present && last && op.kind == 1) {
    // Remove every entry with the key (duplicates included): count them.
    wire::Reader scan(v.data, v.size);
    scan.Next();
    for (uint32_t k = 0; k < len; ++k) {
      const wire::Value key = scan.Peek();
      if (key.kind == wire::Kind::kStr) {
        scan.Next();
        if (key.str() == seg.key) --n;
      } else {
        scan.Skip();
      }
      scan.Skip();
    }
  }
  w.MapHeader(n);
  for (uint32_t k = 0; k < len; ++k) {
    const uint8_t* kp = rd.pos();
    const wire::Value key = rd.Peek();
    rd.Skip();
    const uint8_t* vp = rd.pos();
    rd.Skip();
    const RawValue val{vp, static_cast<uint32_t>(rd.pos() - vp)};
    const bool match = key.kind == wire::Kind::kStr && key.str() == seg.key;
    if (!match) {
      w.Raw(kp, static_cast<size_t>(rd.pos() - kp));
      continue;
    }
    if (last) {
      if (op.kind == 1) continue;
      if (op.kind == 2) {
        w.Str(op.new_key);
        w.Raw(val.data, val.size);
      } else {
        w.Raw(kp, static_cast<size_t>(vp - kp));
        w.Raw(op.value.data, op.value.size);
      }
    } else {
      w.Raw(kp, static_cast<size_t>(vp - kp));
      if (!Rewrite(val, segs, i + 1, op, out)) return false;
    }
  }
  if (!present) {
    w.Str(seg.key);
    if (last) {
      w.Raw(op.value.data, op.value.size);
    } else if (!Rewrite(RawValue{}, segs, i + 1, op, out)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool Doc::Edit(const Path& path, EditKind kind, RawValue v, std::string_view new_key,
               bool create) {
  if (path.segs.empty()) return false;
  const std::string& top = path.segs[0].key;
  if (path.segs.size() == 1) {
    switch (kind) {
      case EditKind::kRemove: return Erase(top);
      case EditKind::kRename: {
        Field* f = Find(top);
        if (!f) return false;
        f->key = arena_.Copy(new_key);  // in place: the field keeps its position
        return true;
      }
      case EditKind::kReplace:
        if (!create && !Find(top)) return false;
        Set(Find(top) ? Find(top)->key : arena_.Copy(top), v);
        return true;
    }
  }
  Field* f = Find(top);
  if (!f && !(kind == EditKind::kReplace && create)) return false;
  EditOp op{static_cast<int>(kind), v, new_key, create};
  scratch_.clear();
  if (!Rewrite(f ? f->value : RawValue{}, path.segs, 1, op, &scratch_)) return false;
  const RawValue nv = CopyBuffer(scratch_, &arena_);
  if (f) {
    f->value = nv;
  } else {
    Set(arena_.Copy(top), nv);
  }
  return true;
}

bool Doc::Replace(const Path& path, RawValue v, bool create) {
  return Edit(path, EditKind::kReplace, v, {}, create);
}
bool Doc::Remove(const Path& path) { return Edit(path, EditKind::kRemove, {}, {}, false); }
bool Doc::Rename(const Path& path, std::string_view new_key) {
  return Edit(path, EditKind::kRename, {}, new_key, false);
}

void Doc::Serialize(wire::Buffer* out) const {
  wire::Writer w(out);
  w.MapHeader(static_cast<uint32_t>(fields_.size()));
  for (const Field& f : fields_) {
    w.Str(f.key);
    w.Raw(f.value.data, f.value.size);
  }
}

// ---- encoders ----

namespace {
RawValue Encoded(wire::Buffer* b, Arena* arena) { return CopyBuffer(*b, arena); }
thread_local wire::Buffer tl_buf(64);
}  // namespace

RawValue CopyBuffer(const wire::Buffer& b, Arena* arena) {
  return RawValue{arena->Copy(b.data(), b.size()), static_cast<uint32_t>(b.size())};
}

RawValue EncodeString(std::string_view s, Arena* arena) {
  tl_buf.clear();
  wire::Writer(&tl_buf).Str(s);
  return Encoded(&tl_buf, arena);
}
RawValue EncodeInt(int64_t v, Arena* arena) {
  tl_buf.clear();
  wire::Writer(&tl_buf).Int(v);
  return Encoded(&tl_buf, arena);
}
RawValue EncodeDouble(double v, Arena* arena) {
  tl_buf.clear();
  wire::Writer(&tl_buf).Double(v);
  return Encoded(&tl_buf, arena);
}
RawValue EncodeBool(bool v, Arena*) {
  static const uint8_t t = 0xc3, f = 0xc2;
  return RawValue{v ? &t : &f, 1};
}
RawValue EncodeNil() {
  static const uint8_t nil = 0xc0;
  return RawValue{&nil, 1};
}

// ---- time ----

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t at, size_t n, int* out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[at + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

bool ParseIsoTime(std::string_view s, int64_t* epoch_ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!Digits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return false;
  size_t i = 10;
  int64_t ms = 0;
  int64_t offset_min = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return false;
    if (!Digits(s, i + 1, 2, &h) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, &mi)) {
      return false;
    }
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!Digits(s, i + 1, 2, &sec)) return false;
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        ++i;
        int64_t scale = 100;
        const size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          ms += (s[i] - '0') * scale;
          scale /= 10;
          ++i;
        }
        if (i == start) return false;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return false;
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (!Digits(s, i + 1, 2, &oh)) return false;
        size_t j = i + 3;
        if (j < s.size() && s[j] == ':') ++j;
        if (!Digits(s, j, 2, &om)) return false;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i = j + 2;
      }
    }
    if (i != s.size()) return false;
  }
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  *epoch_ms = ((days * 24 + h) * 60 + mi - offset_min) * 60000 + sec * 1000 + ms;
  return true;
}

bool ReadTime(const wire::Value& v, int64_t* epoch_ms) {
  switch (v.kind) {
    case wire::Kind::kInt: *epoch_ms = v.i; return true;
    case wire::Kind::kUint:
      if (v.u > static_cast<uint64_t>(INT64_MAX)) return false;
      *epoch_ms = static_cast<int64_t>(v.u);
      return true;
    case wire::Kind::kFloat:
      if (!(v.f > -9.2e18 && v.f < 9.2e18)) return false;
      *epoch_ms = static_cast<int64_t>(v.f);
      return true;
    case wire::Kind::kStr: return ParseIsoTime(v.str(), epoch_ms);
    case wire::Kind::kExt: {
      int64_t s;
      uint32_t ns;
      if (!wire::DecodeTimestamp(v, &s, &ns)) return false;
      *epoch_ms = s * 1000 + ns / 1000000;
      return true;
    }
    default: return false;
  }
}

void FormatIsoMillis(int64_t epoch_ms, std::string* out) {
  int64_t s = epoch_ms / 1000;
  int64_t ms = epoch_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    s -= 1;
  }
  sinks::AppendIsoTime(s, static_cast<uint32_t>(ms * 1000000), out);
}

void AppendText(const uint8_t* value, std::string* out) {
  wire::Reader rd(value, 16);  // scalars are read from the header; containers via JSON
  const wire::Value v = rd.Peek();
  char buf[32];
  switch (v.kind) {
    case wire::Kind::kNil: return;
    case wire::Kind::kBool: out->append(v.b ? "true" : "false"); return;
    case wire::Kind::kInt: {
      auto r = std::to_chars(buf, buf + sizeof(buf), v.i);
      out->append(buf, r.ptr);
      return;
    }
    case wire::Kind::kUint: {
      auto r = std::to_chars(buf, buf + sizeof(buf), v.u);
      out->append(buf, r.ptr);
      return;
    }
    case wire::Kind::kFloat: sinks::AppendDouble(v.f, out); return;
    case wire::Kind::kStr: out->append(v.str()); return;
    default: sinks::AppendJson(value, out); return;
  }
}

}  // namespace forkd::transforms
