"""The pipeline file: typed models, environment interpolation, and every error at once.

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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from logpipe.errors import LogpipeError


def _empty_to_none(value: Any) -> Any:
    # `${ES_API_KEY:-}` interpolates to "" when unset; that means "not configured".
    return None if value == "" else value


OptStr = Annotated[str | None, BeforeValidator(_empty_to_none)]
OptSecret = Annotated[SecretStr | None, BeforeValidator(_empty_to_none)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Model):
    """One tailed input: files matching ``paths`` parsed by ``parser``."""

    paths: list[str] = Field(min_length=1)
    parser: Literal["app_json", "nginx", "nginx_json", "plain"]
    dataset: str = Field(min_length=1, pattern=r"^[a-z0-9_.]+$")
    max_line_bytes: int = Field(default=1 << 20, ge=1024)
    # Fields the app adds beyond the JSONFormatter's own go under this key.
    extra_namespace: str = Field(default="app", pattern=r"^[a-z_][a-z0-9_]*$")
    # inotify wakes the reader at once; polling is the safety net (and the only
    # way on filesystems without inotify).
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Ship a last line that never gets its newline after this long (off: wait).
    partial_line_timeout_seconds: float | None = Field(default=None, gt=0)
    # A rotated-away or deleted file stays open until its lines are acknowledged,
    # at most this long.
    rotated_hold_seconds: float = Field(default=3600.0, gt=0)


class EnrichConfig(_Model):
    """Static fields (dotted ECS names) and metadata added to every event."""

    fields: dict[str, str | int | float | bool] = Field(default_factory=dict)
    kubernetes: bool = True
    host: bool = True


class BatchConfig(_Model):
    """A bulk request is sent when any bound is reached."""

    max_events: int = Field(default=2000, ge=1)
    max_bytes: int = Field(default=5 << 20, ge=1024)
    max_age_seconds: float = Field(default=0.5, gt=0, le=60)


class ElasticsearchConfig(_Model):
    """Where and how to index."""

    hosts: list[str] = Field(min_length=1)
    api_key: OptSecret = None
    username: OptStr = None
    password: OptSecret = None
    ca_cert: OptStr = None
    verify_certs: bool = True
    index_prefix: str = Field(default="erp-logs", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    index_timezone: str = "UTC"
    install_template: bool = True
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=5.0, gt=0)
    batch: BatchConfig = Field(default_factory=BatchConfig)

    @model_validator(mode="after")
    def _one_credential(self) -> ElasticsearchConfig:
        if self.api_key is not None and self.username is not None:
            raise ValueError("set either api_key or username/password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self

    @field_validator("hosts")
    @classmethod
    def _hosts_are_urls(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not re.match(r"^https?://[^/\s]+", host):
                raise ValueError("each host must be an http:// or https:// URL")
        return hosts

    @field_validator("index_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name


class OutputConfig(_Model):
    elasticsearch: ElasticsearchConfig


class SmtpConfig(_Model):
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    username: OptStr = None
    password: OptSecret = None
    starttls: bool = False
    tls: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    verify_certs: bool = True
    ca_cert: OptStr = None

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if self.starttls and self.tls:
            raise ValueError("starttls and tls exclude each other (tls is implicit TLS)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")
        return self


class EmailAlertConfig(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    levels: list[str] = Field(default_factory=lambda: ["error", "critical"], min_length=1)
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from", min_length=3)
    subject: str = "Critical Error: {message}"
    queue_size: int = Field(default=1000, ge=1)
    smtp: SmtpConfig

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        for address in to:
            if "@" not in address or any(c in address for c in "\r\n,;<> "):
                raise ValueError("each recipient must be one plain e-mail address")
        return to


class AlertsConfig(_Model):
    email: EmailAlertConfig | None = None


class QueueConfig(_Model):
    """The memory budget between readers and the sink; readers wait when it is full."""

    max_events: int = Field(default=10000, ge=1)
    max_bytes: int = Field(default=16 << 20, ge=1 << 16)


class PipelineConfig(_Model):
    """A whole pipeline file."""

    data_dir: Path
    inputs: dict[str, InputConfig] = Field(min_length=1)
    enrich: EnrichConfig = Field(default_factory=EnrichConfig)
    output: OutputConfig
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)


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
