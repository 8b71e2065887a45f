"""The harness checks itself: the proxy's bulk surgery and the verifier's arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from logpipe.devservers.noida import NoidaServer
from tests.faults.harness import LogWriter
from tests.faults.http11 import splice_rejections, split_bulk
from tests.faults.proxy import FaultProxy
from tests.faults.verify import Verifier, seq_of

pytestmark = pytest.mark.integration


def test_rejected_items_are_cut_from_the_body_and_answered_429_in_place() -> None:
    body = (
        b'{"create":{"_index":"i","_id":"a"}}\n{"n":1}\n'
        b'{"delete":{"_index":"i","_id":"b"}}\n'
        b'{"create":{"_index":"i","_id":"c"}}\n{"n":3}\n'
    )
    items = split_bulk(body)
    assert len(items) == 3 and items[1] == b'{"delete":{"_index":"i","_id":"b"}}\n'
    answered = {"took": 1, "errors": False, "items": [{"delete": {"_id": "b", "status": 200}}]}
    merged = json.loads(splice_rejections(answered, items, [True, False, True]))
    assert merged["errors"] is True
    assert [next(iter(i.values()))["status"] for i in merged["items"]] == [429, 200, 429]
    assert merged["items"][2]["create"]["_id"] == "c"


def test_every_kind_of_line_gives_back_its_sequence_number() -> None:
    writer = LogWriter()
    line = json.loads(writer.app_line(41))
    assert line["seq"] == 41 and set(line) >= {"timestamp", "level", "logger", "message"}
    assert seq_of({"app": {"seq": 41}}) == 41
    assert seq_of({"message": '{"seq": 42, "message": "xxxx'}) == 42
    assert seq_of({"message": "seq=43 \x00\x00"}) == 43
    assert seq_of({"message": "\ufeff" + '{"seq": 44}'}) == 44
    assert seq_of({"logpipe": {"conflicts": {"value": '{"app": {"seq": 45}}'}}}) == 45
    assert seq_of({"message": "no number here"}) is None


def test_verifier_counts_lost_and_duplicated_lines(tmp_path: Path) -> None:
    with NoidaServer(tmp_path / "noida") as server, FaultProxy(server.url) as proxy:
        client = Elasticsearch(proxy.url, request_timeout=30)
        operations: list[dict[str, object]] = []
        for doc_id, seq in (("a", 0), ("b", 1), ("c", 1)):
            operations += [{"create": {"_index": "v-logs-x", "_id": doc_id}}, {"app": {"seq": seq}}]
        client.bulk(operations=operations)
        client.close()
        verifier = Verifier(server.url, "v-logs", tmp_path)
        verdict, _ = verifier.check("self-test", {0, 1, 2})
        verifier.close()
    assert (verdict.lost, verdict.duplicated, verdict.indexed) == (1, 1, 2)
    assert verdict.lost_sample == [2] and verdict.duplicated_sample == [1]
