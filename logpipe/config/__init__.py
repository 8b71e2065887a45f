"""The pipeline file: typed models (``models``, ``alerts``) and loading (``loading``)."""

from logpipe.config.alerts import AlertsConfig, EmailAlertConfig, SmtpConfig
from logpipe.config.loading import ConfigError, Problem, interpolate, load_config
from logpipe.config.models import (
    BatchConfig,
    ElasticsearchConfig,
    EnrichConfig,
    InputConfig,
    OutputConfig,
    PipelineConfig,
    QueueConfig,
)

__all__ = [
    "AlertsConfig",
    "BatchConfig",
    "ConfigError",
    "ElasticsearchConfig",
    "EmailAlertConfig",
    "EnrichConfig",
    "InputConfig",
    "OutputConfig",
    "PipelineConfig",
    "Problem",
    "QueueConfig",
    "SmtpConfig",
    "interpolate",
    "load_config",
]
