"""Upgrading logpipe in place across the document id change (blake2b ids to scheme 2).

An older logpipe has indexed every line of ``app.log`` under blake2b ids, but
its checkpoint (written, as it always was, without ``ids``) stops halfway: the
lines after it were sent, their acknowledgement not yet saved, when the
sidecar was replaced. The new version re-reads them and must find them
already there (409), not index them again under new ids; files it sees for
the first time get the new ids. Real noida-db server, real pipeline run.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from logpipe.enrich.static import Enricher, static_fields
from logpipe.event import Event
from logpipe.pipeline import Pipeline, RunReport
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import (
    IndexNamer,
    bulk_body,
    document_id,
    index_template,
    legacy_document_id,
)
from tests.integration.helpers import (
    EsTarget,
    app_line,
    es_client,
    file_lines,
    hits,
    load,
    search,
    write_pipeline,
)

pytestmark = pytest.mark.integration

OLD_LINES = 12
CHECKPOINTED = 5  # lines the old version's checkpoint covers; the other 7 are re-read
NEW_LINES = 4


def index_like_an_old_logpipe(
    pipeline_file: Path, env: dict[str, str], prefix: str, lines: list[Event]
) -> None:
    """Index ``lines`` as a logpipe before id scheme 2 did: same documents, blake2b ids."""
    config = load(pipeline_file, env)
    processor = LineProcessor(
        config.inputs["application"],
        Enricher(static_fields(config.enrich, env)),
        IndexNamer(prefix),
    )
    old_ids = [legacy_document_id(line) for line in lines]
    events = [
        Event.of(event, event.index, old_id, event.source)
        for event, old_id in zip(processor.process(lines), old_ids, strict=True)
    ]
    client = es_client(env)
    client.indices.put_index_template(name=prefix, **index_template(prefix))
    operations = [json.loads(part) for part in bulk_body(events).splitlines()]
    response = client.bulk(operations=operations, refresh=True)
    assert not response["errors"], response


def write_old_checkpoint(data_dir: Path, line: Event, extra: dict[str, object]) -> None:
    """The checkpoint an older logpipe wrote: acknowledged up to the end of ``line``."""
    entry = {"path": line.path, "offset": line.end, "generation": 0, "updated": time.time()}
    data_dir.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "files": {line.file_id: entry | extra}}
    (data_dir / "checkpoints.json").write_text(json.dumps(doc))


def upgrade_and_run(
    tmp_path: Path, log_dir: Path, es: EsTarget, prefix: str, checkpoint_extra: dict[str, object]
) -> tuple[RunReport, list[Event], list[Event]]:
    """Old version's index and checkpoint, a new file next to it, then one run of this one."""
    with (log_dir / "app.log").open("w") as fh:
        for i in range(OLD_LINES):
            fh.write(app_line(f"2026-11-27T08:00:{i:02d}", "INFO", f"before upgrade {i}"))
    pipeline_file = write_pipeline(tmp_path, log_dir, prefix)
    old = file_lines(log_dir / "app.log", "application")
    index_like_an_old_logpipe(pipeline_file, es.env, prefix, old)
    write_old_checkpoint(tmp_path / "data", old[CHECKPOINTED - 1], checkpoint_extra)
    with (log_dir / "app2.log").open("w") as fh:
        for i in range(NEW_LINES):
            fh.write(app_line(f"2026-11-27T08:01:{i:02d}", "INFO", f"after upgrade {i}"))
    new = file_lines(log_dir / "app2.log", "application")
    report = asyncio.run(Pipeline(load(pipeline_file, es.env), es.env).run_once(timeout=120))
    assert report.problems == []
    return report, old, new


def test_upgrade_from_blake2b_ids_rereads_without_duplicates(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    report, old, new = upgrade_and_run(tmp_path, log_dir, es_server, index_prefix, {})
    reread = OLD_LINES - CHECKPOINTED
    assert (report.read, report.duplicates, report.created) == (
        reread + NEW_LINES,
        reread,
        NEW_LINES,
    )

    result = search(es_client(es_server.env), index_prefix)
    assert result["hits"]["total"]["value"] == OLD_LINES + NEW_LINES  # nothing twice
    ids_by_file: dict[str, set[str]] = {}
    for hit in hits(result):
        ids_by_file.setdefault(hit["_source"]["log"]["file"]["path"], set()).add(hit["_id"])
    assert ids_by_file[old[0].path] == {legacy_document_id(line) for line in old}
    # The file first seen after the upgrade has scheme-2 ids: one shared prefix.
    assert ids_by_file[new[0].path] == {document_id(line) for line in new}
    assert len({doc_id[:12] for doc_id in ids_by_file[new[0].path]}) == 1

    # The file keeps its scheme in the checkpoint until its generation ends.
    saved = json.loads((tmp_path / "data" / "checkpoints.json").read_bytes())["files"]
    assert saved[old[0].file_id]["ids"] == 1 and saved[new[0].file_id]["ids"] == 2


def test_checkpoint_claiming_new_ids_would_index_the_reread_lines_twice(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    # The control: the same upgrade, but a checkpoint that says the old file
    # was shipped with scheme 2. Its re-read lines then get new ids, and the
    # server has them twice: what the ``ids`` of an old checkpoint prevents.
    report, _, _ = upgrade_and_run(tmp_path, log_dir, es_server, index_prefix, {"ids": 2})
    reread = OLD_LINES - CHECKPOINTED
    assert (report.duplicates, report.created) == (0, reread + NEW_LINES)
    total = search(es_client(es_server.env), index_prefix)["hits"]["total"]["value"]
    assert total == OLD_LINES + reread + NEW_LINES
