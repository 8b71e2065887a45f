"""Per-line cost of logpipe's two parsers on the bench workload, next to the baseline's.

    python bench/parsers.py [--events N] [--passes K]

Builds N lines of each log in memory (``workload.app_lines`` / ``access_lines``)
and times each parser over all of them, K passes, garbage collector off. Every
pass times the lines in chunks of 1,000, and each chunk keeps its best time over
the passes: on a shared machine a load spike is shorter than a whole pass, so
this is far steadier than the best whole pass. Prints µs per line.

Rows: logpipe's parsers as the pipeline runs them (for nginx: fast path for the
usual line, general code for the rest); the nginx general code alone (what every
line cost before the fast path); the application line's usual-line encoder,
which the pipeline runs for such a line instead of the parser (raw bytes to the
document's JSON, so it includes the encoding the other rows leave out); and the
baseline's ``app_doc`` / ``access_doc``, which do far less (no vhost,
forwarded-for or escape handling; see ``baseline.py``) and take bytes.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from baseline import access_doc, app_doc
from workload import access_lines, app_lines

from logpipe.parsers.app_json import make_app_json_parser, make_usual_encoder
from logpipe.parsers.nginx import parse_nginx, parse_nginx_general

PREFIX = "bench"
CHUNK = 1000

Row = tuple[str, Callable[[Any], object], Sequence[Any]]


def time_chunks(parse: Callable[[Any], object], lines: Sequence[Any]) -> list[float]:
    """Seconds ``parse`` takes for each chunk of ``lines``."""
    times = []
    for start in range(0, len(lines), CHUNK):
        chunk = lines[start : start + CHUNK]
        began = time.perf_counter()
        for line in chunk:
            parse(line)
        times.append(time.perf_counter() - began)
    return times


def per_line(rows: list[Row], passes: int) -> list[float]:
    """µs per line for each row: the sum of each chunk's best time over ``passes``."""
    best = [[float("inf")] * len(range(0, len(lines), CHUNK)) for _, _, lines in rows]
    gc.disable()
    try:
        for _ in range(passes):
            for index, (_, parse, lines) in enumerate(rows):
                times = time_chunks(parse, lines)
                best[index] = [min(pair) for pair in zip(best[index], times, strict=True)]
    finally:
        gc.enable()
    pairs = zip(best, rows, strict=True)
    return [sum(chunks) / len(lines) * 1e6 for chunks, (_, _, lines) in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the parsers per line.")
    parser.add_argument("--events", type=int, default=50_000, help="lines per log")
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    app, access = app_lines(args.events), access_lines(args.events)
    app_raw, access_raw = [line.encode() for line in app], [line.encode() for line in access]
    rows: list[Row] = [
        ("app_json parser", make_app_json_parser(), app),
        ("app_json usual encoder", make_usual_encoder(), app_raw),
        ("baseline app_doc", lambda raw: app_doc(raw, PREFIX), app_raw),
        ("nginx", parse_nginx, access),
        ("nginx general path", parse_nginx_general, access),
        ("baseline access_doc", lambda raw: access_doc(raw, PREFIX), access_raw),
    ]
    width = max(len(name) for name, _, _ in rows)
    for (name, _, _), micros in zip(rows, per_line(rows, args.passes), strict=True):
        print(f"{name:<{width}}  {micros:5.2f} µs/line")


if __name__ == "__main__":
    main()
