"""Enrichment: static fields, host, agent and Kubernetes metadata.

Everything here is known at start-up, so it is built once into a nested
dict; per event the top-level sections are attached by reference (they are
never mutated afterwards), which keeps the per-event cost to a few dict
assignments.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Mapping
from typing import Any

from logpipe import __version__
from logpipe.config import EnrichConfig
from logpipe.event import set_path

# Downward-API variables a sidecar is given (see deploy/kubernetes/deployment.yaml),
# and the ECS / Filebeat field each one fills.
KUBERNETES_ENV = {
    "POD_NAME": "kubernetes.pod.name",
    "POD_NAMESPACE": "kubernetes.namespace",
    "POD_UID": "kubernetes.pod.uid",
    "POD_IP": "kubernetes.pod.ip",
    "NODE_NAME": "kubernetes.node.name",
}


def static_fields(
    config: EnrichConfig, env: Mapping[str, str], hostname: str | None = None
) -> dict[str, Any]:
    """The nested fields every event of this process carries."""
    out: dict[str, Any] = {}
    set_path(out, "agent.name", "logpipe")
    set_path(out, "agent.type", "logpipe")
    set_path(out, "agent.version", __version__)
    if config.host:
        set_path(out, "host.name", hostname or socket.gethostname())
    if config.kubernetes:
        for variable, dotted in KUBERNETES_ENV.items():
            found = env.get(variable)
            if found:
                set_path(out, dotted, found)
    for dotted, value in config.fields.items():
        set_path(out, dotted, value)
    return out


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        mine = into.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            _merge(mine, value)
        elif key not in into:
            into[key] = copy.deepcopy(value)


class Enricher:
    """Adds the static sections to an event's fields; the event's own values win."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._sections = list(fields.items())

    def __call__(self, doc: dict[str, Any]) -> None:
        for key, value in self._sections:
            mine = doc.get(key)
            if mine is None:
                doc[key] = value  # shared, read-only by convention
            elif isinstance(mine, dict) and isinstance(value, dict):
                _merge(mine, value)
