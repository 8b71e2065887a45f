"""Import saved objects into Kibana through its saved objects API.

``logpipe kibana-import`` posts an NDJSON export (by default the data view,
saved searches, visualizations and dashboard bundled with logpipe, a copy of
``deploy/kibana/saved-objects.ndjson``) to::

    POST <url>[/s/<space>]/api/saved_objects/_import?overwrite=true
    kbn-xsrf: true
    Authorization: ApiKey <key> | Basic <user:password>
    Content-Type: multipart/form-data; boundary=...   (one part, "file")

and reads Kibana's answer: ``{"success", "successCount", "errors", "warnings"}``,
where each error names one object and why it was refused (missing references,
conflict, unsupported type, unknown). ``overwrite=true`` makes re-importing safe.

The standard library does the HTTP (``urllib.request``): one request, no need
for an event loop or a client library, and the command stays cheap to load.
Redirects are not followed: Kibana does not redirect its API, and a redirect
elsewhere (a login page, another host) must not receive the credentials.

Pure helpers (URL, headers, multipart body, reading the answer) take values and
return values; :func:`import_objects` does the one request.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from logpipe.errors import LogpipeError

BUNDLED = "kibana_saved_objects.ndjson"
"""The saved objects shipped inside the package (see deploy/kibana/generate.py)."""
IMPORT_PATH = "/api/saved_objects/_import?overwrite=true"
# Kibana's own rule for space ids: lower-case letters, digits, "_" and "-".
_SPACE_ID = re.compile(r"[a-z0-9_-]+\Z")
_MESSAGE_MAX = 500


class KibanaImportError(LogpipeError):
    """The import did not happen: bad input, Kibana unreachable, or Kibana refused the request."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """How to authenticate to Kibana: an API key, or a user and password, or neither."""

    api_key: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"Credentials(api_key={'***' if self.api_key else None}, username={self.username!r})"


@dataclass(frozen=True)
class ImportResult:
    """What Kibana did with the file: how many objects it saved and what it refused."""

    success: bool
    success_count: int
    problems: list[str]
    warnings: list[str]


def bundled_objects() -> bytes:
    """The NDJSON bundled with the installed package."""
    return resources.files("logpipe").joinpath(BUNDLED).read_bytes()


def count_objects(data: bytes) -> int:
    """Check that ``data`` is NDJSON of saved objects; return how many it holds.

    Catches a wrong file before it reaches Kibana, whose answer to a broken
    line (``Unexpected token ...``) does not say which line.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KibanaImportError(f"the file is not UTF-8 text: {exc}") from None
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KibanaImportError(f"line {number} is not JSON: {exc}") from None
        if not isinstance(obj, dict) or not {"type", "id"} <= obj.keys():
            raise KibanaImportError(f"line {number} is not a saved object (no type and id)")
        count += 1
    if count == 0:
        raise KibanaImportError("the file holds no saved objects")
    return count


def import_url(base: str, space: str | None = None) -> str:
    """The ``_import`` URL for Kibana at ``base``, in ``space`` (default space if None)."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KibanaImportError(
            f"the Kibana URL must be http(s)://host[:port][/path], not {base!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise KibanaImportError("put Kibana credentials in options or env vars, not in the URL")
    if parts.query or parts.fragment:
        raise KibanaImportError("the Kibana URL must not have a query or fragment")
    prefix = base.rstrip("/")
    if space:
        if not _SPACE_ID.match(space):
            raise KibanaImportError(
                f"invalid space id {space!r}: lower-case letters, digits, '_' and '-' only"
            )
        prefix += f"/s/{space}"
    return prefix + IMPORT_PATH


def auth_headers(credentials: Credentials) -> dict[str, str]:
    """The ``Authorization`` header for ``credentials`` (none if there are none)."""
    if credentials.api_key and (credentials.username or credentials.password):
        raise KibanaImportError("give an API key or a username and password, not both")
    if credentials.api_key:
        return {"Authorization": f"ApiKey {credentials.api_key}"}
    if credentials.username or credentials.password:
        if not (credentials.username and credentials.password):
            raise KibanaImportError("basic auth needs both a username and a password")
        pair = f"{credentials.username}:{credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


def multipart(filename: str, content: bytes, boundary: str | None = None) -> tuple[str, bytes]:
    """A ``multipart/form-data`` body with one ``file`` part; returns (content type, body)."""
    boundary = boundary or f"logpipe-{secrets.token_hex(16)}"
    if boundary.encode() in content:
        raise ValueError("the boundary occurs in the content")
    safe_name = filename.replace("\\", "_").replace('"', "_").replace("\r", "").replace("\n", "")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def read_answer(status: int, body: bytes) -> ImportResult:
    """Read Kibana's answer to ``_import``; raise for a refused request.

    A 200 answer lists per-object errors (the import may be partial); any other
    status is Kibana's error object (``statusCode``, ``error``, ``message``).
    """
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200:
        raise KibanaImportError(f"Kibana refused the import: {_http_error(status, answer, body)}")
    if not isinstance(answer, dict) or "success" not in answer:
        raise KibanaImportError(f"not an answer from Kibana's import API: {_excerpt(body)}")
    errors = answer.get("errors") or []
    return ImportResult(
        success=answer["success"] is True and not errors,
        success_count=int(answer.get("successCount", 0)),
        problems=[describe_failure(e) for e in errors if isinstance(e, dict)],
        warnings=[_one_line(str(w.get("message", w))) for w in answer.get("warnings") or []],
    )


def describe_failure(failure: Mapping[str, Any]) -> str:
    """One line for one refused object: which object, and Kibana's reason."""
    meta = failure.get("meta") or {}
    title = meta.get("title") or failure.get("title")
    name = f"{failure.get('type', '?')} {failure.get('id', '?')}"
    if title:
        name += f" ({title})"
    error = failure.get("error") or {}
    kind = error.get("type", "unknown")
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in error.get("references", []))
        reason = f"missing references: {missing}"
    elif kind == "conflict":
        reason = "conflicts with an existing object (import with overwrite)"
    elif kind == "ambiguous_conflict":
        reason = "matches several existing objects (ambiguous conflict)"
    elif kind == "unsupported_type":
        reason = "Kibana does not know this type (a plugin missing, or an older Kibana)"
    else:
        code = error.get("statusCode", error.get("status_code"))
        reason = f"{kind}{f' ({code})' if code else ''}: {error.get('message', 'no message')}"
    return _one_line(f"{name}: {reason}")


def tls_context(ca_cert: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """Verify Kibana's certificate and host name: against ``ca_cert`` if given, else system CAs."""
    context = ssl.create_default_context(cafile=ca_cert)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def import_objects(
    url: str,
    data: bytes,
    *,
    filename: str = "saved-objects.ndjson",
    space: str | None = None,
    credentials: Credentials | None = None,
    ca_cert: str | None = None,
    insecure: bool = False,
    timeout: float = 60.0,
) -> ImportResult:
    """POST ``data`` (NDJSON) to Kibana's ``_import`` and return what Kibana did.

    Raises :class:`KibanaImportError` when the file is not saved objects, Kibana
    cannot be reached, or Kibana refuses the request as a whole.
    """
    count_objects(data)
    target = import_url(url, space)
    content_type, body = multipart(filename, data)
    headers = {
        "kbn-xsrf": "true",
        "Content-Type": content_type,
        "Accept": "application/json",
        **auth_headers(credentials or Credentials()),
    }
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    status, answer = _send(request, tls_context(ca_cert, insecure=insecure), timeout)
    return read_answer(status, answer)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


def _send(
    request: urllib.request.Request, context: ssl.SSLContext, timeout: float
) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _NoRedirect()
    )
    where = request.full_url.split("/api/", 1)[0]
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
        if 300 <= exc.code < 400:
            location = exc.headers.get("Location", "?")
            raise KibanaImportError(
                f"Kibana at {where} answered {exc.code}, a redirect to {location}: "
                "give Kibana's own URL (with its base path, if any)"
            ) from None
        return exc.code, body
    except urllib.error.URLError as exc:
        raise KibanaImportError(f"cannot reach Kibana at {where}: {exc.reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise KibanaImportError(f"cannot reach Kibana at {where}: {exc}") from None


def _http_error(status: int, answer: Any, body: bytes) -> str:
    if isinstance(answer, dict) and ("message" in answer or "error" in answer):
        label = answer.get("error") or "error"
        return _one_line(f"HTTP {status} {label}: {answer.get('message', '')}")
    return f"HTTP {status}: {_excerpt(body)}"


def _excerpt(body: bytes) -> str:
    return _one_line(body.decode("utf-8", "replace")) or "(empty)"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_MAX else flat[: _MESSAGE_MAX - 1] + "…"


def summary(result: ImportResult, total: int) -> Sequence[str]:
    """Lines for the operator: the count, then each refused object and warning."""
    lines = [f"imported {result.success_count} of {total} saved objects"]
    lines += [f"  refused: {problem}" for problem in result.problems]
    lines += [f"  warning: {warning}" for warning in result.warnings]
    return lines
