#include "pipeline/outcomes.h"

namespace forkd::pipeline {
namespace {

// Cuts at a character boundary: the reason travels as a msgpack str.
std::string Cut(const std::string& s) {
  if (s.size() <= kMaxOutcomeReason) return s;
  size_t n = kMaxOutcomeReason;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

void OutcomeWatch::Watch(uint64_t lsn) {
  std::lock_guard<std::mutex> lock(mu_);
  ++by_lsn_[lsn].watchers;
  watched_.store(by_lsn_.size(), std::memory_order_relaxed);
}

void OutcomeWatch::Unwatch(uint64_t lsn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_lsn_.find(lsn);
  if (it == by_lsn_.end()) return;
  if (--it->second.watchers == 0) by_lsn_.erase(it);
  watched_.store(by_lsn_.size(), std::memory_order_relaxed);
}

OutcomeWatch::Outcome OutcomeWatch::Take(uint64_t lsn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_lsn_.find(lsn);
  if (it == by_lsn_.end()) return Outcome{};
  Outcome o = it->second.outcome;
  if (--it->second.watchers == 0) by_lsn_.erase(it);
  watched_.store(by_lsn_.size(), std::memory_order_relaxed);
  return o;
}

void OutcomeWatch::Record(const NotedOutcome* notes, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < n && !by_lsn_.empty(); ++i) {
    const NotedOutcome& note = notes[i];
    for (auto it = by_lsn_.lower_bound(note.first); it != by_lsn_.end() && it->first <= note.last;
         ++it) {
      Entry& e = it->second;
      if (e.recorded) continue;
      e.recorded = true;
      e.outcome.kind = note.kind;
      e.outcome.reason = Cut(note.reason);
    }
  }
}

OutcomeWatch* Outcomes::For(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    it = by_name_.emplace(std::string(name), std::make_unique<OutcomeWatch>()).first;
  }
  return it->second.get();
}

}  // namespace forkd::pipeline
