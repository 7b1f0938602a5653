"""Spec validation: every rule names the field, and valid documents round-trip to wire metadata."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientreg.errors import ConfigurationError
from clientreg.spec import WIRE_NAMES, OAuthClient, OAuthClientSpec, Rotation, parse_document


def client_doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"]}
    base.update(spec)
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "team"}, "spec": base}


def rejects(doc: dict[str, Any], field: str, words: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        parse_document(doc, source="clients.yaml")
    err = info.value
    assert err.field is not None and err.field.startswith(field), err
    assert words.lower() in str(err).lower(), str(err)
    assert "clients.yaml" in str(err) and "OAuthClient/web" in str(err)
    return err


def test_valid_document_maps_to_wire_names() -> None:
    doc = parse_document(client_doc(clientName="Web", scope="openid api:read", contacts=["a@example.com"],
                                    additionalMetadata={"client_name#ja": "ウェブ"}))
    assert isinstance(doc, OAuthClient)
    assert doc.spec.wire_metadata() == {"client_name": "Web", "grant_types": ["client_credentials"],
                                        "scope": "openid api:read", "contacts": ["a@example.com"],
                                        "client_name#ja": "ウェブ"}
    assert doc.secret_name == "web-oauth"


def test_every_typed_field_has_a_wire_name() -> None:
    fields = {f.alias or name for name, f in OAuthClientSpec.model_fields.items()}
    assert set(WIRE_NAMES) <= fields


@pytest.mark.parametrize(("uri", "words"), [
    ("/relative/cb", "absolute"),
    ("https://app.example.com/cb#frag", "fragment"),
    ("http://app.example.com/cb", "loopback"),
    ("myapp:/cb", "reverse domain"),
])
def test_bad_redirect_uris_are_named(uri: str, words: str) -> None:
    doc = client_doc(grantTypes=["authorization_code"], redirectUris=[uri])
    rejects(doc, "spec.redirectUris", words)


@pytest.mark.parametrize("uri", ["https://app.example.com/cb", "http://127.0.0.1:8080/cb",
                                 "http://[::1]/cb", "http://localhost/cb", "com.example.app:/oauth2redirect"])
def test_good_redirect_uris(uri: str) -> None:
    parse_document(client_doc(grantTypes=["authorization_code"], redirectUris=[uri]))


def test_unknown_field_points_to_additional_metadata() -> None:
    rejects(client_doc(redirectUri="https://x.example/cb"), "spec.redirectUri", "additionalMetadata")


def test_missing_server_ref() -> None:
    doc = client_doc()
    del doc["spec"]["serverRef"]
    rejects(doc, "spec.serverRef", "required")


def test_grant_and_response_types_must_agree() -> None:
    rejects(client_doc(grantTypes=["client_credentials"], responseTypes=["code"]), "spec", "authorization_code")
    rejects(client_doc(grantTypes=["authorization_code"]), "spec", "redirectUris is required")


def test_jwks_and_jwks_uri_are_exclusive() -> None:
    rejects(client_doc(jwks={"keys": []}, jwksUri="https://x.example/jwks"), "spec", "jwks")


def test_typed_fields_cannot_hide_in_additional_metadata() -> None:
    rejects(client_doc(additionalMetadata={"redirect_uris": ["https://x.example"]}), "spec.additionalMetadata",
            "redirectUris")
    rejects(client_doc(additionalMetadata={"client_secret": "x"}), "spec.additionalMetadata", "client_secret")


def test_cimd_rules() -> None:
    rejects(client_doc(registration="cimd", clientIdUrl="https://app.example.com/"), "spec", "path")
    rejects(client_doc(registration="cimd", clientIdUrl="https://app.example.com/a/../b.json"), "spec", "dot")
    rejects(client_doc(registration="cimd", clientIdUrl="https://app.example.com/c.json",
                       tokenEndpointAuthMethod="client_secret_basic"), "spec", "shared secret")
    rejects(client_doc(clientIdUrl="https://app.example.com/c.json"), "spec", "only for registration: cimd")


def test_durations_are_go_style() -> None:
    parse_document(client_doc(rotation={"rotateBefore": "72h", "period": "1h30m", "gracePeriod": "10m"}))
    rejects(client_doc(rotation={"period": "30d"}), "spec.rotation.period", "Go syntax")


def test_rotation_durations_are_parsed_when_the_document_is_validated() -> None:
    doc = parse_document(client_doc(rotation={"rotateBefore": "72h", "period": "1h30m", "gracePeriod": "0s"}))
    assert isinstance(doc, OAuthClient) and doc.spec.rotation is not None
    rotation = doc.spec.rotation
    assert rotation.rotate_before_delta == timedelta(hours=72)
    assert rotation.period_delta == timedelta(hours=1, minutes=30)
    assert rotation.grace_delta == rotation.grace() == timedelta(0)
    # The strings stay as written (CRDs, Pulumi outputs, spec hashes show what the user declared).
    assert (rotation.rotate_before, rotation.period, rotation.grace_period) == ("72h", "1h30m", "0s")


def test_rotation_defaults_parse_to_no_deadline_and_a_ten_minute_grace() -> None:
    doc = parse_document(client_doc(rotation={}))
    assert isinstance(doc, OAuthClient) and doc.spec.rotation is not None
    rotation = doc.spec.rotation
    assert rotation.rotate_before_delta is None and rotation.period_delta is None
    assert rotation.grace_delta == timedelta(minutes=10)
    # A copy with a changed field is validated again, so its parsed value follows the string.
    changed = Rotation.model_validate({**rotation.model_dump(by_alias=True), "gracePeriod": "1h"})
    assert changed.grace_delta == timedelta(hours=1)


def test_wrong_kind_and_api_version() -> None:
    with pytest.raises(ConfigurationError, match="unknown kind"):
        parse_document({**client_doc(), "kind": "OAuthClients"})
    with pytest.raises(ConfigurationError, match="apiVersion"):
        parse_document({**client_doc(), "apiVersion": "v1"})


def test_spec_hash_ignores_list_order_of_nothing_but_changes_with_metadata() -> None:
    a = parse_document(client_doc(clientName="A"))
    b = parse_document(client_doc(clientName="B"))
    c = parse_document(client_doc(clientName="A", deletionPolicy="Orphan"))
    assert isinstance(a, OAuthClient) and isinstance(b, OAuthClient) and isinstance(c, OAuthClient)
    assert a.spec.spec_hash() != b.spec.spec_hash()
    assert a.spec.spec_hash() == c.spec.spec_hash()  # deletion policy is not registration metadata


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=10)


@given(st.dictionaries(st.sampled_from(["serverRef", "redirectUris", "grantTypes", "scope", "clientName",
                                        "rotation", "jwks", "registration", "tokenEndpointAuthMethod",
                                        "bogus"]), json_values, max_size=6))
def test_hostile_specs_raise_only_configuration_errors(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "x"}, "spec": spec}
    try:
        parse_document(doc, source="f.yaml")
    except ConfigurationError as exc:
        assert exc.field
        assert "Traceback" not in str(exc)
