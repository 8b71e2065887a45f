"""compose(): first e-mails and digests, deterministic, with nothing from a log line escaping."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from logpipe.alerts.compose import MailSettings, compose, duration, recipients
from logpipe.alerts.outgoing import Outgoing, merge, summarise
from logpipe.alerts.render import SUBJECT_MAX

T0 = datetime(2026, 11, 27, 6, 40, tzinfo=UTC).timestamp()
SETTINGS = MailSettings(
    sender="logpipe@example.com",
    to=("ops-team@example.com",),
    kibana_url="https://kibana.example.com",
)


def sample(message: str = "Database error recording daily input") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-27T06:40:00.000Z",
        "log": {"level": "error", "logger": "app.api.production"},
        "message": message,
        "http": {"request": {"id": "req-1"}},
        "error": {"type": "OperationalError", "stack_trace": "Traceback ...\nOperationalError: x"},
    }


FIRST = Outgoing(
    kind="first",
    key="default:abc123",
    title="Database error recording daily input",
    count=1,
    first_at=T0,
    last_at=T0,
    since=T0,
    at=T0 + 1,
    sample=sample(),
    request_ids=("req-1",),
)
DIGEST = replace(
    FIRST,
    kind="digest",
    count=4_213,
    first_at=T0 + 5,
    last_at=T0 + 590,
    since=T0 + 1,
    at=T0 + 601,
    request_ids=("req-2", "req-3"),
    user_ids=("42",),
    continued=True,
)


def wire(message: EmailMessage) -> tuple[bytes, EmailMessage]:
    data = message.as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return data, parsed


def text(parsed: EmailMessage, subtype: str = "plain") -> str:
    part = parsed.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_first_email_has_the_classic_subject_own_headers_and_a_kibana_link() -> None:
    _, parsed = wire(compose(FIRST, "1795773601000-abcd-000001", SETTINGS))

    assert parsed["Subject"] == "Critical Error: Database error recording daily input"
    assert parsed["Message-ID"] == "<logpipe.1795773601000-abcd-000001@example.com>"
    assert (parsed["X-Logpipe-Kind"], parsed["X-Logpipe-Count"]) == ("first", "1")
    assert parsed["X-Logpipe-Group"] == "default:abc123"
    plain = text(parsed)
    assert "Open in Kibana: https://kibana.example.com/app/discover#/?_g=" in plain
    assert "http.request.id" in plain.replace("%22", '"')
    assert '<a href="https://kibana.example.com/app/discover#/?_g=' in text(parsed, "html")


def test_the_same_entry_always_renders_the_same_message() -> None:
    def seen(entry_id: str) -> tuple[list[tuple[str, str]], str, str]:
        # Everything but the MIME boundary, which the generator picks at random.
        parsed = wire(compose(DIGEST, entry_id, SETTINGS))[1]
        headers = [(k, str(v)) for k, v in parsed.items() if k != "Content-Type"]
        return headers, text(parsed), text(parsed, "html")

    assert seen("1-a-000001") == seen("1-a-000001")
    assert seen("1-a-000002") != seen("1-a-000001")


def test_digest_subject_and_summary_tell_how_many_when_and_which_requests() -> None:
    _, parsed = wire(compose(DIGEST, "1-a-000001", SETTINGS))

    assert parsed["Subject"] == "Critical Error: Database error recording daily input (+4,213 more)"
    assert parsed["X-Logpipe-Count"] == "4213"
    plain = text(parsed)
    assert plain.startswith(
        "Database error recording daily input — 4,213 more times within 10 minutes, "
        "first at 2026-11-27 06:40:05 UTC, last at 2026-11-27 06:49:50 UTC.\n"
        "Sample request ids: req-2, req-3\n"
        "Sample user ids: 42\n"
    )
    assert "Traceback ..." in plain  # the sample event follows
    assert "Open this period in Kibana: https://kibana.example.com/" in plain


def test_digest_without_an_earlier_email_says_times_not_more_times() -> None:
    plain = text(wire(compose(replace(DIGEST, continued=False), "1-a-1", SETTINGS))[1])

    assert "— 4,213 times within" in plain


def test_long_title_is_cut_but_the_count_stays_in_the_subject() -> None:
    long = replace(DIGEST, title="x" * 5_000)

    subject = str(wire(compose(long, "1-a-1", SETTINGS))[1]["Subject"]).strip()

    assert subject.endswith("(+4,213 more)")
    assert len(subject) <= SUBJECT_MAX


NASTY_TITLE = "boom\r\nBcc: evil@attacker.test <script>alert(1)</script> =?UTF-8?Q?=0A?="


def test_nothing_in_a_digest_adds_a_header_a_recipient_or_markup() -> None:
    nasty = replace(
        DIGEST,
        title=NASTY_TITLE,
        request_ids=("r\r\nBcc: x@y.test", "<b>bold</b>"),
        sample=sample(NASTY_TITLE),
    )

    data, parsed = wire(compose(nasty, "1-a-1", SETTINGS))

    assert "Bcc" not in parsed
    assert parsed.get_all("To") == ["ops-team@example.com"]
    assert "\n" not in str(parsed["Subject"]).strip()
    assert data.isascii()
    html_body = text(parsed, "html")
    assert "<script>" not in html_body and "<b>" not in html_body
    tags = set(re.findall(r"</?([a-zA-Z0-9!]+)", html_body))
    assert tags <= {"!DOCTYPE", "html", "body", "p", "a", "table", "tr", "th", "td", "h3", "pre"}


def test_merged_summary_lists_its_breakdown() -> None:
    merged = merge(summarise(FIRST), replace(DIGEST, title="user 42 not found", count=7))

    plain = text(wire(compose(merged, "1-a-1", SETTINGS))[1])

    assert plain.startswith("Alerts merged while e-mail delivery was backed up — 8 more times")
    assert "Merged alerts (count, title):" in plain
    assert "- 1 times: Database error recording daily input" in plain
    assert "- 7 times: user 42 not found" in plain


def test_rule_recipients_override_the_defaults_and_cc_is_a_header() -> None:
    routed = replace(FIRST, to=("dba@example.com",), cc=("lead@example.com",))

    _, parsed = wire(compose(routed, "1-a-1", SETTINGS))

    assert parsed["To"] == "dba@example.com"
    assert parsed["Cc"] == "lead@example.com"
    assert recipients(FIRST, replace(SETTINGS, cc=("boss@example.com",))) == (
        ["ops-team@example.com"],
        ["boss@example.com"],
    )


def test_empty_sample_still_renders() -> None:
    bare = replace(DIGEST, sample={}, title="Alerts not grouped: the alert queue was full")

    _, parsed = wire(compose(bare, "1-a-1", SETTINGS))

    assert "queue was full" in str(parsed["Subject"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"sender": "not an address"},
        {"to": ("a@x.test\r\nBcc: e@vil.test",)},
        {"kibana_url": "javascript:alert(1)"},
        {"to": ()},
    ],
)
def test_settings_are_checked_at_construction(overrides: dict[str, Any]) -> None:
    options: dict[str, Any] = {"sender": "logpipe@example.com", "to": ("ops@example.com",)}
    with pytest.raises(ValueError):
        MailSettings(**(options | overrides))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (45, "45 seconds"),
        (600, "10 minutes"),
        (7_500, "2 hours 5 minutes"),
        (7_200, "2 hours"),
    ],
)
def test_duration_is_rounded_for_humans(seconds: float, text: str) -> None:
    assert duration(seconds) == text
