"""logpipe: tail → parse → enrich → Elasticsearch daily indices + error e-mail."""

__version__ = "0.1.0"
