// The live side of a `stream` destination: the records its pipeline
// delivered last, kept in a bounded ring for the subscribers that the admin
// server serves over Server-Sent Events (GET /streams/<name>).
//
// Each record has a position: the lsn of the log entry it came from, and for
// the rows of an aggregate (several emitted at one lsn) a sub-index k. A
// subscriber asks for what follows a position. The ring holds every record
// after `covered_after()`; a subscriber further behind catches up from the
// log itself (server_streams.cc re-runs the destination's transforms over
// the retained log) and then joins the ring. The pipeline only appends under
// a short lock: a subscriber never slows it, and one that falls out of the
// ring while it reads is told so (it is cut off with `event: overflow`).
//
// Threads: Publish and Open from the destination's pipeline thread; Next
// from any number of subscriber threads.
#pragma once

#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace forkd::streams {

struct Pos {
  uint64_t lsn = 0;
  uint32_t k = 0;
  auto operator<=>(const Pos&) const = default;
};
// "<lsn>" or "<lsn>-<k>": what a subscriber sees as the event's id.
std::string FormatPos(const Pos& p);
// False for anything else (at most 40 characters).
bool ParsePos(std::string_view s, Pos* out);
// After every record of `lsn` (aggregate rows included); {0, 0}, before
// every record, for 0.
inline Pos AfterLsn(uint64_t lsn) { return lsn == 0 ? Pos{} : Pos{lsn, UINT32_MAX}; }

class Hub {
 public:
  struct Item {
    Pos pos;
    std::string frame;  // "id: <pos>\ndata: <json>\n\n", built once for every subscriber
  };
  enum class Read { kFrames, kTimeout, kBehind, kClosed };

  // Pipeline: the destination (re)starts; every record after `after` is yet
  // to come (a restart within the process keeps the ring as it is).
  void Open(Pos after, size_t capacity);
  // Pipeline: appends a delivered batch, in position order; records at or
  // before the last one published (a batch delivered again) are skipped.
  void Publish(std::vector<Item>* items);
  // The last position published (or Open's).
  Pos last() const;

  // Subscriber: appends to *out the frames after `after`, at most about
  // `max_bytes`, and sets *last to the position of the last one. Waits up
  // to `timeout_ms` for one. kBehind: records after `after` are no longer
  // in the ring; *covered is where it starts (catch up to there first).
  Read Next(Pos after, int64_t timeout_ms, size_t max_bytes, std::string* out, Pos* last, Pos* covered);
  Pos covered_after() const;
  // Subscribers: counted by the admin server against max_subscribers.
  bool Join(size_t max);
  void Leave();
  size_t subscribers() const;
  // Wakes every subscriber with kClosed from now on (forkd stops).
  void Close();

 private:
  // Subscribers read under a shared lock (a thousand of them copy frames at
  // once); the pipeline appends under the exclusive one.
  mutable std::shared_mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Item> ring_;
  size_t capacity_ = 10000;
  Pos covered_after_;  // the ring holds every record after this
  Pos last_;
  size_t subscribers_ = 0;
  bool closed_ = false;
};

// The hubs by destination name, process-wide: a pipeline restarted by a
// reload finds its hub (and subscribers) again.
std::shared_ptr<Hub> HubFor(const std::string& destination);
std::shared_ptr<Hub> FindHub(const std::string& destination);
void CloseAllHubs();

}  // namespace forkd::streams
