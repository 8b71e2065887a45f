"""The ``logpipe`` command: run, check, dlq, status, top, demo, kibana-import. Wiring only.

Only click is imported up front, so ``logpipe --help`` answers at once: each
command imports what it uses. ``check`` needs pydantic and the config models;
only ``run``, ``dlq replay`` and ``demo`` load asyncio, the Elasticsearch client
and the pipeline. tests/unit/test_cli_imports.py keeps it that way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from logpipe.config import PipelineConfig


def _load(pipeline: str) -> PipelineConfig:
    from logpipe.config import ConfigError, load_config
    from logpipe.logs import hide_secrets

    try:
        config = load_config(pipeline)
    except ConfigError as exc:
        click.echo(f"{pipeline}: invalid pipeline ({len(exc.problems)} problems):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    # Every command that loads a pipeline logs nothing of its secrets from here on.
    hide_secrets(config)
    return config


@click.group()
@click.version_option(package_name="logpipe")
def main() -> None:
    """logpipe: tail logs, parse them to ECS, index into Elasticsearch, e-mail errors."""


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--once", is_flag=True, help="Read every input to its end, deliver, exit.")
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="With --once: give up (exit 1) if not delivered within this many seconds.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--monitoring",
    is_flag=True,
    help="With --once: serve /metrics and /health on monitoring.address too.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="With --once: show progress on stderr (default): a bar on a terminal, "
    "otherwise a line every 10 s.",
)
def run(
    pipeline: str,
    once: bool,
    timeout: float,
    log_level: str,
    monitoring: bool,
    progress: bool | None,
) -> None:
    """Run PIPELINE as a sidecar (or once, with --once).

    Exit codes: 0 done; 1 something was not delivered (--once) or the sink
    refused for good; 2 invalid pipeline, unusable data directory, or the
    monitoring address cannot be listened on.
    """
    # Before the imports (half a second): a SIGTERM while starting (an orchestrator
    # scaling down at once) is then a clean stop, not death by the signal.
    from logpipe.runner import capture_signals

    early = capture_signals()
    import asyncio

    from logpipe.errors import LogpipeError
    from logpipe.logs import setup_logging
    from logpipe.pipeline import Pipeline
    from logpipe.runner import run_with_extras, tune_gc

    setup_logging(log_level)
    config = _load(pipeline)
    try:
        runner = Pipeline(config)
    except OSError as exc:
        click.echo(f"{pipeline}: cannot use data_dir {config.data_dir}: {exc.strerror}", err=True)
        sys.exit(2)
    tune_gc()
    address = config.monitoring.address if (monitoring or not once) else None
    if progress is None:
        progress = once
    try:
        report = asyncio.run(
            run_with_extras(runner, once, timeout, early, address, progress and once)
        )
    except LogpipeError as exc:  # the monitoring address is taken, say
        click.echo(f"{pipeline}: {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"read {report.read} lines: {report.created} indexed, {report.duplicates} "
        f"already indexed, {report.dead_lettered} dead-lettered; "
        f"{report.alerts_sent} alerts sent",
        err=True,
    )
    for problem in report.problems:
        click.echo(f"not delivered: {problem}", err=True)
    if report.fatal or (once and report.problems):
        sys.exit(1)


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
def check(pipeline: str) -> None:
    """Validate PIPELINE offline; report every problem at once."""
    config = _load(pipeline)
    inputs = ", ".join(f"{name} ({c.parser})" for name, c in config.inputs.items())
    click.echo(
        f"{pipeline}: valid — inputs: {inputs}; "
        f"output: {', '.join(config.output.elasticsearch.hosts)}"
    )


@main.group()
def dlq() -> None:
    """Dead letters: documents Elasticsearch refused even in their safe form."""


@dlq.command("list")
@click.argument("pipeline", type=click.Path(dir_okay=False))
def dlq_list(pipeline: str) -> None:
    """Count PIPELINE's dead letters and show the commonest reasons."""
    from logpipe.dlq import dead_letters, summarize

    config = _load(pipeline)
    count, reasons = summarize(config)
    click.echo(f"{count} dead letters in {dead_letters(config).path}")
    for reason, n in reasons:
        click.echo(f"  {n:>7}  {reason}")


@dlq.command("replay")
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--timeout", type=float, default=600.0, show_default=True)
def dlq_replay(pipeline: str, timeout: float) -> None:
    """Re-send PIPELINE's dead letters (once the cause is fixed); exit 1 if any remain."""
    import asyncio

    from logpipe.dlq import replay
    from logpipe.errors import LogpipeError
    from logpipe.logs import setup_logging

    setup_logging("warning")
    config = _load(pipeline)
    try:
        report = asyncio.run(replay(config, timeout))
    except LogpipeError as exc:
        click.echo(f"replay stopped, dead letters kept for the next replay: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"replayed {report.replayed}: {report.created} indexed, {report.duplicates} already "
        f"there, {report.still_dead} dead-lettered again"
    )
    if report.still_dead:
        sys.exit(1)


@main.command()
@click.option(
    "--pipeline",
    "pipeline_path",
    type=click.Path(dir_okay=False),
    default="pipelines/erp.yml",
    show_default=True,
)
@click.option(
    "--samples", type=click.Path(file_okay=False), default="sample_logs", show_default=True
)
@click.option("--keep", is_flag=True, help="Keep the servers running until Ctrl-C.")
def demo(pipeline_path: str, samples: str, keep: bool) -> None:
    """Run the pipeline over the sample logs against local servers and show what landed."""
    from logpipe.demo import run_demo
    from logpipe.logs import setup_logging

    setup_logging("warning")
    sys.exit(run_demo(Path(pipeline_path), Path(samples), keep=keep))


@main.command("kibana-import")
@click.option(
    "--url", required=True, help="Kibana's base URL, e.g. https://kibana.example.com:5601"
)
@click.option(
    "--file",
    "file_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="NDJSON export to import.  [default: the saved objects bundled with logpipe]",
)
@click.option("--space", default=None, help="Kibana space id.  [default: the default space]")
@click.option("--api-key", envvar="KIBANA_API_KEY", help="API key (base64).  [env: KIBANA_API_KEY]")
@click.option(
    "--username", envvar="KIBANA_USERNAME", help="Basic auth user.  [env: KIBANA_USERNAME]"
)
@click.option(
    "--password", envvar="KIBANA_PASSWORD", help="Basic auth password.  [env: KIBANA_PASSWORD]"
)
@click.option(
    "--ca-cert", type=click.Path(exists=True, dir_okay=False), help="PEM CA for Kibana's TLS."
)
@click.option("--insecure", is_flag=True, help="Do not verify Kibana's TLS certificate.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds.")
def kibana_import(
    url: str,
    file_path: str | None,
    space: str | None,
    api_key: str | None,
    username: str | None,
    password: str | None,
    ca_cert: str | None,
    insecure: bool,
    timeout: float,
) -> None:
    """Import the data view, saved searches and dashboard into Kibana (overwriting).

    Exit codes: 0 every object imported; 1 Kibana unreachable, refused the
    request, or refused some objects (each listed); 2 bad options or file.
    """
    from logpipe.kibana_import import (
        Credentials,
        KibanaImportError,
        auth_headers,
        bundled_objects,
        count_objects,
        import_objects,
        import_url,
        summary,
    )

    data = Path(file_path).read_bytes() if file_path else bundled_objects()
    # Kibana accepts only a file named *.ndjson, whatever the local name.
    filename = f"{Path(file_path).stem if file_path else 'saved-objects'}.ndjson"
    credentials = Credentials(api_key or None, username or None, password or None)
    try:
        import_url(url, space)
        auth_headers(credentials)
    except KibanaImportError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        total = count_objects(data)
    except KibanaImportError as exc:
        click.echo(f"{file_path or 'bundled saved objects'}: {exc}", err=True)
        sys.exit(2)
    if insecure:
        click.echo("warning: Kibana's TLS certificate is not verified (--insecure)", err=True)
    try:
        result = import_objects(
            url,
            data,
            filename=filename,
            space=space,
            credentials=credentials,
            ca_cert=ca_cert,
            insecure=insecure,
            timeout=timeout,
        )
    except KibanaImportError as exc:
        click.echo(f"kibana-import failed: {exc}", err=True)
        sys.exit(1)
    for line in summary(result, total):
        click.echo(line, err=not result.success)
    if not result.success:
        sys.exit(1)


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(pipeline: str, as_json: bool) -> None:
    """Show PIPELINE's files (offset, size, lag, last ack), dead letters and pending alerts.

    Reads the data directory only: works while logpipe runs or not. Exit codes:
    0 shown; 2 invalid pipeline.
    """
    import json
    import time

    from logpipe.status import collect, render, to_json

    config = _load(pipeline)
    now = time.time()
    report = collect(config, pipeline)
    if as_json:
        click.echo(json.dumps(to_json(report, now), indent=2))
    else:
        click.echo("\n".join(render(report, now)))


@main.command()
@click.option(
    "--url",
    default="http://127.0.0.1:9108",
    show_default=True,
    help="The running logpipe's monitoring address (its /metrics).",
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@click.option("--once", is_flag=True, help="Print one snapshot (two scrapes apart) and exit.")
def top(url: str, interval: float, once: bool) -> None:
    """Live view of a running logpipe: rates per component, lag, queue, errors, alerts.

    Exit codes: 0 stopped (Ctrl-C) or --once done; 1 the endpoint is unreachable.
    """
    from logpipe.top import TopError, run_top

    try:
        run_top(url, interval, once=once)
    except TopError as exc:
        click.echo(f"logpipe top: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
