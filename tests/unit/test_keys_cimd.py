"""Client keys (private_key_jwt), published documents (CIMD, jwks_uri) and the SSRF guard, without a network."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet

from clientreg import publish
from clientreg.engine import ActionKind, Desired, Observation, Observed, Published, Reason, plan
from clientreg.errors import ConfigurationError, TransportError
from clientreg.keys import client_assertion, generate, jwks
from clientreg.record import RegistrationRecord
from clientreg.rfc7591 import ClientInformation
from clientreg.spec import OAuthClient, parse_document
from clientreg.ssrf import FetchPolicy, FetchRefused, address_refusal, check_fetch_url, fetch_json

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TOKEN_ENDPOINT = "https://as.example.com/token"


def client(**spec: Any) -> OAuthClient:
    doc = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                          "metadata": {"name": "c", "namespace": "ns"},
                          "spec": {"serverRef": {"name": "as"}, "grantTypes": ["client_credentials"], **spec}})
    assert isinstance(doc, OAuthClient)
    return doc


# --- keys -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_generated_key_signs_an_rfc7523_assertion_the_public_jwks_verifies(algorithm: str) -> None:
    key = generate(algorithm, now=NOW)
    assert key.public_jwk["kid"] == key.kid and key.public_jwk["alg"] == algorithm
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key.public_jwk)
    token = client_assertion(key, "client-1", TOKEN_ENDPOINT, now=datetime.now(UTC))
    decoded = jwt.decode(token, KeySet.import_key_set(jwks([key])))  # type: ignore[arg-type]
    claims = decoded.claims
    assert decoded.header["kid"] == key.kid and decoded.header["alg"] == algorithm
    assert claims["iss"] == claims["sub"] == "client-1" and claims["aud"] == TOKEN_ENDPOINT
    assert claims["exp"] - claims["iat"] <= 60 and len(claims["jti"]) >= 24
    assert client_assertion(key, "client-1", TOKEN_ENDPOINT, now=NOW) != \
        client_assertion(key, "client-1", TOKEN_ENDPOINT, now=NOW)  # a fresh jti every time


def test_private_keys_never_in_reprs_dumps_or_errors() -> None:
    key = generate("ES256", now=NOW)
    record = RegistrationRecord(client_id="c", keys=[key])
    pem = key.private_key.get_secret_value()
    assert pem not in repr(record) and pem not in str(record.model_dump()) and pem not in repr(key)
    assert record.to_storage()["keys"][0]["private_key"] == pem  # the one way out, for the store
    assert RegistrationRecord.from_storage(record.to_storage()).keys[0].private_key.get_secret_value() == pem
    assert record.credentials()["private_key"] == pem and record.credentials()["key_id"] == key.kid


def test_key_pair_spec_rules_name_the_field() -> None:
    with pytest.raises(ConfigurationError, match="keyPair is only for tokenEndpointAuthMethod: private_key_jwt"):
        client(keyPair={})
    with pytest.raises(ConfigurationError, match="jwks must not be set with keyPair"):
        client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", jwks={"keys": []})
    with pytest.raises(ConfigurationError, match="tokenEndpointAuthSigningAlg 'RS256' differs"):
        client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", tokenEndpointAuthSigningAlg="RS256")
    with pytest.raises(ConfigurationError, match=r"spec\.keyPair\.algorithm"):
        client(keyPair={"algorithm": "HS256"}, tokenEndpointAuthMethod="private_key_jwt")
    ok = client(keyPair={"algorithm": "RS256"}, tokenEndpointAuthMethod="private_key_jwt")
    assert ok.spec.key_pair is not None and ok.spec.key_pair.algorithm == "RS256"
    # Clients without keys keep the hash they had before keyPair existed (no SpecChanged for all of them).
    plain = client().spec
    before = json.dumps({"m": plain.wire_metadata(), "r": "dcr", "u": None}, sort_keys=True, separators=(",", ":"))
    assert plain.spec_hash() == hashlib.sha256(before.encode()).hexdigest()[:16]
    assert ok.spec.spec_hash() != client(tokenEndpointAuthMethod="private_key_jwt").spec.spec_hash()


# --- plan: key rotation and publication --------------------------------------------------------------------

def dcr_record(keys_: list[Any], **extra: Any) -> RegistrationRecord:
    return RegistrationRecord(client_id="c1", registration_client_uri="https://as.example.com/register/c1",
                              registration_access_token="rat", registered_at=NOW - timedelta(days=40),
                              keys=keys_, **extra)


def present(record: RegistrationRecord, desired: Desired, published: tuple[Published, ...] = ()) -> Observation:
    metadata = desired.with_keys(record).metadata
    return Observation(Observed.PRESENT, ClientInformation(client_id=record.client_id, metadata=metadata),
                       published=published)


def test_rotation_period_rotates_the_key_not_the_client() -> None:
    c = client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", rotation={"period": "720h"})
    desired = Desired.from_client(c)
    record = dcr_record([generate("ES256", now=NOW - timedelta(days=40))], spec_hash=desired.spec_hash)
    the_plan = plan(desired, record, present(record, desired), NOW)
    assert [(a.kind, a.reason) for a in the_plan.actions] == [(ActionKind.ROTATE_KEY, Reason.PERIOD_ELAPSED)]
    requested = Desired.from_client(c, rotation_request="r1")
    fresh = dcr_record(record.keys, spec_hash=desired.spec_hash, last_rotation=NOW)
    assert plan(requested, fresh, present(fresh, requested), NOW).actions[0].kind is ActionKind.ROTATE_KEY
    # Without RFC 7592 the jwks cannot be updated in place: a replacement client is registered.
    bare = fresh.model_copy(update={"registration_client_uri": None})
    assert plan(requested, bare, Observation(Observed.UNSUPPORTED), NOW).actions[0].kind is ActionKind.ROTATE


def test_retiring_key_leaves_after_its_grace_and_a_changed_jwks_is_drift() -> None:
    c = client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt")
    desired = Desired.from_client(c)
    old = generate("ES256", now=NOW - timedelta(hours=2)).model_copy(update={"remove_after": NOW})
    new = generate("ES256", now=NOW - timedelta(hours=1))
    record = dcr_record([old, new], spec_hash=desired.spec_hash, last_rotation=NOW)
    assert [(a.kind, a.reason, a.target) for a in plan(desired, record, present(record, desired), NOW).actions] \
        == [(ActionKind.RETIRE_KEY, Reason.GRACE_OVER, old.kid)]
    assert plan(desired, record, present(record, desired), NOW - timedelta(seconds=1)).actions == ()
    # The AS lost the new key: put the declared jwks back.
    lost = Observation(Observed.PRESENT, ClientInformation(client_id="c1", metadata={
        **desired.metadata, "jwks": jwks([old])}))
    drift = plan(desired, record, lost, NOW - timedelta(seconds=1)).actions
    assert [(a.kind, a.reason, a.fields) for a in drift] == [(ActionKind.UPDATE, Reason.DRIFT, ("jwks",))]
    # Key order in a JWKS is no drift (RFC 7517 §5).
    reordered = Observation(Observed.PRESENT, ClientInformation(client_id="c1", metadata={
        **desired.metadata, "jwks": {"keys": list(reversed(record.public_jwks()["keys"]))}}))
    assert plan(desired, record, reordered, NOW - timedelta(seconds=1)).actions == ()


def cimd_record(desired: Desired, document: dict[str, Any]) -> RegistrationRecord:
    return RegistrationRecord(client_id=desired.client_id_url or "", registration="cimd",
                              spec_hash=desired.spec_hash, server_metadata=document, registered_at=NOW)


def test_cimd_document_not_served_or_different_is_not_ready() -> None:
    url = "https://app.example.com/clients/agent.json"
    desired = Desired.from_client(client(registration="cimd", clientIdUrl=url, tokenEndpointAuthMethod="none"))
    document = {"client_id": url, "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}
    record = cimd_record(desired, document)

    def observed(*published: Published) -> Observation:
        return Observation(Observed.NOT_READ, published=published)

    missing = plan(desired, record, observed(Published(url, detail="HTTP 404")), NOW)
    assert [(a.kind, a.reason) for a in missing.actions] == [(ActionKind.AWAIT_PUBLICATION,
                                                              Reason.DOCUMENT_NOT_PUBLISHED)]
    assert not missing.writes
    other = plan(desired, record, observed(Published(url, {**document, "client_name": "x"})), NOW)
    assert other.reason is Reason.DOCUMENT_DIFFERS and "client_name" in other.message
    reordered = {**document, "grant_types": ["client_credentials"]}
    assert plan(desired, record, observed(Published(url, reordered)), NOW).actions == ()
    # A plan made without looking claims nothing.
    assert plan(desired, record, observed(), NOW).actions == ()


def test_publish_paths_and_documents(tmp_path: Path) -> None:
    assert str(publish.static_path("https://App.example.com:8443/c/a.json")) == "app.example.com:8443/c/a.json"
    assert str(publish.static_path("https://a.example.com/c/")) == "a.example.com/c/index.json"
    for bad in ("https://a.example.com/c.json?x=1", "https://a.example.com/a/%2e%2e/b", "https://../c.json",
                "https://./c.json"):
        with pytest.raises(ConfigurationError):
            publish.static_path(bad)
    key = generate("ES256", now=NOW)
    record = RegistrationRecord(client_id="c", keys=[key],
                                server_metadata={"jwks_uri": "https://keys.example.com/c/jwks.json"})
    docs = publish.documents(record)
    assert docs == {"https://keys.example.com/c/jwks.json": {"keys": [key.public_jwk]}}
    written = publish.write_tree(tmp_path, docs)
    assert written == [tmp_path / "keys.example.com" / "c" / "jwks.json"]
    assert key.private_key.get_secret_value() not in written[0].read_text()
    assert publish.write_tree(tmp_path, docs) == []  # unchanged: no write


# --- SSRF guard ---------------------------------------------------------------------------------------------

class RecordingBackend(httpcore.NetworkBackend):
    """Records every connection attempt and makes none."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        self.attempts.append((host, port))
        raise httpcore.ConnectError("recording backend: no network in unit tests")


def resolving_to(*addresses: str) -> Any:
    return lambda host, port: list(addresses)


REFUSED = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.1.1", "100.64.0.1",
           "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1",
           "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::", "::", "ff02::1", "240.0.0.1", "198.18.0.1"]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_addresses_are_never_connected_to(address: str) -> None:
    backend = RecordingBackend()
    with pytest.raises(FetchRefused, match="refused before connecting"):
        fetch_json("https://docs.example.com/c.json", resolver=resolving_to(address), inner=backend)
    assert backend.attempts == []


def test_one_refused_answer_refuses_the_host_and_allowed_ones_are_connected_by_address() -> None:
    backend = RecordingBackend()
    with pytest.raises(FetchRefused):
        fetch_json("https://docs.example.com/c.json", resolver=resolving_to("93.184.215.14", "10.0.0.1"),
                   inner=backend)
    assert backend.attempts == []
    with pytest.raises(TransportError):
        fetch_json("https://docs.example.com:8443/c.json", resolver=resolving_to("93.184.215.14"), inner=backend)
    # The vetted address is what is dialled, never a second resolution of the name (DNS rebinding).
    assert backend.attempts == [("93.184.215.14", 8443)]


def test_loopback_only_behind_the_test_switch_and_never_other_private_addresses() -> None:
    backend = RecordingBackend()
    allow = FetchPolicy(allow_loopback=True)
    with pytest.raises(TransportError):
        fetch_json("http://127.0.0.1:9/c.json", policy=allow, inner=backend)
    assert backend.attempts == [("127.0.0.1", 9)]
    with pytest.raises(FetchRefused):
        fetch_json("https://docs.example.com/c.json", policy=allow, resolver=resolving_to("10.0.0.1"),
                   inner=backend)
    assert len(backend.attempts) == 1


@pytest.mark.parametrize("url", ["http://docs.example.com/c.json", "http://127.0.0.1/c.json", "ftp://a.b/c",
                                 "https://user:pw@docs.example.com/c.json", "https://docs.example.com/c#f",
                                 "https://docs.example.com:0/c"])
def test_urls_refused_before_resolving(url: str) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a URL that should have been refused")

    with pytest.raises(FetchRefused) as caught:
        fetch_json(url, resolver=resolver, inner=RecordingBackend())
    assert "pw" not in str(caught.value)
    check_fetch_url("https://docs.example.com/c.json")


@given(st.ip_addresses())
def test_every_address_is_either_refused_untouched_or_dialled_as_is(address: Any) -> None:
    backend = RecordingBackend()
    refusal = address_refusal(address)
    if refusal is not None:
        with pytest.raises(FetchRefused):
            fetch_json("https://docs.example.com/c.json", resolver=resolving_to(str(address)), inner=backend)
        assert backend.attempts == []
    else:
        assert address.is_global
        with pytest.raises(TransportError):
            fetch_json("https://docs.example.com/c.json", resolver=resolving_to(str(address)), inner=backend)
        assert backend.attempts == [(str(address), 443)]


@given(st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                        "100.64.0.0/10", "fc00::/7", "fe80::/10", "::ffff:0:0/96"]), st.integers(0, 2**32 - 1))
def test_private_ranges_are_refused_everywhere_in_them(network: str, offset: int) -> None:
    net = ipaddress.ip_network(network)
    address = net[offset % net.num_addresses]
    if network == "::ffff:0:0/96" and address_refusal(address.ipv4_mapped) is None:  # type: ignore[union-attr]
        return  # a mapped public IPv4 address is as public as the address itself
    assert address_refusal(address) is not None
