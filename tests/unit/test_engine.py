"""The engine's reasons and its persistence discipline, against an in-memory AS with real quirks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.fake_as import ISSUER, FakeAS

from clientreg.engine import ActionKind, Desired, Observation, Observed, Reason, plan, reconcile
from clientreg.errors import RegistrationError, StateError
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClient, parse_document

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def make_client(**spec: Any) -> OAuthClient:
    base: dict[str, Any] = {"serverRef": {"name": "as"}, "clientName": "Billing",
                            "grantTypes": ["client_credentials"], "scope": "openid api:read"}
    base.update(spec)
    doc = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                          "metadata": {"name": "billing", "namespace": "t"}, "spec": base})
    assert isinstance(doc, OAuthClient)
    return doc


class Harness:
    """Runs reconcile the way a front end does, keeping the 'persisted' record like a store would."""

    def __init__(self, fake: FakeAS) -> None:
        self.fake = fake
        self.server = ServerConnection(AuthorizationServerSpec(issuer=ISSUER), fake.http(), name="as")
        self.stored: RegistrationRecord | None = None
        self.saves: list[dict[str, Any] | None] = []

    def save(self, record: RegistrationRecord | None) -> None:
        self.stored = RegistrationRecord.from_storage(record.to_storage()) if record else None
        self.saves.append(record.to_storage() if record else None)

    def run(self, client: OAuthClient, now: datetime = NOW, **desired: Any) -> Any:
        d = Desired.from_client(client, **desired)
        the_plan, outcome = reconcile(d, self.stored, self.server, self.save, now)
        return the_plan, outcome


def test_register_then_noop_costs_one_read() -> None:
    fake = FakeAS()
    h = Harness(fake)
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.NOT_REGISTERED and outcome.ready and outcome.credentials_changed
    assert h.stored is not None and h.stored.client_id in fake.clients
    assert h.stored.token_endpoint == f"{ISSUER}/token"
    fake.calls.clear()
    the_plan, outcome = h.run(make_client())
    assert the_plan.reason is Reason.IN_SYNC and not the_plan.actions
    assert dict(fake.calls) == {"GET /register/<id>": 1}


def test_registration_is_persisted_before_any_other_request() -> None:
    fake = FakeAS()
    h = Harness(fake)
    seen_at_first_save: dict[str, int] = {}
    keep = h.save

    def save(record: RegistrationRecord | None) -> None:
        if not seen_at_first_save:
            seen_at_first_save.update(fake.calls)
        keep(record)

    h.save = save  # type: ignore[method-assign]
    h.run(make_client())
    # Discovery for the registration endpoint, then the POST: nothing after it before the record is safe.
    assert seen_at_first_save == {"GET /.well-known/oauth-authorization-server": 1, "POST /register": 1}


def test_failed_persistence_names_the_client_never_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeAS()
    h = Harness(fake)

    def broken(record: RegistrationRecord | None) -> None:
        raise OSError("disk full")

    h.save = broken  # type: ignore[method-assign]
    with pytest.raises(StateError) as info:
        h.run(make_client())
    (client_id, client), = fake.clients.items()
    assert client_id in str(info.value)
    assert client["client_secret"] not in str(info.value) + caplog.text
    assert client_id in caplog.text


def test_spec_change_updates_and_keeps_rotated_rat() -> None:
    fake = FakeAS(rotate_rat_on_update=True)
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    old_rat = h.stored.registration_access_token
    fake.calls.clear()
    the_plan, _ = h.run(make_client(clientName="Billing v2"))
    assert the_plan.reason is Reason.SPEC_CHANGED and the_plan.actions[0].kind is ActionKind.UPDATE
    assert fake.calls["PUT /register/<id>"] == 1
    assert h.stored.registration_access_token != old_rat
    assert h.stored.registration_access_token.get_secret_value() == fake.rats[h.stored.client_id]
    assert fake.clients[h.stored.client_id]["client_name"] == "Billing v2"
    fake.calls.clear()
    assert h.run(make_client(clientName="Billing v2"))[0].reason is Reason.IN_SYNC


def test_field_removed_from_spec_is_removed_at_the_server() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client(contacts=["ops@example.com"]))
    h.run(make_client())
    assert h.stored is not None
    assert "contacts" not in fake.clients[h.stored.client_id]


def test_drift_at_server_is_healed() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    fake.clients[h.stored.client_id]["client_name"] = "tampered"
    fake.clients[h.stored.client_id]["grant_types"] = ["client_credentials"]  # same set: not drift
    the_plan, _ = h.run(make_client())
    assert the_plan.reason is Reason.DRIFT and the_plan.actions[0].fields == ("client_name",)
    assert fake.clients[h.stored.client_id]["client_name"] == "Billing"


def test_scope_rewritten_by_server_is_reported_not_looped() -> None:
    fake = FakeAS(allowed_scopes={"openid"})
    h = Harness(fake)
    _, outcome = h.run(make_client())
    assert outcome.ready and not outcome.synced and outcome.reason is Reason.REFUSED
    assert "scope" in outcome.message and "api:read" in outcome.message
    for _ in range(3):
        fake.calls.clear()
        the_plan, outcome = h.run(make_client())
        assert the_plan.reason is Reason.REFUSED
        assert fake.writes() == 0
    # A new spec gets a fresh chance.
    the_plan, _ = h.run(make_client(scope="openid"))
    assert the_plan.reason is Reason.SPEC_CHANGED
    assert h.run(make_client(scope="openid"))[0].reason is Reason.IN_SYNC


def test_scope_order_and_server_defaults_are_not_drift() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    fake.clients[h.stored.client_id]["scope"] = "api:read openid"
    fake.clients[h.stored.client_id]["id_token_signed_response_alg"] = "RS256"
    assert h.run(make_client())[0].reason is Reason.IN_SYNC


def test_client_deleted_at_server_is_registered_anew() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    old = h.stored.client_id
    del fake.clients[old]
    the_plan, outcome = h.run(make_client())
    # 401 invalid_token to the read (RFC 7592 §2.1), then invalid_client at the token endpoint: gone.
    assert the_plan.reason is Reason.CLIENT_GONE
    assert outcome.ready and h.stored.client_id != old and h.stored.client_id in fake.clients
    assert len(fake.clients) == 1


def test_hydra_style_responses_keep_last_uri_and_rat() -> None:
    fake = FakeAS(omit_uri_in_responses=True, omit_rat_on_read=True)
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    uri, secret = h.stored.registration_client_uri, h.stored.client_secret
    h.run(make_client(clientName="Renamed"))
    assert h.stored.registration_client_uri == uri and h.stored.client_secret == secret
    assert h.stored.registration_access_token.get_secret_value() == fake.rats[h.stored.client_id]
    assert h.run(make_client(clientName="Renamed"))[0].reason is Reason.IN_SYNC


def test_keycloak_style_unknown_field_is_a_clear_error() -> None:
    fake = FakeAS(reject_unknown=True)
    h = Harness(fake)
    with pytest.raises(RegistrationError) as info:
        h.run(make_client(additionalMetadata={"frontchannel_logout_uri": "https://x.example/l"}))
    assert "frontchannel_logout_uri" in str(info.value) and info.value.status == 400
    assert h.stored is None


def test_secret_nearing_expiry_rotates_with_grace() -> None:
    fake = FakeAS(secret_lifetime=3600)
    fake.now = NOW.timestamp()
    h = Harness(fake)
    client = make_client(rotation={"rotateBefore": "30m", "gracePeriod": "10m"})
    h.run(client)
    assert h.stored is not None
    first = h.stored.client_id
    assert h.run(client, NOW + timedelta(minutes=20))[0].reason is Reason.IN_SYNC
    later = NOW + timedelta(minutes=31)
    fake.now = later.timestamp()
    the_plan, outcome = h.run(client, later)
    assert the_plan.reason is Reason.NEARING_EXPIRY and outcome.credentials_changed
    assert h.stored.client_id != first and first in fake.clients  # old one still serves workloads
    assert [r.client_id for r in h.stored.retiring] == [first]
    assert h.run(client, later + timedelta(minutes=5))[0].reason is Reason.IN_SYNC
    the_plan, _ = h.run(client, later + timedelta(minutes=11))
    assert [a.reason for a in the_plan.actions] == [Reason.GRACE_OVER]
    assert first not in fake.clients and not h.stored.retiring


def test_default_rotation_at_two_thirds_of_lifetime() -> None:
    fake = FakeAS(secret_lifetime=3000)
    fake.now = NOW.timestamp()
    h = Harness(fake)
    h.run(make_client())
    assert h.run(make_client(), NOW + timedelta(seconds=1900))[0].reason is Reason.IN_SYNC
    assert h.run(make_client(), NOW + timedelta(seconds=2001))[0].reason is Reason.NEARING_EXPIRY


def test_rotation_requested_once() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    the_plan, _ = h.run(make_client(), rotation_request="r1")
    assert the_plan.reason is Reason.ROTATION_REQUESTED
    assert h.run(make_client(), rotation_request="r1")[0].reason is Reason.IN_SYNC
    assert h.run(make_client(), rotation_request="r2")[0].reason is Reason.ROTATION_REQUESTED


def test_rotation_period() -> None:
    fake = FakeAS()
    h = Harness(fake)
    client = make_client(rotation={"period": "24h"})
    h.run(client)
    assert h.run(client, NOW + timedelta(hours=23))[0].reason is Reason.IN_SYNC
    assert h.run(client, NOW + timedelta(hours=25))[0].reason is Reason.PERIOD_ELAPSED


def test_delete_and_orphan() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    h.run(make_client(), deleting=True)
    assert h.stored is None and not fake.clients
    h.run(make_client(deletionPolicy="Orphan"))
    fake.calls.clear()
    the_plan, _ = h.run(make_client(deletionPolicy="Orphan"), deleting=True)
    assert the_plan.reason is Reason.ORPHANED and h.stored is None and len(fake.clients) == 1
    assert fake.writes() == 0


def test_transient_5xx_on_read_is_retried() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    fake.fail_next = [503, 502]
    assert h.run(make_client())[0].reason is Reason.IN_SYNC


def test_plan_is_pure_and_reasons_cover_gone() -> None:
    client = make_client()
    d = Desired.from_client(client)
    record = RegistrationRecord(client_id="c1", registration_client_uri="https://as/x", spec_hash=d.spec_hash)
    assert plan(d, record, Observation(Observed.GONE), NOW).reason is Reason.CLIENT_GONE
    assert plan(d, None, Observation.not_read(), NOW).reason is Reason.NOT_REGISTERED
    assert not plan(d, record, Observation.not_read(), NOW).actions


def test_secrets_never_in_reprs() -> None:
    fake = FakeAS()
    h = Harness(fake)
    _, outcome = h.run(make_client())
    (client,) = fake.clients.values()
    text = repr(outcome) + str(outcome.record) + repr(h.server)
    assert client["client_secret"] not in text
    assert fake.rats[client["client_id"]] not in text


def test_failed_cleanup_of_old_client_is_retried_not_fatal() -> None:
    fake = FakeAS()
    h = Harness(fake)
    client = make_client(rotation={"gracePeriod": "1m"})  # due at NOW (0s: deleted by the rotating run)
    h.run(client, NOW - timedelta(minutes=2))
    h.run(client, NOW - timedelta(minutes=1), rotation_request="r1")
    assert h.stored is not None and len(h.stored.retiring) == 1
    old = h.stored.retiring[0].client_id
    real = fake.handle

    def failing_delete(request: Any) -> Any:
        import httpx

        if request.method == "DELETE":
            return httpx.Response(503, text="busy")
        return real(request)

    fake.handle = failing_delete  # type: ignore[method-assign]
    h.server.http = fake.http()
    _, outcome = h.run(client, rotation_request="r1")
    assert outcome.ready and [r.client_id for r in h.stored.retiring] == [old]
    assert any(e.warning and "will retry" in e.message for e in outcome.events)
    fake.handle = real  # type: ignore[method-assign]
    h.server.http = fake.http()
    h.run(client, rotation_request="r1")
    assert not h.stored.retiring and old not in fake.clients


def test_a_record_saved_before_its_endpoints_is_completed_on_the_next_look() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client())
    assert h.stored is not None
    # A crash between the registration's save and the endpoints' save leaves this behind.
    h.stored.token_endpoint = None
    h.stored.issuer = None
    fake.calls.clear()
    the_plan, _ = h.run(make_client())
    assert the_plan.reason is Reason.IN_SYNC and fake.writes() == 0
    assert h.stored.token_endpoint == f"{ISSUER}/token" and h.stored.issuer == ISSUER


def test_a_failed_discovery_is_not_repeated_by_every_waiting_client() -> None:
    from clientreg.errors import ClientregError

    fake = FakeAS()
    fake.fail_next = [503] * 100  # the AS is down for discovery
    h = Harness(fake)
    with pytest.raises(ClientregError):
        h.run(make_client())
    tried = fake.calls["GET /.well-known/oauth-authorization-server"]
    with pytest.raises(ClientregError):
        h.run(make_client())
    assert fake.calls["GET /.well-known/oauth-authorization-server"] == tried  # remembered, not retried
