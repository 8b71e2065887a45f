"""What the ``logpipe`` command loads before it does anything.

``logpipe --help`` and ``logpipe check`` must answer quickly, so the CLI imports
its heavy dependencies inside the commands that use them. These tests look at
``sys.modules`` in a fresh interpreter: structural, so they do not flake on a
busy machine the way a timing test would.
"""

from __future__ import annotations

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
