"""RFC 7591 registration and RFC 7592 management against the quirks of Keycloak, Hydra and oidc-provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from clientreg import rfc7591, rfc7592
from clientreg.errors import (
    ClientGone,
    ClientregError,
    ConfigurationError,
    CredentialsRejected,
    NotPermitted,
    OperationUnsupported,
    ProtocolError,
    RegistrationError,
    describe,
)
from clientreg.http import HttpClient, HttpSettings
from clientreg.issued import MAX_TIMESTAMP
from clientreg.rfc7591 import ClientInformation

ENDPOINT = "https://as.example.com/register"
URI = "https://as.example.com/register/c1"
IAT = "iat-0123456789-secret"
RAT = "rat-0123456789-secret"
NEW_RAT = "rat-rotated-9876543210"
SECRET = "client-secret-abcdefghij"
ALL_SECRETS = (IAT, RAT, NEW_RAT, SECRET)

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted AS: one handler, every request kept with its decoded JSON body."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def body(self, index: int = -1) -> dict[str, Any]:
        data = json.loads(self.requests[index].content)
        assert isinstance(data, dict)
        return data

    def http(self) -> HttpClient:
        return HttpClient(HttpSettings(), transport=httpx.MockTransport(self), sleep=lambda _s: None)


def answer(status: int, body: Any = None, **kwargs: Any) -> Handler:
    def handle(_r: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, **kwargs)
        if isinstance(body, str):
            return httpx.Response(status, text=body, **kwargs)
        return httpx.Response(status, json=body, **kwargs)
    return handle


def issued(**overrides: Any) -> dict[str, Any]:
    return {"client_id": "c1", "client_secret": SECRET, "client_id_issued_at": 1700000000,
            "client_secret_expires_at": 0, "registration_access_token": RAT, "registration_client_uri": URI,
            "client_name": "Billing", "redirect_uris": ["https://app.example.com/cb"], **overrides}


def assert_no_secret(*objects: object) -> None:
    for obj in objects:
        texts = [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts.append(json.dumps(describe(obj)))
            texts.extend(str(v) for v in vars(obj).values())
        for text in texts:
            for secret in ALL_SECRETS:
                assert secret not in text, f"{secret} leaked in {text!r}"


# --- RFC 7591 -------------------------------------------------------------------------------

def test_register_sends_metadata_with_the_initial_access_token() -> None:
    server = Server(answer(201, issued()))
    info = rfc7591.register(server.http(), ENDPOINT, {"client_name": "Billing"},
                            initial_access_token=SecretStr(IAT), software_statement="eyJ.statement.sig")
    sent = server.requests[0]
    assert sent.method == "POST" and str(sent.url) == ENDPOINT
    assert sent.headers["authorization"] == f"Bearer {IAT}"
    assert server.body() == {"client_name": "Billing", "software_statement": "eyJ.statement.sig"}
    assert info.client_id == "c1"
    assert info.client_secret is not None and info.client_secret.get_secret_value() == SECRET
    assert info.registration_access_token is not None and info.registration_access_token.get_secret_value() == RAT
    assert info.client_secret_expires_at == 0  # 0 means never and stays 0
    assert info.registration_client_uri == URI
    assert info.metadata == {"client_name": "Billing", "redirect_uris": ["https://app.example.com/cb"]}
    assert_no_secret(info)


def test_register_accepts_200_and_anonymous_registration() -> None:
    server = Server(answer(200, issued()))
    rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})
    assert "authorization" not in server.requests[0].headers


@pytest.mark.parametrize("field", sorted(rfc7591.CREDENTIAL_FIELDS))
def test_register_refuses_server_issued_fields_before_sending(field: str) -> None:
    server = Server(answer(201, issued()))
    with pytest.raises(ConfigurationError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x", field: "chosen"})
    assert server.requests == [] and field in str(info.value)


def test_response_is_parsed_leniently() -> None:
    info = ClientInformation.from_response(issued(
        client_id="12345", client_secret="", registration_client_uri="", client_id_issued_at="1700000000",
        client_secret_expires_at=None, registration_access_token=None, **{"client_name#ja": "請求",
                                                                          "application_type": None}))
    assert info.client_id == "12345"
    assert info.client_secret is None and info.registration_client_uri is None
    assert info.client_id_issued_at == 1700000000 and info.client_secret_expires_at is None
    assert info.registration_access_token is None
    assert info.metadata["client_name#ja"] == "請求" and info.metadata["application_type"] is None


@pytest.mark.parametrize("value,expected", [(0, 0), ("0", 0), (1.9e9, 1900000000), (True, None), (-1, None),
                                            ("soon", None), ([1], None), ("1e3", 1000), (float("inf"), None),
                                            # Beyond what a date can hold: clamped to 9999-12-31 (issue 11).
                                            ("9" * 5000, MAX_TIMESTAMP), (10**30, MAX_TIMESTAMP),
                                            (1e308, MAX_TIMESTAMP), ("1e30", MAX_TIMESTAMP)])
def test_timestamps(value: Any, expected: int | None) -> None:
    info = ClientInformation.from_response({"client_id": "c", "client_secret_expires_at": value})
    assert info.client_secret_expires_at == expected


@pytest.mark.parametrize("body", [{}, {"client_id": ""}, {"client_id": None}, {"client_id": ["c"]},
                                  {"client_id": True}])
def test_missing_client_id_is_a_protocol_error_that_warns_of_an_orphan(body: dict[str, Any]) -> None:
    server = Server(answer(201, {**body, "client_secret": SECRET, "registration_access_token": RAT}))
    with pytest.raises(ProtocolError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"}, initial_access_token=SecretStr(IAT))
    assert "client_id" in str(info.value) and "created a client anyway" in str(info.value)
    assert_no_secret(info.value)


def test_non_json_success_is_a_protocol_error() -> None:
    server = Server(answer(201, "<html>Created</html>"))
    with pytest.raises(ProtocolError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})
    assert "not JSON" in str(info.value) and "Created" in str(info.value)


@pytest.mark.parametrize("code", sorted(rfc7591.REGISTRATION_ERRORS))
def test_rfc_7591_error_codes(code: str) -> None:
    server = Server(answer(400, {"error": code, "error_description": "nope"}))
    with pytest.raises(RegistrationError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})
    assert info.value.error == code and info.value.status == 400 and info.value.error_description == "nope"
    assert rfc7591.REGISTRATION_ERRORS[code] in str(info.value)


def test_registration_5xx_is_not_repeated() -> None:
    server = Server(answer(503, "<html><h1>Service Unavailable</h1></html>"))
    with pytest.raises(ProtocolError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})
    assert len(server.requests) == 1
    assert info.value.status == 503 and "second client" in str(info.value)


@pytest.mark.parametrize("status", [404, 405, 501])
def test_no_registration_endpoint(status: int) -> None:
    server = Server(answer(status))
    with pytest.raises(OperationUnsupported):
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})


# --- Keycloak -------------------------------------------------------------------------------

def test_keycloak_unrecognized_field() -> None:
    server = Server(answer(400, {"error": "invalid_client_metadata",
                                 "error_description": 'Unrecognized field "foo_bar"'}))
    with pytest.raises(RegistrationError) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x", "foo_bar": 1})
    assert "Unrecognized field" in str(info.value) and "additionalMetadata" in str(info.value)


def test_keycloak_trusted_hosts_refuses_anonymous_registration() -> None:
    server = Server(answer(403, {"error": "insufficient_scope", "error_description":
                                 "Policy 'Trusted Hosts' rejected request to client-registration service. "
                                 "Details: Host not trusted."}))
    with pytest.raises(NotPermitted) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"})
    assert "initialAccessToken" in str(info.value) and info.value.status == 403


def test_keycloak_allowed_client_scopes_policy() -> None:
    server = Server(answer(403, {"error": "insufficient_scope", "error_description":
                                 "Policy 'Allowed Client Scopes' rejected request to client-registration "
                                 "service. Details: Not permitted to use specified clientScope"}))
    with pytest.raises(NotPermitted) as info:
        rfc7591.register(server.http(), ENDPOINT, {"scope": "admin"}, initial_access_token=SecretStr(IAT))
    assert "scope" in str(info.value) and info.value.error == "insufficient_scope"
    assert_no_secret(info.value)


def test_keycloak_403_insufficient_scope_on_update() -> None:
    server = Server(answer(403, {"error": "insufficient_scope", "error_description": "Forbidden"}))
    with pytest.raises(NotPermitted) as info:
        rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"scope": "admin"})
    assert info.value.error == "insufficient_scope"


@pytest.mark.parametrize("iat,expected", [(None, "spec.initialAccessToken"), (IAT, "issue a new one")])
def test_401_on_registration_explains_the_initial_access_token(iat: str | None, expected: str) -> None:
    server = Server(answer(401, {"error": "invalid_token"}))
    with pytest.raises(NotPermitted) as info:
        rfc7591.register(server.http(), ENDPOINT, {"client_name": "x"},
                         initial_access_token=SecretStr(iat) if iat else None)
    assert expected in str(info.value)
    assert_no_secret(info.value)


def test_keycloak_rotates_the_rat_on_put_not_on_get() -> None:
    server = Server(lambda r: httpx.Response(200, json=issued(
        registration_access_token=NEW_RAT if r.method == "PUT" else RAT)))
    http = server.http()
    assert rfc7592.read(http, URI, SecretStr(RAT)).registration_access_token == SecretStr(RAT)
    updated = rfc7592.update(http, URI, SecretStr(RAT), "c1", {"client_name": "New"})
    assert updated.registration_access_token == SecretStr(NEW_RAT)
    assert server.requests[1].headers["authorization"] == f"Bearer {RAT}"


# --- Hydra ----------------------------------------------------------------------------------

def hydra(request: httpx.Request) -> httpx.Response:
    if request.method == "PUT":
        body = json.loads(request.content)
        if "client_secret" in body:
            return httpx.Response(403, json={"error": "The request is not allowed",
                                             "error_description": "client_secret must not be set"})
        return httpx.Response(200, json={**body, "registration_access_token": NEW_RAT})
    if request.method == "GET":
        return httpx.Response(200, json={"client_id": "c1", "client_name": "Billing"})
    return httpx.Response(204)


def test_hydra_omits_uri_and_rat_on_get() -> None:
    info = rfc7592.read(Server(hydra).http(), URI, SecretStr(RAT))
    assert info.registration_client_uri is None and info.registration_access_token is None
    assert info.client_secret is None


def test_hydra_update_never_sends_the_client_secret() -> None:
    server = Server(hydra)
    metadata = {"client_name": "New", "client_secret": SECRET, "registration_access_token": RAT,
                "registration_client_uri": URI, "client_secret_expires_at": 0, "client_id_issued_at": 1}
    info = rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", metadata)
    assert server.body() == {"client_name": "New", "client_id": "c1"}
    assert SECRET not in server.requests[0].content.decode()
    assert info.registration_access_token == SecretStr(NEW_RAT) and info.registration_client_uri is None


def test_hydra_echoed_empty_metadata_is_not_sent_back() -> None:
    # Hydra returns "metadata": {} on every read and answers 400 when it comes back in a PUT.
    server = Server(hydra)
    rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"client_name": "x", "metadata": {},
                                                             "skip_consent": False})
    assert server.body() == {"client_name": "x", "skip_consent": False, "client_id": "c1"}
    assert rfc7592.update_body("c1", {"metadata": {"team": "a"}})["metadata"] == {"team": "a"}


def test_hydra_long_description_keeps_the_specific_cause() -> None:
    description = ("The value of one of the Client Metadata fields is invalid and the server has rejected "
                   "this request. Note that an Authorization Server MAY choose to substitute a valid value "
                   "for any requested parameter of a Client's Metadata. 'metadata' cannot be set for "
                   "dynamic client registration")
    server = Server(answer(400, {"error": "invalid_client_metadata", "error_description": description}))
    with pytest.raises(RegistrationError) as info:
        rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"metadata": {"team": "a"}})
    assert "'metadata' cannot be set for dynamic client registration" in str(info.value)
    assert "The value of one of the Client Metadata" in str(info.value)


def test_hydra_sentence_in_error() -> None:
    server = Server(answer(400, {"error": "The request was malformed or contained invalid parameters",
                                 "error_description": "Field metadata is not allowed."}))
    with pytest.raises(RegistrationError) as info:
        rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"metadata": {}})
    assert info.value.error is None
    assert info.value.error_description is not None and "malformed" in info.value.error_description
    assert "Field metadata is not allowed" in str(info.value)


# --- oidc-provider --------------------------------------------------------------------------

def test_oidc_provider_401_invalid_token_in_header_and_body() -> None:
    server = Server(answer(401, {"error": "invalid_token", "error_description": "invalid token provided"},
                           headers={"WWW-Authenticate": 'Bearer realm="op", error="invalid_token", '
                                                        'error_description="invalid token provided"'}))
    with pytest.raises(CredentialsRejected) as info:
        rfc7592.read(server.http(), URI, SecretStr(RAT))
    assert info.value.error == "invalid_token" and info.value.status == 401
    assert_no_secret(info.value)


def test_oidc_provider_401_with_header_only() -> None:
    server = Server(answer(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    with pytest.raises(CredentialsRejected) as info:
        rfc7592.delete(server.http(), URI, SecretStr(RAT))
    assert info.value.error == "invalid_token"


def test_oidc_provider_rejects_a_client_secret_that_differs_so_none_is_sent() -> None:
    def provider(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "client_secret" in body:
            return httpx.Response(400, json={"error": "invalid_request", "error_description":
                                             "provided client_secret does not match the authenticated client's"})
        return httpx.Response(200, json={**issued(), **body, "registration_access_token": NEW_RAT})

    server = Server(provider)
    info = rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"client_secret": "stale", "client_name": "y"})
    assert info.metadata["client_name"] == "y" and info.client_secret_expires_at == 0


@pytest.mark.parametrize("status", [200, 202, 204])
def test_delete_succeeds_on_2xx(status: int) -> None:
    server = Server(answer(status))
    rfc7592.delete(server.http(), URI, SecretStr(RAT))
    assert server.requests[0].method == "DELETE"
    assert server.requests[0].headers["authorization"] == f"Bearer {RAT}"


# --- RFC 7592 status mapping ----------------------------------------------------------------

STATUS_MAP: list[tuple[int, type[ProtocolError]]] = [
    (401, CredentialsRejected), (404, ClientGone), (410, ClientGone), (403, NotPermitted),
    (405, OperationUnsupported), (501, OperationUnsupported), (400, RegistrationError),
    (418, ProtocolError), (500, ProtocolError), (409, ProtocolError),
]


@pytest.mark.parametrize("status,error", STATUS_MAP)
@pytest.mark.parametrize("operation", ["read", "update", "delete"])
def test_management_status_mapping(status: int, error: type[ProtocolError], operation: str) -> None:
    server = Server(answer(status, {"error": "some_error", "error_description": f"echo {RAT}"}))
    http = server.http()
    with pytest.raises(error) as info:
        if operation == "read":
            rfc7592.read(http, URI, SecretStr(RAT))
        elif operation == "update":
            rfc7592.update(http, URI, SecretStr(RAT), "c1", {"client_name": "x"})
        else:
            rfc7592.delete(http, URI, SecretStr(RAT))
    assert type(info.value) is error
    assert info.value.status == status and info.value.url == URI
    assert_no_secret(info.value)


def test_update_retries_a_503_because_put_is_idempotent() -> None:
    replies = [httpx.Response(503), httpx.Response(200, json=issued())]
    server = Server(lambda _r: replies.pop(0))
    assert rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"client_name": "x"}).client_id == "c1"
    assert len(server.requests) == 2


def test_update_body_rules() -> None:
    assert rfc7592.update_body("c1", {"client_id": "c1", "scope": "a"}) == {"client_id": "c1", "scope": "a"}
    with pytest.raises(ConfigurationError):
        rfc7592.update_body("c1", {"client_id": "c2"})
    forbidden = {"registration_access_token", "registration_client_uri", "client_secret_expires_at",
                 "client_id_issued_at", "client_secret"}
    assert forbidden == rfc7592.FIELDS_NOT_SENT_ON_UPDATE


def test_update_answer_for_another_client_is_refused() -> None:
    server = Server(answer(200, issued(client_id="someone-else")))
    with pytest.raises(ProtocolError) as info:
        rfc7592.update(server.http(), URI, SecretStr(RAT), "c1", {"client_name": "x"})
    assert "someone-else" in str(info.value)


def test_read_of_non_json_is_a_protocol_error() -> None:
    server = Server(answer(200, "<html>login</html>"))
    with pytest.raises(ProtocolError):
        rfc7592.read(server.http(), URI, SecretStr(RAT))


# --- secrets --------------------------------------------------------------------------------

def test_client_information_never_shows_secrets() -> None:
    info = ClientInformation.from_response(issued(registration_access_token=NEW_RAT))
    assert_no_secret(info, info.model_dump(), info.model_dump_json())
    assert info.model_dump()["client_secret"] == SecretStr(SECRET)


def test_client_information_pickles() -> None:
    import pickle

    info = ClientInformation.from_response(issued())
    clone = pickle.loads(pickle.dumps(info))
    assert clone == info and clone.client_secret == SecretStr(SECRET)


def test_errors_are_clientreg_errors() -> None:
    assert all(issubclass(error, ClientregError) for _, error in STATUS_MAP)
