"""Loading a pipeline file: YAML with line numbers, ``${VAR}`` interpolation, validation.

Loading goes YAML → (nodes with line numbers) → ``${VAR}`` interpolation on string
scalars → pydantic validation. Problems from every step are collected and raised
together as one :class:`ConfigError`, each naming the file, the line, the YAML
path and what is wrong — never the offending value, which may be a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from logpipe.config.models import PipelineConfig
from logpipe.errors import LogpipeError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<top>'}: {self.message}"


class ConfigError(LogpipeError):
    """The pipeline file is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``text``.

    An unset ``VAR`` is looked up as a file named by ``VAR_FILE`` (Kubernetes
    secret mounts) before the default applies. Returns the new text and the
    problems found (messages name variables, never values).
    """
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        file_name = env.get(f"{name}_FILE")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                problems.append(f"cannot read {name}_FILE ({file_name}): {exc.strerror}")
                return ""
        if default is not None:
            return default
        problems.append(f"environment variable {name} is not set (and has no default)")
        return ""

    return _VAR.sub(replace, text), problems


def _to_python(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: dict[str, int],
    env: Mapping[str, str],
    problems: list[tuple[tuple[str, ...], str]],
) -> Any:
    """Turn a composed YAML node into plain data, interpolating and noting line numbers."""
    lines[".".join(path)] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[key] = _to_python(value_node, (*path, key), lines, env, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*path, str(i)), lines, env, problems)
            for i, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == "tag:yaml.org,2002:str" or "${" in node.value:
        # Interpolated values stay strings: pydantic turns "25" into a port and
        # "false" into a bool where the model asks for one, and a password that
        # happens to look like YAML is never re-parsed.
        text, found = interpolate(node.value, env)
        problems.extend((path, msg) for msg in found)
        return text
    return yaml.safe_load(node.value)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Load and validate a pipeline file; raise :class:`ConfigError` with every problem."""
    file = str(path)
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, line, "", f"invalid YAML: {reason}")]) from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise ConfigError([Problem(file, 1, "", "a pipeline file must be a YAML mapping")])

    lines: dict[str, int] = {}
    found: list[tuple[tuple[str, ...], str]] = []
    data = _to_python(root, (), lines, env, found)
    problems = [Problem(file, lines.get(".".join(p)), ".".join(p), m) for p, m in found]
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            dotted = ".".join(str(part) for part in err["loc"])
            problems.append(Problem(file, _nearest_line(lines, dotted), dotted, err["msg"]))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _nearest_line(lines: dict[str, int], dotted: str) -> int | None:
    # A missing key has no line of its own: report its parent's.
    parts = dotted.split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return lines.get("")
