"""The dynamic provider's methods against the in-process dev AS, without the Pulumi engine.

The engine-driven tests (tests/e2e/test_pulumi_*.py) prove the same behaviour end to end; these
pin down each lifecycle method and the edge cases the engine cannot easily provoke.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dill
import httpx
import pytest
from clientreg_pulumi import OAuthClientError, OAuthClientProvider, refresh
from clientreg_pulumi.provider import STATUS_FAILED, STATUS_IN_SYNC
from pulumi.dynamic.dynamic import serialize_provider
from pydantic import SecretStr
from support.elsewhere import register_elsewhere

from clientreg import execute, rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.errors import TransportError
from clientreg.http import HttpClient
from clientreg.observation import Observation, Observed
from clientreg.record import RegistrationRecord

IAT = "iat-for-the-pulumi-unit-tests"
LEGACY = {"client_name": "Legacy", "redirect_uris": ["https://legacy.example.com/cb"]}
SECRET_LIFETIME = 3600


@pytest.fixture(scope="module")
def dev_as() -> Iterator[DevServer]:
    # Registration access tokens rotate on every PUT, as on oidc-provider and Keycloak.
    with DevServer(DevServerSettings(initial_access_token=IAT, secret_lifetime=SECRET_LIFETIME)) as server:
        yield server


@pytest.fixture(scope="module")
def steady_as() -> Iterator[DevServer]:
    # Keeps its RATs: a second party can change a client without locking clientreg out.
    with DevServer(DevServerSettings(initial_access_token=IAT, rotate_registration_access_token=False)) as server:
        yield server


@pytest.fixture
def provider() -> OAuthClientProvider:
    return OAuthClientProvider()


def inputs(server: DevServer, **overrides: Any) -> dict[str, Any]:
    return {"issuer": server.issuer, "initial_access_token": IAT, "client_name": "Web",
            "redirect_uris": ["https://app.example.com/cb"], "scope": "openid profile", **overrides}


def exists_at(server: DevServer, client_id: str) -> bool:
    return client_id in httpx.get(f"{server.dev_url}/clients").json()


def live(server: DevServer, outs: dict[str, Any]) -> dict[str, Any]:
    http = HttpClient()
    try:
        return rfc7592.read(http, outs["registration_client_uri"],
                            SecretStr(outs["registration_access_token"])).metadata
    finally:
        http.close()


# --- create ------------------------------------------------------------------------------------------

def test_create_registers_and_returns_credentials(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    created = provider.create(inputs(dev_as))
    outs = created.outs
    assert outs is not None
    assert created.id == outs["client_id"] and exists_at(dev_as, created.id)
    assert outs["client_secret"] and outs["registration_access_token"]
    assert outs["registration_client_uri"].startswith(dev_as.issuer)
    assert outs["client_secret_expires_at"] > datetime.now(UTC).timestamp()
    assert outs["token_endpoint"] == dev_as.token_endpoint
    assert outs["registered_metadata"]["client_name"] == "Web"
    assert outs["status"] == STATUS_IN_SYNC
    # The status and its message say the same thing: the state after the run, not the action taken.
    assert outs["status_message"] == f"client {created.id} matches its spec"
    assert outs["next_action_at"] is not None  # the secret expires: rotation is scheduled
    # The arguments are echoed for diff, but the initial access token never reaches the outputs.
    assert outs["client_name"] == "Web" and outs["issuer"] == dev_as.issuer
    assert IAT not in json.dumps(outs)
    record = RegistrationRecord.from_storage(outs["record"])
    assert record.client_id == created.id


def test_create_with_an_unreachable_server_says_where_and_registers_nothing(provider: OAuthClientProvider) -> None:
    with pytest.raises(OAuthClientError) as caught:
        provider.create({"registration_endpoint": "http://127.0.0.1:9/register", "client_name": "Web",
                         "redirect_uris": ["https://app.example.com/cb"], "initial_access_token": IAT})
    message = str(caught.value)
    assert message.startswith("could not register the client 'Web': ") and "127.0.0.1:9" in message
    assert IAT not in message and "\n" not in message
    # Raised from None: the user sees one message, not a chain of core internals.
    assert caught.value.__suppress_context__


def test_a_refused_registration_names_the_problem(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    with pytest.raises(OAuthClientError) as caught:
        provider.create(inputs(dev_as, initial_access_token="wrong"))
    assert "could not register the client" in str(caught.value) and "401" in str(caught.value)


# --- diff ---------------------------------------------------------------------------------------------

def test_diff_separates_updates_from_replacements(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as)
    outs = provider.create(news).outs
    assert outs is not None

    same = provider.diff("id", outs, {**news, "scope": "profile openid"})
    assert same.changes is False and same.replaces == []
    assert {"client_id", "client_secret", "registration_client_uri"} <= set(same.stables or [])

    metadata = provider.diff("id", outs, {**news, "client_name": "Renamed"})
    assert metadata.changes is True and metadata.replaces == []

    moved = provider.diff("id", outs, {**news, "issuer": "https://elsewhere.example.com"})
    assert moved.changes is True and moved.replaces == ["issuer"] and moved.stables == []
    assert moved.delete_before_replace is False  # the new client exists before the old one goes

    # Credentials only used to register are no reason for an update.
    assert provider.diff("id", outs, {**news, "initial_access_token": "another"}).changes is False
    rotate = provider.diff("id", outs, {**news, "rotation_trigger": "2026-01"})
    assert rotate.changes is True and rotate.replaces == [] and rotate.stables == []


def test_diff_reports_rotation_due_inside_rotate_before(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, rotate_before="30m")
    outs = provider.create(news).outs
    assert outs is not None
    assert provider.diff("id", outs, news).changes is False
    # The secret lives an hour: with 2h of warning the window has begun.
    assert provider.diff("id", outs, {**news, "rotate_before": "2h"}).changes is True


# --- update -------------------------------------------------------------------------------------------

def test_update_puts_the_new_metadata_in_place(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, contacts=["ops@example.com"])
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    changed = {k: v for k, v in news.items() if k != "contacts"} | {"client_name": "Renamed"}
    updated = provider.update(created.id, outs, changed).outs
    assert updated is not None
    assert updated["client_id"] == created.id  # in place, same client
    assert updated["registration_access_token"] != outs["registration_access_token"]  # rotated by the PUT
    at_server = live(dev_as, updated)
    assert at_server["client_name"] == "Renamed"
    assert "contacts" not in at_server  # no longer declared: removed at the AS
    assert updated["status"] == STATUS_IN_SYNC


def test_rotation_keeps_the_old_client_until_its_grace_period_ends(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, grace_period="1h")
    created = provider.create(news)
    first = created.outs
    assert first is not None
    rotated = provider.update(created.id, first, {**news, "rotation_trigger": 1}).outs
    assert rotated is not None
    assert rotated["client_id"] != first["client_id"]
    assert rotated["retiring_client_ids"] == [first["client_id"]]
    assert exists_at(dev_as, first["client_id"]) and exists_at(dev_as, rotated["client_id"])
    # The retiring client's own RAT is kept (secret) so a later up can delete it.
    (retiring,) = rotated["record"]["retiring"]
    assert retiring["registration_access_token"] == first["registration_access_token"]
    # Same trigger, inside the grace period: nothing to do.
    again = {**news, "rotation_trigger": 1}
    assert provider.diff(created.id, rotated, again).changes is False
    # Once the grace period is over, the next up deletes the old client.
    record = RegistrationRecord.from_storage(rotated["record"])
    record.retiring[0].delete_after = datetime.now(UTC) - timedelta(seconds=1)
    overdue = {**rotated, "record": record.to_storage()}
    assert provider.diff(created.id, overdue, again).changes is True
    cleaned = provider.update(created.id, overdue, again).outs
    assert cleaned is not None
    assert cleaned["retiring_client_ids"] == [] and not exists_at(dev_as, first["client_id"])
    assert cleaned["client_id"] == rotated["client_id"]


def test_rotate_before_rotates_on_the_first_update_inside_the_window(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, rotate_before="2h", grace_period="0s")
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    rotated = provider.update(created.id, outs, news).outs
    assert rotated is not None and rotated["client_id"] != outs["client_id"]
    assert rotated["last_rotation"] is not None


def test_credentials_are_kept_when_a_later_step_fails(
        dev_as: DevServer, provider: OAuthClientProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    news = inputs(dev_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    real_update = execute._update

    def put_then_lose_connection(*a: Any, **kw: Any) -> RegistrationRecord:
        real_update(*a, **kw)  # the AS answered with a new RAT, already saved
        raise TransportError("connection reset while reading the AS's answer")

    monkeypatch.setattr(execute, "_update", put_then_lose_connection)
    kept = provider.update(created.id, outs, {**news, "client_name": "Renamed"}).outs
    assert kept is not None
    assert kept["status"] == STATUS_FAILED and "connection reset" in kept["status_message"]
    assert kept["registration_access_token"] != outs["registration_access_token"]
    monkeypatch.undo()
    # The new RAT works, and the next up is asked to finish the job.
    assert live(dev_as, kept)["client_name"] == "Renamed"
    assert provider.diff(created.id, kept, {**news, "client_name": "Renamed"}).changes is True


def test_a_failure_before_the_as_changed_anything_fails_the_update(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    record = RegistrationRecord.from_storage(outs["record"])
    record.registration_client_uri = "http://127.0.0.1:9/register/x"  # nothing listens there
    unreachable = {**outs, "record": record.to_storage()}
    with pytest.raises(OAuthClientError, match=r"could not update client \S+: .*127\.0\.0\.1:9"):
        provider.update(created.id, unreachable, {**news, "client_name": "Renamed"})


# --- read (refresh) -----------------------------------------------------------------------------------

def test_refresh_shows_drift_and_update_heals_it(steady_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(steady_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    assert provider.read(created.id, outs).outs["status"] == STATUS_IN_SYNC  # type: ignore[index]

    http = HttpClient()
    rfc7592.update(http, outs["registration_client_uri"], SecretStr(outs["registration_access_token"]),
                   outs["client_id"], {**outs["registered_metadata"], "client_name": "Changed by hand"})
    http.close()

    refreshed = provider.read(created.id, outs)
    assert refreshed.id == created.id and refreshed.outs is not None
    assert refreshed.outs["status"] == "DriftAtServer" and "client_name" in refreshed.outs["status_message"]
    assert refreshed.outs["client_name"] == "Changed by hand"  # preview then shows it going back
    assert refreshed.outs["registered_metadata"]["client_name"] == "Changed by hand"
    # A second refresh (the echoes now hold the live values) still sees drift, not a spec change.
    again = provider.read(created.id, refreshed.outs).outs
    assert again is not None and again["status"] == "DriftAtServer" and again["client_name"] == "Changed by hand"
    diff = provider.diff(created.id, refreshed.outs, news)
    assert diff.changes is True and diff.replaces == []

    healed = provider.update(created.id, refreshed.outs, news).outs
    assert healed is not None and healed["status"] == STATUS_IN_SYNC
    assert live(steady_as, healed)["client_name"] == "Web"
    assert provider.diff(created.id, healed, news).changes is False


def test_refusals_are_not_drift(provider: OAuthClientProvider) -> None:
    # The AS drops scopes it does not allow: that is reported once, never an update on every up.
    with DevServer(DevServerSettings(initial_access_token=IAT, allowed_scopes=["openid"])) as server:
        news = inputs(server, scope="openid admin")
        created = provider.create(news)
        outs = created.outs
        assert outs is not None
        assert outs["status"] == "ServerRefusedValue" and "scope" in outs["status_message"]
        assert outs["scope"] == "openid admin"  # what was declared, so diff stays quiet
        refreshed = provider.read(created.id, outs).outs
        assert refreshed is not None and refreshed["status"] == "ServerRefusedValue"
        assert provider.diff(created.id, refreshed, news).changes is False


def test_a_client_the_core_says_is_gone_leaves_the_state(
        dev_as: DevServer, provider: OAuthClientProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    created = provider.create(inputs(dev_as))
    outs = created.outs
    assert outs is not None
    # Proven gone (an AS answering 404, or the core's liveness check): the engine drops it.
    monkeypatch.setattr(refresh, "observe", lambda *_a, **_kw: Observation(Observed.GONE, detail="404"))
    assert not provider.read(created.id, outs).id


def test_a_put_behind_the_providers_back_never_drops_the_resource(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    # Issue 12: someone edits the client with a PUT, which rotates its registration access token (as on
    # oidc-provider and Keycloak). The client lives on at the AS; refresh must not forget it.
    news = inputs(dev_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    http = HttpClient()
    try:
        theirs = rfc7592.update(http, outs["registration_client_uri"], SecretStr(outs["registration_access_token"]),
                                outs["client_id"], {**outs["registered_metadata"],
                                                    "redirect_uris": ["https://evil.example.net/cb"]})
    finally:
        http.close()
    assert theirs.registration_access_token is not None  # a new token, which Pulumi never saw
    kept = provider.read(created.id, outs)
    assert kept.id == created.id and kept.outs is not None
    assert kept.outs["status"] == "RegistrationAccessTokenRevoked"
    assert kept.outs["client_id"] == outs["client_id"] and outs["client_id"] in kept.outs["status_message"]
    # Nothing is registered beside it by itself; registering a new one takes a decision (rotation_trigger).
    assert provider.diff(created.id, kept.outs, news).changes is False
    assert exists_at(dev_as, outs["client_id"])


def test_a_client_deleted_at_an_as_answering_401_leaves_the_state_once_proven_gone(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    # This AS answers 401 for a deleted client too (RFC 7592 §2 allows it); its token endpoint answers
    # invalid_client for the stored credentials, which proves it gone (clientreg.liveness).
    news = inputs(dev_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    http = HttpClient()
    rfc7592.delete(http, outs["registration_client_uri"], SecretStr(outs["registration_access_token"]))
    http.close()
    assert provider.read(created.id, outs).id is None, "a client proven gone leaves the state"
    renewed = provider.create(news).outs
    assert renewed is not None and renewed["client_id"] != outs["client_id"]
    assert exists_at(dev_as, renewed["client_id"])


def test_a_gone_client_with_retired_clients_stays_to_clean_up(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, grace_period="1h")
    created = provider.create(news)
    assert created.outs is not None
    rotated = provider.update(created.id, created.outs, {**news, "rotation_trigger": "r1"}).outs
    assert rotated is not None
    http = HttpClient()
    rfc7592.delete(http, rotated["registration_client_uri"], SecretStr(rotated["registration_access_token"]))
    http.close()
    kept = provider.read(created.id, rotated)
    assert kept.id == created.id and kept.outs is not None
    assert kept.outs["status"] == "ClientGoneAtServer"  # the token endpoint proves it gone (clientreg.liveness)
    assert provider.diff(created.id, kept.outs, {**news, "rotation_trigger": "r1"}).changes is True
    renewed = provider.update(created.id, kept.outs, {**news, "rotation_trigger": "r1"}).outs
    assert renewed is not None and exists_at(dev_as, renewed["client_id"])
    assert rotated["retiring_client_ids"][0] in renewed["retiring_client_ids"]


def test_read_without_a_record_explains_how_to_adopt(provider: OAuthClientProvider) -> None:
    with pytest.raises(OAuthClientError, match="adopt_client_id"):
        provider.read("some-client", {"client_name": "Web"})


# --- delete -------------------------------------------------------------------------------------------

def test_delete_removes_the_client_and_its_retired_predecessors(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = inputs(dev_as, grace_period="1h")
    created = provider.create(news)
    assert created.outs is not None
    rotated = provider.update(created.id, created.outs, {**news, "rotation_trigger": "x"}).outs
    assert rotated is not None
    provider.delete(created.id, rotated)
    assert not exists_at(dev_as, rotated["client_id"]) and not exists_at(dev_as, created.id)


def test_delete_with_orphan_policy_keeps_the_client(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    created = provider.create(inputs(dev_as, deletion_policy="Orphan"))
    assert created.outs is not None
    provider.delete(created.id, created.outs)
    assert exists_at(dev_as, created.id)


def test_delete_of_a_client_already_deleted_at_the_as_succeeds(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    created = provider.create(inputs(dev_as))
    outs = created.outs
    assert outs is not None
    http = HttpClient()
    rfc7592.delete(http, outs["registration_client_uri"], SecretStr(outs["registration_access_token"]))
    http.close()
    provider.delete(created.id, outs)  # the AS answers 401 for a deleted client: destroy goes on


def test_delete_when_the_as_is_unreachable_says_what_failed(provider: OAuthClientProvider) -> None:
    record = RegistrationRecord(client_id="abc", registration_client_uri="http://127.0.0.1:9/register/abc",
                                registration_access_token=SecretStr("rat-value"))
    with pytest.raises(OAuthClientError) as caught:
        provider.delete("abc", {"registration_endpoint": "http://127.0.0.1:9/register", "timeout_seconds": 2,
                                "record": record.to_storage()})
    message = str(caught.value)
    assert message.startswith("could not delete client abc") and "Orphan" in message and "127.0.0.1:9" in message
    assert "rat-value" not in message


# --- adopt --------------------------------------------------------------------------------------------

def test_adopt_takes_over_a_client_registered_elsewhere(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    elsewhere = register_elsewhere(dev_as.registration_endpoint, IAT, LEGACY)
    before = set(httpx.get(f"{dev_as.dev_url}/clients").json())
    news = inputs(dev_as, client_name="Legacy, managed", redirect_uris=["https://legacy.example.com/cb"],
                  adopt_client_id=elsewhere.client_id,
                  adopt_registration_client_uri=elsewhere.registration_client_uri,
                  adopt_registration_access_token=elsewhere.registration_access_token.get_secret_value())
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    assert created.id == elsewhere.client_id == outs["client_id"]
    assert set(httpx.get(f"{dev_as.dev_url}/clients").json()) == before  # nothing new registered
    assert live(dev_as, outs)["client_name"] == "Legacy, managed"
    assert elsewhere.client_secret is not None and outs["client_secret"] == elsewhere.client_secret.get_secret_value()
    # The adoption credentials are inputs only: never echoed into the outputs.
    assert "adopt_registration_access_token" not in outs
    # Once adopted, the adopt_* arguments are no reason for changes.
    assert provider.diff(created.id, outs, {**news, "adopt_registration_access_token": "stale"}).changes is False


def test_adopt_checks_the_client_id(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    elsewhere = register_elsewhere(dev_as.registration_endpoint, IAT, LEGACY)
    with pytest.raises(OAuthClientError, match="belongs to client"):
        provider.create(inputs(dev_as, adopt_client_id="someone-else",
                               adopt_registration_client_uri=elsewhere.registration_client_uri,
                               adopt_registration_access_token=elsewhere.registration_access_token
                               .get_secret_value()))


# --- what gets pickled ---------------------------------------------------------------------------------

def test_the_pickled_provider_is_a_bare_class_reference(dev_as: DevServer) -> None:
    provider = OAuthClientProvider()
    outs = provider.create(inputs(dev_as)).outs  # using it must not leave anything behind
    assert outs is not None
    blob = base64.b64decode(serialize_provider(provider))
    assert len(blob) < 200
    assert b"clientreg_pulumi.provider" in blob and b"OAuthClientProvider" in blob
    for secret in (IAT, outs["client_secret"], outs["registration_access_token"]):
        assert secret.encode() not in blob
    assert isinstance(dill.loads(blob), OAuthClientProvider)
    ops = [op.name for op, _arg, _pos in __import__("pickletools").genops(blob)]
    assert "GLOBAL" in ops or "STACK_GLOBAL" in ops
    assert pickle.loads(blob).__dict__ == {}


def test_check_reports_failures_per_argument(provider: OAuthClientProvider) -> None:
    news = {"issuer": "https://auth.example.com", "client_name": "Web",
            "redirect_uris": ["https://app.example.com/cb", "http://app.example.com/cb"], "rotate_before": "1 day"}
    result = provider.check({}, news)
    assert result.inputs == news
    found = {failure.property: failure.reason for failure in result.failures}
    assert set(found) == {"redirect_uris", "rotate_before"}
    assert found["redirect_uris"].startswith("redirect_uris[1]: 'http://app.example.com/cb'")
    assert "duration" in found["rotate_before"]
