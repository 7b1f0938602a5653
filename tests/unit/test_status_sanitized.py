"""What an authorization server says reaches ``.status`` and Events only as a short, sanitized summary.

A tenant's AuthorizationServer can be any service the operator reaches; its answers are then read back by
the tenant in ``kubectl get oauthclient -o yaml``. Conditions and Events carry at most the HTTP status, the
OAuth ``error`` code when it is one (RFC 6749 §5.2) and about 100 printable characters of
``error_description``: never a body excerpt, never control or bidi characters. No network: every answer
comes from an httpx.MockTransport.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.fake_as import ISSUER
from support.server_status import ServerStatusCluster
from test_operator_reconciler import World

from clientreg.errors import SUMMARY_DESCRIPTION_LIMIT, ProtocolError, RegistrationError, status_text
from clientreg.http import HttpClient, HttpSettings

LEAK = "SECRET-LOOKING-hunter2-7f3a"
HTML_PAGE = (f"<html><head><title>Admin console</title></head><body><h1>Internal dashboard</h1><p>db_password="
             f"{LEAK}</p><pre>root:x:0:0:root:/root:/bin/bash</pre></body></html>")
JSON_BLOB = {"status": "ok", "config": {"aws_secret_access_key": LEAK, "note": f"token {LEAK}"},
             "items": [{"name": "kube-system", "value": LEAK}]}
BIDI_AND_CONTROL = "\u202e\u2066\u200f\u200b\x1b[31m\x00\r\n"
DISCOVERY = {"issuer": ISSUER, "registration_endpoint": f"{ISSUER}/register", "token_endpoint": f"{ISSUER}/token"}

Handler = Callable[[httpx.Request], httpx.Response]


def _registration_answers(response: httpx.Response) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=DISCOVERY)
        return response
    return handle


def _every_get(response: httpx.Response) -> Handler:
    return lambda request: response


ANSWERS: list[tuple[str, Handler]] = [
    ("register-400-html", _registration_answers(httpx.Response(400, text=HTML_PAGE,
                                                               headers={"content-type": "text/html"}))),
    ("register-500-html", _registration_answers(httpx.Response(500, text=HTML_PAGE,
                                                               headers={"content-type": "text/html"}))),
    ("register-400-json-blob", _registration_answers(httpx.Response(400, json=JSON_BLOB))),
    ("register-201-json-blob-without-client-id", _registration_answers(httpx.Response(201, json=JSON_BLOB))),
    ("register-200-html", _registration_answers(httpx.Response(200, text=HTML_PAGE))),
    ("register-oauth-error-with-extras", _registration_answers(httpx.Response(400, json={
        "error": "invalid_client_metadata", "error_description": f"bad {BIDI_AND_CONTROL}metadata " + "x" * 400,
        "debug": JSON_BLOB}))),
    ("discovery-200-html-everywhere", _every_get(httpx.Response(200, text=HTML_PAGE))),
    ("discovery-200-json-blob-everywhere", _every_get(httpx.Response(200, json=JSON_BLOB))),
]


def _world(handler: Handler) -> World:
    w = World(iat=None)
    w.reconciler.connections.http_factory = lambda settings, server: HttpClient(
        HttpSettings(retries=0), transport=httpx.MockTransport(handler), sleep=lambda _s: None)
    w.add_client()
    return w


def _assert_clean(text: str) -> None:
    assert LEAK not in text, text
    assert "db_password" not in text and "root:x:0:0" not in text and "Admin console" not in text, text
    assert "aws_secret_access_key" not in text and "kube-system" not in text, text
    assert not any(unicodedata.category(ch)[0] == "C" for ch in text), repr(text)


@pytest.mark.parametrize("handler", [h for _, h in ANSWERS], ids=[i for i, _ in ANSWERS])
def test_conditions_and_events_never_carry_what_the_server_answered(handler: Handler) -> None:
    w = _world(handler)
    w.reconcile()
    ready, synced = w.condition("Ready"), w.condition("Synced")
    assert ready["status"] == "False" and ready["reason"] not in ("InSync", "Waiting")
    for text in (ready["message"], synced["message"], *(e["message"] for e in w.cluster.events)):
        _assert_clean(text)
    _assert_clean(json.dumps(w.cluster.client()["status"]))


def test_an_oauth_error_keeps_its_code_status_and_a_short_description() -> None:
    w = _world(dict(ANSWERS)["register-oauth-error-with-extras"])
    w.reconcile()
    message = w.condition("Ready")["message"]
    assert "HTTP 400" in message and "error=invalid_client_metadata" in message
    description = message.split("error=invalid_client_metadata | ", 1)[1]
    # No control or bidi character survives (errors show them as visible escapes such as \\u202e); what
    # followed them is printable text and may stay.
    assert description.startswith("bad ") and " metadata x" in description
    assert not [c for c in description if unicodedata.category(c) in ("Cc", "Cf")]
    assert len(description) <= SUMMARY_DESCRIPTION_LIMIT


@pytest.mark.parametrize("code", ["a b", 'say"hi"', "back\\slash", "x" * 65, "é", "tab\tbed", "\u202einvalid"])
def test_an_error_field_that_is_not_an_rfc_6749_code_is_not_shown_as_one(code: str) -> None:
    error = RegistrationError("registration refused", status=400, error=code, error_description="why")
    assert "error=" not in error.summary()
    assert "HTTP 400" in error.summary() and "why" in error.summary()


def test_the_summary_drops_the_body_the_message_keeps() -> None:
    # The CLI (str) shows the operator of the CLI an excerpt of their own server's answer; status never does.
    error = ProtocolError("registration answered unexpectedly", status=502, body=HTML_PAGE)
    assert LEAK in str(error)
    assert error.summary() == "registration answered unexpectedly | HTTP 502"


@pytest.mark.parametrize(("text", "expected"), [
    ("plain words", "plain words"),
    ("line\r\nbreak\tand\x0btab", "line break and tab"),
    ("\u202egnp.exe\u202c safe", "gnp.exe safe"),
    ("zero\u200bwidth\u2066isolate\u2069", "zerowidthisolate"),
    ("\x1b[31mred\x1b[0m\x00", "[31mred [0m"),
    ("a\u2028b\u2029c\u00a0d", "a b c d"),
])
def test_printable_removes_control_and_bidi_characters(text: str, expected: str) -> None:
    assert status_text(text, 100) == expected


def test_printable_bounds_the_length() -> None:
    out = status_text("word " * 100, 40)
    assert len(out) <= 40 and out.endswith("…")


def test_a_namespaced_server_status_shows_no_body_either(monkeypatch: pytest.MonkeyPatch) -> None:
    from clientreg_operator import servers

    from clientreg.server import ServerConnection

    real = ServerConnection.for_spec

    def for_spec(spec: Any, **kwargs: Any) -> ServerConnection:
        http = HttpClient(HttpSettings(retries=0), transport=httpx.MockTransport(
            _every_get(httpx.Response(200, text=HTML_PAGE))), sleep=lambda _s: None)
        return real(spec, http=http, **{k: v for k, v in kwargs.items() if k != "address_policy"})

    monkeypatch.setattr(servers.ServerConnection, "for_spec", for_spec)
    cluster = ServerStatusCluster()
    patches = cluster.patches

    body = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
            "metadata": {"name": "inward", "namespace": "tenant-a", "generation": 1}, "spec": {"issuer": ISSUER}}
    error = servers.check_server(cluster, body, cluster_resource_namespace="clientreg")  # type: ignore[arg-type]
    assert error is not None and LEAK in str(error)  # the operator's own log may say more
    ready = patches[0]["conditions"][0]
    assert ready["status"] == "False" and ready["reason"] == "DiscoveryFailed"
    _assert_clean(ready["message"])
