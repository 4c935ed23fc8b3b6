#include "wire/msgpack.h"

namespace forkd::wire {
namespace {

inline uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t Be32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint64_t Be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

CheckResult Fail(const uint8_t* base, const uint8_t* at, const char* reason) {
  return CheckResult{false, static_cast<size_t>(at - base), reason};
}

}  // namespace

CheckResult CheckValue(const uint8_t* data, size_t size, const Limits& limits, size_t* consumed) {
  // remaining[d] counts the values still expected at depth d (a map entry is
  // two values). Depth 0 expects exactly one value: the top-level one.
  uint64_t remaining[kMaxCheckDepth + 1];
  uint32_t depth = 0;
  remaining[0] = 1;
  const uint8_t* p = data;
  const uint8_t* const end = data + size;

  while (true) {
    while (remaining[depth] == 0) {
      if (depth == 0) {
        *consumed = static_cast<size_t>(p - data);
        return CheckResult{};
      }
      --depth;
    }
    --remaining[depth];
    const uint8_t* at = p;
    if (p >= end) return Fail(data, at, "truncated: value expected");
    const uint8_t t = *p++;
    const size_t left = static_cast<size_t>(end - p);
    uint64_t container = UINT64_MAX;  // entries to expect if t is a container
    uint64_t body = 0;                // bytes to skip for scalars/str/bin/ext
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
      body = 0;
    } else if ((t & 0xf0) == 0x80) {
      container = 2ull * (t & 0x0f);
    } else if ((t & 0xf0) == 0x90) {
      container = t & 0x0f;
    } else if ((t & 0xe0) == 0xa0) {
      body = t & 0x1f;
      if (body > limits.max_string) {
        return Fail(data, at, "string, binary or extension longer than the limit");
      }
    } else {
      switch (t) {
        case 0xc4: case 0xd9:  // bin8, str8
          if (left < 1) return Fail(data, at, "truncated: length expected");
          body = p[0];
          p += 1;
          break;
        case 0xc5: case 0xda:
          if (left < 2) return Fail(data, at, "truncated: length expected");
          body = Be16(p);
          p += 2;
          break;
        case 0xc6: case 0xdb:
          if (left < 4) return Fail(data, at, "truncated: length expected");
          body = Be32(p);
          p += 4;
          break;
        case 0xc7:  // ext8
          if (left < 2) return Fail(data, at, "truncated: length expected");
          body = p[0];
          p += 2;
          break;
        case 0xc8:
          if (left < 3) return Fail(data, at, "truncated: length expected");
          body = Be16(p);
          p += 3;
          break;
        case 0xc9:
          if (left < 5) return Fail(data, at, "truncated: length expected");
          body = Be32(p);
          p += 5;
          break;
        case 0xca: body = 4; break;
        case 0xcb: body = 8; break;
        case 0xcc: case 0xd0: body = 1; break;
        case 0xcd: case 0xd1: body = 2; break;
        case 0xce: case 0xd2: body = 4; break;
        case 0xcf: case 0xd3: body = 8; break;
        case 0xd4: body = 2; break;   // fixext1: type + 1
        case 0xd5: body = 3; break;
        case 0xd6: body = 5; break;
        case 0xd7: body = 9; break;
        case 0xd8: body = 17; break;
        case 0xdc:
          if (left < 2) return Fail(data, at, "truncated: length expected");
          container = Be16(p);
          p += 2;
          break;
        case 0xdd:
          if (left < 4) return Fail(data, at, "truncated: length expected");
          container = Be32(p);
          p += 4;
          break;
        case 0xde:
          if (left < 2) return Fail(data, at, "truncated: length expected");
          container = 2ull * Be16(p);
          p += 2;
          break;
        case 0xdf:
          if (left < 4) return Fail(data, at, "truncated: length expected");
          container = 2ull * Be32(p);
          p += 4;
          break;
        default:  // 0xc1 is never used
          return Fail(data, at, "invalid type byte 0xc1");
      }
      const bool is_strlike = t == 0xc4 || t == 0xc5 || t == 0xc6 || t == 0xd9 || t == 0xda ||
                              t == 0xdb || t == 0xc7 || t == 0xc8 || t == 0xc9;
      if (is_strlike && body > limits.max_string) {
        return Fail(data, at, "string, binary or extension longer than the limit");
      }
    }
    if (container != UINT64_MAX) {
      const bool is_map = (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
      if ((is_map ? container / 2 : container) > limits.max_container) {
        return Fail(data, at, "array or map with more entries than the limit");
      }
      // Every entry takes at least one byte: a count larger than what is left
      // can only be a lie, so it is rejected before anything else.
      if (container > static_cast<uint64_t>(end - p)) {
        return Fail(data, at, "truncated: container claims more entries than bytes remain");
      }
      if (container > 0) {
        if (depth + 1 > limits.max_depth || depth + 1 > kMaxCheckDepth) {
          return Fail(data, at, "nesting deeper than the limit");
        }
        remaining[++depth] = container;
      }
      continue;
    }
    if (body > static_cast<uint64_t>(end - p)) return Fail(data, at, "truncated: body expected");
    p += body;
  }
}

Value Reader::Next() {
  Value v;
  const uint8_t t = *p_++;
  auto strlike = [&](Kind k, uint32_t n) {
    v.kind = k;
    v.len = n;
    v.ptr = p_;
    p_ += n;
  };
  auto ext = [&](uint32_t n) {
    v.kind = Kind::kExt;
    v.ext_type = static_cast<int8_t>(*p_++);
    v.len = n;
    v.ptr = p_;
    p_ += n;
  };
  if (t <= 0x7f) {
    v.kind = Kind::kUint;
    v.u = t;
    v.i = t;
  } else if (t >= 0xe0) {
    v.kind = Kind::kInt;
    v.i = static_cast<int8_t>(t);
  } else if ((t & 0xf0) == 0x80) {
    v.kind = Kind::kMap;
    v.len = t & 0x0f;
  } else if ((t & 0xf0) == 0x90) {
    v.kind = Kind::kArray;
    v.len = t & 0x0f;
  } else if ((t & 0xe0) == 0xa0) {
    strlike(Kind::kStr, t & 0x1f);
  } else {
    switch (t) {
      case 0xc0: v.kind = Kind::kNil; break;
      case 0xc2: v.kind = Kind::kBool; v.b = false; break;
      case 0xc3: v.kind = Kind::kBool; v.b = true; break;
      case 0xc4: { uint32_t n = p_[0]; p_ += 1; strlike(Kind::kBin, n); break; }
      case 0xc5: { uint32_t n = Be16(p_); p_ += 2; strlike(Kind::kBin, n); break; }
      case 0xc6: { uint32_t n = Be32(p_); p_ += 4; strlike(Kind::kBin, n); break; }
      case 0xc7: { uint32_t n = p_[0]; p_ += 1; ext(n); break; }
      case 0xc8: { uint32_t n = Be16(p_); p_ += 2; ext(n); break; }
      case 0xc9: { uint32_t n = Be32(p_); p_ += 4; ext(n); break; }
      case 0xca: {
        uint32_t bits = Be32(p_);
        float f;
        std::memcpy(&f, &bits, 4);
        v.kind = Kind::kFloat;
        v.f = f;
        p_ += 4;
        break;
      }
      case 0xcb: {
        uint64_t bits = Be64(p_);
        std::memcpy(&v.f, &bits, 8);
        v.kind = Kind::kFloat;
        p_ += 8;
        break;
      }
      case 0xcc: v.kind = Kind::kUint; v.u = p_[0]; p_ += 1; break;
      case 0xcd: v.kind = Kind::kUint; v.u = Be16(p_); p_ += 2; break;
      case 0xce: v.kind = Kind::kUint; v.u = Be32(p_); p_ += 4; break;
      case 0xcf: v.kind = Kind::kUint; v.u = Be64(p_); p_ += 8; break;
      case 0xd0: v.kind = Kind::kInt; v.i = static_cast<int8_t>(p_[0]); p_ += 1; break;
      case 0xd1: v.kind = Kind::kInt; v.i = static_cast<int16_t>(Be16(p_)); p_ += 2; break;
      case 0xd2: v.kind = Kind::kInt; v.i = static_cast<int32_t>(Be32(p_)); p_ += 4; break;
      case 0xd3: v.kind = Kind::kInt; v.i = static_cast<int64_t>(Be64(p_)); p_ += 8; break;
      case 0xd4: ext(1); break;
      case 0xd5: ext(2); break;
      case 0xd6: ext(4); break;
      case 0xd7: ext(8); break;
      case 0xd8: ext(16); break;
      case 0xd9: { uint32_t n = p_[0]; p_ += 1; strlike(Kind::kStr, n); break; }
      case 0xda: { uint32_t n = Be16(p_); p_ += 2; strlike(Kind::kStr, n); break; }
      case 0xdb: { uint32_t n = Be32(p_); p_ += 4; strlike(Kind::kStr, n); break; }
      case 0xdc: v.kind = Kind::kArray; v.len = Be16(p_); p_ += 2; break;
      case 0xdd: v.kind = Kind::kArray; v.len = Be32(p_); p_ += 4; break;
      case 0xde: v.kind = Kind::kMap; v.len = Be16(p_); p_ += 2; break;
      case 0xdf: v.kind = Kind::kMap; v.len = Be32(p_); p_ += 4; break;
      default: v.kind = Kind::kNil; break;
    }
  }
  if (v.kind == Kind::kUint) v.i = static_cast<int64_t>(v.u);
  return v;
}

void Reader::Skip() {
  uint64_t pending = 1;
  while (pending > 0) {
    --pending;
    Value v = Next();
    if (v.kind == Kind::kArray) pending += v.len;
    if (v.kind == Kind::kMap) pending += 2ull * v.len;
  }
}

bool DecodeTimestamp(const Value& v, int64_t* seconds, uint32_t* nanos) {
  if (v.kind != Kind::kExt || v.ext_type != -1) return false;
  if (v.len == 4) {
    *seconds = Be32(v.ptr);
    *nanos = 0;
  } else if (v.len == 8) {
    uint64_t x = Be64(v.ptr);
    *nanos = static_cast<uint32_t>(x >> 34);
    *seconds = static_cast<int64_t>(x & 0x3ffffffffull);
  } else if (v.len == 12) {
    *nanos = Be32(v.ptr);
    *seconds = static_cast<int64_t>(Be64(v.ptr + 4));
  } else {
    return false;
  }
  return true;
}

}  // namespace forkd::wire
