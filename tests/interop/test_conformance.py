"""One conformance suite, run against every real server; each declares the features it lacks.

Everything goes through the engine exactly as the front ends use it (observe → plan → apply), and
every credential is proven by a real token request.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr
from support.features import Features
from support.peers import PeerServer

from clientreg import rfc7591, rfc7592
from clientreg.engine import Desired, Reason, reconcile
from clientreg.errors import ClientGone, CredentialsRejected, NotPermitted, ProtocolError, RegistrationError
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClient, parse_document
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.interop


class Session:
    """One resource reconciled repeatedly, with its record 'persisted' and AS requests counted."""

    def __init__(self, peer: PeerServer, features: Features, name: str) -> None:
        self.calls: Counter[str] = Counter()
        self.http = HttpClient(on_response=lambda method, url, status: self.calls.update([method]))
        iat = SecretStr(peer.initial_access_token) if peer.initial_access_token else None
        spec = AuthorizationServerSpec(issuer=peer.issuer, registration_endpoint=None
                                       if features.advertises_registration_endpoint else peer.registration_endpoint)
        self.server = ServerConnection(spec, self.http, name=peer.name, initial_access_token=iat)
        self.name = name
        self.record: RegistrationRecord | None = None

    def save(self, record: RegistrationRecord | None) -> None:
        self.record = RegistrationRecord.from_storage(record.to_storage()) if record else None

    def client(self, **spec: Any) -> OAuthClient:
        base: dict[str, Any] = {"serverRef": {"name": "as"}, "clientName": f"conformance {self.name}",
                                "grantTypes": ["client_credentials"],
                                "tokenEndpointAuthMethod": "client_secret_basic"}
        base.update(spec)
        doc = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                              "metadata": {"name": self.name}, "spec": base})
        assert isinstance(doc, OAuthClient)
        return doc

    def reconcile(self, client: OAuthClient, now: datetime | None = None, **kw: Any) -> Any:
        self.calls.clear()
        return reconcile(Desired.from_client(client, **kw), self.record, self.server, self.save, now)

    def writes(self) -> int:
        return sum(n for m, n in self.calls.items() if m != "GET")

    def token_works(self, record: RegistrationRecord | None = None) -> bool:
        record = record or self.record
        assert record is not None
        return bool(client_credentials_token(self.http, record).access_token.get_secret_value())

    def read(self, record: RegistrationRecord | None = None) -> Any:
        record = record or self.record
        assert record is not None and record.registration_client_uri and record.registration_access_token
        return rfc7592.read(self.http, record.registration_client_uri, record.registration_access_token)

    def cleanup(self) -> None:
        if self.record is not None:
            with contextlib.suppress(ProtocolError):
                reconcile(Desired(key=self.name, metadata={}, spec_hash="", deleting=True), self.record,
                          self.server, self.save)
        self.http.close()


@pytest.fixture
def session(peer: tuple[PeerServer, Features], request: pytest.FixtureRequest) -> Any:
    s = Session(peer[0], peer[1], request.node.name.split("[")[0].replace("_", "-")[:40])
    yield s
    s.cleanup()


def test_register_token_and_noop(session: Session) -> None:
    plan, outcome = session.reconcile(session.client())
    assert plan.reason is Reason.NOT_REGISTERED and outcome.ready, outcome.message
    assert session.record is not None and session.record.token_endpoint
    assert session.token_works()
    for _ in range(2):
        plan, outcome = session.reconcile(session.client())
        assert plan.reason in (Reason.IN_SYNC, Reason.REFUSED), outcome.message
        assert session.writes() == 0 and session.calls["GET"] == 1


def test_update_reaches_the_server(session: Session) -> None:
    session.reconcile(session.client())
    plan, outcome = session.reconcile(session.client(clientName="renamed by conformance",
                                                     clientUri="https://conformance.example.com"))
    assert plan.reason is Reason.SPEC_CHANGED and outcome.ready, outcome.message
    assert session.calls["PUT"] == 1
    read = session.read()
    assert read.metadata.get("client_name") == "renamed by conformance"
    assert session.reconcile(session.client(clientName="renamed by conformance",
                                            clientUri="https://conformance.example.com"))[0].reason is Reason.IN_SYNC
    assert session.token_works()


def test_client_deleted_at_server_is_registered_anew(session: Session) -> None:
    session.reconcile(session.client())
    old = session.record
    assert old is not None and old.registration_client_uri and old.registration_access_token
    rfc7592.delete(session.http, old.registration_client_uri, old.registration_access_token)
    plan, outcome = session.reconcile(session.client())
    # Every server answers the read with 401 or 404; the token endpoint's invalid_client proves it gone.
    assert plan.reason is Reason.CLIENT_GONE, plan.message
    assert outcome.ready and session.record is not None and session.record.client_id != old.client_id
    assert session.token_works()


def test_a_put_behind_our_back_keeps_the_client(session: Session) -> None:
    """RFC 7592 §2.2: someone else's PUT rotates the registration access token (issue 12): the 401 that
    follows is not "gone" while the token endpoint still knows the client."""
    session.reconcile(session.client())
    ours = session.record
    assert ours is not None and ours.registration_client_uri and ours.registration_access_token
    current = session.read()
    theirs = rfc7592.update(session.http, ours.registration_client_uri, ours.registration_access_token,
                            ours.client_id, {**current.metadata, "client_name": "edited elsewhere"})
    if theirs.registration_access_token in (None, ours.registration_access_token):
        pytest.skip("this server keeps the registration access token on update: no 401 follows")
    plan, outcome = session.reconcile(session.client())
    assert plan.reason is Reason.TOKEN_REVOKED, plan.message
    assert session.calls["POST"] == 1  # the token request only: nothing registered
    assert session.record is not None and session.record.client_id == ours.client_id
    assert outcome.ready and not outcome.synced and ours.client_id in outcome.message
    assert session.token_works()


def test_rotation_new_client_then_old_deleted(session: Session) -> None:
    client = session.client(rotation={"gracePeriod": "0s"})
    session.reconcile(client)
    old = session.record
    assert old is not None
    plan, outcome = session.reconcile(client, rotation_request="conformance-1")
    assert plan.reason is Reason.ROTATION_REQUESTED and outcome.credentials_changed
    assert session.record is not None and session.record.client_id != old.client_id
    assert session.token_works()
    # gracePeriod 0s: the same run deletes the old client once the replacement exists (issue 12).
    assert Reason.OLD_CLIENT_DELETED in [e.reason for e in outcome.events]
    assert session.record.retiring == []
    with pytest.raises((ClientGone, CredentialsRejected)):
        session.read(old)
    plan, _ = session.reconcile(client, rotation_request="conformance-1")
    assert not plan.writes


def test_expiring_secret_is_rotated_ahead(session: Session, peer: tuple[PeerServer, Features]) -> None:
    if not peer[1].secret_expiry:
        pytest.skip(f"{peer[0].name} cannot be made to issue expiring secrets")
    client = session.client(rotation={"rotateBefore": "2h", "gracePeriod": "0s"})
    session.reconcile(client)
    first = session.record
    assert first is not None and first.expires_at() is not None
    plan, outcome = session.reconcile(client)
    assert plan.reason is Reason.NEARING_EXPIRY and outcome.ready
    assert session.record is not None and session.record.client_id != first.client_id
    assert session.token_works()
    session.reconcile(client)
    with pytest.raises((ClientGone, CredentialsRejected)):
        session.read(first)


def test_rewritten_scope_is_not_an_update_loop(session: Session, peer: tuple[PeerServer, Features]) -> None:
    if not peer[1].rewrites_scope:
        pytest.skip(f"{peer[0].name} refuses or ignores disallowed scopes instead of rewriting them")
    client = session.client(scope="api:read api:admin")
    _, outcome = session.reconcile(client)
    assert outcome.ready and not outcome.synced and outcome.reason is Reason.REFUSED, outcome.message
    for _ in range(2):
        plan, _ = session.reconcile(client)
        assert plan.reason is Reason.REFUSED and session.writes() == 0


def test_delete_removes_the_client(session: Session) -> None:
    session.reconcile(session.client())
    record = session.record
    assert record is not None
    _, outcome = session.reconcile(session.client(), deleting=True)
    assert outcome.record is None and session.record is None
    with pytest.raises((ClientGone, CredentialsRejected)):
        session.read(record)


def test_error_mapping(session: Session, peer: tuple[PeerServer, Features]) -> None:
    server, features = peer
    iat = SecretStr(server.initial_access_token) if server.initial_access_token else None
    endpoint = session.server.registration_endpoint
    with pytest.raises((RegistrationError, NotPermitted)) as bad_uri:
        rfc7591.register(session.http, endpoint, {"redirect_uris": ["https://app.example.com/cb#fragment"],
                                                  "grant_types": ["authorization_code"]},
                         initial_access_token=iat)
    assert bad_uri.value.status in (400, 403)
    session.reconcile(session.client())
    assert session.record is not None and session.record.registration_client_uri
    with pytest.raises((CredentialsRejected, ClientGone, NotPermitted)):
        rfc7592.read(session.http, session.record.registration_client_uri, SecretStr("not-the-token"))
    if features.unknown_metadata == "rejected":
        with pytest.raises(RegistrationError) as unknown:
            rfc7591.register(session.http, endpoint, {"grant_types": ["client_credentials"],
                                                      "clientreg_unknown_field": "x"}, initial_access_token=iat)
        assert unknown.value.status == 400
    if features.initial_access_token:
        with pytest.raises((RegistrationError, NotPermitted, CredentialsRejected)):
            rfc7591.register(session.http, endpoint, {"grant_types": ["client_credentials"]})


def test_docs_servers_matrix_is_current(peer: tuple[PeerServer, Features]) -> None:
    """docs/servers.md is generated by `python -m support.matrix --write`; a stale page fails here."""
    from pathlib import Path

    from support.matrix import column_for, measure

    page = (Path(__file__).parents[2] / "docs" / "servers.md").read_text()
    documented = column_for(page, peer[0].name)
    measured = {c.feature: c.result for c in measure(peer[0].name, peer[0]).checks}
    assert measured == documented, "docs/servers.md is stale: run `cd tests && python -m support.matrix " \
        "--write ../docs/servers.md`"
