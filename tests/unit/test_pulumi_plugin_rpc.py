"""The plugin's gRPC service driven in-process, as the engine drives it: check, diff, the CRUD steps against
the dev AS, getClient, and errors that name the Pulumi argument."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from clientreg_pulumi.plugin import server as plugin
from clientreg_pulumi.plugin import wire
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from clientreg.devserver import DevServer, DevServerSettings

URN = "urn:pulumi:dev::proj::clientreg:index:OAuthClient::web"


@pytest.fixture
def provider() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    grpc_server, port = plugin.serve(None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield provider_pb2_grpc.ResourceProviderStub(channel)
    channel.close()
    grpc_server.stop(None)


@pytest.fixture
def dev_as() -> Iterator[DevServer]:
    with DevServer(DevServerSettings(initial_access_token="iat-unit")) as server:
        yield server


def configure(provider: Any, **values: Any) -> None:
    provider.Configure(provider_pb2.ConfigureRequest(
        variables={f"clientreg:config:{k}": v for k, v in values.items()}, acceptSecrets=True))


def check(provider: Any, news: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[tuple[str, str]]]:
    response = provider.Check(provider_pb2.CheckRequest(urn=URN, news=wire.to_struct(news)))
    plain, secret = wire.unwrap(response.inputs)
    return plain, secret, [(f.property, f.reason) for f in response.failures]


def test_check_names_the_camel_case_argument_never_the_crd_field(provider: Any) -> None:
    _, _, failures = check(provider, {"issuer": "ftp://x.example.com", "redirectUris": ["not a url"],
                                      "caBundle": 5})
    named = {p for p, _ in failures}
    assert {"issuer", "redirectUris"} <= named
    text = json.dumps(failures)
    assert "spec." not in text and "redirect_uris" not in text


def test_provider_config_fills_a_resource_without_a_server_and_keeps_the_token_secret(provider: Any) -> None:
    configure(provider, issuer="https://auth.example.com", initialAccessToken="iat-config")
    inputs, secret, failures = check(provider, {"clientName": "Web", "grantTypes": ["client_credentials"]})
    assert failures == []
    assert inputs["issuer"] == "https://auth.example.com" and "initialAccessToken" in secret
    # A resource naming its own AS never receives the token meant for the configured one.
    inputs, _, _ = check(provider, {"issuer": "https://other.example.com", "grantTypes": ["client_credentials"]})
    assert "initialAccessToken" not in inputs


def test_diff_replaces_on_a_new_issuer_and_updates_on_a_new_name(provider: Any) -> None:
    olds = {"issuer": "https://a.example.com", "clientName": "Web", "record": {}, "status": "InSync"}
    moved = provider.Diff(provider_pb2.DiffRequest(id="c1", urn=URN, olds=wire.to_struct(olds),
                                                   news=wire.to_struct({**olds, "issuer": "https://b.example.com"})))
    assert list(moved.replaces) == ["issuer"]
    assert moved.detailedDiff["issuer"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE
    renamed = provider.Diff(provider_pb2.DiffRequest(id="c1", urn=URN, olds=wire.to_struct(olds),
                                                     news=wire.to_struct({**olds, "clientName": "Web v2"})))
    assert list(renamed.replaces) == [] and renamed.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert renamed.detailedDiff["clientName"].kind == provider_pb2.PropertyDiff.UPDATE


def test_create_read_delete_through_the_core_with_secrets_marked(provider: Any, dev_as: DevServer) -> None:
    configure(provider, issuer=dev_as.issuer, initialAccessToken="iat-unit")
    inputs, _, failures = check(provider, {"clientName": "Worker", "grantTypes": ["client_credentials"]})
    assert failures == []
    created = provider.Create(provider_pb2.CreateRequest(urn=URN, properties=wire.to_struct(
        {**inputs, "initialAccessToken": wire.secret(inputs["initialAccessToken"])})))
    outs = wire.to_python(created.properties)
    assert created.id == outs["clientId"]
    assert "initialAccessToken" not in outs  # a credential given as input is never echoed
    for name in ("clientSecret", "registrationAccessToken", "record"):
        assert wire.is_secret(outs[name]), name
    assert outs["status"] == "InSync"

    read = provider.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, properties=created.properties,
                                                  inputs=wire.to_struct(inputs)))
    assert read.id == created.id and wire.to_python(read.properties)["status"] == "InSync"

    got = provider.Invoke(provider_pb2.InvokeRequest(tok="clientreg:index:getClient", args=wire.to_struct({
        "registrationClientUri": outs["registrationClientUri"],
        "registrationAccessToken": wire.reveal(outs["registrationAccessToken"])})))
    returned = wire.to_python(getattr(got, "return"))
    assert returned["metadata"]["client_name"] == "Worker" and wire.is_secret(returned["clientSecret"])

    assert isinstance(provider.Delete(provider_pb2.DeleteRequest(id=created.id, urn=URN,
                                                                 properties=created.properties)), empty_pb2.Empty)
    gone = provider.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, properties=created.properties))
    assert gone.id == ""


def test_import_without_the_registration_access_token_says_what_dcr_cannot_do(provider: Any,
                                                                                monkeypatch: Any) -> None:
    monkeypatch.delenv("CLIENTREG_IMPORT_REGISTRATION_ACCESS_TOKEN", raising=False)
    configure(provider, issuer="https://auth.example.com")
    with pytest.raises(grpc.RpcError) as failed:
        provider.Read(provider_pb2.ReadRequest(id="abc", urn=URN))
    message = failed.value.details()
    assert "registration access token" in message and "CLIENTREG_IMPORT_REGISTRATION_ACCESS_TOKEN" in message
    assert "Traceback" not in message


def test_get_schema_returns_the_generated_schema(provider: Any) -> None:
    loaded = json.loads(provider.GetSchema(provider_pb2.GetSchemaRequest(version=0)).schema)
    assert "clientreg:index:OAuthClient" in loaded["resources"]


def test_preview_sends_no_request_and_shows_the_credentials_as_unknown(provider: Any) -> None:
    # An issuer nobody listens on: a request would fail the call.
    news = {"issuer": "https://127.0.0.1:9/", "clientName": "Web", "grantTypes": ["client_credentials"]}
    created = provider.Create(provider_pb2.CreateRequest(urn=URN, properties=wire.to_struct(news), preview=True))
    outs = wire.to_python(created.properties)
    assert created.id == "" and outs["clientName"] == "Web"
    assert outs["clientId"] == wire.UNKNOWN and outs["clientSecret"] == wire.UNKNOWN
    olds = {**news, "clientId": "c1", "record": {}, "status": "InSync"}
    renamed = provider.Update(provider_pb2.UpdateRequest(id="c1", urn=URN, olds=wire.to_struct(olds), preview=True,
                                                         news=wire.to_struct({**news, "clientName": "Web v2"})))
    after = wire.to_python(renamed.properties)
    assert after["clientId"] == "c1" and after["clientName"] == "Web v2"  # an update keeps the client
    rotating = provider.Update(provider_pb2.UpdateRequest(id="c1", urn=URN, olds=wire.to_struct(olds), preview=True,
                                                          news=wire.to_struct({**news, "rotationTrigger": "2"})))
    assert wire.to_python(rotating.properties)["clientId"] == wire.UNKNOWN  # a rotation registers a new one


def test_a_refused_registration_names_the_argument_to_set_in_one_line(provider: Any, dev_as: DevServer) -> None:
    configure(provider, issuer=dev_as.issuer)  # no initial access token: the dev AS requires one
    inputs, _, failures = check(provider, {"clientName": "Web", "grantTypes": ["client_credentials"]})
    assert failures == []
    with pytest.raises(grpc.RpcError) as failed:
        provider.Create(provider_pb2.CreateRequest(urn=URN, properties=wire.to_struct(inputs)))
    message = failed.value.details()
    assert "initialAccessToken" in message and "could not register the client 'Web'" in message
    assert "spec." not in message and "initial_access_token" not in message
    assert "Traceback" not in message and "\n" not in message


def test_an_explicit_provider_resource_is_configured_from_its_typed_secret_arguments(provider: Any) -> None:
    # `new clientreg.Provider("p", {issuer, initialAccessToken, allowedRedirectHosts})`: args, not variables.
    provider.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, args=wire.to_struct({
        "issuer": "https://auth.example.com", "initialAccessToken": wire.secret("iat-explicit"),
        "allowedRedirectHosts": ["app.example.com"]})))
    inputs, secret, failures = check(provider, {"clientName": "Web",
                                                "redirectUris": ["https://elsewhere.example.net/cb"]})
    assert inputs["initialAccessToken"] == "iat-explicit" and "initialAccessToken" in secret
    assert [p for p, _ in failures] == ["redirectUris"]  # the provider's redirect policy applies


def test_a_model_refusing_a_secret_value_never_quotes_it() -> None:
    """pydantic's ValidationError text carries the input value; a step failing on a token must not echo it."""
    from clientreg_pulumi.plugin.server import ClientregProvider
    from pydantic import BaseModel, ValidationError, field_validator

    class Token(BaseModel):
        initial_access_token: str

        @field_validator("initial_access_token")
        @classmethod
        def _refuse(cls, value: str) -> str:
            raise ValueError("not a Bearer token")

    class Context:
        def abort(self, code: Any, message: str) -> None:
            raise RuntimeError(message)

    def step() -> None:
        Token(initial_access_token="s3cr3t-iat-value")

    with pytest.raises(ValidationError) as raw:
        step()
    assert "s3cr3t-iat-value" in str(raw.value)  # what would have leaked
    with pytest.raises(RuntimeError) as caught:
        ClientregProvider()._run(Context(), step)  # type: ignore[arg-type]
    assert "s3cr3t-iat-value" not in str(caught.value)
    assert "initial_access_token" in str(caught.value) or "initialAccessToken" in str(caught.value)
    assert "not a Bearer token" in str(caught.value)
