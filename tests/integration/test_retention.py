"""Retention against a real server: what gets deleted, and what is never touched.

noida-db has no ILM, so logpipe deletes; against a real Elasticsearch
(``LOGPIPE_TEST_ES_URL``) the server has ILM and the tests check the policy and
its attachment instead. Every test creates its own indices under its own prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import ApiError, Elasticsearch

from logpipe.config import ElasticsearchConfig
from logpipe.devservers import free_port
from logpipe.sinks.elasticsearch.retention import RetentionKeeper, RetentionMode, policy_name
from logpipe.sinks.elasticsearch.sink import make_client
from tests.integration.helpers import EsTarget, es_client

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def es_config(target: EsTarget, prefix: str, **retention: Any) -> ElasticsearchConfig:
    env = target.env
    return ElasticsearchConfig.model_validate(
        {
            "hosts": [target.url],
            "api_key": env.get("ES_API_KEY"),
            "username": env.get("ES_USERNAME"),
            "password": env.get("ES_PASSWORD"),
            "ca_cert": env.get("ES_CA_CERT"),
            "index_prefix": prefix,
            "retention": {"days": 7, **retention},
        }
    )


def server_has_ilm(client: Elasticsearch) -> bool:
    try:
        client.perform_request("GET", "/_ilm/status")
    except ApiError:
        return False
    return True


def existing(client: Elasticsearch, names: list[str]) -> set[str]:
    return {n for n in names if client.indices.exists(index=n)}


def lifecycle(client: Elasticsearch, name: str) -> str | None:
    resp = client.indices.get_settings(index=name, flat_settings=True)
    value: str | None = resp[name]["settings"].get("index.lifecycle.name")
    return value


async def check(config: ElasticsearchConfig, now: datetime) -> tuple[list[str], RetentionKeeper]:
    client = make_client(config)
    try:
        keeper = RetentionKeeper(client, config)
        return await keeper.check(now), keeper
    finally:
        await client.close()


class Indices:
    """Creates indices for one test, and removes them (and any policy) afterwards."""

    def __init__(self, client: Elasticsearch) -> None:
        self.client = client
        self.names: list[str] = []
        self.has_ilm = server_has_ilm(client)

    def create(self, *names: str) -> list[str]:
        for name in names:
            self.client.indices.create(index=name)
            self.names.append(name)
        return list(names)

    def remove(self, prefix: str) -> None:
        for name in self.names:
            self.client.indices.delete(index=name, ignore_unavailable=True)
        if self.has_ilm:
            # Only once no index uses it: Elasticsearch refuses to delete a policy in use.
            with contextlib.suppress(ApiError):
                self.client.ilm.delete_lifecycle(name=policy_name(prefix))


@pytest.fixture
def indices(es_server: EsTarget, index_prefix: str) -> Iterator[Indices]:
    client = es_client(es_server.env)
    made = Indices(client)
    try:
        yield made
    finally:
        made.remove(index_prefix)
        client.close()


def test_deletes_exactly_its_own_expired_daily_indices(
    indices: Indices, es_server: EsTarget, index_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logpipe.elasticsearch")
    es, p = indices.client, index_prefix
    other = f"t{uuid.uuid4().hex[:10]}-logs"
    # 7 days at 2026-11-27: the 20th is the oldest day kept, the 19th the newest expired.
    expired = indices.create(f"{p}-2026.11.19", f"{p}-2026.10.31", f"{p}-2025.12.31")
    closed = indices.create(f"{p}-2026.11.01")
    es.indices.close(index=closed[0])
    recent = indices.create(
        f"{p}-2026.11.20", f"{p}-2026.11.26", f"{p}-2026.11.27", f"{p}-2026.11.28"
    )
    decoys = indices.create(
        f"{other}-2026.01.01",  # another pipeline's prefix
        f"{p}-old-2026.01.01",  # longer prefixes sharing the start
        f"{p}-archive-2026.01.01",
        f"{p}x-2026.01.01",
        f"{p}-foo",  # not a date
        f"{p}-2026.02.30",  # date-shaped, no such day
        f"{p}-2026.11.01-000001",  # a rollover name
    )
    # An expired-looking alias of another prefix's index: it matches <prefix>-*.
    aliased = indices.create(f"{other}-2026.01.02")
    es.indices.put_alias(index=aliased[0], name=f"{p}-2026.01.02")
    everything = expired + closed + recent + decoys + aliased

    deleted, keeper = asyncio.run(check(es_config(es_server, p), NOW))

    if indices.has_ilm:
        # The server deletes: the policy is installed and attached to our daily
        # indices only; logpipe deletes nothing itself.
        assert keeper.stats.mode is RetentionMode.ILM
        assert deleted == []
        policy = es.ilm.get_lifecycle(name=policy_name(p))[policy_name(p)]["policy"]
        assert policy["phases"]["delete"]["min_age"] == "8d"
        for name in expired + closed + recent:
            assert lifecycle(es, name) == policy_name(p), name
        for name in decoys + aliased:
            assert lifecycle(es, name) is None, name
        return
    assert keeper.stats.mode is RetentionMode.DELETE
    assert deleted == sorted(expired + closed)
    assert existing(es, everything) == set(recent + decoys + aliased)
    assert (keeper.stats.deleted, keeper.stats.checks) == (4, 1)
    logged = [r for r in caplog.records if r.getMessage() == "index_deleted_by_retention"]
    assert sorted(r.__dict__["index"] for r in logged) == deleted
    for name in recent + decoys + aliased:
        assert lifecycle(es, name) is None, name  # no ILM settings written without ILM

    # A second pass finds nothing more to do.
    assert asyncio.run(check(es_config(es_server, p), NOW))[0] == []


def test_days_are_counted_in_the_index_timezone(
    indices: Indices, es_server: EsTarget, index_prefix: str
) -> None:
    if indices.has_ilm:
        pytest.skip("the server has ILM: it deletes, by UTC days")
    p = index_prefix
    names = indices.create(f"{p}-2026.12.30", f"{p}-2026.12.31", f"{p}-2027.01.01")
    # 00:30 on New Year's Day in Jakarta, still the 31st in UTC.
    now = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)
    assert asyncio.run(check(es_config(es_server, p, days=1), now))[0] == []
    jakarta = es_config(es_server, p, days=1).model_copy(update={"index_timezone": "Asia/Jakarta"})
    assert asyncio.run(check(jakarta, now))[0] == [names[0]]
    assert asyncio.run(check(jakarta, now + timedelta(days=1)))[0] == [names[1]]
    assert existing(indices.client, names) == {names[2]}


def test_run_checks_again_after_each_interval(
    indices: Indices, es_server: EsTarget, index_prefix: str
) -> None:
    es = indices.client
    config = es_config(es_server, index_prefix, check_interval_seconds=0.1)
    today = datetime.now(UTC).date()

    async def scenario() -> None:
        client = make_client(config)
        keeper = RetentionKeeper(client, config)
        task = asyncio.create_task(keeper.run())
        try:
            # Created after a pass completed: only a later pass can handle it.
            for _ in range(200):
                if keeper.stats.checks:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"no check completed: {keeper.stats}")
            (name,) = indices.create(f"{index_prefix}-{today - timedelta(days=30):%Y.%m.%d}")
            for _ in range(200):
                if lifecycle(es, name) if indices.has_ilm else not es.indices.exists(index=name):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"{name} was not handled by a later check")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()

    asyncio.run(scenario())


def test_a_failed_check_is_logged_not_raised(
    index_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logpipe.elasticsearch")
    nothing_there = EsTarget(f"http://127.0.0.1:{free_port()}", {})
    config = es_config(nothing_there, index_prefix)

    deleted, keeper = asyncio.run(check(config, NOW))

    assert deleted == []
    assert (keeper.stats.failed_checks, keeper.stats.checks) == (1, 0)
    assert keeper.stats.mode is None
    assert "retention_check_failed" in caplog.messages


def test_nothing_happens_while_retention_is_off(
    indices: Indices, es_server: EsTarget, index_prefix: str
) -> None:
    names = indices.create(f"{index_prefix}-2020.01.01")
    config = es_config(es_server, index_prefix, days=None)

    async def scenario() -> RetentionKeeper:
        client = make_client(config)
        keeper = RetentionKeeper(client, config)
        try:
            await asyncio.wait_for(keeper.run(), 5)  # returns at once
            assert await keeper.check(NOW) == []
        finally:
            await client.close()
        return keeper

    keeper = asyncio.run(scenario())
    assert (keeper.stats.mode, keeper.stats.checks) == (None, 0)
    assert existing(indices.client, names) == set(names)
    assert lifecycle(indices.client, names[0]) is None
