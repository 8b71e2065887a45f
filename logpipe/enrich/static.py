"""Enrichment: static fields, host, agent and Kubernetes metadata.

Everything here is known at start-up, so it is built once into a nested
dict, and serialised once: :meth:`Enricher.encode` splices those bytes into
each document's JSON instead of serialising the same sections per event.
Where the fields themselves are needed (alerts, a document that already has
one of the sections), the sections are attached by reference (never mutated
afterwards).
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Mapping
from typing import Any

import orjson

from logpipe import __version__
from logpipe.config import EnrichConfig
from logpipe.event import encode_source, set_path

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
        # The sections pre-serialised once, as they appear inside a JSON object.
        self._tail = orjson.dumps(fields)[1:] if fields else b""
        self.static_keys = frozenset(fields)
        """The top-level keys of the static sections."""
        self.splice = b"," + self._tail if fields else b"}"
        """What replaces the closing ``}`` of a non-empty document with none of
        :attr:`static_keys` to add the sections (the per-chunk step inlines
        :meth:`encode` for that case)."""
        tags = fields.get("tags")
        self.static_tags: list[Any] | None = tags if isinstance(tags, list) else None

    def __call__(self, doc: dict[str, Any]) -> None:
        for key, value in self._sections:
            mine = doc.get(key)
            if mine is None:
                doc[key] = value  # shared, read-only by convention
            elif isinstance(mine, dict) and isinstance(value, dict):
                _merge(mine, value)

    def encode(self, doc: dict[str, Any]) -> bytes:
        """``doc`` with the static sections, serialised (``doc`` itself is left as it is
        when the sections can be spliced in as bytes).

        The common case, a document with none of the static top-level keys, pays
        for serialising its own fields only.
        """
        if not self._tail:
            return encode_source(doc)
        if doc.keys().isdisjoint(self.static_keys):  # walks the smaller side
            own = encode_source(doc)
            return b"{" + self._tail if own == b"{}" else own[:-1] + self.splice
        self(doc)
        return encode_source(doc)
