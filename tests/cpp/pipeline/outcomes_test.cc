// OutcomeWatch: what a pipeline records reaches ingest only for watched lsns,
// the first outcome recorded for an lsn stands, and every Watch is matched by
// one Take or Unwatch.
#include "pipeline/outcomes.h"

#include "test_util.h"

namespace forkd::pipeline {
namespace {

using wire::OutcomeKind;

TEST_CASE("an unwatched destination records nothing and reads as delivered",
          "[pipeline][outcomes]") {
  OutcomeWatch w;
  CHECK_FALSE(w.active());
  const NotedOutcome n{5, 5, OutcomeKind::kDeadLetter, "refused"};
  w.Record(&n, 1);
  CHECK_FALSE(w.active());
  CHECK(w.Take(5).kind == OutcomeKind::kDelivered);
}

TEST_CASE("a watched lsn takes what was recorded for it", "[pipeline][outcomes]") {
  OutcomeWatch w;
  w.Watch(5);
  w.Watch(7);
  w.Watch(20);
  CHECK(w.active());
  const NotedOutcome notes[] = {
      {4, 4, OutcomeKind::kFiltered, ""},          // not watched: ignored
      {5, 5, OutcomeKind::kDeadLetter, "validate: amount"},
      {6, 30, OutcomeKind::kShed, "shed: backlog over its quota"},  // a range
      {5, 5, OutcomeKind::kFiltered, ""},          // later: the first stands
  };
  w.Record(notes, 4);
  OutcomeWatch::Outcome o = w.Take(5);
  CHECK(o.kind == OutcomeKind::kDeadLetter);
  CHECK(o.reason == "validate: amount");
  o = w.Take(7);
  CHECK(o.kind == OutcomeKind::kShed);
  CHECK(o.reason == "shed: backlog over its quota");
  CHECK(w.active());
  CHECK(w.Take(20).kind == OutcomeKind::kShed);
  CHECK_FALSE(w.active());
  // Taken: gone.
  CHECK(w.Take(5).kind == OutcomeKind::kDelivered);
}

TEST_CASE("only the first `n` notes are recorded", "[pipeline][outcomes]") {
  OutcomeWatch w;
  w.Watch(1);
  w.Watch(2);
  const NotedOutcome notes[] = {{1, 1, OutcomeKind::kFiltered, ""},
                                {2, 2, OutcomeKind::kFiltered, ""}};
  w.Record(notes, 1);
  CHECK(w.Take(1).kind == OutcomeKind::kFiltered);
  CHECK(w.Take(2).kind == OutcomeKind::kDelivered);
}

TEST_CASE("watching an lsn twice takes two Takes", "[pipeline][outcomes]") {
  // A repeated idempotency key waits on the first event's lsn too.
  OutcomeWatch w;
  w.Watch(9);
  w.Watch(9);
  const NotedOutcome n{9, 9, OutcomeKind::kFiltered, ""};
  w.Record(&n, 1);
  CHECK(w.Take(9).kind == OutcomeKind::kFiltered);
  CHECK(w.active());
  CHECK(w.Take(9).kind == OutcomeKind::kFiltered);
  CHECK_FALSE(w.active());
}

TEST_CASE("Unwatch forgets an lsn whose event never became durable", "[pipeline][outcomes]") {
  OutcomeWatch w;
  w.Watch(3);
  w.Unwatch(3);
  w.Unwatch(3);  // once more: nothing to forget
  CHECK_FALSE(w.active());
  // The lsn is reused by another event, which nobody watches.
  const NotedOutcome n{3, 3, OutcomeKind::kDeadLetter, "x"};
  w.Record(&n, 1);
  CHECK(w.Take(3).kind == OutcomeKind::kDelivered);
}

TEST_CASE("a long reason is cut at a character boundary", "[pipeline][outcomes]") {
  OutcomeWatch w;
  w.Watch(1);
  // 'é' is two bytes; one starts at kMaxOutcomeReason - 1 and would be split.
  std::string reason(kMaxOutcomeReason - 1, 'a');
  for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";
  const NotedOutcome n{1, 1, OutcomeKind::kDeadLetter, reason};
  w.Record(&n, 1);
  const std::string got = w.Take(1).reason;
  CHECK(got == std::string(kMaxOutcomeReason - 1, 'a'));
}

TEST_CASE("Outcomes keeps one watch per destination name", "[pipeline][outcomes]") {
  Outcomes all;
  OutcomeWatch* a = all.For("analytics");
  CHECK(all.For("analytics") == a);
  CHECK(all.For("production") != a);
  a->Watch(1);
  CHECK(all.For("analytics")->active());
  CHECK_FALSE(all.For("production")->active());
}

}  // namespace
}  // namespace forkd::pipeline
