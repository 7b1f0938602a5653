"""The dynamic provider's private_key_jwt key pairs and Client ID Metadata Documents, against the dev AS.

Like tests/unit/test_pulumi_provider.py: the provider's methods called directly, without the Pulumi engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clientreg_pulumi import KeyPairArgs, OAuthClientError, OAuthClientProvider
from clientreg_pulumi.outputs import credentials_of
from clientreg_pulumi.provider import STATUS_FAILED
from clientreg_pulumi.resource import COMPUTED_OUTPUTS, SECRET_OUTPUTS
from pydantic import SecretStr

from clientreg import registration, rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.errors import TransportError
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

IAT = "iat-for-the-pulumi-key-tests"
CLIENT_ID_URL = "https://app.example.com/oauth/client.json"
JWKS_URL = "https://app.example.com/oauth/jwks.json"
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture(scope="module")
def dev_as() -> Iterator[DevServer]:
    # Keeps its RATs: in a key rotation only the key changes, which is what the snapshot must notice.
    with DevServer(DevServerSettings(initial_access_token=IAT, rotate_registration_access_token=False)) as server:
        yield server


@pytest.fixture
def provider() -> OAuthClientProvider:
    return OAuthClientProvider()


def keyed(server: DevServer, **overrides: Any) -> dict[str, Any]:
    return {"issuer": server.issuer, "initial_access_token": IAT, "client_name": "Worker",
            "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
            "key_pair": {"algorithm": "ES256"}, **overrides}


def token_works(outs: dict[str, Any]) -> None:
    record = RegistrationRecord.from_storage(outs["record"])
    http = HttpClient()
    try:
        assert client_credentials_token(http, record).access_token.get_secret_value()
    finally:
        http.close()


# --- key pairs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("key_pair", [{"algorithm": "ES256"}, {"algorithm": "RS256", "rsa_key_size": 3072.0}])
def test_create_with_a_key_pair_outputs_the_key_and_a_token_request_works(
        dev_as: DevServer, provider: OAuthClientProvider, key_pair: dict[str, Any]) -> None:
    outs = provider.create(keyed(dev_as, key_pair=key_pair)).outs  # 3072.0: Pulumi's numbers are floats
    assert outs is not None
    assert outs["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert outs["key_algorithm"] == key_pair["algorithm"] and outs["key_id"]
    assert outs["client_secret"] is None
    registered = outs["registered_metadata"]["jwks"]["keys"]
    assert [k["kid"] for k in registered] == [outs["key_id"]]
    assert not PRIVATE_JWK_MEMBERS & set(registered[0])
    assert outs["published_documents"] == {}  # the JWKS went to the AS, nothing to host
    assert outs["key_pair"] == key_pair  # echoed, so that diff sees a change
    token_works(outs)


def test_the_private_key_and_the_record_are_secret_outputs() -> None:
    assert {"private_key", "record", "client_secret", "registration_access_token"} <= set(SECRET_OUTPUTS)
    assert {"private_key", "key_id", "key_algorithm", "published_documents"} <= set(COMPUTED_OUTPUTS)
    assert "published_documents" not in SECRET_OUTPUTS and "key_id" not in SECRET_OUTPUTS
    assert KeyPairArgs(algorithm="RS256", rsa_key_size=4096).to_input() == {"algorithm": "RS256",
                                                                           "rsa_key_size": 4096}
    assert KeyPairArgs().to_input() == {"algorithm": "ES256"}


def test_no_private_key_in_errors_or_reprs(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = keyed(dev_as)
    outs = provider.create(news).outs
    assert outs is not None
    pem = outs["private_key"]
    body = pem.splitlines()[1]
    record = RegistrationRecord.from_storage(outs["record"])
    assert body not in repr(record) and body not in str(record.model_dump())
    assert all(body not in text for text in outs["published_documents"].values())
    # A failing update: the AS unreachable.
    record.registration_client_uri = "http://127.0.0.1:9/register/x"
    with pytest.raises(OAuthClientError) as failed:
        provider.update(outs["client_id"], {**outs, "record": record.to_storage()},
                        {**news, "client_name": "Renamed"})
    assert body not in str(failed.value) and body not in repr(failed.value)
    # Invalid arguments: check names the argument, never a key.
    failures = provider.check({}, {**news, "key_pair": {"algorithm": "HS256"}}).failures
    assert [f.property for f in failures] == ["key_pair"] and "key_pair.algorithm" in failures[0].reason
    failures = provider.check({}, {**news, "token_endpoint_auth_method": "client_secret_basic"}).failures
    assert [f.property for f in failures] == ["key_pair"]
    assert "token_endpoint_auth_method" in failures[0].reason and "keyPair" not in failures[0].reason


def test_a_key_generated_in_a_run_that_fails_later_is_kept(
        dev_as: DevServer, provider: OAuthClientProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    news = keyed(dev_as)
    created = provider.create(news)
    outs = created.outs
    assert outs is not None
    real_update = registration._update

    def put_then_lose_connection(*a: Any, **kw: Any) -> RegistrationRecord:
        real_update(*a, **kw)  # the AS holds the new public key now
        raise TransportError("connection reset while reading the AS's answer")

    monkeypatch.setattr(registration, "_update", put_then_lose_connection)
    kept = provider.update(created.id, outs, {**news, "rotation_trigger": "1"}).outs
    monkeypatch.undo()
    assert kept is not None
    assert kept["status"] == STATUS_FAILED and "connection reset" in kept["status_message"]
    # Same client, same RAT (this AS keeps it): only the new key tells the runs apart.
    assert kept["client_id"] == outs["client_id"]
    assert kept["registration_access_token"] == outs["registration_access_token"]
    assert kept["key_id"] != outs["key_id"] and kept["private_key"] != outs["private_key"]
    token_works(kept)
    before, after = RegistrationRecord.from_storage(outs["record"]), RegistrationRecord.from_storage(kept["record"])
    assert credentials_of(before) != credentials_of(after)


# --- Client ID Metadata Documents ------------------------------------------------------------------------

def test_a_cimd_client_publishes_its_document_and_jwks(dev_as: DevServer, provider: OAuthClientProvider) -> None:
    outs = provider.create(keyed(dev_as, registration="cimd", client_id_url=CLIENT_ID_URL,
                                 jwks_uri=JWKS_URL)).outs
    assert outs is not None
    assert outs["client_id"] == CLIENT_ID_URL and outs["registration_access_token"] is None
    published = outs["published_documents"]
    assert set(published) == {CLIENT_ID_URL, JWKS_URL}
    assert all(isinstance(text, str) and text.endswith("\n") for text in published.values())
    document = json.loads(published[CLIENT_ID_URL])
    assert document["client_id"] == CLIENT_ID_URL and document["jwks_uri"] == JWKS_URL
    jwks = json.loads(published[JWKS_URL])
    assert [k["kid"] for k in jwks["keys"]] == [outs["key_id"]]
    assert not any(PRIVATE_JWK_MEMBERS & set(k) for k in jwks["keys"])
    assert outs["private_key"].splitlines()[1] not in json.dumps(published)


def test_a_cimd_client_without_keys_publishes_only_its_document(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    outs = provider.create({"issuer": dev_as.issuer, "registration": "cimd", "client_id_url": CLIENT_ID_URL,
                            "client_name": "SPA", "redirect_uris": ["https://app.example.com/cb"],
                            "token_endpoint_auth_method": "none"}).outs
    assert outs is not None
    assert outs["private_key"] is None and outs["key_id"] is None
    assert list(outs["published_documents"]) == [CLIENT_ID_URL]
    assert json.loads(outs["published_documents"][CLIENT_ID_URL])["client_id"] == CLIENT_ID_URL


def test_the_provider_retires_rotated_keys_without_any_other_change(
        dev_as: DevServer, provider: OAuthClientProvider) -> None:
    news = {**keyed(dev_as, grace_period="1h"), "rotation_trigger": "1"}
    created = provider.create(keyed(dev_as, grace_period="1h"))
    assert created.outs is not None
    rotated = provider.update(created.id, created.outs, news).outs
    assert rotated is not None
    old_kid = created.outs["key_id"]
    assert {k["kid"] for k in rotated["registered_metadata"]["jwks"]["keys"]} == {old_kid, rotated["key_id"]}
    assert provider.diff(created.id, rotated, news).changes is False  # inside the grace period
    # The grace period is over (as if an hour passed): nothing else changed, yet the next up must act.
    record = RegistrationRecord.from_storage(rotated["record"])
    (old,) = [k for k in record.keys if k.kid == old_kid]
    old.remove_after = datetime.now(UTC) - timedelta(seconds=1)
    overdue = {**rotated, "record": record.to_storage()}
    diff = provider.diff(created.id, overdue, news)
    assert diff.changes is True and diff.replaces == []
    cleaned = provider.update(created.id, overdue, news).outs
    assert cleaned is not None
    assert cleaned["client_id"] == rotated["client_id"] and cleaned["key_id"] == rotated["key_id"]
    http = HttpClient()
    try:
        live = rfc7592.read(http, cleaned["registration_client_uri"], SecretStr(cleaned["registration_access_token"]))
    finally:
        http.close()
    assert [k["kid"] for k in live.metadata["jwks"]["keys"]] == [rotated["key_id"]]
    assert provider.diff(created.id, cleaned, news).changes is False
