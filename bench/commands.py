"""What the benchmarks run: the pipeline file, logpipe's command line, the baseline's.

Shared by run.py, split.py and instructions.py, so that each measures the same
commands over the same pipeline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import orjson
from servers import BenchError, request
from workload import Workload

from logpipe.sinks.elasticsearch.encode import index_template

BENCH = Path(__file__).resolve().parent
BATCH = 2000  # logpipe's default batch.max_events; the baseline and ceiling use the same
# logpipe's summary line on stderr at the end of a --once run.
SUMMARY = re.compile(r"read (\d+) lines: (\d+) indexed")

_INPUTS = {
    "application": ("app_log", "app_json", "erp.application"),
    "access": ("access_log", "nginx", "nginx.access"),
}


def pipeline_yaml(
    workload: Workload,
    url: str,
    data_dir: Path,
    prefix: str,
    workers: int = 0,
    inputs: tuple[str, ...] = tuple(_INPUTS),
) -> str:
    """A pipeline like pipelines/erp.yml, without alerts, reading the workload (or some inputs)."""
    blocks = "".join(
        f"""\
  {name}:
    paths: ["{getattr(workload, _INPUTS[name][0])}"]
    parser: {_INPUTS[name][1]}
    dataset: {_INPUTS[name][2]}
"""
        for name in inputs
    )
    return f"""\
workers: {workers}
data_dir: {data_dir}
inputs:
{blocks}enrich:
  fields:
    service.environment: production
    cloud.region: asia-southeast
output:
  elasticsearch:
    hosts: ["{url}"]
    index_prefix: {prefix}
"""


def logpipe_argv(pipeline: Path, profile_to: Path | None = None) -> list[str]:
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    return [sys.executable, *profiler, "-m", "logpipe", "run", str(pipeline), "--once"]


def baseline_argv(workload: Workload, url: str, prefix: str) -> list[str]:
    """bench/baseline.py over ``workload`` into ``url``, with logpipe's batch size."""
    files = ["--app", str(workload.app_log), "--access", str(workload.access_log)]
    target = ["--url", url, "--prefix", prefix, "--batch", str(BATCH)]
    return [sys.executable, str(BENCH / "baseline.py"), *files, *target]


def install_template(url: str, prefix: str) -> None:
    """The mappings logpipe installs for itself, for ``prefix`` (the baseline needs them too)."""
    status, data = request(
        url, "PUT", f"/_index_template/{prefix}", orjson.dumps(index_template(prefix))
    )
    if status != 200:
        raise BenchError(f"index template refused: {status} {data[:300]!r}")
