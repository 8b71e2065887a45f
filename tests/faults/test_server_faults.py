"""Faults of Elasticsearch, injected by the proxy: down, 429/503, resets, per-item 429s,
mapping conflicts, answers slower than the client's timeout."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.conftest import Scenario
from tests.faults.harness import Load, scaled, scaled_seconds, scaled_timeout
from tests.faults.test_process_faults import assert_exactly_once

pytestmark = pytest.mark.integration


@scaled_timeout(180)
def test_elasticsearch_down_while_lines_keep_coming_delivers_all_once_when_back(
    scenario: Scenario,
) -> None:
    proxy = scenario.proxy
    # A small memory budget: the file, not the queue, must absorb the outage.
    logpipe = scenario.logpipe(scenario.pipeline(queue_max_events=1000, queue_max_bytes=1 << 20))
    app = scenario.app_log()
    app.write(100)
    logpipe.start()
    scenario.wait(100)
    outage = scaled_seconds(10)
    with Load(app, rate=300):
        time.sleep(1.0)
        proxy.down()
        time.sleep(outage)
        before = scenario.verifier.count()
        proxy.up()
        back = time.monotonic()
    # Resumed: the first new document is searchable (the rest is the backlog draining).
    resumed = scenario.verifier.wait_quietly(before + 1, 30, since=back)
    recovery = scenario.recovery(back, 60)
    assert logpipe.terminate().code == 0
    assert resumed is not None and resumed < 10, f"not resumed within 10 s ({resumed})"
    assert_exactly_once(
        scenario, recovery, notes=f"refused {outage:.0f} s; first document {resumed:.1f} s after"
    )


@scaled_timeout(180)
def test_whole_request_429_503_resets_and_dropped_answers_deliver_all_once(
    scenario: Scenario,
) -> None:
    proxy = scenario.proxy
    logpipe = scenario.logpipe()
    app = scenario.app_log()
    app.write(100)
    logpipe.start()
    scenario.wait(100)
    phase = scaled_seconds(2.5)
    with Load(app, rate=300):
        proxy.fail_requests(429, seconds=phase)
        time.sleep(phase)
        proxy.fail_requests(503, seconds=phase)
        time.sleep(phase)
        proxy.reset_connections(seconds=phase)
        time.sleep(phase)
        # The server commits each bulk, the client never hears back: retries get 409s.
        proxy.drop_after_forward(seconds=phase)
        time.sleep(phase)
        proxy.pass_through()
        healed = time.monotonic()
    recovery = scenario.recovery(healed, 60)
    assert logpipe.terminate().code == 0
    stats = proxy.stats
    assert stats.failed_requests >= 2 and stats.resets >= 1 and stats.dropped_after_forward >= 1
    refused = logpipe.summaries()[-1]["duplicates"]
    assert_exactly_once(
        scenario,
        recovery,
        notes=f"{stats.failed_requests} 429/503, {stats.resets} resets, "
        f"{stats.dropped_after_forward} dropped answers, {refused} re-sent lines answered 409",
    )


@scaled_timeout(180)
def test_per_item_429_in_bulk_responses_delivers_all_once(scenario: Scenario) -> None:
    proxy = scenario.proxy
    logpipe = scenario.logpipe()
    app = scenario.app_log()
    app.write(100)
    logpipe.start()
    scenario.wait(100)
    with Load(app, rate=400):
        proxy.reject_items(0.2, seconds=scaled_seconds(8))
        time.sleep(scaled_seconds(8))
        proxy.pass_through()
        healed = time.monotonic()
    recovery = scenario.recovery(healed, 60)
    assert logpipe.terminate().code == 0
    stats = proxy.stats
    assert stats.rejected_items > 0
    assert_exactly_once(
        scenario,
        recovery,
        notes=f"{stats.rejected_items} of {stats.rejected_items + stats.forwarded_items} "
        "items answered 429",
    )


@scaled_timeout(180)
def test_mapping_conflicts_are_indexed_in_safe_form_or_dead_lettered_never_lost(
    scenario: Scenario,
) -> None:
    writer = scenario.writer
    logpipe = scenario.logpipe()
    app = scenario.app_log()
    app.write(1, qty=7)  # the first document maps app.qty as a number
    logpipe.start()
    scenario.wait(1)
    rng = random.Random(5)
    conflicts = 0
    for _ in range(scaled(20)):
        chunk: list[bytes] = []
        seqs = writer.take(100)
        for seq in seqs:
            if rng.random() < 0.05:
                conflicts += 1
                chunk.append(writer.app_line(seq, qty={"value": seq, "unit": "kg"}))
            else:
                chunk.append(writer.app_line(seq, qty=seq))
        app.write_raw(b"".join(chunk), seqs)
        time.sleep(0.1)
    written = len(writer.expected)
    # Dead-lettered documents never show up in the index: wait for the rest.
    scenario.verifier.wait_quietly(written - conflicts, 60, running=[logpipe])
    time.sleep(1.0)
    assert logpipe.terminate().code == 0
    safe = scenario.verifier.count_tagged("_mapping_conflict")
    verdict, _ = scenario.check(
        notes=f"{conflicts} lines with an object for app.qty: {safe} indexed in safe form"
    )
    assert verdict.lost == 0 and verdict.duplicated == 0, str(verdict)
    assert verdict.indexed + verdict.dead_lettered == written, str(verdict)
    assert safe + verdict.dead_lettered == conflicts, (safe, str(verdict))


@scaled_timeout(180)
def test_elasticsearch_slower_than_client_timeout_commits_once_despite_retries(
    scenario: Scenario,
) -> None:
    proxy = scenario.proxy
    logpipe = scenario.logpipe(scenario.pipeline(request_timeout_seconds=2))
    app = scenario.app_log()
    app.write(100)
    logpipe.start()
    scenario.wait(100)
    with Load(app, rate=300):
        # The server commits each bulk; its answer comes 3 s later, after the client
        # gave up (2 s) and sent the same items again.
        proxy.delay(3, forward_first=True, seconds=scaled_seconds(8))
        time.sleep(scaled_seconds(8))
        proxy.pass_through()
        healed = time.monotonic()
    recovery = scenario.recovery(healed, 60)
    assert logpipe.terminate().code == 0
    assert proxy.stats.delayed >= 2, proxy.stats
    refused = logpipe.summaries()[-1]["duplicates"]
    assert refused > 0, "no retry was answered 409: the timeouts did not happen"
    assert_exactly_once(
        scenario, recovery, notes=f"{refused} re-sent lines answered 409 after timeouts"
    )
