"""Build the alert service from the pipeline file's ``alerts.email`` section.

Importing this module is cheap: the service and its SMTP client (aiosmtplib) are
imported only when a service is built, so that a pipeline without
``alerts.email`` need not load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from logpipe.config import EmailAlertConfig

if TYPE_CHECKING:
    from logpipe.alerts.service import AlertService
    from logpipe.alerts.smtp import SmtpSettings


def smtp_settings(config: EmailAlertConfig) -> SmtpSettings:
    from logpipe.alerts.smtp import SmtpSettings

    smtp = config.smtp
    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        starttls=smtp.starttls,
        use_tls=smtp.tls,
        timeout=smtp.timeout_seconds,
        validate_certs=smtp.verify_certs,
        cafile=smtp.ca_cert,
    )


def make_alert_service(
    config: EmailAlertConfig, data_dir: Path, self_fields: dict[str, Any]
) -> AlertService:
    """The alert service, spooling under ``<data_dir>/alerts``."""
    from logpipe.alerts.compose import MailSettings
    from logpipe.alerts.delivery import DeliverySettings
    from logpipe.alerts.policy import PolicySettings
    from logpipe.alerts.service import AlertService
    from logpipe.alerts.spool import spool_dir

    mail = MailSettings(
        sender=config.sender,
        to=tuple(config.to),
        cc=tuple(config.cc),
        subject=config.subject,
        digest_subject=config.digest_subject,
        kibana_url=config.kibana_url,
        kibana_data_view=config.kibana_data_view,
    )
    return AlertService(
        smtp_settings(config),
        mail,
        spool_dir=spool_dir(data_dir),
        rules=config.build_rules(),
        policy=PolicySettings(**config.policy.model_dump()),
        delivery=DeliverySettings(backoff_max=config.retry_backoff_max_seconds),
        queue_size=config.queue_size,
        spool_max_entries=config.spool_max_entries,
        self_fields=self_fields,
    )
