"""A deterministic, realistic benchmark workload: application JSON lines and nginx lines.

    python bench/workload.py OUT_DIR --events 50000

writes ``OUT_DIR/application.log`` and ``OUT_DIR/access.log`` with that many lines
each. The same arguments always give the same bytes (one seeded
``random.Random``, a fixed base time).

Lines are what the ERP backend and its nginx write (see ``sample_logs/`` for the
hand-made story these imitate):

- ``application.log``: ``json.dumps`` of the backend's ``JSONFormatter`` dict —
  ``timestamp`` (naive UTC ``isoformat``), ``level``, ``logger``, ``message``,
  ``module``, ``function``, ``line``, ``exception`` (multi-line traceback,
  about 1% of lines, all of them ERROR), ``request_id``, ``user_id``, then the
  extras the app adds (``spk_id``, ``quantity``, ``duration_ms``, ...);
- ``access.log``: nginx ``combined`` with ``$time_local`` at +0700.

Speed: a few hundred line templates are built once, with the JSON (or nginx)
text already rendered around ``%``-placeholders; each line is one template
filled with a timestamp and a few fresh ids.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20261127
BASE = datetime(2026, 11, 27, 3, 0)  # naive UTC: 10:00 at +0700
LOCAL_OFFSET = timedelta(hours=7)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
APP_LOG = "application.log"
ACCESS_LOG = "access.log"
TEMPLATES = 300  # per log
# Share of application lines per level; every ERROR line carries a traceback.
LEVELS = (("ERROR", 0.01), ("WARNING", 0.05), ("DEBUG", 0.14), ("INFO", 0.80))

# Call sites: level, logger, module, function, source line, message, extras.
_SITES = {
    "INFO": [
        ("app.api.production", "production", "record_daily_input", 48,
         "Daily input received", ("spk_id", "quantity")),
        ("app.api.production", "production", "record_daily_input", 61,
         "Daily input recorded successfully", ("spk_id", "quantity", "duration_ms")),
        ("app.api.production", "production", "list_daily_inputs", 112,
         "Daily input history requested", ("spk_id",)),
        ("app.api.production", "production", "list_spk", 131, "SPK list returned", ()),
        ("app.api.auth", "auth", "login", 39, "User logged in", ()),
        ("app.business_logic", "production_service", "update_spk_status", 144,
         "SPK status changed", ("spk_id",)),
    ],
    "DEBUG": [
        ("app.database", "session", "execute_query", 57, "Query executed", ("duration_ms",)),
        ("app.api.health", "health", "health_check", 30, "Health check passed", ()),
    ],
    "WARNING": [
        ("app.api.production", "production", "record_daily_input", 72,
         "Daily input validation failed", ("spk_id", "quantity")),
        ("app.api.production", "production", "get_spk", 158, "SPK not found", ("spk_id",)),
        ("app.api.auth", "auth", "get_current_user", 88,
         "Authentication failed: token expired", ()),
        ("app.database", "session", "execute_query", 63, "Slow query", ("duration_ms",)),
    ],
    "ERROR": [
        ("app.api.production", "production", "record_daily_input", 84,
         "Database error recording daily input", ("spk_id", "quantity")),
        ("app.business_logic", "production_service", "compute_daily_summary", 226,
         "Failed to compute efficiency for SPK", ("spk_id",)),
        ("app.api.auth", "auth", "login", 61, "Unexpected error during login", ()),
    ],
}  # fmt: skip

_SP = "/usr/local/lib/python3.11/site-packages"
_TRACEBACKS = (
    "Traceback (most recent call last):\n"
    f'  File "{_SP}/sqlalchemy/engine/base.py", line 1967, in _exec_single_context\n'
    "    self.dialect.do_execute(\n"
    f'  File "{_SP}/sqlalchemy/engine/default.py", line 941, in do_execute\n'
    "    cursor.execute(statement, parameters)\n"
    "psycopg2.OperationalError: server closed the connection unexpectedly\n"
    "\tThis probably means the server terminated abnormally\n"
    "\tbefore or while processing the request.\n",
    "Traceback (most recent call last):\n"
    '  File "/app/app/services/production_service.py", line 218, in compute_daily_summary\n'
    "    efficiency = produced / spk.daily_target\n"
    "                 ~~~~~~~~~^~~~~~~~~~~~~~~~~~\n"
    "ZeroDivisionError: division by zero",
    "Traceback (most recent call last):\n"
    '  File "/app/app/api/auth.py", line 57, in login\n'
    "    token = create_access_token(user.id, scopes=form.scopes)\n"
    '  File "/app/app/core/security.py", line 33, in create_access_token\n'
    '    "exp": datetime.utcnow() + timedelta(minutes=settings.TOKEN_MINUTES),\n'
    "KeyError: 'TOKEN_MINUTES'",
)

_CLIENT_AGENTS = (
    "okhttp/4.12.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
)
# Who requests these paths is not a browser or the app.
_PATH_AGENTS = {
    "/api/health": "kube-probe/1.29",
    "/metrics": "Prometheus/2.53.1",
    "/wp-login.php": "python-requests/2.31.0",
    "/.env": "Mozilla/5.0 zgrab/0.x",
}
_REFERRERS = (
    "-",
    "https://erp.qutykarunia.com/production/daily-input",
    "https://erp.qutykarunia.com/dashboard",
)
# weight, method, path (``%(id)d``, ``%(page)d`` vary per line), statuses, body size.
_REQUESTS = (
    (25, "POST", "/api/production/daily-input", (201, 201, 201, 201, 422, 500), 189),
    (12, "GET", "/api/production/daily-input?date=2026-11-27&page=%(page)d", (200, 200, 304), 4817),
    (15, "GET", "/api/production/spk/%(id)d", (200, 200, 200, 404), 1290),
    (8, "GET", "/api/production/spk?status=in_progress", (200, 304), 8123),
    (4, "POST", "/api/auth/login", (200, 200, 200, 401), 412),
    (15, "GET", "/api/health", (200,) * 20 + (503,), 71),
    (3, "GET", "/metrics", (200,), 9563),
    (5, "GET", "/static/js/main.8f3c2a1b.js", (200, 304), 412877),
    (5, "GET", "/static/css/main.4b2e9d0c.css", (200, 304), 38214),
    (1, "GET", "/wp-login.php", (404,), 153),
    (1, "GET", "/.env", (404,), 153),
)


@dataclass(frozen=True, slots=True)
class Workload:
    """Where the generated files are, and how many lines each holds."""

    app_log: Path
    access_log: Path
    events_per_log: int

    @property
    def total(self) -> int:
        return 2 * self.events_per_log


def _client_ips(rng: random.Random) -> list[str]:
    """Factory NAT, mobile carriers, in-cluster probes and a few IPv6 phones."""
    ips = ["203.0.113.45"] * 20 + ["10.148.0.23", "10.148.1.7"]
    ips += [f"114.124.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(30)]
    ips += [f"182.2.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(30)]
    ips += [f"198.51.100.{rng.randint(1, 254)}" for _ in range(10)]
    ips += [f"2001:db8:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}" for _ in range(8)]
    return ips


def _app_template(rng: random.Random, level: str) -> str:
    """One JSONFormatter line with ``%(...)`` placeholders for what varies per line."""
    site = rng.choice(_SITES[level])
    logger, module, function, line, message, extras = site
    record: dict[str, object] = {
        "timestamp": "\0ts\0", "level": level, "logger": logger, "message": message,
        "module": module, "function": function, "line": line,
    }  # fmt: skip
    if level == "ERROR":
        # Each error call site has its own traceback (the two lists line up).
        record["exception"] = _TRACEBACKS[_SITES["ERROR"].index(site)]
    if rng.random() < 0.9:
        record["request_id"] = "\0rid\0"
    if rng.random() < 0.7:
        record["user_id"] = "\0uid\0"
    for extra in extras:
        record[extra] = f"\0{extra}\0"
    text = json.dumps(record).replace("%", "%%")
    # Placeholders were rendered as JSON strings; numbers lose their quotes.
    text = text.replace('"\\u0000ts\\u0000"', '"%(ts)s"').replace(
        '"\\u0000rid\\u0000"', '"%(rid)s"'
    )
    for name in ("uid", "spk_id", "quantity", "duration_ms"):
        text = text.replace(f'"\\u0000{name}\\u0000"', f"%({name})d")
    return text


def _access_template(rng: random.Random, ips: list[str]) -> str:
    """One nginx ``combined`` line with placeholders for time, ids and size."""
    weights = [request[0] for request in _REQUESTS]
    _, method, path, statuses, size = rng.choices(_REQUESTS, weights)[0]
    agent = _PATH_AGENTS.get(path) or rng.choice(_CLIENT_AGENTS)
    referrer = rng.choice(_REFERRERS) if agent.startswith("Mozilla") else "-"
    user = "prometheus" if agent.startswith("Prometheus") else "-"
    status = rng.choice(statuses)
    body = size if status in (200, 201) else (0 if status == 304 else 153)
    return (
        f'{rng.choice(ips)} - {user} [%(time)s] "{method} {path} HTTP/1.1" {status} '
        f'{body} "{referrer}" "{agent}"'
    )


def _app_templates(rng: random.Random) -> dict[str, list[str]]:
    return {
        level: [_app_template(rng, level) for _ in range(max(4, int(TEMPLATES * share)))]
        for level, share in LEVELS
    }


def app_lines(count: int, seed: int = SEED) -> list[str]:
    """``count`` application log lines, one second of traffic per ~50 lines."""
    rng = random.Random(seed)
    templates = _app_templates(rng)
    pools = [templates[level] for level, _ in LEVELS]
    limits = list(itertools.accumulate(share for _, share in LEVELS))
    limits[-1] = float("inf")  # the shares' float sum may fall just short of 1.0
    lines: list[str] = []
    at = BASE
    for _ in range(count):
        at += timedelta(microseconds=rng.randint(1, 40_000))
        pool = pools[bisect.bisect_right(limits, rng.random())]
        values = {
            "ts": at.isoformat(),
            "rid": f"{rng.getrandbits(128):032x}",
            "uid": rng.randint(1, 120),
            "spk_id": rng.randint(1000, 1099),
            "quantity": rng.randint(1, 400),
            "duration_ms": rng.randint(1, 900),
        }
        lines.append(rng.choice(pool) % values)
    return lines


def access_lines(count: int, seed: int = SEED) -> list[str]:
    """``count`` nginx ``combined`` lines over the same span of time."""
    rng = random.Random(seed + 1)
    ips = _client_ips(rng)
    templates = [_access_template(rng, ips) for _ in range(TEMPLATES)]
    lines: list[str] = []
    at = BASE + LOCAL_OFFSET
    for _ in range(count):
        at += timedelta(microseconds=rng.randint(1, 40_000))
        time_local = f"{at.day:02d}/{MONTHS[at.month - 1]}/{at.year}:{at:%H:%M:%S} +0700"
        values = {
            "time": time_local,
            "id": rng.randint(1000, 1099),
            "page": rng.randint(1, 9),
        }
        lines.append(rng.choice(templates) % values)
    return lines


def write_workload(out_dir: Path, events_per_log: int, seed: int = SEED) -> Workload:
    """Write both logs under ``out_dir`` (created if needed) and say where they are."""
    out_dir.mkdir(parents=True, exist_ok=True)
    workload = Workload(out_dir / APP_LOG, out_dir / ACCESS_LOG, events_per_log)
    for path, lines in (
        (workload.app_log, app_lines(events_per_log, seed)),
        (workload.access_log, access_lines(events_per_log, seed)),
    ):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return workload


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a deterministic benchmark workload.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--events", type=int, default=50_000, help="lines per log file")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    workload = write_workload(args.out_dir, args.events, args.seed)
    print(f"wrote {workload.app_log} and {workload.access_log} ({args.events} lines each)")


if __name__ == "__main__":
    main()
