"""What the ``logpipe`` command loads before it does anything.

``logpipe --help`` and ``logpipe check`` must answer quickly, so the CLI imports
its heavy dependencies inside the commands that use them. These tests look at
``sys.modules`` in a fresh interpreter: structural, so they do not flake on a
busy machine the way a timing test would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from logpipe.cli import main
args = sys.argv[1:]
if args:
    main(args, prog_name="logpipe", standalone_mode=False)
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded_after(*args: str) -> set[str]:
    """Module names loaded by a fresh interpreter running ``logpipe ARGS`` in-process."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    names: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(names)


def within(loaded: set[str], packages: set[str]) -> set[str]:
    """The loaded modules that are one of ``packages`` or inside one."""
    return {name for name in loaded for p in packages if name == p or name.startswith(f"{p}.")}


RUNTIME = {"elasticsearch", "elastic_transport", "aiohttp", "aiosmtplib", "asyncinotify"}
HOT_PATH = {"logpipe.pipeline", "logpipe.sinks", "logpipe.sources", "logpipe.alerts"}


def test_importing_the_cli_loads_no_heavy_dependencies() -> None:
    loaded = loaded_after()
    assert within(loaded, {"pydantic", "asyncio", "yaml", "orjson", *RUNTIME}) == set()
    assert within(loaded, {"logpipe"}) == {"logpipe", "logpipe.cli"}


def test_help_loads_no_heavy_dependencies() -> None:
    loaded = loaded_after("--help")
    assert within(loaded, {"pydantic", "asyncio", *RUNTIME}) == set()


def test_check_loads_only_what_validation_needs() -> None:
    loaded = loaded_after("check", "pipelines/erp.yml")
    assert {"pydantic", "logpipe.config"} <= loaded
    assert within(loaded, {"asyncio", *RUNTIME, *HOT_PATH}) == set()


def test_a_pipeline_without_workers_loads_none_of_their_machinery(tmp_path: Path) -> None:
    probe = (
        "import json, sys\n"
        "from logpipe.config import load_config\n"
        "from logpipe.pipeline import Pipeline\n"
        f"config = load_config('pipelines/erp.yml', {{'LOGPIPE_DATA_DIR': '{tmp_path}'}})\n"
        "Pipeline(config, {})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "logpipe.pipeline" in loaded
    assert within(loaded, {"logpipe.workers"}) == set()


async def test_a_signal_caught_while_starting_stops_the_run_at_once() -> None:
    # Regression: SIGTERM during the half second of imports killed `logpipe run`
    # (exit -15) instead of stopping it; the fault suite's last restart caught it.
    import signal

    from logpipe import runner

    class Sidecar:
        async def run_forever(self, stop: asyncio.Event) -> bool:
            return stop.is_set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        early = runner.capture_signals()
        signal.raise_signal(signal.SIGTERM)  # handled: recorded, not fatal
        assert early == [signal.SIGTERM]
        assert await runner.run_with_extras(Sidecar(), once=False, timeout=1.0, early=early) is True  # type: ignore[arg-type]
        assert await runner.run_with_extras(Sidecar(), once=False, timeout=1.0, early=[]) is False  # type: ignore[arg-type]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
