"""Write the sample logs: ``application.log`` and ``access.log`` beside this file.

Regenerate after editing this script (never edit the ``.log`` files by hand)::

    /tmp/venv/bin/python sample_logs/generate.py

The output is deterministic: one ``random.Random(SEED)``, a fixed base time, no
wall clock, no ``uuid4``. ``tests/unit/test_deploy_files.py`` reruns
:func:`write_samples` and checks that the committed files are reproduced byte for
byte.

The story is 30 minutes of one ERP pod, 2026-11-26T23:50Z to 2026-11-27T00:20Z,
so the demo fills two daily indices (erp-logs-2026.11.26 and erp-logs-2026.11.27):

- factory-floor operators post daily inputs from the Android app (okhttp),
  supervisors use the web UI, kube-probe polls /api/health, Prometheus scrapes
  /metrics with basic auth, and scanners knock;
- at midnight UTC the daily summary job runs and fails once (ZeroDivisionError);
- at 00:05Z PostgreSQL goes away: errors with psycopg2/SQLAlchemy tracebacks,
  503 health checks, one CRITICAL, the worker restarts (nginx answers 502 for
  ~20 s), and the phones' queued inputs go through once it is back.

``application.log`` holds what the backend's ``JSONFormatter`` writes
(``json.dumps`` of timestamp — naive ISO-8601 UTC —, level, logger, message,
module, function, line, exception?, request_id?, user_id?, then the extra
fields the app adds), plus three malformed lines: a truncated object, a plain
Uvicorn line and a line with invalid UTF-8. ``access.log`` is nginx
``combined`` with ``$time_local`` at +0700 (Asia/Jakarta), so every line reads
27/Nov/2026 while the UTC day changes; nginx passes its ``$request_id`` to the
app as X-Request-ID, which is the ``request_id`` in the JSON lines (one access
line carries it as a trailing extra field). Variants: an X-Forwarded-For list in
place of the client, an empty request, a TLS handshake sent to the plain-HTTP
port, IPv6 clients, a trailing extra field and one truncated line.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20261127
BASE = datetime(2026, 11, 26, 23, 50)  # naive UTC, as datetime.utcnow() gives it
S = 1_000_000  # times are integer microseconds after BASE
SPAN = 30 * 60 * S
MIDNIGHT = 10 * 60 * S
DB_DOWN = 15 * 60 * S  # 00:05:00Z
WORKER_EXIT = DB_DOWN + 162 * S + 518_207  # the CRITICAL, then the worker restarts
WORKER_UP = WORKER_EXIT + 22 * S
QUIET = (DB_DOWN - 5 * S, WORKER_UP + 10 * S)  # random API traffic stays out: the story owns it
LOCAL_OFFSET = timedelta(hours=7)
# nginx writes English month names; strftime's %b would follow the locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

APP_LOG = "application.log"
ACCESS_LOG = "access.log"

_PROD = ("app.api.production", "production")  # logger, module
_AUTH = ("app.api.auth", "auth")
_HEALTH = ("app.api.health", "health")
_DB = ("app.database", "session")
_POOL = ("sqlalchemy.pool.impl.QueuePool", "base")
_SERVICE = ("app.business_logic", "production_service")
_NOTES = ("app.business_logic", "maintenance")
_SUMMARY = "compute_daily_summary"
_HC = "health_check"

#: call sites: level, logger (record.name), module, function, line, message
SITES = {
    "received": ("INFO", _PROD, "record_daily_input", 48, "Daily input received"),
    "recorded": ("INFO", _PROD, "record_daily_input", 61, "Daily input recorded successfully"),
    "invalid": ("WARNING", _PROD, "record_daily_input", 72, "Daily input validation failed"),
    "db_error": ("ERROR", _PROD, "record_daily_input", 84, "Database error recording daily input"),
    "history": ("INFO", _PROD, "list_daily_inputs", 112, "Daily input history requested"),
    "spk_list": ("INFO", _PROD, "list_spk", 131, "SPK list returned"),
    "spk_missing": ("WARNING", _PROD, "get_spk", 158, "SPK not found"),
    "login": ("INFO", _AUTH, "login", 39, "User logged in"),
    "login_failed": ("WARNING", _AUTH, "login", 52, "Login failed: invalid credentials"),
    "expired": ("WARNING", _AUTH, "get_current_user", 88, "Authentication failed: token expired"),
    "health_error": ("ERROR", _HEALTH, _HC, 41, "Health check failed: database unreachable"),
    "health_warn": ("WARNING", _HEALTH, _HC, 45, "Health check failed: database unreachable"),
    "query": ("DEBUG", _DB, "execute_query", 57, "Query executed"),
    "retry": ("WARNING", _DB, "check_connection", 95, "Connection attempt {attempt}/5 failed"),
    "unreachable": ("CRITICAL", _DB, "check_connection", 104, "Database unreachable; exiting"),
    "pool_ready": ("INFO", _DB, "init_pool", 31, "Database connection pool ready"),
    "startup": ("INFO", ("app.main", "main"), "on_startup", 58, "Application startup complete"),
    "pool_reset": ("ERROR", _POOL, "_finalize_fairy", 986, "Exception during reset or similar"),
    "spk_status": ("INFO", _SERVICE, "update_spk_status", 144, "SPK status changed"),
    "summary": ("INFO", _SERVICE, _SUMMARY, 203, "Daily production summary started"),
    "summary_failed": ("ERROR", _SERVICE, _SUMMARY, 226, "Failed to compute efficiency for SPK"),
    "summary_done": ("INFO", _SERVICE, _SUMMARY, 241, "Daily production summary completed"),
    # written by a maintenance script, in latin-1: see oddities()
    "notes": ("INFO", _NOTES, "import_notes", 27, "Catatan operator: jahitan rapi, kain Caf@"),
}

_SP = "/usr/local/lib/python3.11/site-packages"
_PG_CLOSED = (
    "server closed the connection unexpectedly\n"
    "\tThis probably means the server terminated abnormally\n"
    "\tbefore or while processing the request.\n"
)
_PG_REFUSED = (
    'connection to server at "postgres.erp.svc.cluster.local" (10.96.45.12), port 5432 failed:'
    " Connection refused\n"
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
)
_SQLA_BG = "(Background on this error at: https://sqlalche.me/e/20/e3q8)"
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_EXECUTE = f"""\
  File "{_SP}/sqlalchemy/engine/base.py", line 1967, in _exec_single_context
    self.dialect.do_execute(
  File "{_SP}/sqlalchemy/engine/default.py", line 941, in do_execute
    cursor.execute(statement, parameters)
"""
_CONNECT = f"""\
  File "{_SP}/sqlalchemy/engine/base.py", line 3297, in raw_connection
    return self.pool.connect()
           ^^^^^^^^^^^^^^^^^^^
  File "{_SP}/sqlalchemy/pool/base.py", line 449, in connect
    return _ConnectionFairy._checkout(self)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{_SP}/sqlalchemy/engine/default.py", line 629, in connect
    return self.loaded_dbapi.connect(*cargs, **cparams)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{_SP}/psycopg2/__init__.py", line 122, in connect
    conn = _connect(dsn, connection_factory=connection_factory, **kwasync)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"""
_INSERT_FRAMES = f"""\
  File "/app/app/api/production.py", line 66, in record_daily_input
    result = ProductionService.record_input(db, request)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/app/app/services/production_service.py", line 91, in record_input
    db.flush()
  File "{_SP}/sqlalchemy/orm/session.py", line 4345, in flush
    self._flush(objects)
  File "{_SP}/sqlalchemy/orm/session.py", line 4480, in _flush
    with util.safe_reraise():
  File "{_SP}/sqlalchemy/util/langhelpers.py", line 146, in __exit__
    raise exc_value.with_traceback(exc_tb)
  File "{_SP}/sqlalchemy/orm/session.py", line 4441, in _flush
    flush_context.execute()
"""
_FLUSH_INSERT = f"""\
  File "{_SP}/sqlalchemy/orm/unitofwork.py", line 466, in execute
    rec.execute(self)
  File "{_SP}/sqlalchemy/orm/persistence.py", line 93, in save_obj
    _emit_insert_statements(
  File "{_SP}/sqlalchemy/engine/base.py", line 1418, in execute
    return meth(
           ^^^^^
  File "{_SP}/sqlalchemy/engine/base.py", line 1986, in _exec_single_context
    self._handle_dbapi_exception(
  File "{_SP}/sqlalchemy/engine/base.py", line 2355, in _handle_dbapi_exception
    raise sqlalchemy_exception.with_traceback(exc_info[2]) from e
"""
_FLUSH_CONNECT = f"""\
  File "{_SP}/sqlalchemy/orm/unitofwork.py", line 440, in execute
    with self.session.begin_nested() if self.session else nullcontext():
  File "{_SP}/sqlalchemy/orm/session.py", line 1192, in _connection_for_bind
    conn = bind.connect()
           ^^^^^^^^^^^^^^
  File "{_SP}/sqlalchemy/engine/base.py", line 145, in __init__
    Connection._handle_dbapi_exception_noconnection(
  File "{_SP}/sqlalchemy/engine/base.py", line 2434, in _handle_dbapi_exception_noconnection
    raise sqlalchemy_exception.with_traceback(exc_info[2]) from e
  File "{_SP}/sqlalchemy/engine/base.py", line 143, in __init__
    self._dbapi_connection = engine.raw_connection()
                             ^^^^^^^^^^^^^^^^^^^^^^^
"""
_INSERT_SQL = (
    "[SQL: INSERT INTO daily_production_input (spk_id, quantity, operator_id, input_date, "
    "created_at) VALUES (%(spk_id)s, %(quantity)s, %(operator_id)s, %(input_date)s, "
    "%(created_at)s) RETURNING daily_production_input.id]\n"
    "[parameters: {{'spk_id': {spk}, 'quantity': {qty}, 'operator_id': {user}, "
    "'input_date': datetime.date(2026, 11, 27), 'created_at': {created}}}]\n"
)


def db_error(spk: int, qty: int, user: int, at: int, refused: bool) -> tuple[str, str]:
    """(exception text, str(e)) of a failed daily-input INSERT, as SQLAlchemy 2.0 words it."""
    pg = _PG_REFUSED if refused else _PG_CLOSED
    created = repr(BASE + timedelta(microseconds=at))
    sql = "" if refused else _INSERT_SQL.format(spk=spk, qty=qty, user=user, created=created)
    error = f"(psycopg2.OperationalError) {pg}\n{sql}{_SQLA_BG}"
    inner = _CONNECT if refused else _EXECUTE
    trace = (
        f"Traceback (most recent call last):\n{inner}psycopg2.OperationalError: {pg}\n{_CAUSE}"
        f"Traceback (most recent call last):\n{_INSERT_FRAMES}"
        f"{_FLUSH_CONNECT if refused else _FLUSH_INSERT}{inner}"
        f"sqlalchemy.exc.OperationalError: {error}"
    )
    return trace, error


def connect_error() -> str:
    """The traceback of the health check's failed connection attempt."""
    return (
        f"Traceback (most recent call last):\n{_CONNECT}psycopg2.OperationalError: {_PG_REFUSED}\n"
        f"{_CAUSE}Traceback (most recent call last):\n"
        '  File "/app/app/database/session.py", line 98, in check_connection\n'
        "    with engine.connect() as conn:\n"
        "         ^^^^^^^^^^^^^^^^\n"
        f"{_CONNECT}sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) {_PG_REFUSED}\n"
        f"{_SQLA_BG}"
    )


POOL_RESET_ERROR = f"""\
Traceback (most recent call last):
  File "{_SP}/sqlalchemy/pool/base.py", line 986, in _finalize_fairy
    fairy._reset(
  File "{_SP}/sqlalchemy/pool/base.py", line 1432, in _reset
    pool._dialect.do_rollback(self)
  File "{_SP}/sqlalchemy/engine/default.py", line 699, in do_rollback
    dbapi_connection.rollback()
psycopg2.OperationalError: {_PG_CLOSED}"""

SUMMARY_ERROR = """\
Traceback (most recent call last):
  File "/app/app/services/production_service.py", line 218, in compute_daily_summary
    efficiency = produced / spk.daily_target
                 ~~~~~~~~~^~~~~~~~~~~~~~~~~~
ZeroDivisionError: division by zero"""


@dataclass(frozen=True)
class Client:
    """Who sends requests: address, user agent, page they come from, app user."""

    addr: str
    ua: str
    referrer: str = "-"
    user_id: int | None = None


@dataclass(order=True)
class _Line:
    at: int
    seq: int
    data: bytes = field(compare=False)


def iso(at: int) -> str:
    """``datetime.utcnow().isoformat()`` for a time (no fraction when it is .000000)."""
    return (BASE + timedelta(microseconds=at)).isoformat()


def time_local(at: int) -> str:
    """nginx ``$time_local`` at +0700, month names in English whatever the locale."""
    t = BASE + timedelta(microseconds=at) + LOCAL_OFFSET
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0700"


class Samples:
    """Collects the lines of both logs; written sorted by time, as the writers would."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.app: list[_Line] = []
        self.access: list[_Line] = []

    def _add(self, lines: list[_Line], at: int, data: bytes) -> None:
        lines.append(_Line(at, len(self.app) + len(self.access), data))

    def raw_app(self, at: int, data: bytes) -> None:
        self._add(self.app, at, data)

    def raw_access(self, at: int, text: str) -> None:
        self._add(self.access, at, text.encode("ascii"))

    def log(
        self,
        at: int,
        site: str,
        rid: str | None = None,
        uid: int | None = None,
        exception: str | None = None,
        **extra: object,
    ) -> None:
        """One line from a call site of the app, through the JSONFormatter."""
        self.raw_app(at, record(at, site, rid, uid, exception, **extra))

    def hit(
        self,
        end: int,
        who: Client,
        request: str,
        status: int,
        size: int,
        user: str = "-",
        trailer: str = "",
    ) -> None:
        """One nginx ``combined`` line, written when the response is done."""
        self.raw_access(
            end,
            f'{who.addr} - {user} [{time_local(end)}] "{request}" {status} '
            f'{size} "{who.referrer}" "{who.ua}"{trailer}',
        )

    def request_id(self) -> str:
        """nginx ``$request_id``: 32 hex digits."""
        return f"{self.rng.getrandbits(128):032x}"

    def ms(self, low: int, high: int) -> int:
        """A random delay between ``low`` and ``high`` milliseconds."""
        return self.rng.randint(low * 1000, high * 1000)

    def render(self, lines: list[_Line]) -> bytes:
        return b"".join(line.data + b"\n" for line in sorted(lines))


def record(
    at: int,
    site: str,
    rid: str | None = None,
    uid: int | None = None,
    exception: str | None = None,
    **extra: object,
) -> bytes:
    """``json.dumps`` of the JSONFormatter's dict: its keys, in its order, then the extras."""
    level, (logger, module), function, line, message = SITES[site]
    data: dict[str, object] = {
        "timestamp": iso(at), "level": level, "logger": logger,
        "message": message.format(**extra), "module": module, "function": function, "line": line,
    }  # fmt: skip
    if exception is not None:
        data["exception"] = exception
    if rid is not None:
        data["request_id"] = rid
    if uid is not None:
        data["user_id"] = uid
    data.update(extra)
    return json.dumps(data).encode("ascii")


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Safari/605.1.15"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36"
)
KIOSK_CHROME = (
    "Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
OKHTTP = "okhttp/4.12.0"
UI = "https://erp.qutykarunia.com/production/daily-input"
POST_INPUT = "POST /api/production/daily-input HTTP/1.1"

OPERATORS = [  # the factory Wi-Fi NATs to one address; some phones are on mobile data
    Client("203.0.113.45", OKHTTP, user_id=17),
    Client("203.0.113.45", OKHTTP, user_id=23),
    Client("203.0.113.45", OKHTTP, user_id=31),
    Client("203.0.113.45", OKHTTP, user_id=44),
    Client("114.124.183.37", OKHTTP, user_id=52),
    Client("182.2.41.190", OKHTTP, user_id=58),
    Client("2001:db8:4a1:7c02::1b3", OKHTTP, user_id=63),
    Client("2001:db8:c0de:12::8", OKHTTP, user_id=71),
    Client("203.0.113.45", OKHTTP, user_id=76),
]
SUPERVISORS = [
    Client("198.51.100.23", CHROME, UI, 5),
    Client("198.51.100.23", FIREFOX, UI, 8),
    Client("198.51.100.61", SAFARI, UI, 11),
    Client("114.124.150.9", ANDROID_CHROME, UI, 12),
]
PROBE = Client("10.148.0.23", "kube-probe/1.29")
KIOSK = Client("203.0.113.45", KIOSK_CHROME, "https://erp.qutykarunia.com/dashboard")
PROMETHEUS = Client("10.148.1.7", "Prometheus/2.53.1")
SCANNER = Client("192.0.2.77", "python-requests/2.31.0")
SPKS = [1031, 1038, 1042, 1045, 1050, 1057, 1063]
STATIC = [  # path, size
    ("/static/js/main.8f3c2a1b.js", 412877),
    ("/static/css/main.4b2e9d0c.css", 38214),
    ("/static/media/logo.3f2a91c4.svg", 5126),
    ("/manifest.json", 492),
    ("/favicon.ico", 15086),
]


def quiet(at: int) -> bool:
    return QUIET[0] <= at <= QUIET[1]


def post_daily_input(s: Samples, at: int, who: Client, spk: int, qty: int) -> None:
    """A successful daily input: received, the INSERT, recorded; nginx 201."""
    rid, uid = s.request_id(), who.user_id
    s.log(at, "received", rid, uid, spk_id=spk, quantity=qty)
    t = at + s.ms(5, 20)
    s.log(
        t,
        "query",
        rid,
        statement="INSERT daily_production_input",
        rows=1,
        duration_ms=s.rng.randint(2, 14),
    )
    t += s.ms(1, 4)
    s.log(
        t,
        "recorded",
        rid,
        uid,
        spk_id=spk,
        result_id=88000 + at // (4 * S),
        duration_ms=(t - at) // 1000,
    )
    s.hit(t + s.ms(1, 3), who, POST_INPUT, 201, s.rng.randint(180, 196))


def invalid_daily_input(s: Samples, at: int, who: Client, spk: int) -> None:
    """A rejected daily input (pydantic or the SPK's remaining target); nginx 400."""
    rid, uid = s.request_id(), who.user_id
    qty = s.rng.choice([-5, 0, 1250])
    s.log(at, "received", rid, uid, spk_id=spk, quantity=qty)
    if qty > 0:
        error = f"quantity {qty} exceeds remaining target {s.rng.randint(40, 300)} for SPK {spk}"
    else:
        error = (
            "1 validation error for DailyInputRequest\nquantity\n  Input should be greater "
            f"than 0 [type=greater_than, input_value={qty}, input_type=int]\n    For further "
            "information visit https://errors.pydantic.dev/2.9/v/greater_than"
        )
    t = at + s.ms(1, 6)
    s.log(t, "invalid", rid, uid, spk_id=spk, error=error)
    s.hit(t + s.ms(1, 3), who, POST_INPUT, 400, s.rng.randint(110, 260))


def operator_shift(s: Samples, who: Client) -> None:
    """One phone: checks its SPKs now and then, posts inputs every few minutes."""
    at = s.rng.randint(0, 120) * S + s.ms(0, 999)
    spk = s.rng.choice(SPKS)
    while at < SPAN - 20 * S:
        if not quiet(at):
            if s.rng.random() < 0.3:
                spk_list(s, at, who, "assigned_to=me&status=open")
            elif s.rng.random() < 0.1:
                invalid_daily_input(s, at, who, spk)
            else:
                post_daily_input(s, at, who, spk, s.rng.randint(8, 60))
        at += s.rng.randint(100, 260) * S + s.ms(0, 999)


def spk_list(s: Samples, at: int, who: Client, query: str) -> None:
    rid = s.request_id()
    t = at + s.ms(3, 25)
    s.log(t, "query", rid, statement="SELECT spk", rows=20, duration_ms=s.rng.randint(3, 30))
    count = s.rng.randint(3, 20)
    s.log(t + 200, "spk_list", rid, who.user_id, count=count)
    version = "2.0" if who.ua != OKHTTP else "1.1"
    request = f"GET /api/production/spk?{query} HTTP/{version}"
    s.hit(t + s.ms(1, 4), who, request, 200, 420 + 243 * count)


def page_load(s: Samples, at: int, who: Client) -> int:
    """The SPA shell and its assets (mostly 304 from the browser cache)."""
    s.hit(
        at + s.ms(1, 3), Client(who.addr, who.ua), "GET /production/daily-input HTTP/2.0", 200, 1843
    )
    t = at + s.ms(20, 60)
    for path, size in STATIC:
        cached = s.rng.random() < 0.6
        s.hit(t, who, f"GET {path} HTTP/2.0", 304 if cached else 200, 0 if cached else size)
        t += s.ms(5, 40)
    return t


def login(s: Samples, at: int, who: Client) -> int:
    """The supervisor types a password: one login a few seconds later, sometimes a typo first."""
    at += s.rng.randint(4, 15) * S
    if s.rng.random() < 0.3:
        s.log(at, "login_failed", s.request_id(), username=f"spv{who.user_id:03d}")
        s.hit(at + s.ms(180, 260), who, "POST /api/auth/login HTTP/2.0", 401, 61)
        at += s.rng.randint(5, 12) * S
    s.log(at, "login", s.request_id(), who.user_id, method="password")
    at += s.ms(180, 260)  # bcrypt
    s.hit(at, who, "POST /api/auth/login HTTP/2.0", 200, 612)
    return at


def supervisor_session(s: Samples, who: Client) -> None:
    """The web UI: log in, list SPKs, check history, change SPK statuses."""
    at = login(s, page_load(s, s.rng.randint(0, 300) * S, who), who)
    while at < SPAN - 30 * S:
        at += s.rng.randint(25, 110) * S + s.ms(0, 999)
        if quiet(at) or at >= SPAN - 30 * S:
            continue
        pick = s.rng.random()
        if pick < 0.4:
            spk_list(s, at, who, f"status=open&page={s.rng.randint(1, 3)}&size=20")
        elif pick < 0.7:
            history(s, at, who)
        elif pick < 0.93:
            spk_status(s, at, who)
        else:  # the token expired: the SPA reloads and the supervisor logs in again
            s.log(at, "expired", s.request_id(), who.user_id)
            s.hit(at + s.ms(1, 3), who, "GET /api/auth/me HTTP/2.0", 401, 53)
            at = login(s, page_load(s, at + s.ms(200, 900), who), who)


def history(s: Samples, at: int, who: Client) -> None:
    rid, spk, rows = s.request_id(), s.rng.choice(SPKS), s.rng.randint(0, 40)
    s.log(at + s.ms(2, 20), "history", rid, who.user_id, spk_id=spk, rows=rows)
    request = f"GET /api/production/daily-input?spk_id={spk}&date=2026-11-27 HTTP/2.0"
    s.hit(at + s.ms(22, 60), who, request, 200, 96 + 131 * rows)


def spk_status(s: Samples, at: int, who: Client) -> None:
    rid, spk = s.request_id(), s.rng.choice(SPKS)
    if s.rng.random() < 0.25:  # a mistyped SPK number
        spk = 99000 + s.rng.randint(100, 999)
        s.log(at + 900, "spk_missing", rid, who.user_id, spk_id=spk)
        s.hit(at + s.ms(3, 8), who, f"PUT /api/production/spk/{spk}/status HTTP/2.0", 404, 38)
        return
    old, new = s.rng.choice([("open", "in_progress"), ("in_progress", "qc"), ("qc", "done")])
    s.log(
        at + s.ms(4, 15),
        "query",
        rid,
        statement="UPDATE spk",
        rows=1,
        duration_ms=s.rng.randint(2, 12),
    )
    s.log(
        at + s.ms(16, 30),
        "spk_status",
        rid,
        who.user_id,
        spk_id=spk,
        old_status=old,
        new_status=new,
    )
    s.hit(at + s.ms(31, 45), who, f"PUT /api/production/spk/{spk}/status HTTP/2.0", 200, 274)


def pollers(s: Samples) -> None:
    """kube-probe every 20 s, Prometheus every 30 s, the line-A wall display every 60 s."""
    for at in range(7 * S, SPAN, 20 * S):
        at += s.ms(0, 30)
        if DB_DOWN <= at < WORKER_EXIT:
            continue  # outage() writes these, with the app's side
        status, size = (502, 150) if WORKER_EXIT <= at < WORKER_UP else (200, 71)
        s.hit(at + s.ms(1, 4), PROBE, "GET /api/health HTTP/1.1", status, size)
    for at in range(13 * S, SPAN, 30 * S):
        at += s.ms(0, 10)
        status, size = (502, 150) if WORKER_EXIT <= at < WORKER_UP else (200, 9000)
        size += s.rng.randint(0, 800) * (status == 200)
        s.hit(at + s.ms(4, 30), PROMETHEUS, "GET /metrics HTTP/1.1", status, size, "prometheus")
    for at in range(31 * S, SPAN, 60 * S):  # the app does not log the dashboard endpoint
        at += s.ms(0, 400)
        if DB_DOWN <= at < WORKER_EXIT:
            status, size = 503, 64
        elif WORKER_EXIT <= at < WORKER_UP:
            status, size = 502, 150
        else:
            status, size = 200, 1500 + s.rng.randint(0, 90)
        s.hit(
            at + s.ms(8, 40), KIOSK, "GET /api/production/dashboard?line=A HTTP/1.1", status, size
        )


def outage(s: Samples) -> None:
    """PostgreSQL goes away at 00:05Z: failed inputs, failing health checks, the CRITICAL."""
    s.log(DB_DOWN + 212_345, "pool_reset", exception=POOL_RESET_ERROR)
    phones = [OPERATORS[i] for i in (0, 4, 2, 6, 8)]
    for n, (offset, who) in enumerate(zip((1, 24, 47, 79, 114), phones, strict=True)):
        at = DB_DOWN + offset * S + s.ms(0, 999)
        rid, uid, spk, qty = s.request_id(), who.user_id, SPKS[n], 12 + 7 * n
        s.log(at, "received", rid, uid, spk_id=spk, quantity=qty)
        t = at + (s.ms(5, 20) if n == 0 else s.ms(3000, 3100))  # then the connect timeout
        trace, error = db_error(spk, qty, uid or 0, at, refused=n > 0)
        s.log(
            t,
            "db_error",
            rid,
            uid,
            exception=trace,
            spk_id=spk,
            error=error,
            error_type="OperationalError",
        )
        s.hit(t + s.ms(1, 4), who, POST_INPUT, 500, 58)
    for k, at in enumerate(range(DB_DOWN + 7 * S, WORKER_EXIT, 20 * S)):
        at += 3 * S + s.ms(0, 30)  # the connect timeout
        if k == 0:  # the first failure with its traceback, then one warning per probe
            s.log(at, "health_error", s.request_id(), exception=connect_error())
        else:
            s.log(at, "health_warn", s.request_id())
        s.hit(at + s.ms(0, 2), PROBE, "GET /api/health HTTP/1.1", 503, 98)
    for attempt in range(1, 6):
        at = WORKER_EXIT - (6 - attempt) * 8 * S + s.ms(0, 30)
        if attempt < 5:
            s.log(at, "retry", attempt=attempt, error="Connection refused", retry_in_s=8)
        else:
            s.log(at, "retry", attempt=attempt, error="Connection refused")
    s.log(WORKER_EXIT, "unreachable", exception=connect_error(), attempts=5)


def restart(s: Samples) -> None:
    """The worker is killed mid-write, nginx answers 502, then the phones' queue drains."""
    at = WORKER_EXIT + 1_200
    s.raw_app(at, record(at, "received", s.request_id(), 44, spk_id=1045, quantity=20)[:97])
    for n, who in enumerate((OPERATORS[0], SUPERVISORS[0], OPERATORS[4])):
        request = "GET /api/production/spk?status=open HTTP/2.0" if n == 1 else POST_INPUT
        s.hit(WORKER_EXIT + (4 + 6 * n) * S + s.ms(0, 900), who, request, 502, 150)
    s.raw_app(
        WORKER_UP - 900_000,
        b"INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
    )
    s.log(WORKER_UP - 420_000, "pool_ready", pool_size=10, max_overflow=20)
    s.log(WORKER_UP, "startup", version="3.8.2")
    for n, who in enumerate(OPERATORS[:6]):  # inputs the phones queued while it was down
        post_daily_input(s, WORKER_UP + (2 + n) * S + s.ms(0, 900), who, SPKS[n], 10 + n)


def midnight(s: Samples) -> None:
    """The daily summary job: starts at 00:00:00.000000Z sharp, one SPK fails."""
    s.log(MIDNIGHT, "summary", report_date="2026-11-26")
    s.log(
        MIDNIGHT + 804_112,
        "summary_failed",
        exception=SUMMARY_ERROR,
        spk_id=1057,
        error="division by zero",
        error_type="ZeroDivisionError",
    )
    s.log(
        MIDNIGHT + 1_873_530,
        "summary_done",
        report_date="2026-11-26",
        spk_count=42,
        failed=1,
        duration_ms=1873,
    )


def oddities(s: Samples) -> None:
    """Lines that parsers trip on, spread over the half hour."""
    xff = Client("203.0.113.9, 10.0.0.2", CHROME, UI)  # a log_format with $http_x_forwarded_for
    s.hit(95 * S, xff, "GET /api/production/spk?status=open&page=2&size=20 HTTP/1.1", 200, 4794)
    s.hit(210 * S, Client("192.0.2.77", "-"), "", 400, 0)  # connected, sent nothing
    tls = r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03\xA9\x1E\x87\x0B\xC4"  # nginx's escapes
    s.hit(433 * S, Client("192.0.2.150", "-"), tls, 400, 157)
    s.hit(1234 * S, SCANNER, "GET /.env HTTP/1.1", 404, 153)
    s.hit(1236 * S, SCANNER, "GET /wp-login.php HTTP/1.1", 404, 153)
    s.hit(1500 * S, Client("10.148.0.40", "curl/8.5.0"), "GET /api/health HTTP/1.1", 200, 71)
    at, rid = 1389 * S + 120_000, s.request_id()  # "$request_id" appended: joins the app's line
    s.log(at, "history", rid, 12, spk_id=1042, rows=20)
    request = "GET /api/production/daily-input?spk_id=1042 HTTP/2.0"
    s.hit(at + 31_000, SUPERVISORS[3], request, 200, 2716, trailer=f' "{rid}"')
    s.raw_access(1620 * S, '182.2.41.190 - - [27/Nov/2026:07:17:00 +0700] "GET /api/produc')
    at = 1710 * S + 55_021  # a maintenance script wrote latin-1: not valid UTF-8
    s.raw_app(at, record(at, "notes", uid=17).replace(b"Caf@", b"Caf\xe9 Jaya"))


def build(seed: int = SEED) -> Samples:
    """Every line of both logs, from one seeded generator."""
    s = Samples(random.Random(seed))
    pollers(s)
    midnight(s)
    outage(s)
    restart(s)
    for who in OPERATORS:
        operator_shift(s, who)
    for who in SUPERVISORS:
        supervisor_session(s, who)
    oddities(s)
    return s


def write_samples(out_dir: Path) -> None:
    """Write ``application.log`` and ``access.log`` into ``out_dir``."""
    s = build()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / APP_LOG).write_bytes(s.render(s.app))
    (out_dir / ACCESS_LOG).write_bytes(s.render(s.access))


main = write_samples

if __name__ == "__main__":
    write_samples(Path(__file__).resolve().parent)
