"""Helpers for holding a parser's fast path against its general path."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import ModuleType

import orjson

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


def encoder_mismatches(
    encode: Callable[[bytes], tuple[bytes, datetime] | None], parse: Parser, lines: Iterable[str]
) -> tuple[list[str], int]:
    """(lines ``encode`` writes differently from ``orjson.dumps(parse(text).fields)``,
    number of lines it took); a line it declines (``None``) is the parser's anyway.

    The time counts too, and a line the parser tags must not be taken.
    """
    found, taken = [], 0
    for text in lines:
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # a lone surrogate a mutation left: no file holds it
            continue
        encoded = encode(raw)
        if encoded is None:
            continue
        taken += 1
        parsed = parse(text)
        expected = (orjson.dumps(parsed.fields), repr(parsed.timestamp))
        if (encoded[0], repr(encoded[1])) != expected or parsed.tags:
            found.append(f"{text!r}\n  encoded: {encoded[0]!r}\n  parsed:  {expected[0]!r}")
    return found, taken


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
