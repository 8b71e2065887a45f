"""How long do logpipe's quick commands take to start? Wall time of ``--help`` and ``check``.

    .venv/bin/python bench/startup.py [--runs 7] [--no-record]

Each command runs ``--runs`` times (after one untimed warm-up run, which
leaves the page cache and the ``.pyc`` files warm), the commands taking turns
in each round, every run through bench/measure.py (its wall time, user + sys
CPU and peak RSS, from ``os.wait4``):

- ``python -c pass``: the interpreter alone, the floor;
- ``python -m logpipe --help``;
- ``logpipe --help`` and ``logpipe check pipelines/erp.yml``: the console
  script next to this interpreter (``python -m logpipe`` if there is none).

Then one ``python -X importtime`` run of ``check`` lists the imports that cost
the most. Prints a markdown section and appends it to bench/RESULTS.md
(unless ``--no-record``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Spread, machine, publish
from sidecar import LoadWatch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PIPELINE = REPO / "pipelines" / "erp.yml"
TARGET = 0.5  # seconds
_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def logpipe_command() -> tuple[list[str], str]:
    """The venv's ``logpipe`` console script, else ``python -m logpipe``; and its label."""
    script = Path(sys.executable).parent / "logpipe"
    if script.exists():
        return [str(script)], "logpipe"
    return [sys.executable, "-m", "logpipe"], "python -m logpipe"


def commands() -> dict[str, list[str]]:
    """Label -> argv of every command measured."""
    logpipe, name = logpipe_command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m logpipe --help": [sys.executable, "-m", "logpipe", "--help"],
        f"{name} --help": [*logpipe, "--help"],
        f"{name} check pipelines/erp.yml": [*logpipe, "check", str(PIPELINE)],
    }


def measure(argv: list[str], workdir: Path) -> dict[str, float]:
    """One run through bench/measure.py: wall, cpu, max_rss_kib (and code, checked)."""
    result = workdir / "usage.json"
    launcher = [sys.executable, str(BENCH / "measure.py"), str(result), "--"]
    subprocess.run(
        [*launcher, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        check=True,
    )
    usage: dict[str, float] = json.loads(result.read_text())
    if usage["code"] != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {usage['code']}")
    return usage


def import_costs(argv: list[str], top: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """Total import time of ``argv`` (a ``python ...`` command), and where it goes.

    From ``-X importtime``: each module's own (self) time, summed per top-level
    package (``pydantic.main`` counts to ``pydantic``), the ``top`` costliest
    packages first, in seconds.
    """
    run = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    per_package: dict[str, float] = {}
    for found in (_IMPORT.match(line) for line in run.stderr.splitlines()):
        if found:
            package = found[4].split(".")[0]
            per_package[package] = per_package.get(package, 0.0) + int(found[1]) / 1e6
    ranked = sorted(per_package.items(), key=lambda item: -item[1])
    return sum(per_package.values()), ranked[:top]


def section(
    command: str,
    runs: int,
    timings: dict[str, list[dict[str, float]]],
    imports: tuple[float, list[tuple[str, float]]],
    load: str,
) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "| command | wall s | CPU s | peak RSS MiB | < 0.5 s |",
        "|---|---:|---:|---:|---|",
    ]
    for label, usages in timings.items():
        wall = Spread.of([u["wall"] for u in usages])
        cpu = Spread.of([u["cpu"] for u in usages])
        rss = Spread.of([u["max_rss_kib"] / 1024 for u in usages])
        meets = "—" if "pass" in label else ("yes" if wall.median < TARGET else "**no**")
        lines.append(
            f"| `{label}` | {wall.cell('.3f')} | {cpu.cell('.3f')} | {rss.cell('.0f')} | {meets} |"
        )
    total, top = imports
    costs = ", ".join(f"`{name}` {cum * 1000:.0f} ms" for name, cum in top)
    notes = [
        f"{runs} timed runs per command after one warm-up, commands taking turns; "
        "medians (min..max); through bench/measure.py (wall from spawn to exit)",
        f"`python -X importtime -m logpipe check pipelines/erp.yml`: "
        f"imports {total * 1000:.0f} ms in all; by package (own time of its modules): "
        f"{costs}",
        f"target: < {TARGET} s wall",
        load,
    ]
    extra = "".join(f"- {n}\n" for n in notes)
    return (
        f"## {stamp} — start-up (bench/startup.py)\n\n{machine()}\n- command: `{command}`\n"
        f"{extra}\n" + "\n".join(lines) + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    todo = commands()
    load = LoadWatch()
    timings: dict[str, list[dict[str, float]]] = {label: [] for label in todo}
    with tempfile.TemporaryDirectory(prefix="logpipe-startup-") as tmp:
        for argv_ in todo.values():
            measure(argv_, Path(tmp))  # warm-up
        for i in range(args.runs):
            order = list(todo) if i % 2 == 0 else list(todo)[::-1]
            for label in order:
                timings[label].append(measure(todo[label], Path(tmp)))
    for label, usages in timings.items():
        print(f"  {label}: median {Spread.of([u['wall'] for u in usages]).cell('.3f')} s")
    imports = import_costs([sys.executable, "-m", "logpipe", "check", str(PIPELINE)])
    command = "python bench/startup.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(command.strip(), args.runs, timings, imports, load.note())
    publish(text, args.results, record=not args.no_record)


if __name__ == "__main__":
    main()
