// redact and hash: for fields that must not reach a store as they are.
#include <openssl/evp.h>

#include "transforms/steps.h"
#include "wire/hex.h"

namespace forkd::transforms {

std::shared_ptr<const Step> MakeDropStep(std::vector<Path> paths, std::string_view kind);

namespace {

class MaskStep final : public Step {
 public:
  MaskStep(std::vector<Path> paths, std::string mask) : paths_(std::move(paths)) {
    wire::Buffer b;
    wire::Writer(&b).Str(mask);
    mask_.assign(reinterpret_cast<const char*>(b.data()), b.size());
  }
  std::string_view kind() const override { return "redact"; }
  Outcome Apply(StepContext* ctx) const override {
    const RawValue m{reinterpret_cast<const uint8_t*>(mask_.data()),
                     static_cast<uint32_t>(mask_.size())};
    for (const Path& p : paths_) ctx->doc->Replace(p, m, /*create=*/false);
    return Outcome::kKeep;
  }

 private:
  std::vector<Path> paths_;
  std::string mask_;  // msgpack str
};

// SHA-256 through OpenSSL's EVP interface; one context per thread.
class Sha256 {
 public:
  Sha256() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}
  ~Sha256() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  // Writes 64 lowercase hex digits of SHA-256(a || b) to out.
  void Hex(std::string_view a, std::string_view b, char out[64]) {
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_DigestInit_ex2(ctx_, md_, nullptr);
    EVP_DigestUpdate(ctx_, a.data(), a.size());
    EVP_DigestUpdate(ctx_, b.data(), b.size());
    EVP_DigestFinal_ex(ctx_, digest, &n);
    wire::HexTo(digest, 32, out);
  }

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

class HashStep final : public Step {
 public:
  HashStep(std::vector<Path> paths, std::string salt)
      : paths_(std::move(paths)), salt_(std::move(salt)) {}
  std::string_view kind() const override { return "hash"; }
  Outcome Apply(StepContext* ctx) const override {
    static thread_local Sha256 sha;
    static thread_local std::string text;
    Doc& d = *ctx->doc;
    for (const Path& p : paths_) {
      const RawValue v = d.Lookup(p);
      if (!v.found() || v.data[0] == 0xc0) continue;  // nothing to hide in a missing or nil value
      text.clear();
      AppendText(v.data, &text);
      char hex[64];
      sha.Hex(salt_, text, hex);
      d.Replace(p, EncodeString(std::string_view(hex, 64), &d.arena()), /*create=*/false);
    }
    return Outcome::kKeep;
  }

 private:
  std::vector<Path> paths_;
  std::string salt_;
};

}  // namespace

const std::vector<OptionSpec>& RedactOptions() {
  static const std::vector<OptionSpec> specs = {
      {"fields", OptType::kNode, "", "Field paths to redact", true},
      {"mask", OptType::kString, "", "Replace each value with this text; remove the field when unset"},
  };
  return specs;
}

const std::vector<OptionSpec>& HashOptions() {
  static const std::vector<OptionSpec> specs = {
      {"fields", OptType::kNode, "", "Field paths to hash", true},
      {"salt", OptType::kString, "", "Secret prefix, so hashes of guessable values cannot be "
                                     "looked up; use ${ENV}"},
  };
  return specs;
}

std::shared_ptr<const Step> ParseRedact(const YAML::Node& args, const std::string& path,
                                        const ParseContext& pc) {
  std::vector<Path> paths;
  if (!args.IsMap()) {
    if (!ParsePathList(args, path, pc, &paths)) return nullptr;
    return MakeDropStep(std::move(paths), "redact");
  }
  Options o;
  if (!ParseOptions(args, RedactOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  if (!ParsePathList(o.Node("fields"), path + ".fields", pc, &paths)) return nullptr;
  if (!o.Has("mask")) return MakeDropStep(std::move(paths), "redact");
  return std::make_shared<MaskStep>(std::move(paths), o.Str("mask"));
}

std::shared_ptr<const Step> ParseHash(const YAML::Node& args, const std::string& path,
                                      const ParseContext& pc) {
  std::vector<Path> paths;
  if (!args.IsMap()) {
    if (!ParsePathList(args, path, pc, &paths)) return nullptr;
    return std::make_shared<HashStep>(std::move(paths), "");
  }
  Options o;
  if (!ParseOptions(args, HashOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  if (!ParsePathList(o.Node("fields"), path + ".fields", pc, &paths)) return nullptr;
  return std::make_shared<HashStep>(std::move(paths), o.Str("salt"));
}

}  // namespace forkd::transforms
