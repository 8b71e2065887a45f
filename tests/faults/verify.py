"""The verdict: what Elasticsearch (and the dead-letter file) holds against what was written.

noida-db rebuilds its view of an index on every read and holds bulk writes
meanwhile, so the verifier reads sparingly: ``_count`` at most once a second
while waiting, then one terms aggregation over ``app.seq`` and one search for
the documents without it (lines that did not parse carry their number at the
start of ``message``; a document cut down to a safe form after a mapping
conflict carries it in ``logpipe.conflicts``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from tests.faults.harness import SCALE, LogpipeProcess

_SEQ_IN_TEXT = re.compile(r'^\ufeff?(?:\{"seq":\s*|seq=)(\d+)')
_SEQ_IN_JSON = re.compile(r'\\?"seq\\?":\s*(\d+)')


def seq_of(source: Mapping[str, Any]) -> int | None:
    """The sequence number of an indexed (or dead-lettered) document, whatever its shape."""
    app = source.get("app")
    if isinstance(app, dict) and isinstance(app.get("seq"), int):
        return int(app["seq"])
    message = source.get("message")
    if isinstance(message, str):
        match = _SEQ_IN_TEXT.match(message[:200])
        if match:
            return int(match[1])
    # A document cut down to a safe form after a mapping conflict keeps the
    # original as JSON text under logpipe.conflicts.
    conflicts = (source.get("logpipe") or {}).get("conflicts")
    if conflicts is not None:
        match = _SEQ_IN_JSON.search(json.dumps(conflicts))
        if match:
            return int(match[1])
    return None


@dataclass(frozen=True)
class Delivery:
    """The verdict on one scenario: what was written against what Elasticsearch holds."""

    scenario: str
    written: int
    indexed: int  # distinct written lines found in Elasticsearch
    dead_lettered: int  # distinct written lines found only in the dead-letter file
    lost: int  # written, but neither indexed nor dead-lettered
    duplicated: int  # lines delivered more than once (documents + dead letters)
    unattributed: int  # documents carrying no known sequence number
    recovery_seconds: float | None
    peak_rss_mib: float | None
    lost_sample: list[int] = field(default_factory=list)
    duplicated_sample: list[int] = field(default_factory=list)
    notes: str = ""

    def __str__(self) -> str:
        text = (
            f"{self.scenario}: written={self.written} indexed={self.indexed} "
            f"dead_lettered={self.dead_lettered} lost={self.lost} "
            f"duplicated={self.duplicated} unattributed={self.unattributed} "
            f"recovery_s={_fmt(self.recovery_seconds)} peak_rss_mib={_fmt(self.peak_rss_mib)}"
        )
        if self.lost_sample:
            text += f" lost e.g. {self.lost_sample}"
        if self.duplicated_sample:
            text += f" duplicated e.g. {self.duplicated_sample}"
        if self.notes:
            text += f" ({self.notes})"
        return text

    def record(self) -> None:
        """Append this result to ``$LOGPIPE_FAULTS_RESULTS`` (one JSON line), if set."""
        target = os.environ.get("LOGPIPE_FAULTS_RESULTS")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**asdict(self), "scale": SCALE, "at": time.time()}) + "\n")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@dataclass
class Indexed:
    """What one read of the index found."""

    seqs: Counter[int]
    special: dict[int, list[dict[str, Any]]]  # documents without app.seq, by seq
    unattributed: int


class Verifier:
    """Reads the scenario's indices and dead letters, sparingly."""

    def __init__(self, es_url: str, index_prefix: str, data_dir: Path) -> None:
        self.client = Elasticsearch(es_url, request_timeout=120)
        self.pattern = f"{index_prefix}-*"
        self.data_dir = data_dir

    def close(self) -> None:
        self.client.close()

    def count_tagged(self, tag: str) -> int:
        self.client.indices.refresh(index=self.pattern, allow_no_indices=True)
        body = self.client.count(
            index=self.pattern, allow_no_indices=True, query={"term": {"tags": tag}}
        )
        return int(body["count"])

    def drop_indices(self) -> None:
        """Delete the scenario's indices (best effort): a smaller server is a faster one."""
        with contextlib.suppress(Exception):
            self.client.indices.delete(index=self.pattern, allow_no_indices=True)

    def count(self) -> int:
        self.client.indices.refresh(index=self.pattern, allow_no_indices=True)
        body = self.client.count(index=self.pattern, allow_no_indices=True)
        return int(body["count"])

    def wait_for(
        self,
        expected: int,
        timeout: float = 60.0,
        since: float | None = None,
        running: Iterable[LogpipeProcess] = (),
    ) -> float:
        """Seconds from ``since`` (default: now) until ``expected`` documents are searchable.

        Polls once a second, less often for big indices (every ``expected / 10000``
        seconds, at most 10): each read makes noida-db rebuild its view of the
        index, 1-4 s at 100k documents, and hold bulk writes meanwhile. Raises
        TimeoutError on timeout, naming the count, and AssertionError as soon as
        one of the ``running`` processes has died.
        """
        interval = min(10.0, max(1.0, expected / 10000))
        start = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for process in running:
                process.assert_running()
            have = self.count()
            if have >= expected:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise TimeoutError(f"{have}/{expected} documents after {timeout}s")
            time.sleep(interval)

    def wait_quietly(
        self,
        expected: int,
        timeout: float,
        since: float | None = None,
        running: Iterable[LogpipeProcess] = (),
    ) -> float | None:
        """:meth:`wait_for`, returning None on timeout (the verdict then says what is missing)."""
        try:
            return self.wait_for(expected, timeout, since, running)
        except TimeoutError:
            return None

    def indexed(self, expected_size: int) -> Indexed:
        """One terms aggregation over ``app.seq`` and one search for the documents without it."""
        self.client.indices.refresh(index=self.pattern, allow_no_indices=True)
        agg = self.client.search(
            index=self.pattern,
            size=0,
            allow_no_indices=True,
            aggs={"seq": {"terms": {"field": "app.seq", "size": expected_size + 1000}}},
        )
        seqs: Counter[int] = Counter()
        aggregations = agg.body.get("aggregations") or {}
        buckets = aggregations.get("seq", {}).get("buckets", [])
        assert aggregations.get("seq", {}).get("sum_other_doc_count", 0) == 0
        for bucket in buckets:
            seqs[int(bucket["key"])] += int(bucket["doc_count"])
        rest = self.client.search(
            index=self.pattern,
            size=10000,
            allow_no_indices=True,
            query={"bool": {"must_not": {"exists": {"field": "app.seq"}}}},
            source_includes=["message", "tags", "logpipe", "error.message", "log.offset"],
        )
        special: dict[int, list[dict[str, Any]]] = {}
        unattributed = 0
        for hit in rest["hits"]["hits"]:
            source = hit["_source"]
            seq = seq_of(source)
            if seq is None:
                unattributed += 1
                continue
            seqs[seq] += 1
            special.setdefault(seq, []).append(source)
        return Indexed(seqs, special, unattributed)

    def dead_letters(self) -> Counter[int]:
        path = self.data_dir / "dead_letters.ndjson"
        found: Counter[int] = Counter()
        if not path.exists():
            return found
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                document = json.loads(raw).get("document") or {}
                seq = seq_of(document)
                if seq is not None:
                    found[seq] += 1
        return found

    def check(
        self,
        scenario: str,
        expected: set[int],
        *,
        recovery_seconds: float | None = None,
        peak_rss_mib: float | None = None,
        notes: str = "",
    ) -> tuple[Delivery, Indexed]:
        """Compare what was written with what was delivered."""
        found = self.indexed(len(expected))
        dead = self.dead_letters()
        delivered = found.seqs + dead
        lost = sorted(expected - set(delivered))
        duplicated = sorted(s for s, n in delivered.items() if n > 1)
        stray = sum(n for s, n in found.seqs.items() if s not in expected)
        indexed = len(expected & set(found.seqs))
        verdict = Delivery(
            scenario=scenario,
            written=len(expected),
            indexed=indexed,
            dead_lettered=len((expected & set(dead)) - set(found.seqs)),
            lost=len(lost),
            duplicated=len(duplicated),
            unattributed=found.unattributed + stray,
            recovery_seconds=recovery_seconds,
            peak_rss_mib=peak_rss_mib,
            lost_sample=_sample(lost),
            duplicated_sample=_sample(duplicated),
            notes=notes,
        )
        return verdict, found


def _sample(values: list[int], size: int = 8) -> list[int]:
    return values[:size]
