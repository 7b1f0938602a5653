"""Whatever an AS sends back, only ClientregError escapes, and never with a secret in it.

Hypothesis generates answers a hostile or broken server could send: random JSON, credential
fields of the wrong type, HTML, binary, huge and deeply nested bodies, odd headers and
statuses. The secrets are known values so that any leak into a message is caught.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from clientreg import rfc7591, rfc7592
from clientreg.discovery import Discovery, discover, registration_endpoint_of
from clientreg.errors import ClientregError, describe
from clientreg.http import HttpClient, HttpSettings
from clientreg.rfc8414 import fetch_server_metadata
from clientreg.rfc9728 import fetch_resource_metadata

SENT = "sent-bearer-0123456789abcdef"     # the IAT or RAT we send
LEAK = "issued-secret-fedcba9876543210"  # a credential the AS puts in a credential field
ISSUER = "https://as.example.test"
RESOURCE = "https://mcp.example.test/mcp"
ENDPOINT = f"{ISSUER}/register"
URI = f"{ISSUER}/register/c1"

ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
odd = st.one_of(json_any, st.sampled_from(["", " ", "0", "17", "-1", "1e999", "NaN", "9" * 5000]))
free_text = st.one_of(st.text(max_size=40), st.just(f"token {SENT} is not valid"), st.just("x" * 5000),
                      st.just("<b>bold</b> & \u0000 \ud7ff"))
error_code = st.sampled_from(["invalid_redirect_uri", "invalid_client_metadata", "invalid_software_statement",
                              "unapproved_software_statement", "invalid_token", "insufficient_scope",
                              "The request was malformed or contained invalid parameters"])

document = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional={
        "client_id": st.one_of(st.just("c1"), odd),
        "client_secret": st.one_of(st.just(LEAK), odd),
        "registration_access_token": st.one_of(st.just(LEAK), odd),
        "registration_client_uri": st.one_of(st.just(URI), odd),
        "client_id_issued_at": odd,
        "client_secret_expires_at": odd,
        "error": st.one_of(error_code, free_text, odd),
        "error_description": st.one_of(free_text, odd),
        "issuer": st.one_of(st.just(ISSUER), st.just(ISSUER + "/"), odd),
        "registration_endpoint": st.one_of(st.just(ENDPOINT), st.just("http://evil.test/r"), odd),
        "token_endpoint": odd,
        "scopes_supported": odd,
        "client_id_metadata_document_supported": odd,
        "resource": st.one_of(st.just(RESOURCE), st.just("https://evil.test/mcp"), odd),
        "authorization_servers": st.one_of(st.just([ISSUER]), st.just(["http://evil.test"]), odd),
    }),
    st.dictionaries(st.text(max_size=8), json_any, max_size=3),
)


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


body = st.one_of(
    document.map(_dump),
    json_any.map(_dump),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([
        b"", b"null", b"[]", b'"just a string"', b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"[" * 100_000, b'{"client_id": "c1", "client_name": "' + b"A" * 900_000 + b'"}',
        b"y" * 1_100_000, b'{"client_id": 1' + b"0" * 6000 + b"}",
    ]),
)
status = st.sampled_from([200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 405, 410, 418, 429, 500, 501,
                          502, 503])
headers = st.fixed_dictionaries({}, optional={
    "WWW-Authenticate": st.one_of(
        st.just(f'Bearer error="invalid_token", error_description="bad token {SENT}"'),
        st.just(f'Bearer resource_metadata="{ISSUER}/prm"'),
        st.just('Bearer resource_metadata="http://evil.test/prm"'),
        ascii_text),
    "Retry-After": st.one_of(st.sampled_from(["0", "1", "99999", "Wed, 21 Oct 2015 07:28:00 GMT"]), ascii_text),
    "Content-Type": st.sampled_from(["application/json", "text/html", "application/json; charset=latin-1"]),
    "Location": st.one_of(st.just("https://elsewhere.test/x"), ascii_text),
})
answer = st.tuples(status, headers, body)
Answer = tuple[int, dict[str, str], bytes]


def http_answering(reply: Answer) -> HttpClient:
    code, extra_headers, content = reply

    def handle(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, headers=extra_headers, content=content)

    return HttpClient(HttpSettings(retries=1), transport=httpx.MockTransport(handle), sleep=lambda _s: None)


def check_error(exc: ClientregError, *, sent: bool = True) -> None:
    """``sent``: whether the operation sent SENT, so that an echo of it would be our leak."""
    texts = [str(exc), repr(exc), json.dumps(describe(exc), default=str)]
    texts.extend(str(value) for value in vars(exc).values())
    for text in texts:
        assert not sent or SENT not in text, f"sent credential leaked: {text[:500]!r}"
        assert LEAK not in text, f"issued credential leaked: {text[:500]!r}"


def run(operation: Callable[[HttpClient], object], reply: Answer, *, sent: bool = True) -> object | None:
    try:
        return operation(http_answering(reply))
    except ClientregError as exc:
        check_error(exc, sent=sent)
        return None


HOSTILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@HOSTILE
@given(answer)
def test_register_survives_anything(reply: Answer) -> None:
    info = run(lambda http: rfc7591.register(http, ENDPOINT, {"client_name": "x"},
                                             initial_access_token=SecretStr(SENT)), reply)
    if info is not None:
        assert isinstance(info, rfc7591.ClientInformation) and info.client_id
        assert LEAK not in repr(info) and LEAK not in str(info)


@HOSTILE
@given(answer)
def test_read_survives_anything(reply: Answer) -> None:
    info = run(lambda http: rfc7592.read(http, URI, SecretStr(SENT)), reply)
    if info is not None:
        assert LEAK not in repr(info)


@HOSTILE
@given(answer)
def test_update_and_delete_survive_anything(reply: Answer) -> None:
    run(lambda http: rfc7592.update(http, URI, SecretStr(SENT), "c1", {"client_name": "x"}), reply)
    run(lambda http: rfc7592.delete(http, URI, SecretStr(SENT)), reply)


@HOSTILE
@given(answer)
def test_discovery_survives_anything(reply: Answer) -> None:
    # Discovery sends no credential, so a server that "echoes" SENT only shows its own text.
    found = run(lambda http: discover(http, ISSUER), reply, sent=False)
    if isinstance(found, Discovery):
        run(lambda _http: registration_endpoint_of(found), reply, sent=False)
    run(lambda http: discover(http, RESOURCE), reply, sent=False)
    run(lambda http: fetch_server_metadata(http, ISSUER), reply, sent=False)
    run(lambda http: fetch_resource_metadata(http, RESOURCE), reply, sent=False)


@HOSTILE
@given(document)
def test_client_information_parses_any_object_or_says_why(data: dict[str, Any]) -> None:
    try:
        info = rfc7591.ClientInformation.from_response(data)
    except ClientregError as exc:
        check_error(exc)
        return
    assert info.client_id.strip()
    assert info.client_secret_expires_at is None or info.client_secret_expires_at >= 0
    assert info.registration_client_uri is None or info.registration_client_uri.strip()
    assert LEAK not in repr(info) and not (set(info.metadata) & rfc7591.CREDENTIAL_FIELDS)
