"""The deployment files and sample logs agree with the code and with each other.

Nothing here talks to a cluster: the manifests are parsed and their key facts
checked, so that editing one file without the other (the pipeline without its
ConfigMap, a secret turned into a literal env value, the sample generator
without its output) fails in CI rather than in production.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PIPELINE = ROOT / "pipelines" / "erp.yml"
SAMPLES = ROOT / "sample_logs"
PIPELINE_ARGS = ["run", "/etc/logpipe/erp.yml"]
#: read by logpipe's Kubernetes enrichment, not by the pipeline file
DOWNWARD_API = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_UID": "metadata.uid",
    "POD_IP": "status.podIP",
    "NODE_NAME": "spec.nodeName",
}


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return docs


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifest("Deployment", "erp-backend")["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod_spec()["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}"
    return found[0]


def env_of(name: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(name).get("env", [])}


def mounts_of(name: str) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container(name).get("volumeMounts", [])}


def volumes() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec()["volumes"]}


def secret_keys() -> dict[str, str]:
    data: dict[str, str] = manifest("Secret", "logpipe-secrets")["stringData"]
    return data


def test_every_kubernetes_manifest_parses_and_names_itself() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"ConfigMap", "Secret", "Deployment"}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"]


def test_configmap_holds_the_pipeline_file_byte_for_byte() -> None:
    data = manifest("ConfigMap", "logpipe-pipeline")["data"]
    assert data["erp.yml"].encode("utf-8") == PIPELINE.read_bytes(), (
        "deploy/kubernetes/configmap.yaml is out of date with pipelines/erp.yml"
    )


def test_sidecar_runs_the_pipeline_mounted_from_the_configmap() -> None:
    sidecar = container("logpipe")
    assert sidecar["image"] == "logpipe:0.1.0"
    assert sidecar["args"] == PIPELINE_ARGS
    config_volume = volumes()[mounts_of("logpipe")["/etc/logpipe"]["name"]]
    sources = config_volume["projected"]["sources"]
    configmaps = [s["configMap"] for s in sources if "configMap" in s]
    assert configmaps == [
        {"name": "logpipe-pipeline", "items": [{"key": "erp.yml", "path": "erp.yml"}]}
    ]


def test_sidecar_reads_the_log_volume_the_app_writes() -> None:
    app_mount = mounts_of("erp-backend")["/var/log/erp"]
    sidecar_mount = mounts_of("logpipe")["/var/log/erp"]
    assert app_mount["name"] == sidecar_mount["name"]
    assert sidecar_mount.get("readOnly") is True
    assert not app_mount.get("readOnly", False)
    assert "emptyDir" in volumes()[app_mount["name"]]


def test_sidecar_keeps_checkpoints_on_a_volume_of_its_own() -> None:
    mount = mounts_of("logpipe")["/var/lib/logpipe"]
    assert not mount.get("readOnly", False)
    assert mount["name"] not in {m["name"] for m in mounts_of("erp-backend").values()}
    assert container("logpipe")["securityContext"]["readOnlyRootFilesystem"] is True


def test_sidecar_gets_pod_metadata_from_the_downward_api() -> None:
    env = env_of("logpipe")
    for name, field_path in DOWNWARD_API.items():
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field_path, name


def test_secrets_reach_the_sidecar_only_as_files_or_secret_refs() -> None:
    keys = secret_keys()
    assert set(keys) == {"ES_API_KEY", "SMTP_PASSWORD"}
    text = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    for c in pod_spec()["containers"]:
        for entry in c.get("env", []):
            if entry["name"] in keys:
                assert "secretKeyRef" in entry.get("valueFrom", {}), entry
    for placeholder in keys.values():
        assert placeholder not in text
    env = env_of("logpipe")
    mounted = secret_file_paths()
    for key in keys:
        if key in env:
            continue  # a secretKeyRef, checked above
        assert env[f"{key}_FILE"]["value"] in mounted, key


def secret_file_paths() -> set[str]:
    """Paths inside the sidecar where items of logpipe-secrets appear."""
    paths: set[str] = set()
    for mount_path, mount in mounts_of("logpipe").items():
        volume = volumes()[mount["name"]]
        sources = volume.get("projected", {}).get("sources", [])
        if "secret" in volume:
            sources = [{"secret": volume["secret"]}]
        for source in sources:
            secret = source.get("secret")
            if secret and secret.get("secretName", secret.get("name")) == "logpipe-secrets":
                paths.update(f"{mount_path}/{item['path']}" for item in secret["items"])
    return paths


def test_every_sidecar_variable_is_one_logpipe_reads() -> None:
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", PIPELINE.read_text(encoding="utf-8")))
    read |= {f"{name}_FILE" for name in read} | set(DOWNWARD_API)
    assert set(env_of("logpipe")) <= read


def test_dockerfile_and_systemd_unit_run_the_same_pipeline() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["logpipe"]' in dockerfile
    assert f"CMD {json.dumps(PIPELINE_ARGS)}" in dockerfile
    unit = (DEPLOY / "systemd" / "logpipe.service").read_text(encoding="utf-8")
    assert "ExecStart=/usr/local/bin/logpipe run /etc/logpipe/erp.yml" in unit.splitlines()


def test_kibana_objects_hold_the_data_view_over_the_daily_indices() -> None:
    # tests/unit/test_kibana_objects.py checks the rest of the file.
    lines = (DEPLOY / "kibana" / "saved-objects.ndjson").read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines if line.strip()]
    (view,) = [obj for obj in objects if obj["type"] == "index-pattern"]
    assert view["type"] == "index-pattern"
    assert view["id"] == "erp-logs"
    assert view["attributes"]["title"] == "erp-logs-*"
    assert view["attributes"]["timeFieldName"] == "@timestamp"
    assert view["references"] == []


@pytest.fixture
def generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """sample_logs/generate.py, imported from its path (sample_logs is not a package)."""
    spec = importlib.util.spec_from_file_location("sample_logs_generate", SAMPLES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def test_sample_generator_reproduces_the_committed_logs(
    generator: ModuleType, tmp_path: Path
) -> None:
    generator.write_samples(tmp_path)
    for name in ("application.log", "access.log"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), (
            f"sample_logs/{name} differs from what generate.py writes: rerun it"
        )


def test_sample_application_log_has_what_the_demo_shows() -> None:
    levels: dict[str, int] = {}
    days, malformed = set(), 0
    for raw in (SAMPLES / "application.log").read_bytes().splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one
            malformed += 1
            continue
        levels[record["level"]] = levels.get(record["level"], 0) + 1
        days.add(record["timestamp"][:10])
        if record["level"] in {"ERROR", "CRITICAL"}:
            assert record["exception"].startswith("Traceback (most recent call last):\n")
    assert malformed == 3
    assert levels["CRITICAL"] == 1
    assert levels["ERROR"] == 8
    assert max(levels, key=levels.__getitem__) == "INFO"
    assert days == {"2026-11-26", "2026-11-27"}
