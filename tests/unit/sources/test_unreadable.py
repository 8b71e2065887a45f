"""A matched file that cannot be opened is reported (readiness) until it opens or goes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from logpipe.sources import tail
from tests.unit.sources.helpers import MakeTailer


async def test_tailer_reports_a_file_it_cannot_open_until_it_opens(
    logs: Path, make_tailer: MakeTailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = logs / "app.log"
    path.write_text("one\n")
    real_open = os.open

    def refuse(name: Any, flags: int, *args: Any) -> int:
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(name, flags, *args)

    tailer = make_tailer()
    monkeypatch.setattr(tail.os, "open", refuse)
    await tailer.read_available()
    assert tailer.unreadable() == [str(path)]
    monkeypatch.setattr(tail.os, "open", real_open)
    await tailer.read_available()
    assert tailer.unreadable() == []
