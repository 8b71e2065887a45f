"""``logpipe kibana-import`` against a Kibana stand-in on loopback.

No Kibana can be installed here, so :class:`KibanaStandIn` implements the one
endpoint the command uses the way Kibana 8 does (``POST [/s/<space>]/api/
saved_objects/_import``): it refuses a request without ``kbn-xsrf`` (400) or
with the wrong credentials (401), parses the multipart body and its ``file``
part (``*.ndjson`` only), imports every object whose references resolve (to the
file or to what the space already holds), refuses the others with
``missing_references``, ``unsupported_type`` or ``conflict`` (without
``overwrite``), and answers Kibana's JSON: ``success``, ``successCount``,
``successResults``, ``errors``, ``warnings``. It is a stand-in: it does not run
Kibana's migrations or render anything; tests/unit/test_kibana_objects.py checks
the objects the way Kibana reads them.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from logpipe.kibana_import import Credentials, import_objects

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "deploy" / "kibana" / "saved-objects.ndjson"
API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
USER, PASSWORD = "kibana_admin", "pa55-w0rd"
TYPES = {"index-pattern", "search", "visualization", "dashboard", "lens", "config"}
_PATH = re.compile(r"(?:/s/([a-z0-9_-]+))?/api/saved_objects/_import\Z")


@dataclass
class KibanaStandIn:
    """Kibana's saved objects import endpoint, in a thread on 127.0.0.1."""

    authorization: str | None = None  # the Authorization header it accepts; None: no auth
    tls: ssl.SSLContext | None = None
    spaces: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)  # lower-cased headers

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.seen.append({k.lower(): v for k, v in self.headers.items()})
                status, answer = stand_in.handle(self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *args: Any) -> None:
                pass  # a client that refused our certificate: expected in the TLS test

        self.server = Server(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        match = _PATH.match(parts.path)
        if match is None:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
        if "kbn-xsrf" not in headers:
            return _bad_request("Request must contain a kbn-xsrf header.")
        if self.authorization and headers.get("Authorization") != self.authorization:
            return 401, {
                "statusCode": 401,
                "error": "Unauthorized",
                "message": "[security_exception]: unable to authenticate user for REST request",
            }
        message = email.message_from_bytes(
            f"Content-Type: {headers.get('Content-Type', '')}\r\n\r\n".encode() + body,
            policy=email.policy.HTTP,
        )
        files = [
            p
            for p in (message.iter_parts() if message.is_multipart() else [])
            if p.get_param("name", header="content-disposition") == "file"
        ]
        if len(files) != 1:
            return _bad_request("[request body.file]: expected value of type [object]")
        filename = files[0].get_filename() or ""
        if not filename.endswith(".ndjson"):
            return _bad_request(f"Invalid file extension {Path(filename).suffix}")
        try:
            payload = files[0].get_payload(decode=True)
            assert isinstance(payload, bytes)
            lines = payload.decode().splitlines()
            objects = [json.loads(line) for line in lines if line.strip()]
        except ValueError as exc:
            return _bad_request(f"Unexpected token in JSON: {exc}")
        overwrite = parse_qs(parts.query).get("overwrite") == ["true"]
        return 200, self.import_into(match[1] or "default", objects, overwrite)

    def import_into(
        self, space: str, objects: list[dict[str, Any]], overwrite: bool
    ) -> dict[str, Any]:
        store = self.spaces.setdefault(space, {})
        in_file = {(o["type"], o["id"]) for o in objects}
        done: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for obj in objects:
            key = (obj["type"], obj["id"])
            meta = {"title": obj.get("attributes", {}).get("title")}
            failure = {"id": obj["id"], "type": obj["type"], "meta": meta}
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in obj.get("references", [])
                if (r["type"], r["id"]) not in in_file and (r["type"], r["id"]) not in store
            ]
            if obj["type"] not in TYPES:
                errors.append({**failure, "error": {"type": "unsupported_type"}})
            elif missing:
                error = {"type": "missing_references", "references": missing}
                errors.append({**failure, "error": error})
            elif key in store and not overwrite:
                errors.append({**failure, "error": {"type": "conflict"}})
            else:
                done.append({**failure, **({"overwrite": True} if key in store else {})})
                store[key] = obj
        answer: dict[str, Any] = {
            "success": not errors,
            "successCount": len(done),
            "warnings": [],
        }
        if done:
            answer["successResults"] = done
        if errors:
            answer["errors"] = errors
        return answer


def _bad_request(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"statusCode": 400, "error": "Bad Request", "message": message}


@pytest.fixture
def kibana() -> Iterator[KibanaStandIn]:
    server = KibanaStandIn(authorization=f"ApiKey {API_KEY}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KIBANA_")}
    return subprocess.run(
        [sys.executable, "-m", "logpipe", "kibana-import", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**clean, **(env or {})},
    )


def bundled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in BUNDLED.read_text(encoding="utf-8").splitlines()]


def test_imports_every_bundled_object_with_an_api_key_from_the_env(kibana: KibanaStandIn) -> None:
    result = run_cli("--url", kibana.url, env={"KIBANA_API_KEY": API_KEY})
    assert result.returncode == 0, result.stderr
    objects = bundled()
    assert f"imported {len(objects)} of {len(objects)} saved objects" in result.stdout
    assert set(kibana.spaces["default"]) == {(o["type"], o["id"]) for o in objects}
    (headers,) = kibana.seen
    assert headers["authorization"] == f"ApiKey {API_KEY}"
    assert headers["kbn-xsrf"] == "true"
    assert API_KEY not in result.stdout + result.stderr


def test_basic_auth_into_a_space_and_reimporting_overwrites() -> None:
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    server = KibanaStandIn(authorization=f"Basic {pair}")
    server.start()
    try:
        env = {"KIBANA_USERNAME": USER, "KIBANA_PASSWORD": PASSWORD}
        first = run_cli("--url", server.url + "/", "--space", "ops", env=env)
        again = run_cli("--url", server.url, "--space", "ops", env=env)
    finally:
        server.stop()
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert set(server.spaces) == {"ops"}
    assert len(server.spaces["ops"]) == len(bundled())
    assert PASSWORD not in first.stdout + first.stderr


def test_wrong_credentials_are_reported_with_kibanas_message(kibana: KibanaStandIn) -> None:
    result = run_cli("--url", kibana.url, "--api-key", "d3Jvbmc=")
    assert result.returncode == 1
    assert "HTTP 401 Unauthorized" in result.stderr
    assert "unable to authenticate" in result.stderr
    assert "d3Jvbmc=" not in result.stdout + result.stderr
    assert kibana.spaces == {}


def test_each_object_kibana_refuses_is_listed_and_the_exit_is_nonzero(
    kibana: KibanaStandIn, tmp_path: Path
) -> None:
    view = {"type": "index-pattern", "id": "v", "attributes": {"title": "x-*"}, "references": []}
    orphan = {
        "type": "search",
        "id": "s1",
        "attributes": {"title": "Broken"},
        "references": [{"name": "i", "type": "index-pattern", "id": "nope"}],
    }
    odd = {"type": "canvas-workpad", "id": "w", "attributes": {"title": "W"}, "references": []}
    path = tmp_path / "mixed.json"  # sent as mixed.ndjson: Kibana refuses other names
    path.write_text("".join(json.dumps(o) + "\n" for o in (view, orphan, odd)))
    result = run_cli("--url", kibana.url, "--file", str(path), env={"KIBANA_API_KEY": API_KEY})
    assert result.returncode == 1
    assert "imported 1 of 3 saved objects" in result.stderr
    assert "refused: search s1 (Broken): missing references: index-pattern nope" in result.stderr
    assert "refused: canvas-workpad w (W): Kibana does not know this type" in result.stderr
    assert set(kibana.spaces["default"]) == {("index-pattern", "v")}


def test_a_file_that_is_not_ndjson_is_refused_before_sending(
    kibana: KibanaStandIn, tmp_path: Path
) -> None:
    path = tmp_path / "broken.ndjson"
    path.write_text('{"type":"search","id":"a","attributes":{}}\n{"type": \n')
    result = run_cli("--url", kibana.url, "--file", str(path), env={"KIBANA_API_KEY": API_KEY})
    assert result.returncode == 2
    assert "line 2 is not JSON" in result.stderr
    assert kibana.seen == []


def test_bad_options_exit_2_and_send_nothing(kibana: KibanaStandIn) -> None:
    both = run_cli("--url", kibana.url, "--api-key", "k", "--username", "u", "--password", "p")
    assert both.returncode == 2 and "not both" in both.stderr
    space = run_cli("--url", kibana.url, "--space", "../admin", env={"KIBANA_API_KEY": API_KEY})
    assert space.returncode == 2 and "invalid space id" in space.stderr
    assert kibana.seen == []


def test_an_unreachable_kibana_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli("--url", f"http://127.0.0.1:{port}", env={"KIBANA_API_KEY": API_KEY})
    assert result.returncode == 1
    assert f"cannot reach Kibana at http://127.0.0.1:{port}" in result.stderr
    assert "refused" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_the_request_lacks_nothing_kibana_requires(kibana: KibanaStandIn) -> None:
    # In-process: the stand-in's 400 for a missing kbn-xsrf is what Kibana says.
    status, answer = kibana.handle("/api/saved_objects/_import", {}, b"")
    assert (status, answer["message"]) == (400, "Request must contain a kbn-xsrf header.")
    result = import_objects(
        kibana.url, BUNDLED.read_bytes(), credentials=Credentials(api_key=API_KEY)
    )
    assert result.success and result.success_count == len(bundled())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_is_verified_against_the_given_ca(certificate: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = KibanaStandIn(tls=context)
    server.start()
    try:
        unknown = run_cli("--url", server.url)
        trusted = run_cli("--url", server.url, "--ca-cert", str(certificate[0]))
    finally:
        server.stop()
    assert unknown.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in unknown.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert len(server.spaces["default"]) == len(bundled())
