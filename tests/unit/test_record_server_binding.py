"""A registered client belongs to the server that issued it: a spec naming another server is refused
before any request, so one server's policy never governs metadata written to another server's client."""

from __future__ import annotations

import pytest
from support.fake_as import ISSUER, FakeAS
from test_engine import NOW, Harness, make_client

from clientreg.engine import Desired, reconcile
from clientreg.errors import PolicyViolation, RegisteredAtAnotherServer
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec

OTHER = "https://other.example"


def _registered() -> tuple[FakeAS, Harness]:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None and h.stored.issuer == ISSUER
    fake.calls.clear()
    return fake, h


def _run_at(h: Harness, spec: AuthorizationServerSpec, *, deleting: bool = False) -> None:
    server = ServerConnection(spec, h.fake.http(), name="other")
    reconcile(Desired.from_client(make_client(), deleting=deleting), h.stored, server, h.save, NOW)


def test_a_spec_naming_another_issuer_is_refused_before_any_request() -> None:
    fake, h = _registered()
    before = h.stored.to_storage() if h.stored else None
    with pytest.raises(RegisteredAtAnotherServer) as caught:
        _run_at(h, AuthorizationServerSpec(issuer=OTHER))
    assert not fake.calls, "nothing may be sent, not even the read"
    assert h.stored is not None and h.stored.to_storage() == before
    message = str(caught.value)
    assert ISSUER in message and OTHER in message and "serverRef" in message
    assert caught.value.reason == "RegisteredAtAnotherServer" and caught.value.exit_code == 2
    assert isinstance(caught.value, PolicyViolation)  # front ends report it as terminal, like other policies
    token = h.stored.registration_access_token
    assert token is None or token.get_secret_value() not in message


def test_a_spec_naming_another_registration_endpoint_is_refused() -> None:
    fake, h = _registered()
    assert h.stored is not None and h.stored.registration_endpoint
    with pytest.raises(RegisteredAtAnotherServer, match="registration endpoint"):
        _run_at(h, AuthorizationServerSpec(registration_endpoint=f"{OTHER}/register", token_endpoint=f"{OTHER}/t"))
    assert not fake.calls


def test_the_same_server_still_reconciles() -> None:
    fake, h = _registered()
    _run_at(h, AuthorizationServerSpec(issuer=ISSUER))
    assert dict(fake.calls) == {"GET /register/<id>": 1}


def test_an_old_record_without_server_fields_is_not_refused() -> None:
    fake, h = _registered()
    assert h.stored is not None
    h.stored = RegistrationRecord.from_storage({**h.stored.to_storage(), "issuer": None, "registration_endpoint": None})
    _run_at(h, AuthorizationServerSpec(issuer=ISSUER))
    assert fake.calls["GET /register/<id>"] == 1


def test_deleting_still_goes_to_the_server_that_issued_the_client() -> None:
    fake, h = _registered()
    assert h.stored is not None
    client_id = h.stored.client_id
    _run_at(h, AuthorizationServerSpec(issuer=OTHER), deleting=True)
    assert client_id not in fake.clients, "the record's own registration_client_uri is where the DELETE goes"
