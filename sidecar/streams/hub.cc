#include "streams/hub.h"

#include <algorithm>
#include <charconv>
#include <chrono>

namespace forkd::streams {

std::string FormatPos(const Pos& p) {
  std::string s = std::to_string(p.lsn);
  if (p.k != 0) s += "-" + std::to_string(p.k);
  return s;
}

bool ParsePos(std::string_view s, Pos* out) {
  if (s.empty() || s.size() > 40) return false;
  const size_t dash = s.find('-');
  const std::string_view a = s.substr(0, dash);
  Pos p;
  auto r = std::from_chars(a.data(), a.data() + a.size(), p.lsn);
  if (r.ec != std::errc() || r.ptr != a.data() + a.size()) return false;
  if (dash != std::string_view::npos) {
    const std::string_view b = s.substr(dash + 1);
    auto q = std::from_chars(b.data(), b.data() + b.size(), p.k);
    if (q.ec != std::errc() || q.ptr != b.data() + b.size() || b.empty()) return false;
  }
  *out = p;
  return true;
}

void Hub::Open(Pos after, size_t capacity) {
  std::lock_guard<std::shared_mutex> lock(mu_);
  capacity_ = std::max<size_t>(1, capacity);
  while (ring_.size() > capacity_) {
    covered_after_ = ring_.front().pos;
    ring_.pop_front();
  }
  if (after > last_) {
    // A new start (forkd's, or past what this hub saw): nothing between
    // what was published and `after` is in the ring.
    ring_.clear();
    covered_after_ = after;
    last_ = after;
  }
}

void Hub::Publish(std::vector<Item>* items) {
  if (items->empty()) return;
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    for (Item& it : *items) {
      if (it.pos <= last_) continue;
      last_ = it.pos;
      ring_.push_back(std::move(it));
      if (ring_.size() > capacity_) {
        covered_after_ = ring_.front().pos;
        ring_.pop_front();
      }
    }
  }
  items->clear();
  cv_.notify_all();
}

Pos Hub::last() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return last_;
}

Pos Hub::covered_after() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return covered_after_;
}

Hub::Read Hub::Next(Pos after, int64_t timeout_ms, size_t max_bytes, std::string* out, Pos* last,
                    Pos* covered) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (closed_) return Read::kClosed;
    if (after < covered_after_) {
      *covered = covered_after_;
      return Read::kBehind;
    }
    auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                               [](const Pos& p, const Item& i) { return p < i.pos; });
    if (it != ring_.end()) {
      size_t n = 0;
      for (; it != ring_.end() && n < max_bytes; ++it) {
        out->append(it->frame);
        n += it->frame.size();
        *last = it->pos;
      }
      return Read::kFrames;
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return Read::kTimeout;
  }
}

bool Hub::Join(size_t max) {
  std::lock_guard<std::shared_mutex> lock(mu_);
  if (subscribers_ >= max) return false;
  ++subscribers_;
  return true;
}

void Hub::Leave() {
  std::lock_guard<std::shared_mutex> lock(mu_);
  if (subscribers_ > 0) --subscribers_;
}

size_t Hub::subscribers() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return subscribers_;
}

void Hub::Close() {
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

namespace {
std::mutex hubs_mu;
std::map<std::string, std::shared_ptr<Hub>>& Hubs() {
  static std::map<std::string, std::shared_ptr<Hub>> hubs;
  return hubs;
}
}  // namespace

std::shared_ptr<Hub> HubFor(const std::string& destination) {
  std::lock_guard<std::mutex> lock(hubs_mu);
  auto& h = Hubs()[destination];
  if (!h) h = std::make_shared<Hub>();
  return h;
}

std::shared_ptr<Hub> FindHub(const std::string& destination) {
  std::lock_guard<std::mutex> lock(hubs_mu);
  auto it = Hubs().find(destination);
  return it == Hubs().end() ? nullptr : it->second;
}

void CloseAllHubs() {
  std::lock_guard<std::mutex> lock(hubs_mu);
  for (auto& [name, h] : Hubs()) h->Close();
}

}  // namespace forkd::streams
