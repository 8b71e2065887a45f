"""The pipeline file: typed models (``models``, ``alerts``) and loading (``loading``)."""

from logpipe.config.alerts import AlertsConfig, EmailAlertConfig, SmtpConfig
from logpipe.config.loading import ConfigError, Problem, interpolate, load_config
from logpipe.config.models import (
    BatchConfig,
    ElasticsearchConfig,
    EnrichConfig,
    InputConfig,
    MonitoringConfig,
    OutputConfig,
    PipelineConfig,
    QueueConfig,
    RetentionConfig,
)

__all__ = [
    "AlertsConfig",
    "BatchConfig",
    "ConfigError",
    "ElasticsearchConfig",
    "EmailAlertConfig",
    "EnrichConfig",
    "InputConfig",
    "MonitoringConfig",
    "OutputConfig",
    "PipelineConfig",
    "Problem",
    "QueueConfig",
    "RetentionConfig",
    "SmtpConfig",
    "interpolate",
    "load_config",
]
