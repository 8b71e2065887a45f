"""``logpipe demo``: the whole job on the sample logs, against real local servers.

Starts noida-db (Elasticsearch-compatible) and an SMTP catcher on free loopback
ports, runs the pipeline once over ``sample_logs/``, then prints what landed:
documents per daily index, counts by level and by HTTP status, and the e-mails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import click

from logpipe.config import ConfigError, load_config
from logpipe.devservers.noida import NoidaServer
from logpipe.devservers.smtp import RecordingSMTP
from logpipe.pipeline import Pipeline, RunReport


def _get(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.load(resp)


def _terms(es_url: str, pattern: str, field: str) -> list[tuple[Any, int]]:
    result = _get(
        f"{es_url}/{pattern}/_search",
        {"size": 0, "aggs": {"a": {"terms": {"field": field, "size": 50}}}},
    )
    return [(b["key"], b["doc_count"]) for b in result["aggregations"]["a"]["buckets"]]


def _print_landed(es_url: str, prefix: str, smtp: RecordingSMTP, report: RunReport) -> None:
    pattern = f"{prefix}-*"
    _get(f"{es_url}/{pattern}/_refresh", {})
    click.echo(
        f"\nlogpipe read {report.read} lines: {report.created} documents indexed, "
        f"{report.duplicates} already there, {report.dead_lettered} dead-lettered."
    )
    click.echo("\nDocuments per daily index:")
    for row in sorted(
        _get(f"{es_url}/_cat/indices/{pattern}?format=json"), key=lambda r: r["index"]
    ):
        count = _get(f"{es_url}/{row['index']}/_count")["count"]
        click.echo(f"  {row['index']:<24} {count:>6}")
    click.echo("\nBy log.level (application log):")
    for level, count in _terms(es_url, pattern, "log.level"):
        click.echo(f"  {level:<24} {count:>6}")
    click.echo("\nBy http.response.status_code (access log):")
    for status, count in sorted(_terms(es_url, pattern, "http.response.status_code")):
        click.echo(f"  {status:<24} {count:>6}")
    click.echo("\nTagged (still indexed, whole):")
    for tag, count in _terms(es_url, pattern, "tags"):
        click.echo(f"  {tag:<24} {count:>6}")
    messages = smtp.messages
    click.echo(f"\nE-mails received by the SMTP catcher: {len(messages)}")
    for received in messages:
        parsed = received.parsed()
        click.echo(f"  To: {parsed['To']}  Subject: {parsed['Subject']}")


def run_demo(pipeline_path: Path, samples: Path, *, keep: bool = False) -> int:
    """Run the demo; return the process exit code."""
    if not (samples / "application.log").exists():
        click.echo(f"no sample logs in {samples}/ (run from the repository root)", err=True)
        return 2
    with tempfile.TemporaryDirectory(prefix="logpipe-demo-") as tmp:
        work = Path(tmp)
        with NoidaServer(work / "noida") as es, RecordingSMTP() as smtp:
            env = {
                **os.environ,
                "ES_URL": es.url,
                "SMTP_HOST": smtp.host,
                "SMTP_PORT": str(smtp.port),
                "LOGPIPE_DATA_DIR": str(work / "data"),
                "LOGPIPE_APP_LOG": str((samples / "application.log").resolve()),
                "LOGPIPE_ACCESS_LOG": str((samples / "access.log").resolve()),
            }
            for secret in (
                "ES_API_KEY",
                "ES_USERNAME",
                "ES_PASSWORD",
                "SMTP_USERNAME",
                "SMTP_PASSWORD",
            ):
                env.pop(secret, None)
            try:
                config = load_config(pipeline_path, env)
            except ConfigError as exc:
                click.echo(str(exc), err=True)
                return 2
            click.echo(f"Elasticsearch-compatible server (noida-db): {es.url}")
            click.echo(f"SMTP catcher (aiosmtpd): {smtp.host}:{smtp.port}")
            click.echo(f"Running {pipeline_path} once over {samples}/ ...")
            report = asyncio.run(Pipeline(config, env).run_once(timeout=300))
            _print_landed(es.url, config.output.elasticsearch.index_prefix, smtp, report)
            for problem in report.problems:
                click.echo(f"not delivered: {problem}", err=True)
            if keep:
                click.echo(f"\nServers still running (Elasticsearch at {es.url}); Ctrl-C stops.")
                with contextlib.suppress(KeyboardInterrupt):
                    asyncio.run(asyncio.Event().wait())
            return 1 if report.problems else 0
