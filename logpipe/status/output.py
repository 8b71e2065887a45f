"""``logpipe status`` output: a :class:`~logpipe.status.model.Status` as a table or as JSON.

All pure: values in, lines or plain JSON values out, with ``now`` passed in.
:func:`table`, :func:`duration` and :func:`human_bytes` also draw ``logpipe top``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from logpipe.status.model import Status


def to_json(status: Status, now: float) -> dict[str, Any]:
    """The status as plain JSON values (``--json``); times are unix seconds."""
    alerts = status.alerts
    return {
        "pipeline": status.pipeline,
        "data_dir": status.data_dir,
        "checkpoints": status.checkpoints,
        "problem": status.problem,
        "taken_at": now,
        "files": [
            {
                "input": f.input,
                "path": f.path,
                "read_as": f.read_as,
                "state": f.state,
                "file_id": f.file_id,
                "generation": f.generation,
                "offset": f.offset,
                "size": f.size,
                "lag_bytes": f.lag_bytes,
                "acked_at": f.acked_at,
                "seconds_since_ack": _since(f.acked_at, now),
            }
            for f in status.files
        ],
        "dead_letters": {
            "path": status.dead_letters.path,
            "count": status.dead_letters.count,
            "reasons": [{"reason": r, "count": n} for r, n in status.dead_letters.reasons],
        },
        "alerts": {
            "configured": alerts.configured,
            "pending": alerts.pending,
            "failed": alerts.failed,
            "oldest_pending_at": alerts.oldest_pending_at,
            "oldest_pending_age_seconds": _since(alerts.oldest_pending_at, now),
        },
    }


_COLUMNS = ("INPUT", "STATE", "OFFSET", "SIZE", "LAG", "LAST ACK", "PATH")


def render(status: Status, now: float) -> list[str]:
    """The status as a table and a few lines, for people."""
    checkpoints = status.checkpoints or "none yet"
    lines = [f"pipeline {status.pipeline}: data dir {status.data_dir}, checkpoints {checkpoints}"]
    if status.problem:
        lines.append(f"WARNING: {status.problem}")
    rows = [
        (
            f.input or "-",
            f.state,
            _bytes(f.offset),
            _bytes(f.size),
            _bytes(f.lag_bytes),
            _ago(f.acked_at, now),
            f.path + (f" (was {f.read_as})" if f.read_as else ""),
        )
        for f in status.files
    ]
    lines.append("")
    lines.extend(table(_COLUMNS, rows, right={2, 3, 4}) if rows else ["no input files found"])
    lines.append("")
    dead = status.dead_letters
    lines.append(f"dead letters: {dead.count} in {dead.path}")
    lines.extend(f"  {n:>7}  {reason}" for reason, n in dead.reasons)
    alerts = status.alerts
    if not alerts.configured and not alerts.pending and not alerts.failed:
        lines.append("alerts: not configured")
    else:
        oldest = ""
        if alerts.oldest_pending_at is not None:
            oldest = f", oldest queued {_ago(alerts.oldest_pending_at, now)}"
        lines.append(f"alerts: {alerts.pending} e-mails pending{oldest}; {alerts.failed} refused")
    return lines


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()
) -> list[str]:
    """Columns padded to their widest cell; those in ``right`` (numbers) right-aligned. Pure."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _since(moment: float | None, now: float) -> float | None:
    return None if moment is None else round(max(now - moment, 0.0), 3)


def _ago(moment: float | None, now: float) -> str:
    return "never" if moment is None else f"{duration(max(now - moment, 0.0))} ago"


def duration(seconds: float) -> str:
    """``42s``, ``4m12s``, ``2h05m``, ``3d04h``: short and still precise enough. Pure."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return human_bytes(n)


def human_bytes(n: float) -> str:
    """``512 B``, ``1.5 KiB``, ``12.0 MiB``. Pure."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"
