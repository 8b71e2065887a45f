"""Turn an :class:`~logpipe.alerts.policy.Outgoing` decision into an e-mail.

Pure: the decision, its spool entry id and the mail settings in, an
:class:`email.message.EmailMessage` out. The same entry always renders to the
same message (Date from the decision, Message-ID from the entry id; only the
random MIME boundary differs), so a retried or re-sent alert is the one before
and mail clients can de-duplicate it by its Message-ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from logpipe.alerts.kibana import DATA_VIEW, event_link, group_link
from logpipe.alerts.outgoing import Outgoing
from logpipe.alerts.render import render_email


@dataclass(frozen=True, slots=True)
class MailSettings:
    """What every alert e-mail shares: sender, default recipients, subjects, Kibana.

    ``subject`` is used for a group's first e-mail, ``digest_subject`` for
    digests (``{count}`` is the number of events the digest reports).
    """

    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    subject: str = "Critical Error: {message}"
    digest_subject: str = "Critical Error: {message} (+{count} more)"
    kibana_url: str | None = None
    kibana_data_view: str = DATA_VIEW

    def __post_init__(self) -> None:
        # Fail at start-up on a bad address or Kibana URL, not at the first alert.
        probe = Outgoing("first", "probe", "probe", 1, 0.0, 0.0, 0.0, 0.0, {})
        compose(probe, "probe", self)


def recipients(outgoing: Outgoing, settings: MailSettings) -> tuple[list[str], list[str]]:
    """The (to, cc) of an e-mail: its rule's when the rule names any, else the defaults."""
    if outgoing.to:
        return list(outgoing.to), list(outgoing.cc)
    return list(settings.to), list(outgoing.cc or settings.cc)


def compose(outgoing: Outgoing, entry_id: str, settings: MailSettings) -> EmailMessage:
    """Render ``outgoing`` (spooled as ``entry_id``) as a complete e-mail."""
    to, cc = recipients(outgoing, settings)
    fields = outgoing.sample
    links: list[tuple[str, str]] = []
    if outgoing.kind == "first":
        template, summary, values = settings.subject, [], None
        if settings.kibana_url:
            link = event_link(
                settings.kibana_url,
                fields,
                fallback=outgoing.at,
                data_view=settings.kibana_data_view,
            )
            links.append(("Open in Kibana", link))
    else:
        # A digest is named after its group: the title, not the sample's own text.
        fields = {**fields, "message": outgoing.title}
        template, summary = settings.digest_subject, digest_summary(outgoing)
        values = {"count": f"{outgoing.count:,}"}
        if settings.kibana_url:
            link = group_link(
                settings.kibana_url,
                outgoing.sample,
                first_at=outgoing.first_at,
                last_at=outgoing.last_at,
                data_view=settings.kibana_data_view,
            )
            links.append(("Open this period in Kibana", link))
    return render_email(
        fields,
        sender=settings.sender,
        to=to,
        cc=cc,
        subject_template=template,
        subject_values=values,
        date=_utc(outgoing.at),
        message_id=f"logpipe.{entry_id}",
        summary=summary,
        links=links,
        headers={
            "X-Logpipe-Kind": outgoing.kind,
            "X-Logpipe-Count": str(outgoing.count),
            "X-Logpipe-Group": outgoing.key,
        },
    )


def digest_summary(outgoing: Outgoing) -> list[str]:
    """The lines that open a digest: how many, over which period, sample ids."""
    more = "more times" if outgoing.continued else "times"
    # The span comes from the events' own times: a backfill flushes a digest at once,
    # so the time since the group's window opened would say nothing.
    lines = [
        f"{outgoing.title} — {outgoing.count:,} {more} within "
        f"{duration(outgoing.last_at - outgoing.first_at)}, first at "
        f"{_when(outgoing.first_at)}, last at {_when(outgoing.last_at)}."
    ]
    if outgoing.request_ids:
        lines.append("Sample request ids: " + ", ".join(outgoing.request_ids))
    if outgoing.user_ids:
        lines.append("Sample user ids: " + ", ".join(outgoing.user_ids))
    if outgoing.breakdown:
        lines.append("Merged alerts (count, title):")
        lines += [f"- {count:,} times: {title}" for title, count in outgoing.breakdown]
    if outgoing.sample:
        lines.append("One sample event of this group follows.")
    return lines


def duration(seconds: float) -> str:
    """A rounded human duration: "45 seconds", "10 minutes", "2 hours 5 minutes"."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours" + (f" {minutes} minutes" if minutes else "")


def _when(epoch: float) -> str:
    return _utc(epoch).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
