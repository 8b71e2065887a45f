"""``logpipe status PIPELINE``: where every input file stands, dead letters, pending alerts.

Two jobs, one module each: :mod:`logpipe.status.model` reads the data
directory and the log files into a :class:`Status` (read only, safe while a
pipeline runs); :mod:`logpipe.status.output` renders it, purely, as a table or
as JSON.
"""

from logpipe.status.model import (
    AlertStatus,
    DeadLetterStatus,
    FileStatus,
    Status,
    alert_status,
    collect,
    file_statuses,
)
from logpipe.status.output import duration, human_bytes, render, table, to_json

__all__ = [
    "AlertStatus",
    "DeadLetterStatus",
    "FileStatus",
    "Status",
    "alert_status",
    "collect",
    "duration",
    "file_statuses",
    "human_bytes",
    "render",
    "table",
    "to_json",
]
