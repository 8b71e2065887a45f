"""Config of the alerts: where e-mail goes, which events alert, and the policy knobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from logpipe.config.base import Model, OptSecret, OptStr

# The rule engine (and the e-mail rendering it checks addresses with) is imported
# when a rule is built, so `logpipe check` of a file without rules skips it.
if TYPE_CHECKING:
    from logpipe.alerts.rules import AlertRule


class SmtpConfig(Model):
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


def _plain_addresses(addresses: list[str]) -> list[str]:
    for address in addresses:
        if "@" not in address or any(c in address for c in "\r\n,;<> "):
            raise ValueError("each recipient must be one plain e-mail address")
    return addresses


class AlertRuleConfig(Model):
    """One alert rule; the first rule an event matches decides its recipients."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    levels: list[str] = Field(default_factory=lambda: ["error", "critical"], min_length=1)
    # {"log.logger": "app.database*", "http.response.status_code": {"gte": 500}}
    when: dict[str, Any] = Field(default_factory=dict)
    to: list[str] = Field(default_factory=list)  # empty: alerts.email.to
    cc: list[str] = Field(default_factory=list)

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        return _plain_addresses(addresses)

    @model_validator(mode="after")
    def _compiles(self) -> AlertRuleConfig:
        try:
            self.build()
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        return self

    def build(self) -> AlertRule:
        from logpipe.alerts.rules import AlertRule

        return AlertRule(
            frozenset(level.lower() for level in self.levels),
            name=self.name,
            when=self.when,
            to=tuple(self.to),
            cc=tuple(self.cc),
        )


class AlertPolicyConfig(Model):
    """Grouping and rate limits: first e-mail at once, repeats summarised per window."""

    window_seconds: float = Field(default=600.0, gt=0, le=86_400)
    max_emails_per_period: int = Field(default=20, ge=1)
    period_seconds: float = Field(default=3600.0, gt=0)
    max_groups: int = Field(default=10_000, ge=1)
    sample_ids: int = Field(default=5, ge=0, le=50)


class SelfAlertConfig(Model):
    """E-mails about logpipe's own trouble, through the same grouping and limits."""

    enabled: bool = True
    elasticsearch_unreachable_seconds: float = Field(default=300.0, gt=0)


class EmailAlertConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    levels: list[str] = Field(default_factory=lambda: ["error", "critical"], min_length=1)
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    sender: str = Field(alias="from", min_length=3)
    subject: str = "Critical Error: {message}"
    digest_subject: str = "Critical Error: {message} (+{count} more)"
    rules: list[AlertRuleConfig] = Field(default_factory=list)  # empty: one rule from levels
    policy: AlertPolicyConfig = Field(default_factory=AlertPolicyConfig)
    kibana_url: OptStr = Field(default=None, pattern=r"^https?://\S+$")
    kibana_data_view: str = Field(default="erp-logs", min_length=1)
    queue_size: int = Field(default=1000, ge=1)
    spool_max_entries: int = Field(default=1000, ge=1)
    retry_backoff_max_seconds: float = Field(default=60.0, gt=0)
    self_alerts: SelfAlertConfig = Field(default_factory=SelfAlertConfig)
    smtp: SmtpConfig

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        return _plain_addresses(addresses)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> EmailAlertConfig:
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("alert rule names must be unique")
        return self

    def build_rules(self) -> list[AlertRule]:
        """The rules in order; without any, one rule for ``levels``."""
        from logpipe.alerts.rules import AlertRule

        return [r.build() for r in self.rules] or [AlertRule.for_levels(self.levels)]


class AlertsConfig(Model):
    email: EmailAlertConfig | None = None
