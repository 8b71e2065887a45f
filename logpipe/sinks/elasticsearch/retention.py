"""Retention of the daily indices: an ILM policy where the server has ILM, else logpipe deletes.

The day an index holds is read from its name only, ``<prefix>-YYYY.MM.dd``, never
from its creation date or its documents. The rule, in ``index_timezone``:

    the index for day D is deleted once D < today - N days

so today and the N days before it are kept (N + 1 indices) and every event lives
at least N days. "today" is logpipe's own clock: an index dated today or later
(events from a machine whose clock runs ahead name those) is never deleted, and
N >= 1 keeps a day's margin. Only names matching ``^<prefix>-\\d{4}\\.\\d{2}\\.\\d{2}$``
(ASCII digits, a real calendar date) are ever touched: ``<prefix>-archive-…``,
``<prefix>-foo``, ``<prefix>x-…`` and aliases are left alone. Deletion is one
``DELETE`` per concrete index name, never a wildcard.

With ILM the server deletes: the policy ``<prefix>-retention`` has a delete phase
at ``min_age`` N + 1 days, counted from the origination date ILM parses from the
name (``index.lifecycle.parse_origination_date``, midnight UTC of D). That is the
same moment as the rule above when ``index_timezone`` is UTC; in another zone ILM
deletes up to the zone's offset (hours) apart, since ILM reads the name as UTC.

The policy is attached per index (``PUT <index>/_settings``) on every check, not
through the index template: the template's ``<prefix>-*`` pattern also matches
indices logpipe does not own (``<prefix>-archive-2026.01.01`` would get the policy
and be deleted by it), and with ``parse_origination_date`` set a matching name
without a date (``<prefix>-foo``) could no longer be created at all. A new day's
index gets its policy at the next check, a day or more before it could be due.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from elastic_transport import TransportError
from elasticsearch import ApiError

from logpipe.config import ElasticsearchConfig

if TYPE_CHECKING:
    from logpipe.sinks.threaded import AwaitedClient

__all__ = [
    "RetentionKeeper",
    "RetentionMode",
    "RetentionStats",
    "cutoff_day",
    "daily_index_pattern",
    "expired_indices",
    "index_day",
    "lifecycle_settings",
    "policy_name",
    "retention_policy",
]

log = logging.getLogger("logpipe.elasticsearch.retention")

# What a server without the ILM API answers on ``GET _ilm/status``: noida-db says
# 400 "no handler found", other servers 404/405/410/501.
_NO_ILM_STATUSES = frozenset({400, 404, 405, 410, 501})
# Indices of every state but hidden ones: a closed old index is still ours to delete.
_EXPAND = "open,closed"


class RetentionMode(Enum):
    """Who deletes old indices."""

    ILM = "ilm"  # the server, by the policy
    DELETE = "delete"  # logpipe, one DELETE per expired index


@dataclass(slots=True)
class RetentionStats:
    checks: int = 0  # completed
    deleted: int = 0  # indices logpipe deleted itself
    failed_checks: int = 0
    mode: RetentionMode | None = None  # as of the last check that got that far


# -- pure: names, days, policy ---------------------------------------------------------


def daily_index_pattern(prefix: str) -> re.Pattern[str]:
    """The names logpipe's :class:`IndexNamer` gives, and nothing else.

    ``[0-9]`` rather than ``\\d``, which would also match other scripts' digits
    (and ``int`` would happily parse them); used with ``fullmatch``, since ``$``
    lets a trailing newline through.
    """
    return re.compile(re.escape(prefix) + r"-([0-9]{4})\.([0-9]{2})\.([0-9]{2})")


def index_day(name: str, pattern: re.Pattern[str]) -> date | None:
    """The day ``name`` holds, or None when it is not one of ours or not a real date."""
    match = pattern.fullmatch(name)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:  # 2026.02.30, 2026.13.01, 0000.01.01
        return None


def cutoff_day(now: datetime, timezone: str, days: int) -> date:
    """The oldest day kept: indices for days before it are expired.

    ``today`` is ``now``'s date in ``timezone`` (the zone the index names use).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if days < 1:
        raise ValueError("days must be at least 1")
    today = now.astimezone(ZoneInfo(timezone)).date()
    return today - timedelta(days=days)


def expired_indices(names: Iterable[str], prefix: str, cutoff: date) -> list[str]:
    """The names among ``names`` that are ``prefix``'s daily indices for days before ``cutoff``."""
    pattern = daily_index_pattern(prefix)
    expired = []
    for name in names:
        day = index_day(name, pattern)
        if day is not None and day < cutoff:
            expired.append(name)
    return sorted(expired)


def policy_name(prefix: str) -> str:
    return f"{prefix}-retention"


def retention_policy(days: int) -> dict[str, Any]:
    """The ILM policy body: delete N + 1 days after the day in the name began (UTC)."""
    return {
        "_meta": {"managed_by": "logpipe", "retention_days": days},
        "phases": {"delete": {"min_age": f"{days + 1}d", "actions": {"delete": {}}}},
    }


def lifecycle_settings(prefix: str) -> dict[str, Any]:
    """Index settings that put one of ``prefix``'s daily indices under the policy."""
    return {
        "index.lifecycle.name": policy_name(prefix),
        "index.lifecycle.parse_origination_date": True,
    }


def _policy_differs(current: dict[str, Any], days: int) -> bool:
    """Whether the installed policy deletes at another age than ``days`` asks.

    Only the delete phase is compared: the server fills in defaults (the delete
    action's ``delete_searchable_snapshot``), and phases ops added are theirs.
    """
    have = current.get("phases", {}).get("delete", {})
    want = retention_policy(days)["phases"]["delete"]
    return have.get("min_age") != want["min_age"] or "delete" not in have.get("actions", {})


# -- I/O -----------------------------------------------------------------------------


class RetentionKeeper:
    """Keeps ``<index_prefix>-YYYY.MM.dd`` indices for ``retention.days`` days.

    ``check`` never raises for a failed request: it logs and the next check tries
    again. It does nothing while ``retention.days`` is unset.
    """

    def __init__(self, client: AwaitedClient, config: ElasticsearchConfig) -> None:
        self._client = client
        self._prefix = config.index_prefix
        self._timezone = config.index_timezone
        self._days = config.retention.days
        self._interval = config.retention.check_interval_seconds
        self._pattern = daily_index_pattern(self._prefix)
        self.stats = RetentionStats()

    async def run(self) -> None:
        """Check now, then every ``check_interval_seconds``, until cancelled."""
        if self._days is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.check(datetime.now(UTC))
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))

    async def check(self, now: datetime) -> list[str]:
        """One pass at ``now`` (aware); the names logpipe deleted (none with ILM)."""
        if self._days is None:
            return []
        cutoff = cutoff_day(now, self._timezone, self._days)
        try:
            mode = await self._mode()
            if mode is not self.stats.mode:
                log.info("retention_mode_chosen", extra={"mode": mode.value, "days": self._days})
                self.stats.mode = mode
            deleted: list[str] = []
            if mode is RetentionMode.ILM:
                await self._install_policy(self._days)
                await self._attach_policy(await self._indices())
            else:
                expired = expired_indices(await self._indices(), self._prefix, cutoff)
                deleted = await self._delete(expired)
        except (ApiError, TransportError) as exc:
            self.stats.failed_checks += 1
            log.warning("retention_check_failed", extra={"reason": _reason(exc)})
            return []
        self.stats.checks += 1
        return deleted

    async def _mode(self) -> RetentionMode:
        """ILM when the server has it and lets us use it; otherwise logpipe deletes."""
        try:
            await self._client.ilm.get_status()
        except ApiError as exc:
            if exc.meta.status in _NO_ILM_STATUSES:
                return RetentionMode.DELETE
            if exc.meta.status == 403:
                # ILM exists but these credentials may not use it: deleting ourselves
                # keeps the same promise, with the index privileges we need anyway.
                if self.stats.mode is not RetentionMode.DELETE:
                    log.warning("retention_ilm_forbidden", extra={"reason": _reason(exc)})
                return RetentionMode.DELETE
            raise
        return RetentionMode.ILM

    async def _install_policy(self, days: int) -> None:
        name = policy_name(self._prefix)
        try:
            current = await self._client.ilm.get_lifecycle(name=name)
            if not _policy_differs(current.body[name]["policy"], days):
                return
        except ApiError as exc:
            if exc.meta.status != 404:
                raise
        # Written only when missing or changed: each write bumps the policy's version.
        await self._client.ilm.put_lifecycle(name=name, policy=retention_policy(days))
        log.info("retention_policy_installed", extra={"policy": name, "days": days})

    async def _indices(self) -> dict[str, dict[str, Any]]:
        """Each concrete index matching ``<prefix>-*``, with its flat settings."""
        resp = await self._client.indices.get_settings(
            index=f"{self._prefix}-*", expand_wildcards=_EXPAND, flat_settings=True
        )
        return {name: body.get("settings", {}) for name, body in resp.body.items()}

    async def _attach_policy(self, indices: dict[str, dict[str, Any]]) -> None:
        """Put each of our daily indices not yet under a policy under ours.

        An index already under a policy (ours, or one ops chose) is left alone;
        one whose name is not a real date is too, since ILM could not parse it.
        """
        settings = lifecycle_settings(self._prefix)
        for name, current in sorted(indices.items()):
            if index_day(name, self._pattern) is None:
                continue
            if current.get("index.lifecycle.name"):
                continue
            await self._client.indices.put_settings(index=name, settings=settings)
            log.info("retention_policy_attached", extra={"index": name})

    async def _delete(self, expired: list[str]) -> list[str]:
        """Delete ``expired`` one by one; a refusal of one does not stop the others."""
        deleted: list[str] = []
        for name in expired:
            try:
                # A concrete name, wildcards off: this can only ever delete ``name``.
                await self._client.indices.delete(index=name, expand_wildcards="none")
            except ApiError as exc:
                if exc.meta.status == 404:
                    continue  # gone meanwhile (another logpipe of the same pipeline)
                log.warning("index_delete_failed", extra={"index": name, "reason": _reason(exc)})
                continue
            deleted.append(name)
            self.stats.deleted += 1
            log.info("index_deleted_by_retention", extra={"index": name, "days": self._days})
        return deleted


def _reason(exc: ApiError | TransportError) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.meta.status}: {exc.message}"[:300]
    return type(exc).__name__
