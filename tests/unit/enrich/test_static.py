"""Static, host, agent and Kubernetes enrichment."""

from __future__ import annotations

from logpipe.config import EnrichConfig
from logpipe.enrich.static import Enricher, static_fields

DOWNWARD_API = {
    "POD_NAME": "erp-backend-7d9f-abcde",
    "POD_NAMESPACE": "erp",
    "NODE_NAME": "node-3",
    "POD_IP": "10.42.0.17",
    "POD_UID": "0b1c-uid",
}


def test_sidecar_gets_kubernetes_metadata_from_downward_api_variables() -> None:
    fields = static_fields(EnrichConfig(), DOWNWARD_API, hostname="erp-backend-7d9f-abcde")
    assert fields["kubernetes"] == {
        "pod": {"name": "erp-backend-7d9f-abcde", "ip": "10.42.0.17", "uid": "0b1c-uid"},
        "namespace": "erp",
        "node": {"name": "node-3"},
    }
    assert fields["host"] == {"name": "erp-backend-7d9f-abcde"}
    assert fields["agent"]["name"] == "logpipe"


def test_outside_kubernetes_no_kubernetes_fields_appear() -> None:
    assert "kubernetes" not in static_fields(EnrichConfig(), {}, hostname="h")


def test_static_fields_use_dotted_ecs_names_and_can_be_switched_off() -> None:
    config = EnrichConfig(
        fields={
            "service.environment": "production",
            "cloud.region": "asia-southeast",
            "labels.team": "erp",
        },
        kubernetes=False,
        host=False,
    )
    fields = static_fields(config, DOWNWARD_API)
    assert fields["service"] == {"environment": "production"}
    assert fields["cloud"] == {"region": "asia-southeast"}
    assert fields["labels"] == {"team": "erp"}
    assert "kubernetes" not in fields and "host" not in fields


def test_event_values_win_and_sections_merge_without_touching_the_shared_fields() -> None:
    shared = static_fields(
        EnrichConfig(fields={"service.environment": "production"}), {}, hostname="h"
    )
    enrich = Enricher(shared)
    doc = {"message": "x", "service": {"name": "erp-api"}, "host": {"name": "from-event"}}
    enrich(doc)
    assert doc["service"] == {"name": "erp-api", "environment": "production"}
    assert doc["host"] == {"name": "from-event"}
    assert shared["service"] == {"environment": "production"}  # not mutated
    other: dict[str, object] = {"message": "y"}
    enrich(other)
    assert other["service"] == {"environment": "production"}
