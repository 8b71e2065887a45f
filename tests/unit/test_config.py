"""Pipeline file loading: interpolation, secrets from files, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from logpipe.config import ConfigError, interpolate, load_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_erp_pipeline_is_valid_with_defaults_only(tmp_path: Path) -> None:
    config = load_config(REPO / "pipelines" / "erp.yml", {})
    assert config.data_dir == Path("/var/lib/logpipe")
    assert config.inputs["application"].paths == ["/var/log/erp/application.log"]
    assert config.inputs["access"].paths == ["/var/log/erp/access.log"]
    es = config.output.elasticsearch
    assert (es.hosts, es.api_key, es.username, es.index_prefix) == (
        ["http://localhost:9200"],
        None,
        None,
        "erp-logs",
    )
    assert config.enrich.fields == {
        "service.environment": "production",
        "cloud.region": "asia-southeast",
    }
    assert config.workers == 0  # the per-line step in the main process
    email = config.alerts.email
    assert email is not None
    assert (email.to, email.smtp.port, email.smtp.starttls) == (
        ["ops-team@qutykarunia.com"],
        25,
        False,
    )


def test_environment_overrides_defaults_and_types_follow_the_model() -> None:
    env = {
        "SMTP_PORT": "2525",
        "SMTP_STARTTLS": "true",
        "ES_URL": "https://es.internal:9200",
        "LOGPIPE_APP_LOG": "/logs/app-*.log",
        "ENVIRONMENT": "staging",
    }
    config = load_config(REPO / "pipelines" / "erp.yml", env)
    email = config.alerts.email
    assert email is not None
    assert (email.smtp.port, email.smtp.starttls) == (2525, True)
    assert config.output.elasticsearch.hosts == ["https://es.internal:9200"]
    assert config.inputs["application"].paths == ["/logs/app-*.log"]
    assert config.enrich.fields["service.environment"] == "staging"


def test_secret_is_read_from_a_file_variable_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "es_api_key"
    secret.write_text("c2VjcmV0LWtleQ==\n")
    config = load_config(REPO / "pipelines" / "erp.yml", {"ES_API_KEY_FILE": str(secret)})
    api_key = config.output.elasticsearch.api_key
    assert api_key is not None and api_key.get_secret_value() == "c2VjcmV0LWtleQ=="
    assert "c2VjcmV0LWtleQ" not in repr(config) and "c2VjcmV0LWtleQ" not in str(config)


@pytest.mark.parametrize(
    ("text", "env", "expected", "problems"),
    [
        ("${A}", {"A": "x"}, "x", 0),
        ("${A:-d}", {}, "d", 0),
        ("${A:-}", {}, "", 0),
        ("a-${A}-${B:-b}", {"A": "1"}, "a-1-b", 0),
        ("${A}", {}, "", 1),
        ("no vars", {}, "no vars", 0),
        ("$A stays", {"A": "x"}, "$A stays", 0),
    ],
)
def test_interpolation_table(text: str, env: dict[str, str], expected: str, problems: int) -> None:
    result, found = interpolate(text, env)
    assert (result, len(found)) == (expected, problems)


BROKEN = """\
data_dir: /tmp/x
inputs:
  app:
    paths: []
    parser: yaml_magic
    dataset: erp.application
    colour: blue
output:
  elasticsearch:
    hosts: ["localhost:9200"]
    password: ${ES_PASSWORD}
    batch:
      max_events: 0
alerts:
  email:
    to: ["ops@example.com\\r\\nBcc: evil@example.com"]
    from: logpipe@example.com
    smtp: {host: mail, port: 99999}
workers: -1
"""


def test_check_reports_every_problem_with_file_line_and_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    found = {(p.path, p.line) for p in caught.value.problems}
    assert found >= {
        ("inputs.app.paths", 4),
        ("inputs.app.parser", 5),
        ("inputs.app.colour", 7),
        ("output.elasticsearch.hosts", 10),
        ("output.elasticsearch.password", 11),
        ("output.elasticsearch.batch.max_events", 13),
        ("alerts.email.to", 16),
        ("alerts.email.smtp.port", 18),
        ("workers", 19),
    }
    text = str(caught.value)
    assert f"{path}:11: output.elasticsearch.password: environment variable ES_PASSWORD" in text
    assert all(str(p).startswith(str(path)) for p in caught.value.problems)


def test_invalid_value_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(BROKEN.replace("port: 99999", "port: hunter2-secret"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"ES_PASSWORD": "pw"})
    assert "hunter2-secret" not in str(caught.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("data_dir: /x\ninputs: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    (problem,) = caught.value.problems
    assert problem.line is not None and "invalid YAML" in problem.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yml", {})


@pytest.mark.parametrize(
    ("env", "path", "message"),
    [
        ({"SMTP_PASSWORD": "x"}, "alerts.email.smtp", "username and password"),
        ({"SMTP_STARTTLS": "true", "SMTP_TLS": "true"}, "alerts.email.smtp", "exclude"),
        ({"ES_API_KEY": "k", "ES_USERNAME": "u"}, "output.elasticsearch", "either api_key"),
        ({"ES_PASSWORD": "p"}, "output.elasticsearch", "username is not"),
    ],
)
def test_inconsistent_credentials_are_config_errors(
    tmp_path: Path, env: dict[str, str], path: str, message: str
) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(
        text.replace(
            "starttls: ${SMTP_STARTTLS:-false}",
            "starttls: ${SMTP_STARTTLS:-false}\n      tls: ${SMTP_TLS:-false}",
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, env)
    (problem,) = caught.value.problems
    assert problem.path == path and message in problem.message
    for value in env.values():
        if len(value) > 1:
            assert value not in str(caught.value)


def test_check_validates_alert_rules_and_policy(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text += """    rules:
      - name: database
        when: {"log.logger": "app.database*"}
        to: [dba@example.com]
      - name: database
        when: {"http.response.status_code": {"between": 500}}
    policy:
      window_seconds: -1
"""
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, {})
    paths = {p.path for p in caught.value.problems}
    assert "alerts.email.rules.1" in paths  # unknown operator
    assert "alerts.email.policy.window_seconds" in paths


def test_alert_rules_with_conditions_and_own_recipients_load(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text += """    kibana_url: https://kibana.example.com
    rules:
      - name: database
        when: {"log.logger": "app.database*"}
        to: [dba@example.com]
      - name: server-errors
        levels: [error, critical, warning]
        when: {"http.response.status_code": {"gte": 500}}
"""
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    email = load_config(pipeline, {}).alerts.email
    assert email is not None
    database, server_errors = email.build_rules()
    assert database.matches({"log": {"level": "error", "logger": "app.database.pool"}})
    assert not database.matches({"log": {"level": "error", "logger": "app.api"}})
    assert server_errors.matches(
        {"log": {"level": "warning"}, "http": {"response": {"status_code": 503}}}
    )


# -- output.elasticsearch: clear text, credentials in URLs, CA bundles ------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9200",
        "http://LOCALHOST:9200",
        "http://127.0.0.1:9200",
        "http://127.8.9.10:9200",
        "http://[::1]:9200",
        "https://es.internal:9200",
        "https://10.0.0.7:9200",
    ],
)
def test_https_or_loopback_hosts_need_no_flag(url: str) -> None:
    config = load_config(REPO / "pipelines" / "erp.yml", {"ES_URL": url})
    assert config.output.elasticsearch.hosts == [url]


@pytest.mark.parametrize(
    "url", ["http://es.internal:9200", "http://10.0.0.7:9200", "http://[fd00::7]:9200"]
)
def test_plain_http_to_the_network_is_refused_naming_the_flag(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(REPO / "pipelines" / "erp.yml", {"ES_URL": url})
    (problem,) = caught.value.problems
    assert problem.path == "output.elasticsearch"
    assert "hosts[0] is plain http://" in problem.message
    assert "allow_insecure_http: true" in problem.message


def test_plain_http_to_the_network_is_accepted_when_allowed(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text = text.replace("    index_prefix:", "    allow_insecure_http: true\n    index_prefix:")
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    config = load_config(pipeline, {"ES_URL": "http://es.internal:9200"})
    assert config.output.elasticsearch.allow_insecure_http is True


def test_every_host_in_a_list_is_checked(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text = text.replace(
        '["${ES_URL:-http://localhost:9200}"]', '["http://localhost:9200", "${ES_URL}"]'
    )
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, {"ES_URL": "http://es2:9200"})
    assert "hosts[1] is plain http:// to es2" in str(caught.value)


def test_credentials_in_a_host_url_are_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            REPO / "pipelines" / "erp.yml", {"ES_URL": "https://writer:s3cret-pw@es.internal:9200"}
        )
    (problem,) = caught.value.problems
    assert problem.path == "output.elasticsearch.hosts"
    assert "not in hosts" in problem.message
    assert "s3cret-pw" not in str(caught.value)


def test_a_host_listed_twice_is_refused(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text = text.replace(
        '["${ES_URL:-http://localhost:9200}"]', '["https://es1:9200", "https://es1:9200"]'
    )
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    with pytest.raises(ConfigError, match="each host may be listed once"):
        load_config(pipeline, {})


def test_ca_cert_is_a_pem_file_or_pem_text(tmp_path: Path) -> None:
    import trustme

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    erp = REPO / "pipelines" / "erp.yml"
    by_path = load_config(erp, {"ES_CA_CERT": str(ca_file)})
    assert by_path.output.elasticsearch.ca_cert == str(ca_file)
    # ES_CA_CERT_FILE: the variable's value is the file's text, the PEM itself.
    by_text = load_config(erp, {"ES_CA_CERT_FILE": str(ca_file)})
    assert (by_text.output.elasticsearch.ca_cert or "").startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("content", [None, "", "not a certificate\n"])
def test_a_missing_or_broken_ca_cert_is_a_config_problem(
    tmp_path: Path, content: str | None
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(REPO / "pipelines" / "erp.yml", {"ES_CA_CERT": str(ca_file)})
    (problem,) = caught.value.problems
    assert problem.path == "output.elasticsearch.ca_cert"
    assert "PEM" in problem.message or "no certificate" in problem.message


def test_hosts_mixing_http_and_https_are_refused(tmp_path: Path) -> None:
    text = (REPO / "pipelines" / "erp.yml").read_text()
    text = text.replace(
        '["${ES_URL:-http://localhost:9200}"]', '["https://es1:9200", "http://localhost:9200"]'
    )
    pipeline = tmp_path / "erp.yml"
    pipeline.write_text(text)
    with pytest.raises(ConfigError, match="same scheme"):
        load_config(pipeline, {})
