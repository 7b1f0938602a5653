"""A 401 to the RFC 7592 read is ambiguous (gone, or someone else rotated the registration access token):
the token endpoint decides (clientreg.liveness), and only invalid_client lets clientreg register anew."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from support.fake_as import FakeAS
from test_engine import Harness, make_client

from clientreg.engine import ActionKind, Reason
from clientreg.http import HttpClient, HttpSettings
from clientreg.keys import ASSERTION_TYPE, generate
from clientreg.liveness import Liveness, Probe, probe
from clientreg.observation import Observed, observe
from clientreg.record import RegistrationRecord


def applied_then_token_taken(fake: FakeAS) -> tuple[Harness, str]:
    """Registered by clientreg, then someone else's PUT rotated the registration access token."""
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    client_id = h.stored.client_id
    fake.rats[client_id] = "someone-elses-token"
    fake.calls.clear()
    return h, client_id


def no_secret_shown(h: Harness, *texts: str) -> None:
    assert h.stored is not None and h.stored.client_secret is not None
    secret = h.stored.client_secret.get_secret_value()
    assert all(secret not in text for text in texts)


def test_a_rotated_token_with_working_credentials_replaces_nothing_and_stays_ready() -> None:
    fake = FakeAS()
    h, client_id = applied_then_token_taken(fake)
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.TOKEN_REVOKED
    assert [a.kind for a in the_plan.actions] == [ActionKind.REPORT]
    assert fake.calls["POST /register"] == 0 and fake.calls["POST /token"] == 1 and list(fake.clients) == [client_id]
    assert outcome.reason == Reason.TOKEN_REVOKED and outcome.ready and not outcome.synced
    assert h.stored is not None and h.stored.client_id == client_id
    warnings = [e for e in outcome.events if e.warning and e.reason == Reason.TOKEN_REVOKED]
    assert warnings and client_id in warnings[0].message and "adopt" in warnings[0].message.lower()
    no_secret_shown(h, outcome.message, *(e.message for e in outcome.events))


@pytest.mark.parametrize("error", ["unauthorized_client", "invalid_grant", "invalid_scope", "unsupported_grant_type"])
def test_a_refused_grant_proves_the_client_exists(error: str) -> None:
    fake = FakeAS()
    h, client_id = applied_then_token_taken(fake)
    fake.token_answer = (400, {"error": error})
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.TOKEN_REVOKED and fake.calls["POST /register"] == 0
    assert outcome.ready and not outcome.synced and list(fake.clients) == [client_id]


@pytest.mark.parametrize("answer", [(500, {}), (400, {"error": "invalid_request"}), (200, {"token_type": "Bearer"}),
                                    (401, {"error": "Client authentication failed"})])
def test_an_answer_that_proves_nothing_keeps_the_client_but_not_ready(answer: tuple[int, dict[str, Any]]) -> None:
    fake = FakeAS()
    h, client_id = applied_then_token_taken(fake)
    fake.token_answer = answer
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.TOKEN_REVOKED and fake.calls["POST /register"] == 0
    assert not outcome.ready and not outcome.synced and list(fake.clients) == [client_id]


def test_invalid_client_at_the_token_endpoint_means_gone_and_registers_anew() -> None:
    fake = FakeAS()
    h, client_id = applied_then_token_taken(fake)
    fake.token_answer = (400, {"error": "invalid_client"})  # RFC 6749 §5.2: 401 or 400
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.CLIENT_GONE and fake.calls["POST /register"] == 1
    assert h.stored is not None and h.stored.client_id != client_id and outcome.ready


def test_a_deleted_client_is_proven_gone_by_the_token_endpoint() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    seen = observe(h.stored, h.server, h.save)
    assert seen.state is Observed.PRESENT
    del fake.clients[h.stored.client_id]
    seen = observe(h.stored, h.server, h.save)
    assert seen.state is Observed.GONE and seen.liveness is Liveness.GONE and "invalid_client" in seen.detail


def test_a_public_client_cannot_be_probed_and_is_kept() -> None:
    fake = FakeAS()
    h = Harness(fake)
    public = make_client(tokenEndpointAuthMethod="none", grantTypes=["authorization_code"],
                         responseTypes=["code"], redirectUris=["https://app.example.com/cb"])
    h.run(public)
    assert h.stored is not None
    client_id = h.stored.client_id
    fake.rats[client_id] = "someone-elses-token"
    fake.calls.clear()
    the_plan, outcome = h.run(public)
    assert the_plan.reason is Reason.TOKEN_REVOKED and fake.calls["POST /token"] == 0
    assert fake.calls["POST /register"] == 0 and not outcome.ready and list(fake.clients) == [client_id]


# --- the probe itself -------------------------------------------------------------------------------------

def _probe_with(answer: httpx.Response, record: RegistrationRecord) -> tuple[Probe, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer

    http = HttpClient(HttpSettings(), transport=httpx.MockTransport(handle), sleep=lambda _s: None)
    try:
        return probe(http, record, None), sent
    finally:
        http.close()


def _record(**fields: Any) -> RegistrationRecord:
    base: dict[str, Any] = {"client_id": "c1", "token_endpoint": "https://as.example.test/token",
                            "registered_at": datetime(2026, 11, 28, tzinfo=UTC)}
    base.update(fields)
    return RegistrationRecord(**base)


def test_a_private_key_jwt_client_is_probed_with_an_assertion_of_its_key() -> None:
    key = generate("ES256", now=datetime(2026, 11, 28, tzinfo=UTC))
    record = _record(keys=[key], server_metadata={"token_endpoint_auth_method": "private_key_jwt"})
    found, sent = _probe_with(httpx.Response(400, json={"error": "invalid_client"}), record)
    assert found.liveness is Liveness.GONE
    form = dict(parse_qsl(sent[0].content.decode()))
    assert form["client_assertion_type"] == ASSERTION_TYPE and form["grant_type"] == "client_credentials"
    assert form["client_assertion"] not in found.detail


@pytest.mark.parametrize(("record", "why"), [
    (_record(client_secret="s3cret", token_endpoint=None), "no token endpoint"),
    (_record(server_metadata={"token_endpoint_auth_method": "none"}), "none"),
    (_record(server_metadata={"token_endpoint_auth_method": "tls_client_auth"}, client_secret="s3cret"),
     "tls_client_auth"),
    (_record(), "no client secret"),
    (_record(server_metadata={"token_endpoint_auth_method": "private_key_jwt"}), "no key"),
])
def test_a_client_the_token_endpoint_cannot_be_asked_about_is_unknown_without_a_request(
        record: RegistrationRecord, why: str) -> None:
    found, sent = _probe_with(httpx.Response(200, json={"access_token": "t"}), record)
    assert found.liveness is Liveness.UNKNOWN and why in found.detail and sent == []


def test_the_probe_never_repeats_a_secret_or_a_token_the_server_echoes() -> None:
    record = _record(client_secret="s3cret-value", server_metadata={"token_endpoint_auth_method": "client_secret_post"})
    found, sent = _probe_with(httpx.Response(400, json={"error": "invalid_request",
                                                        "error_description": "bad s3cret-value"}), record)
    assert found.liveness is Liveness.UNKNOWN and "s3cret-value" not in found.detail
    assert dict(parse_qsl(sent[0].content.decode()))["client_secret"] == "s3cret-value"
    issued, _ = _probe_with(httpx.Response(200, json={"access_token": "tok-value-123"}), record)
    assert issued.liveness is Liveness.ALIVE and "tok-value-123" not in issued.detail
