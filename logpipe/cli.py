"""The ``logpipe`` command: run, check, demo. No logic of its own beyond wiring.

Only click is imported up front, so ``logpipe --help`` answers at once: each
command imports what it uses. ``check`` needs pydantic and the config models;
only ``run``, ``dlq replay`` and ``demo`` load asyncio, the Elasticsearch client
and the pipeline. tests/unit/test_cli_imports.py keeps it that way.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from logpipe.config import PipelineConfig
    from logpipe.pipeline import Pipeline, RunReport


def _load(pipeline: str) -> PipelineConfig:
    from logpipe.config import ConfigError, load_config

    try:
        return load_config(pipeline)
    except ConfigError as exc:
        click.echo(f"{pipeline}: invalid pipeline ({len(exc.problems)} problems):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


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
def run(pipeline: str, once: bool, timeout: float, log_level: str) -> None:
    """Run PIPELINE as a sidecar (or once, with --once).

    Exit codes: 0 done; 1 something was not delivered (--once) or the sink
    refused for good; 2 invalid pipeline or unusable data directory.
    """
    # Before the imports (half a second): a SIGTERM while starting (an orchestrator
    # scaling down at once) is then a clean stop, not death by the signal.
    early = _capture_signals()
    import asyncio

    from logpipe.logs import setup_logging
    from logpipe.pipeline import Pipeline

    setup_logging(log_level)
    config = _load(pipeline)
    try:
        runner = Pipeline(config)
    except OSError as exc:
        click.echo(f"{pipeline}: cannot use data_dir {config.data_dir}: {exc.strerror}", err=True)
        sys.exit(2)
    _tune_gc()
    report = asyncio.run(_run(runner, once, timeout, early))
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


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a pipeline's workload.

    Events are trees of small dicts with no reference cycles, freed by reference
    counting; but every young-generation collection walks the thousands of events
    held in the memory budget. With the default thresholds that walking cost about
    a third of logpipe's CPU (bench/RESULTS.md, 2026-11-27). Freeze what start-up
    allocated and collect less often; memory stays bounded by the budget.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _capture_signals() -> list[int]:
    """Record SIGTERM/SIGINT until the event loop takes them over; return the record."""
    caught: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    return caught


async def _run(
    pipeline: Pipeline, once: bool, timeout: float, early: list[int] | None = None
) -> RunReport:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if early:
        stop.set()  # asked to stop while starting
    if not once:
        return await pipeline.run_forever(stop)
    # --once stops early on a signal too; its shutdown still saves checkpoints.
    task = asyncio.create_task(pipeline.run_once(timeout))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return pipeline.interrupted_report()
    return task.result()


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
