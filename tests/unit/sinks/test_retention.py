"""Retention's pure core: which names are ours, which day they hold, when a day expires."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from logpipe.config import ElasticsearchConfig
from logpipe.config.models import RetentionConfig
from logpipe.sinks.elasticsearch.retention import (
    RetentionKeeper,
    RetentionMode,
    cutoff_day,
    daily_index_pattern,
    expired_indices,
    index_day,
    lifecycle_settings,
    policy_name,
    retention_policy,
)

PREFIX = "erp-logs"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("erp-logs-2026.11.27", date(2026, 11, 27)),
        ("erp-logs-2024.02.29", date(2024, 2, 29)),
        ("erp-logs-0001.01.01", date(1, 1, 1)),
        # Not ours: another prefix, a longer prefix sharing the start, a suffix.
        ("erp-logs-archive-2026.01.01", None),
        ("erp-logs-old-2026.01.01", None),
        ("erp-logsx-2026.01.01", None),
        ("other-erp-logs-2026.01.01", None),
        (".ds-erp-logs-2026.11.27-000001", None),
        ("erp-logs-2026.11.27-000001", None),
        ("erp-logs-foo", None),
        ("erp-logs-", None),
        ("ERP-LOGS-2026.11.27", None),
        # Shapes that are almost a date.
        ("erp-logs-2026-11-27", None),
        ("erp-logs-2026x11x27", None),
        ("erp-logs-26.11.27", None),
        ("erp-logs-2026.11.7", None),
        ("erp-logs-2026.11.27\n", None),
        ("erp-logs-2026.11.27 ", None),
        (
            "erp-logs-\u0662\u0660\u0662\u0666.\u0660\u0661.\u0660\u0661",
            None,
        ),  # Arabic-Indic digits
        # Matches the shape but is no real day: left alone.
        ("erp-logs-2026.02.30", None),
        ("erp-logs-2026.13.01", None),
        ("erp-logs-2026.00.10", None),
        ("erp-logs-0000.01.01", None),
    ],
)
def test_only_the_prefixes_own_daily_names_have_a_day(name: str, expected: date | None) -> None:
    assert index_day(name, daily_index_pattern(PREFIX)) == expected


def test_prefix_is_matched_literally() -> None:
    # The config allows only [a-z0-9_-], but nothing here relies on it.
    pattern = daily_index_pattern("a.b")
    assert index_day("a.b-2026.01.01", pattern) == date(2026, 1, 1)
    assert index_day("axb-2026.01.01", pattern) is None


@pytest.mark.parametrize(
    ("now", "zone", "days", "expected"),
    [
        (datetime(2026, 11, 27, 12, 0, tzinfo=UTC), "UTC", 7, date(2026, 11, 20)),
        (datetime(2026, 11, 27, 0, 0, tzinfo=UTC), "UTC", 1, date(2026, 11, 26)),
        (datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC), "UTC", 1, date(2026, 11, 26)),
        # Month and year boundaries, leap days.
        (datetime(2026, 3, 3, 8, tzinfo=UTC), "UTC", 7, date(2026, 2, 24)),
        (datetime(2028, 3, 1, 8, tzinfo=UTC), "UTC", 1, date(2028, 2, 29)),
        (datetime(2027, 1, 2, 8, tzinfo=UTC), "UTC", 5, date(2026, 12, 28)),
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "UTC", 365, date(2026, 1, 1)),
        # Zones ahead of UTC: already the next day (and year) there.
        (datetime(2026, 12, 31, 20, tzinfo=UTC), "Asia/Jakarta", 1, date(2026, 12, 31)),
        (datetime(2026, 12, 31, 16, 59, tzinfo=UTC), "Asia/Jakarta", 1, date(2026, 12, 30)),
        (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), "Asia/Jakarta", 1, date(2026, 12, 31)),
        (datetime(2026, 2, 28, 11, tzinfo=UTC), "Pacific/Kiritimati", 2, date(2026, 2, 27)),
        # Zones behind: still the previous day (and year) there.
        (datetime(2027, 1, 1, 3, tzinfo=UTC), "America/New_York", 1, date(2026, 12, 30)),
        (datetime(2026, 3, 1, 4, 59, tzinfo=UTC), "America/New_York", 1, date(2026, 2, 27)),
        # Across a DST change the day is still the calendar day.
        (datetime(2026, 3, 8, 6, 30, tzinfo=UTC), "America/New_York", 7, date(2026, 3, 1)),
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "America/New_York", 1, date(2026, 10, 31)),
        # ``now`` in some other offset is converted, not read as wall time.
        (
            datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=9))),
            "UTC",
            1,
            date(2025, 12, 30),
        ),
    ],
)
def test_cutoff_is_n_days_before_today_in_the_index_timezone(
    now: datetime, zone: str, days: int, expected: date
) -> None:
    assert cutoff_day(now, zone, days) == expected


def test_cutoff_refuses_a_naive_now_or_no_days() -> None:
    with pytest.raises(ValueError, match="aware"):
        cutoff_day(datetime(2026, 11, 27, 12), "UTC", 7)
    with pytest.raises(ValueError, match="at least 1"):
        cutoff_day(datetime(2026, 11, 27, 12, tzinfo=UTC), "UTC", 0)


def day_name(day: date, prefix: str = PREFIX) -> str:
    return f"{prefix}-{day:%Y.%m.%d}"


def test_expired_are_the_days_before_today_minus_n_and_only_ours() -> None:
    today = date(2026, 11, 27)
    names = [day_name(today - timedelta(days=n)) for n in range(-3, 40)]
    decoys = [
        "erp-logs-archive-2020.01.01",
        "erp-logsx-2020.01.01",
        "other-2020.01.01",
        "erp-logs-foo",
        "erp-logs-2020.02.30",
    ]
    cutoff = cutoff_day(datetime(2026, 11, 27, 9, tzinfo=UTC), "UTC", 7)
    expired = expired_indices([*decoys, *reversed(names)], PREFIX, cutoff)
    # Today and the 7 days before it stay (8 indices); the 8th day back goes.
    assert expired == sorted(day_name(today - timedelta(days=n)) for n in range(8, 40))
    assert day_name(date(2026, 11, 20)) not in expired
    assert day_name(date(2026, 11, 19)) in expired


@pytest.mark.parametrize("zone", ["UTC", "Asia/Jakarta", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize("days", [1, 2, 30])
def test_today_and_future_indices_are_never_expired(zone: str, days: int) -> None:
    start = datetime(2026, 12, 30, tzinfo=UTC)
    for hour in range(0, 72, 5):
        now = start + timedelta(hours=hour)
        local_today = now.astimezone(ZoneInfo(zone)).date()
        names = [day_name(local_today + timedelta(days=n)) for n in range(-days - 3, 4)]
        expired = expired_indices(names, PREFIX, cutoff_day(now, zone, days))
        assert expired == sorted(names[:3])  # exactly the 3 oldest, never later days


@pytest.mark.parametrize("days", [1, 7, 30])
def test_ilm_deletes_when_the_index_expires_by_the_rule_in_utc(days: int) -> None:
    # ILM: origination = midnight UTC of the day in the name, delete at min_age after.
    day = date(2026, 12, 29)
    min_age = int(retention_policy(days)["phases"]["delete"]["min_age"].removesuffix("d"))
    due = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=min_age)
    name = day_name(day)
    just_before = due - timedelta(microseconds=1)
    assert expired_indices([name], PREFIX, cutoff_day(just_before, "UTC", days)) == []
    assert expired_indices([name], PREFIX, cutoff_day(due, "UTC", days)) == [name]


def test_policy_and_settings_name_the_prefixes_policy() -> None:
    assert policy_name("erp-logs") == "erp-logs-retention"
    assert retention_policy(7)["phases"] == {"delete": {"min_age": "8d", "actions": {"delete": {}}}}
    assert lifecycle_settings("erp-logs") == {
        "index.lifecycle.name": "erp-logs-retention",
        "index.lifecycle.parse_origination_date": True,
    }


# -- the keeper's decisions, on an in-memory stand-in for the server -------------------
# (Against noida-db, which has no ILM, tests/integration/test_retention.py covers the
# deleting path; the ILM path's calls are checked here.)


def api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "h", 9200))
    return ApiError(f"status {status}", meta, {"error": "no"})


class FakeServer:
    """Answers the calls the keeper makes, from dicts; records the writes."""

    def __init__(self, indices: dict[str, dict[str, Any]], ilm_status: int = 200) -> None:
        self.index_settings = indices
        self.ilm_status = ilm_status
        self.policies: dict[str, dict[str, Any]] = {}
        self.refuse_delete: dict[str, int] = {}
        self.writes: list[tuple[str, str]] = []
        self.ilm = SimpleNamespace(
            get_status=self._status, get_lifecycle=self._get_policy, put_lifecycle=self._put_policy
        )
        self.indices = SimpleNamespace(
            get_settings=self._get_settings, put_settings=self._put_settings, delete=self._delete
        )

    async def _status(self) -> Any:
        if self.ilm_status != 200:
            raise api_error(self.ilm_status)
        return SimpleNamespace(body={"operation_mode": "RUNNING"})

    async def _get_policy(self, name: str) -> Any:
        if name not in self.policies:
            raise api_error(404)
        return SimpleNamespace(body={name: {"version": 1, "policy": self.policies[name]}})

    async def _put_policy(self, name: str, policy: dict[str, Any]) -> None:
        self.writes.append(("put_lifecycle", name))
        stored = copy.deepcopy(policy)
        # As Elasticsearch answers it: with the action's defaults filled in.
        stored["phases"]["delete"]["actions"]["delete"]["delete_searchable_snapshot"] = True
        self.policies[name] = stored

    async def _get_settings(self, index: str, expand_wildcards: str, flat_settings: bool) -> Any:
        assert (index, expand_wildcards, flat_settings) == (f"{PREFIX}-*", "open,closed", True)
        return SimpleNamespace(
            body={n: {"settings": dict(s)} for n, s in self.index_settings.items()}
        )

    async def _put_settings(self, index: str, settings: dict[str, Any]) -> None:
        self.writes.append(("put_settings", index))
        self.index_settings[index].update(settings)

    async def _delete(self, index: str, expand_wildcards: str) -> None:
        assert expand_wildcards == "none" and "*" not in index and "," not in index
        if index in self.refuse_delete:
            raise api_error(self.refuse_delete[index])
        self.writes.append(("delete", index))
        del self.index_settings[index]


def keeper_for(server: FakeServer, days: int = 7) -> RetentionKeeper:
    config = ElasticsearchConfig(
        hosts=["http://127.0.0.1:9200"],
        index_prefix=PREFIX,
        retention=RetentionConfig(days=days),
    )
    return RetentionKeeper(cast(Any, server), config)


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
OURS = ["erp-logs-2026.11.01", "erp-logs-2026.11.27", "erp-logs-2026.12.01"]
NOT_OURS = ["erp-logs-archive-2026.01.01", "erp-logs-foo", "erp-logs-2026.02.30"]


async def test_with_ilm_the_policy_goes_on_its_own_daily_indices_only() -> None:
    indices: dict[str, dict[str, Any]] = {n: {} for n in OURS + NOT_OURS}
    indices["erp-logs-2026.10.01"] = {"index.lifecycle.name": "ops-choice"}
    server = FakeServer(indices)
    keeper = keeper_for(server)

    assert await keeper.check(NOW) == []

    assert keeper.stats.mode is RetentionMode.ILM
    assert server.policies["erp-logs-retention"]["phases"]["delete"]["min_age"] == "8d"
    assert server.writes == [("put_lifecycle", "erp-logs-retention")] + [
        ("put_settings", n) for n in OURS
    ]
    assert indices["erp-logs-2026.10.01"] == {"index.lifecycle.name": "ops-choice"}
    assert all(indices[n] == {} for n in NOT_OURS)

    # The next pass finds everything in place and writes nothing.
    server.writes.clear()
    assert await keeper.check(NOW) == []
    assert server.writes == []
    # Another number of days rewrites the policy, and only it.
    assert await keeper_for(server, days=30).check(NOW) == []
    assert server.writes == [("put_lifecycle", "erp-logs-retention")]
    assert server.policies["erp-logs-retention"]["phases"]["delete"]["min_age"] == "31d"


@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_without_usable_ilm_logpipe_deletes(status: int) -> None:
    server = FakeServer({n: {} for n in OURS + NOT_OURS}, ilm_status=status)
    keeper = keeper_for(server)

    assert await keeper.check(NOW) == ["erp-logs-2026.11.01"]
    assert keeper.stats.mode is RetentionMode.DELETE
    assert server.writes == [("delete", "erp-logs-2026.11.01")]


@pytest.mark.parametrize("status", [401, 500, 503])
async def test_an_unclear_ilm_answer_deletes_nothing(status: int) -> None:
    server = FakeServer({n: {} for n in OURS}, ilm_status=status)
    keeper = keeper_for(server)

    assert await keeper.check(NOW) == []
    assert (keeper.stats.failed_checks, keeper.stats.mode) == (1, None)
    assert server.writes == []


async def test_a_refused_delete_does_not_stop_the_others() -> None:
    old = ["erp-logs-2026.01.01", "erp-logs-2026.01.02", "erp-logs-2026.01.03"]
    server = FakeServer({n: {} for n in old + OURS}, ilm_status=404)
    server.refuse_delete = {old[0]: 403, old[1]: 404}  # forbidden; already gone
    keeper = keeper_for(server)

    assert await keeper.check(NOW) == [old[2], "erp-logs-2026.11.01"]
    assert (keeper.stats.deleted, keeper.stats.checks, keeper.stats.failed_checks) == (2, 1, 0)
