"""Helpers for holding a parser's fast path against its general path."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from logpipe.parsers import Parser

_WORKLOAD = Path(__file__).resolve().parents[3] / "bench" / "workload.py"


def bench_workload() -> ModuleType:
    """``bench/workload.py``, loaded by path (``bench/`` is not a package)."""
    name = "bench_workload_for_parser_tests"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, _WORKLOAD)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it runs
        spec.loader.exec_module(module)
    return module


def differences(fast: Parser, general: Parser, lines: Iterable[str]) -> list[str]:
    """Lines on which the two parsers disagree, with both results.

    Compared by ``repr``: key order (what the document encodes to), value types
    (``1`` vs ``True`` vs ``"1"``) and the timestamp's zone all count, and NaN
    equals itself.
    """
    found = []
    for text in lines:
        one, other = fast(text), general(text)
        if repr(one) != repr(other):
            found.append(f"{text!r}\n  fast:    {one!r}\n  general: {other!r}")
    return found


def mutations(rng: random.Random, seeds: list[str], alphabet: str, count: int) -> list[str]:
    """``count`` copies of random seeds, each with a few characters deleted or inserted."""
    lines = []
    for _ in range(count):
        chars = list(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(chars) + 1)
            if rng.random() < 0.4 and position < len(chars):
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        lines.append("".join(chars))
    return lines
