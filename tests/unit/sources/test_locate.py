"""Which input owns a path: glob matching without touching the disk."""

from __future__ import annotations

import pytest

from logpipe.sources.locate import owned


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("/var/log/erp/app.log", ["/var/log/erp/*.log"], True),
        ("/var/log/erp/app.log.1", ["/var/log/erp/*.log"], False),
        ("/var/log/erp/sub/app.log", ["/var/log/erp/*.log"], False),  # * stays in its directory
        ("/var/log/pods/a/b/app.log", ["/var/log/pods/**/*.log"], True),
        ("/var/log/pods/app.log", ["/var/log/pods/**/*.log"], True),  # ** may be empty
        ("/var/log/other/app.log", ["/var/log/erp/*.log", "/var/log/other/app.log"], True),
        ("/var/log/erp/app.log", [], False),
    ],
)
def test_owned_matches_paths_like_glob(path: str, patterns: list[str], expected: bool) -> None:
    assert owned(path, patterns) is expected
