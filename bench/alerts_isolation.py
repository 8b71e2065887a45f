"""Does a dead, slow or stalling SMTP server slow indexing down? Measure it, in one run.

    .venv/bin/python bench/alerts_isolation.py [--events 50000] [--runs 3]
        [--groups 300] [--error-share 0.10] [--modes healthy,stalled,refused,off]
        [--policies capped,flood] [--smtp-timeout 10] [--data-root DIR] [--no-record]

One workload: N application lines (the backend's JSONFormatter, from
bench/workload.py) in which about ``--error-share`` of the lines are replaced by
ERROR lines with a traceback, spread over ``--groups`` distinct errors
(distinct logger, exception type and message, so distinct alert groups).

Each measurement is ``python -m logpipe run PIPELINE`` (sidecar mode, no
``--once``) as a child process with a fresh data dir, shipping to
bench/null_es.py (its own process, shared by all runs) with e-mail alerts
pointed at a :class:`~logpipe.devservers.smtp.RecordingSMTP` in this process
that is, for that run:

- ``healthy``: accepting every message;
- ``stalled``: :meth:`RecordingSMTP.stall`, the port accepts connections and
  never says a word (a hung server, a black-holing firewall);
- ``refused``: nothing listens on the port;
- ``off``: no ``alerts`` section at all, the reference.

and the alert policy is ``capped`` (the defaults: 20 e-mails an hour, so the
first 20 groups are e-mailed and the rest counted into digests) or ``flood``
(``max_emails_per_period`` 1,000,000: one e-mail per group, as fast as the
sender goes).

The clock starts just before the child is started and stops when the null
server has acknowledged all N documents (polled every 20 ms through its
``/_null/stats``); the child's CPU (utime + stime of all its threads, from
``/proc/<pid>/stat``) is read at that moment, then it is sent SIGTERM and the
time it takes to exit is recorded too. Every round runs every (policy, mode)
once, in alternating order; medians with (min..max) over the rounds are
reported, with the ratio of each SMTP mode to ``healthy`` (of the medians, and
the median of the per-round ratios). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from report import Spread, machine, publish
from servers import BenchError, null_server, request
from workload import SEED, app_lines

from logpipe.devservers.smtp import RecordingSMTP

BENCH = Path(__file__).resolve().parent
MODES = ("healthy", "stalled", "refused", "off")
POLICIES = {"capped": 20, "flood": 1_000_000}  # policy.max_emails_per_period
POLL = 0.02  # seconds between two looks at the null server's counter
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Distinct errors: logger app.<domain>.<component>, a message naming both (no
# digits, which the fingerprint would mask) and an exception type per failure.
_DOMAINS = (
    "production", "inventory", "billing", "auth", "shipping", "quality",
    "warehouse", "payroll", "purchasing", "reporting", "scheduling", "maintenance",
)  # fmt: skip
_COMPONENTS = (
    "api", "service", "repository", "worker", "importer",
    "exporter", "scheduler", "cache", "validator", "notifier",
)  # fmt: skip
_FAILURES = (
    ("Database error while saving", "sqlalchemy.exc.OperationalError",
     "server closed the connection unexpectedly"),
    ("Upstream timed out for", "httpx.ReadTimeout", "timed out while reading the response"),
    ("Unexpected empty result from", "ValueError", "expected at least one row"),
    ("Permission check failed in", "PermissionError", "operation not permitted"),
    ("Cannot decode payload of", "json.decoder.JSONDecodeError", "Expecting value"),
)  # fmt: skip
MAX_GROUPS = len(_DOMAINS) * len(_COMPONENTS) * len(_FAILURES)


@dataclass(frozen=True, slots=True)
class AlertWorkload:
    path: Path
    lines: int
    error_lines: int  # all ERROR lines, the workload's own 1% included
    groups: int  # distinct errors among the injected ERROR lines


def _error_line(rng: random.Random, group: tuple[str, str, str], base: str) -> str:
    """An ERROR line for ``group`` with the timestamp and ids of the line it replaces."""
    failure, domain, component = group
    text, error_type, reason = next(f for f in _FAILURES if f[0] == failure)
    record = json.loads(base)
    spk = rng.randint(1000, 1099)
    return json.dumps(
        {
            "timestamp": record["timestamp"],
            "level": "ERROR",
            "logger": f"app.{domain}.{component}",
            "message": f"{text} {domain} {component} record for SPK {spk}",
            "module": component,
            "function": f"handle_{domain}",
            "line": rng.randint(20, 400),
            "exception": (
                "Traceback (most recent call last):\n"
                f'  File "/app/app/{domain}/{component}.py", line {rng.randint(20, 400)}, '
                f"in handle_{domain}\n"
                f"    result = await self.{component}.run(spk_id={spk})\n"
                f"{error_type}: {reason} (spk {spk})"
            ),
            **{k: record[k] for k in ("request_id", "user_id") if k in record},
            "spk_id": spk,
        }
    )


def write_alert_workload(
    out_dir: Path, lines: int, groups: int, error_share: float, seed: int = SEED
) -> AlertWorkload:
    """bench/workload.py's application lines, ``error_share`` of them replaced by errors."""
    rng = random.Random(seed + 7)
    every = [(f[0], d, c) for f in _FAILURES for d in _DOMAINS for c in _COMPONENTS]
    rng.shuffle(every)
    chosen = every[:groups]
    out: list[str] = []
    used: set[tuple[str, str, str]] = set()
    errors = 0
    for line in app_lines(lines, seed):
        if rng.random() < error_share:
            group = rng.choice(chosen)
            used.add(group)
            line = _error_line(rng, group, line)
        if '"level": "ERROR"' in line:
            errors += 1
        out.append(line)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "application.log"
    path.write_text("".join(line + "\n" for line in out), encoding="utf-8")
    return AlertWorkload(path, lines, errors, len(used))


def pipeline_yaml(log: Path, es_url: str, data_dir: Path, prefix: str, alerts: str | None) -> str:
    """One input (the application log), the null sink, and ``alerts`` if any."""
    return f"""\
data_dir: {data_dir}
inputs:
  application:
    paths: ["{log}"]
    parser: app_json
    dataset: erp.application
enrich:
  fields:
    service.environment: production
    cloud.region: asia-southeast
output:
  elasticsearch:
    hosts: ["{es_url}"]
    index_prefix: {prefix}
{alerts or ""}"""


def alerts_yaml(smtp_port: int, max_emails: int, timeout: float) -> str:
    return f"""\
alerts:
  email:
    levels: [error, critical]
    to: ["ops-team@example.com"]
    from: logpipe@example.com
    policy:
      max_emails_per_period: {max_emails}
    smtp:
      host: 127.0.0.1
      port: {smtp_port}
      timeout_seconds: {timeout}
"""


def set_mode(smtp: RecordingSMTP, mode: str) -> None:
    """Put the SMTP server in ``mode`` (``off`` leaves it as it is: unused)."""
    if mode == "healthy" and not smtp.running:
        smtp.start()  # also ends a stall
    elif mode == "stalled":
        smtp.stop()  # a fresh stall: held_connections counts this run's only
        smtp.stall()
    elif mode == "refused":
        smtp.stop()
    smtp.clear()


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def docs_acknowledged(url: str) -> int:
    return int(orjson.loads(request(url, "GET", "/_null/stats")[1])["docs"])


@dataclass(frozen=True, slots=True)
class Result:
    policy: str
    mode: str
    events: int
    to_acked: float  # s from start to every document acknowledged
    cpu: float  # logpipe's CPU-s at that moment
    exit_after: float  # s from SIGTERM to exit
    spooled: int  # alert e-mails logpipe wrote to its spool (alert_spooled)
    unqueued: int  # alert_unqueued warnings (offers that found the queue full)
    sent: int  # e-mails logpipe reports sent
    smtp_during: int  # messages the SMTP server took before every document was acked
    smtp_total: int  # ... before logpipe exited
    held: int  # connections held by the stalled server
    pending_left: int  # spool files left after exit

    @property
    def rate(self) -> float:
        return self.events / self.to_acked


def run_once(
    workload: AlertWorkload,
    es_url: str,
    smtp: RecordingSMTP,
    policy: str,
    mode: str,
    workdir: Path,
    smtp_timeout: float,
) -> Result:
    """One sidecar run of logpipe over the workload; see the module docstring."""
    set_mode(smtp, mode)
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    alerts = None if mode == "off" else alerts_yaml(smtp.port, POLICIES[policy], smtp_timeout)
    pipeline = workdir / "pipeline.yml"
    pipeline.write_text(
        pipeline_yaml(workload.path, es_url, data_dir, f"bench-alerts-{workdir.name}", alerts)
    )
    before = docs_acknowledged(es_url)
    stderr_path = workdir / "stderr"
    argv = [sys.executable, "-m", "logpipe", "run", str(pipeline)]
    with stderr_path.open("wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            deadline = start + 180
            while (acked := docs_acknowledged(es_url) - before) < workload.lines:
                if child.poll() is not None or time.perf_counter() > deadline:
                    raise BenchError(
                        f"{policy}/{mode}: {acked} of {workload.lines} acknowledged "
                        f"(exit {child.returncode}):\n{stderr_path.read_text()[-2000:]}"
                    )
                time.sleep(POLL)
            to_acked = time.perf_counter() - start
            cpu = cpu_seconds(child.pid)
            smtp_during = smtp.attempts
            signalled = time.perf_counter()
            child.send_signal(signal.SIGTERM)
            code = child.wait(60)
            exit_after = time.perf_counter() - signalled
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    stderr = stderr_path.read_text(errors="replace")
    summary = next((ln for ln in stderr.splitlines() if ln.startswith("read ")), "")
    if code != 0 or f" {workload.lines} indexed" not in summary:
        raise BenchError(f"{policy}/{mode}: exit {code}, {summary!r}:\n{stderr[-2000:]}")
    events = Counter(_log_messages(stderr))
    sent = int(summary.rsplit("; ", 1)[1].split()[0])
    pending = data_dir / "alerts" / "pending"
    return Result(
        policy=policy if mode != "off" else "-",
        mode=mode,
        events=workload.lines,
        to_acked=to_acked,
        cpu=cpu,
        exit_after=exit_after,
        spooled=events["alert_spooled"],
        unqueued=events["alert_unqueued"],
        sent=sent,
        smtp_during=smtp_during,
        smtp_total=smtp.attempts,
        held=smtp.held_connections,
        pending_left=len(list(pending.glob("*.json"))) if pending.exists() else 0,
    )


def _log_messages(stderr: str) -> list[str]:
    messages = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                messages.append(orjson.loads(line).get("message", ""))
    return messages


# -- report ----------------------------------------------------------------------------

HEADER = (
    "| policy | SMTP | runs | events/s to all acked | s to all acked | logpipe CPU s "
    "| CPU-s / M events | e-mails spooled | SMTP took: while indexing / by exit "
    "| s to exit after SIGTERM |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _cell(values: list[float], fmt: str) -> str:
    return Spread.of(values).cell(fmt)


def table(results: list[Result]) -> str:
    keys = list(dict.fromkeys((r.policy, r.mode) for r in results))
    lines = [HEADER]
    for policy, mode in keys:
        rs = [r for r in results if (r.policy, r.mode) == (policy, mode)]
        if mode == "healthy":
            took = f"{_cell([r.smtp_during for r in rs], '.0f')} / "
            took += _cell([r.smtp_total for r in rs], ".0f")
        elif mode == "stalled":
            held = statistics.median(r.held for r in rs)
            took = f"0 / 0 ({held:.0f} connection{'s' * (held != 1)} held)"
        else:
            took = "—"
        spooled = "—" if mode == "off" else _cell([r.spooled for r in rs], ".0f")
        lines.append(
            f"| {policy} | {mode} | {len(rs)} | {_cell([r.rate for r in rs], ',.0f')} "
            f"| {_cell([r.to_acked for r in rs], '.2f')} | {_cell([r.cpu for r in rs], '.2f')} "
            f"| {_cell([r.cpu * 1e6 / r.events for r in rs], '.1f')} | {spooled} | {took} "
            f"| {_cell([r.exit_after for r in rs], '.2f')} |"
        )
    return "\n".join(lines)


def ratio_lines(results: list[Result], runs: int) -> list[str]:
    """Each mode against ``healthy`` (same policy), and against ``off``: events/s and CPU."""
    by = {(r.policy, r.mode): [x for x in results if (x.policy, x.mode) == (r.policy, r.mode)]
          for r in results}  # fmt: skip
    off = by.get(("-", "off"))
    lines = []
    for policy in dict.fromkeys(r.policy for r in results if r.mode != "off"):
        healthy = by.get((policy, "healthy"))
        parts = []
        for mode in ("stalled", "refused"):
            mine = by.get((policy, mode))
            if healthy is None or mine is None:
                continue
            parts.append(f"{mode} / healthy events/s {_ratios(mine, healthy, 'rate', runs)}")
            parts.append(f"CPU {_ratios(mine, healthy, 'cpu', runs)}")
        if off is not None and healthy is not None:
            parts.append(f"healthy / off events/s {_ratios(healthy, off, 'rate', runs)}")
            parts.append(f"CPU {_ratios(healthy, off, 'cpu', runs)}")
        lines.append(f"- **{policy}**: " + "; ".join(parts))
    return lines


def _ratios(mine: list[Result], other: list[Result], figure: str, runs: int) -> str:
    """x<ratio of medians> (per-round ratios: median, min..max)."""
    a = statistics.median(getattr(r, figure) for r in mine)
    b = statistics.median(getattr(r, figure) for r in other)
    paired = [getattr(x, figure) / getattr(y, figure) for x, y in zip(mine, other, strict=True)]
    spread = Spread.of(paired)
    return f"x{a / b:.3f} (per round {spread.median:.3f}, {spread.low:.3f}..{spread.high:.3f})"


def section(command: str, settings: list[str], results: list[Result], runs: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    notes = "".join(f"- {s}\n" for s in settings)
    ratios = "\n".join(ratio_lines(results, runs))
    return (
        f"## {stamp} — alerts isolation (bench/alerts_isolation.py)\n\n{machine()}\n"
        f"- command: `{command}`\n{notes}\n{table(results)}\n\n"
        f"Ratios (of medians; in brackets the median and range of the per-round ratios):\n\n"
        f"{ratios}\n"
    )


# -- main ------------------------------------------------------------------------------


@contextlib.contextmanager
def _removed(path: Path) -> Iterator[Path]:
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (from /proc/mounts), e.g. ``ext4``."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fstype
    return kind


def plan(modes: list[str], policies: list[str]) -> list[tuple[str, str]]:
    """The (policy, mode) runs of one round; ``off`` has no policy and runs once."""
    runs = [(p, m) for p in policies for m in modes if m != "off"]
    return runs + ([("-", "off")] if "off" in modes else [])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="application lines")
    parser.add_argument("--runs", type=int, default=3, help="rounds (every mode once each)")
    parser.add_argument("--groups", type=int, default=300, help=f"distinct errors, <= {MAX_GROUPS}")
    parser.add_argument("--error-share", type=float, default=0.10, help="lines made ERROR")
    parser.add_argument("--modes", default="healthy,stalled,refused,off", help=", ".join(MODES))
    parser.add_argument("--policies", default="capped,flood", help=", ".join(POLICIES))
    parser.add_argument("--smtp-timeout", type=float, default=10.0, help="smtp.timeout_seconds")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where the per-run data dirs go (default: the temp dir; e.g. /dev/shm)",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if set(args.modes) - set(MODES) or set(args.policies) - set(POLICIES):
        parser.error("unknown mode or policy")
    if not 1 <= args.groups <= MAX_GROUPS:
        parser.error(f"--groups must be 1..{MAX_GROUPS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    order = plan(args.modes, args.policies)
    results: list[Result] = []
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="logpipe-alerts-bench-") as tmp,
        RecordingSMTP() as smtp,
    ):
        root = Path(tmp)
        workload = write_alert_workload(
            root / "workload", args.events, args.groups, args.error_share
        )
        print(
            f"{workload.lines:,} lines, {workload.error_lines:,} ERROR "
            f"({workload.groups} injected groups); {args.runs} rounds of {len(order)} runs",
            flush=True,
        )
        runs_root = Path(tempfile.mkdtemp(prefix="logpipe-alerts-", dir=args.data_root))
        data_fs = filesystem(runs_root.resolve())
        with null_server(root) as es_url, _removed(runs_root):
            # Warm-up (not counted): the page cache, the interpreter's .pyc files.
            run_once(workload, es_url, smtp, "capped", "healthy", runs_root / "warmup", 10.0)
            for i in range(args.runs):
                for policy, mode in order if i % 2 == 0 else order[::-1]:
                    r = run_once(
                        workload, es_url, smtp, policy, mode, runs_root / f"{i}-{policy}-{mode}",
                        args.smtp_timeout,
                    )  # fmt: skip
                    results.append(r)
                    print(
                        f"  round {i + 1} {policy:>6} {mode:>7}: {r.rate:8,.0f} events/s, "
                        f"{r.to_acked:.2f} s, CPU {r.cpu:.2f} s, exit {r.exit_after:.2f} s, "
                        f"spooled {r.spooled}, SMTP took {r.smtp_during}/{r.smtp_total}, "
                        f"held {r.held}, sent {r.sent}, unqueued {r.unqueued}, "
                        f"left in spool {r.pending_left}",
                        flush=True,
                    )
    results.sort(key=lambda r: (order.index((r.policy, r.mode)),))
    command = "python bench/alerts_isolation.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    settings = [
        f"workload: {workload.lines:,} application lines, {workload.error_lines:,} of them "
        f"ERROR with a traceback ({workload.groups} distinct injected errors, plus the "
        "workload's own 3); one input, null sink, logpipe as a sidecar "
        "(`logpipe run PIPELINE`), SIGTERM once every document is acknowledged",
        f"alerts: policy `capped` = defaults (20 e-mails/h, window 600 s), `flood` = "
        f"`max_emails_per_period: {POLICIES['flood']:,}`; smtp.timeout_seconds "
        f"{args.smtp_timeout:g}; `off` = no alerts section; data dirs (spool, checkpoints) "
        f"on {data_fs}",
        f"{args.runs} rounds, every (policy, SMTP) once per round in alternating order, "
        f"after one warm-up run; medians (min..max); whole benchmark "
        f"{time.monotonic() - began:.0f} s",
    ]
    left = {
        f"{p}/{m}": statistics.median(
            r.pending_left for r in results if (r.policy, r.mode) == (p, m)
        )
        for p, m in order
        if m != "off"
    }
    settings.append(
        "runs in which an offer found the alert queue full (`alert_unqueued`): "
        f"{sum(r.unqueued > 0 for r in results)} of {len(results)}; e-mails still spooled "
        "at exit (median per run): " + ", ".join(f"{k} {v:.0f}" for k, v in left.items())
    )
    text = section(command.strip(), settings, results, args.runs)
    publish(text, args.results, record=not args.no_record)


if __name__ == "__main__":
    main()
