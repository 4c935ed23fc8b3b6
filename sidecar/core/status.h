// Errors are values. A Status is ok, or a code and a message that says what
// failed and where ("log write failed: no space left on device").
#pragma once

#include <string>
#include <utility>

namespace forkd {

class [[nodiscard]] Status {
 public:
  enum class Code { kOk, kInvalidArgument, kNotFound, kIoError, kCorruption, kRetry, kFatal };

  Status() = default;
  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  // A sink's answers: try the same batch again later, or never.
  static Status Retry(std::string m) { return {Code::kRetry, std::move(m)}; }
  static Status Fatal(std::string m) { return {Code::kFatal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsRetry() const { return code_ == Code::kRetry; }
  bool IsFatal() const { return code_ == Code::kFatal; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  std::string ToString() const { return ok() ? "ok" : message_; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Status from errno, e.g. ErrnoStatus("log write", path) -> "log write failed:
// /x/wal-1.log: no space left on device".
Status ErrnoStatus(const std::string& what, const std::string& path, int err);

}  // namespace forkd
