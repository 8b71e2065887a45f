"""AlertPolicy: grouping, digests and the global cap, on a simulated clock.

The invariant behind most tests: every observed event is reported in exactly
one e-mail, so the counts of all e-mails add up to the number of events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from logpipe.alerts.outgoing import Outgoing
from logpipe.alerts.policy import OVERFLOW_KEY, UNQUEUED_KEY, AlertPolicy
from logpipe.alerts.rules import AlertRule

T0 = 1_800_000_000.0  # 2027-01-15, any fixed epoch will do


def error(
    n: int = 0, message: str = "Database error recording daily input for SPK {n}", **extra: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "@timestamp": "2027-01-15T08:00:00.000Z",
        "log": {"level": "error", "logger": extra.pop("logger", "app.api.production")},
        "message": message.format(n=n),
        "http": {"request": {"id": f"req-{n}"}},
        "user": {"id": str(n % 7)},
    }
    fields.update(extra)
    return fields


def word(n: int) -> str:
    """A distinct word per number, without digits: masked numbers cannot tell groups apart."""
    letters = ""
    while True:
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
        if not n:
            return letters


def run(
    policy: AlertPolicy, events: Iterable[tuple[float, dict[str, Any]]], until: float
) -> list[Outgoing]:
    """Observe ``events`` (time, fields) in order, ticking every simulated second to ``until``."""
    out: list[Outgoing] = []
    clock = T0
    for at, fields in events:
        while clock + 1 <= at:
            clock += 1
            out += policy.tick(clock)
        out += policy.observe(fields, at)
    while clock + 1 <= until:
        clock += 1
        out += policy.tick(clock)
    return out


def total(out: list[Outgoing]) -> int:
    return sum(o.count for o in out)


# -- one group ---------------------------------------------------------------------


def test_first_event_of_a_group_is_emailed_at_once() -> None:
    policy = AlertPolicy()

    (first,) = policy.observe(error(4711), T0)

    assert first.kind == "first"
    assert first.count == 1
    assert first.title == "Database error recording daily input for SPK 4711"
    assert first.request_ids == ("req-4711",)
    assert first.sample["message"] == "Database error recording daily input for SPK 4711"
    assert not first.continued


def test_repeats_within_the_window_become_one_digest_at_its_end() -> None:
    policy = AlertPolicy(window_seconds=600)
    events = [(T0 + i * 0.1, error(i)) for i in range(4_214)]

    out = run(policy, events, until=T0 + 601)

    first, digest = out
    assert (first.kind, first.count) == ("first", 1)
    assert (digest.kind, digest.count, digest.continued) == ("digest", 4_213, True)
    assert digest.at == T0 + 600
    assert digest.request_ids == ("req-1", "req-2", "req-3", "req-4", "req-5")
    assert digest.user_ids == ("1", "2", "3", "4", "5")
    assert digest.sample["message"] == "Database error recording daily input for SPK 1"
    assert digest.first_at <= digest.last_at


def test_storm_of_10000_identical_errors_gives_a_handful_of_emails_that_add_up() -> None:
    policy = AlertPolicy()
    # 10,000 errors spread over 50 minutes, then quiet.
    events = [(T0 + i * 0.3, error(i)) for i in range(10_000)]

    out = run(policy, events, until=T0 + 3 * 3600)

    assert total(out) == 10_000
    assert 2 <= len(out) <= 7
    assert [o.kind for o in out] == ["first"] + ["digest"] * (len(out) - 1)
    assert policy.pending == 0


def test_storm_within_one_second_is_two_emails() -> None:
    policy = AlertPolicy()

    out = run(policy, [(T0 + i / 10_000, error(i)) for i in range(10_000)], until=T0 + 700)

    assert [(o.kind, o.count) for o in out] == [("first", 1), ("digest", 9_999)]


def test_idle_group_is_forgotten_and_its_next_event_is_a_new_first() -> None:
    policy = AlertPolicy(window_seconds=60)

    out = run(policy, [(T0, error(1)), (T0 + 200, error(2))], until=T0 + 201)

    assert [o.kind for o in out] == ["first", "first"]
    assert policy.groups == 1


def test_window_rolls_over_even_without_ticks() -> None:
    policy = AlertPolicy(window_seconds=60)
    policy.observe(error(1), T0)
    policy.observe(error(2), T0 + 10)

    out = policy.observe(error(3), T0 + 61)

    assert [(o.kind, o.count) for o in out] == [("digest", 1)]
    assert policy.pending == 1


def test_titles_come_from_the_first_event_and_groups_are_kept_apart() -> None:
    policy = AlertPolicy()
    events = [(T0, error(1)), (T0, error(2, message="user {n} not found")), (T0 + 1, error(3))]

    out = run(policy, events, until=T0 + 601)

    assert Counter((o.title, o.kind) for o in out) == Counter(
        {
            ("Database error recording daily input for SPK 1", "first"): 1,
            ("Database error recording daily input for SPK 1", "digest"): 1,
            ("user 2 not found", "first"): 1,
        }
    )


# -- the global cap -----------------------------------------------------------------


def test_over_the_cap_new_groups_are_counted_and_sent_when_the_cap_allows() -> None:
    policy = AlertPolicy(max_emails_per_period=2, period_seconds=3600, window_seconds=600)
    events = [(T0 + n, error(n, message=f"fault {word(n)}" + " {n}")) for n in range(5)]
    events += [(T0 + 10, error(99, message=f"fault {word(4)}" + " {n}"))]

    out = run(policy, events, until=T0 + 3 * 3600)

    assert [o.kind for o in out[:2]] == ["first", "first"]
    deferred = out[2:]
    assert all(o.kind == "digest" and not o.continued for o in deferred)
    assert total(out) == 6
    # The cap held: never more than 2 e-mails in any hour.
    times = sorted(o.at for o in out)
    assert all(b - a >= 3600 for a, b in zip(times, times[2:], strict=False))


def test_cap_defers_digests_without_losing_counts() -> None:
    policy = AlertPolicy(max_emails_per_period=3, period_seconds=3600, window_seconds=60)
    events = [(T0 + i, error(i, message=f"fault {word(i % 10)}" + " {n}")) for i in range(2_000)]

    out = run(policy, events, until=T0 + 12 * 3600)

    assert total(out) == 2_000
    assert len(out) <= 3 * 12
    assert policy.pending == 0


def test_many_groups_storm_adds_up_under_the_cap() -> None:
    policy = AlertPolicy(max_emails_per_period=20, period_seconds=3600)
    events = [
        (T0 + i * 0.1, error(i, message=f"fault {word(i % 100)}" + " {n}")) for i in range(10_000)
    ]

    out = run(policy, events, until=T0 + 10 * 3600)

    assert total(out) == 10_000
    per_hour = Counter(int((o.at - T0) // 3600) for o in out)
    assert max(per_hour.values()) <= 20


def test_new_groups_go_out_before_digests_when_the_cap_frees() -> None:
    policy = AlertPolicy(max_emails_per_period=1, period_seconds=100, window_seconds=10)
    policy.observe(error(1, message="old"), T0)
    policy.observe(error(2, message="old"), T0 + 1)  # a digest will be due at T0 + 10
    policy.observe(error(3, message="new"), T0 + 2)  # capped: deferred first

    out = run(policy, [], until=T0 + 101)

    assert [(o.title, o.kind, o.continued) for o in out] == [("new", "digest", False)]


# -- pressure valves ----------------------------------------------------------------


def test_groups_beyond_max_groups_go_to_a_counted_overflow_group() -> None:
    policy = AlertPolicy(max_groups=3, window_seconds=60)
    events = [(T0 + i / 100, error(i, message=f"fault {word(i)}")) for i in range(50)]

    out = run(policy, events, until=T0 + 200)

    firsts = [o for o in out if o.kind == "first"]
    (overflow,) = [o for o in out if o.key == OVERFLOW_KEY]
    assert len(firsts) == 3
    assert overflow.kind == "digest"
    assert overflow.count == 47
    assert overflow.sample["message"] == f"fault {word(3)}"
    assert total(out) == 50


def test_unqueued_events_are_reported_in_a_digest() -> None:
    policy = AlertPolicy(window_seconds=60)
    policy.observe_unqueued(7, T0)
    policy.observe_unqueued(5, T0 + 1)

    out = run(policy, [], until=T0 + 61)

    (digest,) = out
    assert (digest.key, digest.kind, digest.count) == (UNQUEUED_KEY, "digest", 12)
    assert "queue was full" in digest.title


def test_flush_sends_every_pending_count_now() -> None:
    policy = AlertPolicy()
    for i in range(10):
        policy.observe(error(i), T0 + i)
    policy.observe_unqueued(3, T0 + 10)

    out = policy.flush(T0 + 11)

    assert sorted((o.key == UNQUEUED_KEY, o.count) for o in out) == [(False, 9), (True, 3)]
    assert policy.pending == 0


# -- rules --------------------------------------------------------------------------


def test_each_rule_groups_separately_and_carries_its_recipients() -> None:
    policy = AlertPolicy()
    db = AlertRule(name="database", to=("dba@example.com",), cc=("ops@example.com",))
    other = AlertRule(name="other")

    (a,) = policy.observe(error(1), T0, rule=db)
    (b,) = policy.observe(error(2), T0, rule=other)

    assert a.key != b.key
    assert (a.rule, a.to, a.cc) == ("database", ("dba@example.com",), ("ops@example.com",))
    assert (b.rule, b.to, b.cc) == ("other", (), ())


# -- state --------------------------------------------------------------------------


def test_state_round_trip_keeps_pending_digests_and_first_emails_sent() -> None:
    knobs: dict[str, Any] = {"window_seconds": 600, "max_emails_per_period": 5}
    policy = AlertPolicy(**knobs)
    out = run(policy, [(T0 + i, error(i)) for i in range(100)], until=T0 + 100)

    restored = AlertPolicy.from_dict(json.loads(json.dumps(policy.to_dict())), **knobs)
    out += run(restored, [(T0 + 150, error(150))], until=T0 + 700)

    assert [o.kind for o in out] == ["first", "digest"]
    assert total(out) == 101
    assert restored.to_dict()["sent_at"] == [T0, T0 + 600]


def test_restored_cap_remembers_recent_sends() -> None:
    policy = AlertPolicy(max_emails_per_period=1)
    policy.observe(error(1, message="a"), T0)

    restored = AlertPolicy.from_dict(policy.to_dict(), max_emails_per_period=1)

    assert restored.observe(error(2, message="b"), T0 + 1) == []
    assert restored.pending == 1


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": 99},
        {"version": 1, "groups": []},
        {"version": 1, "sent_at": [], "groups": [{"key": "x"}]},
    ],
)
def test_malformed_state_is_refused(state: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AlertPolicy.from_dict(state)


def test_version_changes_with_every_observation() -> None:
    policy = AlertPolicy()
    before = policy.version

    policy.observe(error(1), T0)

    assert policy.version > before


def test_clock_going_back_restarts_the_window_rather_than_failing() -> None:
    policy = AlertPolicy(window_seconds=60)
    policy.observe(error(1), T0)
    policy.observe(error(2), T0 - 3600)

    out = run(policy, [], until=T0 + 120)

    assert total(out) == 1  # the second event is reported at the end of its window
    assert policy.pending == 0


def test_rejects_nonsense_knobs() -> None:
    with pytest.raises(ValueError):
        AlertPolicy(window_seconds=0)
    with pytest.raises(ValueError):
        AlertPolicy(max_emails_per_period=0)
