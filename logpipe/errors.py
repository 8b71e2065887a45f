"""logpipe's exceptions.

    LogpipeError
    ├── ConfigError              the pipeline file is invalid (config.py)
    ├── DeliveryError            something could not be delivered; --once exits non-zero
    └── SinkError
        ├── RetryableSinkError   429 / 5xx / timeout / connection: try again later
        └── FatalSinkError       the server refused for good (auth, bad template): stop

Bad input (a line that does not parse, a document Elasticsearch rejects) is not
an exception: it is tagged, or dead-lettered with its reason, and counted.
"""


class LogpipeError(Exception):
    """Base of every error logpipe raises on purpose."""


class DeliveryError(LogpipeError):
    """Some events or alerts could not be delivered."""


class SinkError(LogpipeError):
    """A request to the sink failed as a whole."""


class RetryableSinkError(SinkError):
    """The sink may accept the same request later (429, 5xx, timeouts, resets)."""


class FatalSinkError(SinkError):
    """The sink refuses and retrying will not help (authentication, authorisation)."""
