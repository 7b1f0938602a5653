"""Issue 11, finding 8: what a hostile authorization server answers never crashes a front end, never
takes unbounded memory, and never poisons stored state.

Each case names what the AS sent and asserts the clear error (type and words) and what happened to the
state: nothing saved, or a record that still loads. Bodies, credentials and timestamps go through the
real HttpClient over an ``httpx.MockTransport``; the CLI cases run the real CLI against a small hostile
AS on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from support.fake_as import ISSUER, FakeAS

from clientreg import rfc7591, rfc7592, ssrf
from clientreg.cli import main
from clientreg.discovery import discover
from clientreg.engine import Desired, fetch_published, reconcile
from clientreg.errors import (
    ClientregError,
    ConfigurationError,
    DiscoveryError,
    ProtocolError,
    RateLimited,
    StateError,
    describe,
)
from clientreg.http import HttpClient, HttpSettings
from clientreg.issued import (
    MAX_CLIENT_ID,
    MAX_CLIENT_SECRET,
    MAX_METADATA,
    MAX_METADATA_FIELD,
    MAX_REGISTRATION_ACCESS_TOKEN,
    MAX_TIMESTAMP,
)
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClient, parse_document
from clientreg.store import Entry, LocalStore
from clientreg.tokens import client_credentials_token

SENT = "sent-iat-0123456789abcdef"
LEAK = "issued-secret-fedcba9876543210"
ENDPOINT = f"{ISSUER}/register"
URI = f"{ISSUER}/register/c1"
LIMIT = 1_000_000
GOOD: dict[str, Any] = {"client_id": "c1", "client_secret": LEAK, "registration_access_token": "rat-0123456789",
                        "registration_client_uri": URI, "client_secret_expires_at": 0,
                        "token_endpoint_auth_method": "client_secret_basic"}


def assert_clean(exc: BaseException, *words: str) -> None:
    """A ClientregError naming what is wrong, with no credential and nothing a terminal would act on."""
    assert isinstance(exc, ClientregError), f"{type(exc).__name__} escaped: {exc}"
    texts = [str(exc), repr(exc), json.dumps(describe(exc), default=str)]
    texts += [str(v) for v in vars(exc).values()]
    for text in texts:
        assert SENT not in text and LEAK not in text, text[:300]
        assert "\x1b" not in text and "\u202e" not in text, text[:300]
    for word in words:
        assert word in str(exc), (word, str(exc))


def mock_http(answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request] | None = None,
              **settings: Any) -> HttpClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer(request)

    return HttpClient(HttpSettings(retries=settings.pop("retries", 0), max_body_bytes=LIMIT, **settings),
                      transport=httpx.MockTransport(handle), sleep=lambda _s: None)


def encoded(body: bytes, encoding: str, status: int = 201) -> Callable[[httpx.Request], httpx.Response]:
    # A stream, not content=: the bytes reach clientreg exactly as a server would send them.
    return lambda _r: httpx.Response(status, headers={"Content-Encoding": encoding}, stream=httpx.ByteStream(body))


# --- bounded decompression --------------------------------------------------------------------------------

class DecoderMeter:
    """Wraps zlib.decompressobj to record the most any one decoder ever produced in total."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.most = 0
        real = zlib.decompressobj
        meter = self

        class Metered:
            def __init__(self, *args: Any) -> None:
                self._obj = real(*args)
                self.total = 0

            def decompress(self, data: bytes, max_length: int = 0) -> bytes:
                out = self._obj.decompress(data, max_length)
                self.total += len(out)
                meter.most = max(meter.most, self.total)
                return out

            def flush(self) -> bytes:
                out = self._obj.flush()
                self.total += len(out)
                meter.most = max(meter.most, self.total)
                return out

            @property
            def unconsumed_tail(self) -> bytes:
                return self._obj.unconsumed_tail

        monkeypatch.setattr(zlib, "decompressobj", Metered)  # the module clientreg decodes with


def _deflate(data: bytes, wbits: int) -> bytes:
    obj = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return obj.compress(data) + obj.flush()


def _zeros(megabytes: int, wbits: int) -> bytes:
    """``megabytes`` MB of zeros compressed, built a megabyte at a time (the test never holds them all)."""
    obj, block = zlib.compressobj(9, zlib.DEFLATED, wbits), bytes(1 << 20)
    return b"".join([*(obj.compress(block) for _ in range(megabytes)), obj.flush()])


GZIP, ZLIB, RAW = 31, zlib.MAX_WBITS, -zlib.MAX_WBITS
# name: (how to build the body, Content-Encoding). "gzip" is the issue's: ~200 KB inflating to 200 MB.
BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "gzip": (lambda: _zeros(200, GZIP), "gzip"),
    "x-gzip": (lambda: _zeros(20, GZIP), "x-gzip"),
    "deflate-zlib": (lambda: _zeros(20, ZLIB), "deflate"),
    "deflate-raw": (lambda: _zeros(20, RAW), "deflate"),
    "gzip-twice": (lambda: gzip.compress(_zeros(50, GZIP), 9), "gzip, gzip"),
    "mixed-case": (lambda: _zeros(20, GZIP), " GZip "),
}


@functools.cache
def bomb(name: str) -> tuple[bytes, str]:
    build, encoding = BOMBS[name]
    return build(), encoding

OPERATIONS: dict[str, Callable[[HttpClient], object]] = {
    "register": lambda http: rfc7591.register(http, ENDPOINT, {"client_name": "x"},
                                              initial_access_token=SecretStr(SENT)),
    "read": lambda http: rfc7592.read(http, URI, SecretStr(SENT)),
    "update": lambda http: rfc7592.update(http, URI, SecretStr(SENT), "c1", {"client_name": "x"}),
    "delete": lambda http: rfc7592.delete(http, URI, SecretStr(SENT)),
    "discovery": lambda http: discover(http, ISSUER),
    "token": lambda http: client_credentials_token(http, RegistrationRecord(
        client_id="c1", client_secret=SecretStr(LEAK), token_endpoint=f"{ISSUER}/token")),
    "published-document": lambda http: fetch_published(http)(f"{ISSUER}/cimd.json"),
}


def test_the_issues_gzip_bomb_is_about_200_kb() -> None:
    assert len(bomb("gzip")[0]) < 250_000


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_compression_bomb_is_refused_without_inflating_past_the_cap(
        monkeypatch: pytest.MonkeyPatch, name: str, operation: str) -> None:
    meter = DecoderMeter(monkeypatch)
    body, encoding = bomb(name)
    http = mock_http(encoded(body, encoding, 200 if operation != "register" else 201))
    with pytest.raises(ClientregError) as caught:
        OPERATIONS[operation](http)
    assert_clean(caught.value, "exceeds")
    assert 0 < meter.most <= LIMIT + 1, meter.most


def test_every_request_asks_only_for_encodings_clientreg_can_bound() -> None:
    seen: list[httpx.Request] = []
    http = mock_http(lambda _r: httpx.Response(201, json=GOOD), seen)
    rfc7591.register(http, ENDPOINT, {"client_name": "x"})
    assert seen[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(("encoding", "words"), [
    ("br", ("'br'", "did not ask for")), ("zstd", ("'zstd'",)), ("compress", ("'compress'",)),
    ("gzip, gzip, gzip", ("3 times over",)), ("gzip, br", ("'br'",)),
])
def test_encodings_that_cannot_be_bounded_are_refused(encoding: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ProtocolError) as caught:
        OPERATIONS["register"](mock_http(encoded(b"\x00" * 100, encoding)))
    assert_clean(caught.value, *words)


@pytest.mark.parametrize(("body", "encoding"), [
    (b"not gzip at all", "gzip"), (gzip.compress(json.dumps(GOOD).encode())[:-12] + b"garbage!" * 2, "gzip"),
    (b"\xff" * 64, "deflate"),
])
def test_corrupt_encoded_bodies_are_a_protocol_error(body: bytes, encoding: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        OPERATIONS["register"](mock_http(encoded(body, encoding)))
    assert_clean(caught.value)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "identity", "gzip, identity"])
def test_honest_encoded_answers_still_work(encoding: str) -> None:
    raw = json.dumps(GOOD).encode()
    body = {"gzip": gzip.compress(raw), "deflate": _deflate(raw, zlib.MAX_WBITS),
            "deflate-raw": _deflate(raw, -zlib.MAX_WBITS), "identity": raw,
            "gzip, identity": gzip.compress(raw)}[encoding]
    info = OPERATIONS["register"](mock_http(encoded(body, encoding.replace("-raw", ""))))
    assert isinstance(info, rfc7591.ClientInformation) and info.client_id == "c1"


def test_a_body_decoding_to_exactly_the_cap_is_accepted() -> None:
    raw = json.dumps({**GOOD, "client_name": ""}).encode()
    padded = raw.replace(b'"client_name": ""', b'"client_name": "' + b"x" * (LIMIT - len(raw)) + b'"')
    assert len(padded) == LIMIT
    info = OPERATIONS["register"](mock_http(encoded(gzip.compress(padded), "gzip")))
    assert isinstance(info, rfc7591.ClientInformation) and info.client_id == "c1"  # decoded and parsed
    assert "client_name" not in info.metadata  # ... and a field that size is not kept (see below)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve_once(handler: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(_Quiet):
        def do_GET(self) -> None:
            handler(self)

        do_POST = do_GET

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def bomb_server() -> Iterator[str]:
    body = bomb("gzip")[0]

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    yield from serve_once(answer)


def test_a_cimd_or_jwks_fetch_refuses_a_compression_bomb(monkeypatch: pytest.MonkeyPatch, bomb_server: str) -> None:
    meter = DecoderMeter(monkeypatch)
    policy = ssrf.FetchPolicy(allow_loopback=True, max_bytes=256 * 1024)
    with pytest.raises(ProtocolError) as caught:
        ssrf.fetch_json(f"{bomb_server}/jwks.json", policy=policy, resolver=lambda _h, _p: ["127.0.0.1"])
    assert_clean(caught.value, "exceeds 262144 bytes")
    assert 0 < meter.most <= 256 * 1024 + 1


@pytest.mark.parametrize(("body", "words"), [
    (b"[" * 60_000, ("nested deeper than 32",)),
    (b'{"keys": [], "keys": [{"kty": "oct"}]}', ("more than once",)),
    (b"\xff\xfe not json", ("not JSON",)),
])
def test_a_cimd_or_jwks_fetch_refuses_deep_or_ambiguous_json(body: bytes, words: tuple[str, ...]) -> None:
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    for url in serve_once(answer):
        with pytest.raises(ProtocolError) as caught:
            ssrf.fetch_json(f"{url}/jwks.json", policy=ssrf.FetchPolicy(allow_loopback=True),
                            resolver=lambda _h, _p: ["127.0.0.1"])
        assert_clean(caught.value, *words)


# --- JSON shape --------------------------------------------------------------------------------------------

def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("name", "body"), [
    ("nested-40", json.dumps({**GOOD, "client_name": _nested(40)}).encode()),
    ("nested-900", json.dumps({**GOOD, "extra": _nested(900)}).encode()),
    ("nested-arrays", b'{"client_id": "c1", "x": ' + b"[" * 500 + b"]" * 500 + b"}"),
    ("duplicate-client-id", b'{"client_id": "c1", "client_secret": "s-123456", "client_id": "evil"}'),
    ("duplicate-secret", b'{"client_id": "c1", "client_secret": "s-123456", "client_secret": 5}'),
    ("duplicate-nested", json.dumps(GOOD).encode()[:-1] + b', "jwks": {"keys": [], "keys": [1]}}'),
])
def test_deep_or_ambiguous_json_is_refused(name: str, body: bytes) -> None:
    for operation, status in (("register", 201), ("read", 200)):
        with pytest.raises(ProtocolError) as caught:
            OPERATIONS[operation](mock_http(lambda _r, status=status: httpx.Response(status, content=body)))
        assert_clean(caught.value, "not JSON")


def test_a_huge_field_within_the_body_cap_is_left_out_of_what_is_kept() -> None:
    """~750 KB of JSON in one field is a valid answer, but a record holding it could outgrow its Secret."""
    answer = {**GOOD, "client_name": "kept", "contacts": ["a"] * 150_000}
    info = OPERATIONS["register"](mock_http(lambda _r: httpx.Response(201, json=answer)))
    assert isinstance(info, rfc7591.ClientInformation)
    assert "contacts" not in info.metadata and info.metadata["client_name"] == "kept"
    record = RegistrationRecord(client_id=info.client_id, server_metadata=info.metadata)
    assert len(json.dumps(record.to_storage())) < MAX_METADATA + 16_384


def test_many_large_fields_are_kept_smallest_first_up_to_the_total_bound() -> None:
    fields = {f"x{i}": "v" * (MAX_METADATA_FIELD - 100 - i) for i in range(8)}  # 8 x ~64 KB: 2x the bound
    info = OPERATIONS["register"](mock_http(lambda _r: httpx.Response(201, json={**GOOD, **fields})))
    assert isinstance(info, rfc7591.ClientInformation)
    assert len(json.dumps(info.metadata)) <= MAX_METADATA
    kept = sorted(k for k in info.metadata if k.startswith("x"))
    assert kept == [f"x{i}" for i in range(4, 8)], "the largest go first, the smaller ones stay"
    assert info.metadata["token_endpoint_auth_method"] == "client_secret_basic"


def test_deep_json_in_a_discovery_document_is_not_trusted() -> None:
    doc = json.dumps({"issuer": ISSUER, "registration_endpoint": ENDPOINT, "x": _nested(100)}).encode()
    with pytest.raises(DiscoveryError) as caught:
        discover(mock_http(lambda _r: httpx.Response(200, content=doc)), ISSUER)
    assert_clean(caught.value, "not JSON")


@pytest.mark.parametrize("document", [
    {"issuer": ISSUER, "registration_endpoint": 5},
    {"issuer": ISSUER, "registration_endpoint": {"url": ENDPOINT}},
    {"issuer": ISSUER, "registration_endpoint": [ENDPOINT] * 100_000},
    {"issuer": ISSUER, "registration_endpoint": f"{ISSUER}/\u202eregister"},
    {"issuer": ISSUER, "registration_endpoint": f"{ISSUER}/\x1b[2Jregister"},
    {"issuer": ISSUER, "registration_endpoint": f"{ISSUER}/" + "r" * 9000},
])
def test_discovery_documents_with_unusable_endpoints_end_in_a_clear_error(document: dict[str, Any]) -> None:
    seen: list[httpx.Request] = []
    http = mock_http(lambda r: httpx.Response(200, json=document) if r.method == "GET"
                     else httpx.Response(201, json=GOOD), seen)
    server = ServerConnection(AuthorizationServerSpec(issuer=ISSUER), http, name="as")
    with pytest.raises(ClientregError) as caught:
        rfc7591.register(http, server.registration_endpoint, {"client_name": "x"})
    assert_clean(caught.value)
    assert all(r.method == "GET" for r in seen), "a registration was sent to an unusable endpoint"


# --- Retry-After --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1e308", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "inf"])
def test_an_absurd_retry_after_is_capped_at_a_day(value: str) -> None:
    http = mock_http(lambda _r: httpx.Response(429, headers={"Retry-After": value}))
    with pytest.raises(RateLimited) as caught:
        OPERATIONS["register"](http)
    assert_clean(caught.value)
    assert caught.value.retry_after is None or caught.value.retry_after <= 86_400
    assert len(str(caught.value)) < 400


# --- credentials -------------------------------------------------------------------------------------------

# (id, fields replacing GOOD's, words the error must contain)
CREDENTIALS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("client-id-number", {"client_id": 17}, ("RFC 7591 §3.2.1", "client_id must be a string", "a number")),
    ("client-id-float", {"client_id": 1.5}, ("client_id must be a string",)),
    ("client-id-list", {"client_id": ["c1"]}, ("an array",)),
    ("client-id-object", {"client_id": {"id": "c1"}}, ("an object",)),
    ("client-id-bool", {"client_id": True}, ("a boolean",)),
    ("client-id-null", {"client_id": None}, ("no client_id",)),
    ("client-id-200k", {"client_id": "c" * 200_000}, ("200000 characters", str(MAX_CLIENT_ID))),
    ("client-id-513", {"client_id": "c" * (MAX_CLIENT_ID + 1)}, (f"at most {MAX_CLIENT_ID}",)),
    ("client-id-esc", {"client_id": "c1\x1b[2J"}, ("U+001B at position 2", "RFC 6749 Appendix A.1")),
    ("client-id-newline", {"client_id": "c1\nInjected: yes"}, ("U+000A",)),
    ("client-id-nul", {"client_id": "c\x001"}, ("U+0000",)),
    ("client-id-rlo", {"client_id": "c1\u202egnp.exe"}, ("U+202E", "bidirectional")),
    ("client-id-isolate", {"client_id": "\u2066c1"}, ("U+2066",)),
    ("client-id-zero-width", {"client_id": "c\u200b1"}, ("U+200B",)),
    ("client-id-c1-control", {"client_id": "c\x851"}, ("U+0085",)),
    ("secret-number", {"client_secret": 12345}, ("RFC 7591 §3.2.1", "client_secret must be a string", "nothing")),
    ("secret-list", {"client_secret": [LEAK]}, ("an array",)),
    ("secret-object", {"client_secret": {"value": LEAK}}, ("an object",)),
    ("secret-true", {"client_secret": True}, ("a boolean",)),
    ("secret-null-but-expected", {"client_secret": None}, ("issued no client_secret", "client_secret_basic")),
    ("secret-empty-but-expected", {"client_secret": ""}, ("issued no client_secret",)),
    ("secret-missing-default-method", {"client_secret": None, "token_endpoint_auth_method": None},
     ("issued no client_secret", "client_secret_basic when not said")),
    ("secret-missing-post", {"client_secret": None, "token_endpoint_auth_method": "client_secret_post"},
     ("client_secret_post",)),
    ("secret-too-long", {"client_secret": "s" * (MAX_CLIENT_SECRET + 1)}, (f"at most {MAX_CLIENT_SECRET}",)),
    ("secret-control", {"client_secret": LEAK + "\x1b[2J"}, ("control character at position 30",)),
    ("rat-number", {"registration_access_token": 99}, ("RFC 7592 §3", "must be a string")),
    ("rat-list", {"registration_access_token": ["a"]}, ("an array",)),
    ("rat-object", {"registration_access_token": {}}, ("an object",)),
    ("rat-space", {"registration_access_token": "two words"}, ("visible ASCII", "RFC 6750 §2.1")),
    ("rat-crlf", {"registration_access_token": "tok\r\nX-Evil: 1"}, ("visible ASCII",)),
    ("rat-unicode", {"registration_access_token": "tökén"}, ("visible ASCII",)),
    ("rat-too-long", {"registration_access_token": "t" * (MAX_REGISTRATION_ACCESS_TOKEN + 1)},
     (f"at most {MAX_REGISTRATION_ACCESS_TOKEN}",)),
    ("uri-number", {"registration_client_uri": 5}, ("RFC 7592 §3", "must be a string")),
    ("uri-list", {"registration_client_uri": [URI]}, ("an array",)),
    ("uri-javascript", {"registration_client_uri": "javascript:alert(1)"}, ("not a usable URL",)),
    ("uri-relative", {"registration_client_uri": "/register/c1"}, ("not a usable URL",)),
    ("uri-plain-http", {"registration_client_uri": "http://as.example.test/register/c1"}, ("https",)),
    ("uri-ftp", {"registration_client_uri": "ftp://as.example.test/c1"}, ("https",)),
    ("uri-userinfo", {"registration_client_uri": "https://u:p@as.example.test/c1"}, ("userinfo",)),
    ("uri-rlo", {"registration_client_uri": f"{URI}\u202e"}, ("bidi",)),
    ("uri-huge", {"registration_client_uri": URI + "x" * 5000}, ("at most 2048",)),
]


@pytest.mark.parametrize(("fields", "words"), [pytest.param(f, w, id=i) for i, f, w in CREDENTIALS])
def test_unusable_credentials_are_refused_with_the_rfc_and_never_echoed(fields: dict[str, Any],
                                                                       words: tuple[str, ...]) -> None:
    # None: sent as null, except for the auth method, which None leaves out.
    answer = {k: v for k, v in {**GOOD, **fields}.items() if v is not None or k != "token_endpoint_auth_method"}
    with pytest.raises(ProtocolError) as caught:
        OPERATIONS["register"](mock_http(lambda _r: httpx.Response(201, json=answer)))
    assert_clean(caught.value, *words)
    assert len(str(caught.value)) < 2000, "the message is not bounded"
    for key in ("client_secret", "registration_access_token"):
        value = fields.get(key)
        if isinstance(value, str) and len(value) > 8:
            assert value[:8] not in str(caught.value), "the refused credential was echoed"


@pytest.mark.parametrize("fields", [
    {"client_secret": None, "token_endpoint_auth_method": "none"},
    {"client_secret": None, "token_endpoint_auth_method": "private_key_jwt"},
    {"client_secret": "", "token_endpoint_auth_method": "tls_client_auth"},
    {"registration_access_token": None, "registration_client_uri": None},
    {"registration_client_uri": "http://127.0.0.1:9400/register/c1"},
    {"client_id": "c" * MAX_CLIENT_ID, "client_secret": "s" * MAX_CLIENT_SECRET},
    {"client_id": "https://app.example.com/ünïcode-client"},
])
def test_what_servers_really_send_is_still_accepted(fields: dict[str, Any]) -> None:
    answer = {k: v for k, v in {**GOOD, **fields}.items() if v is not None}
    info = OPERATIONS["register"](mock_http(lambda _r: httpx.Response(201, json=answer)))
    assert isinstance(info, rfc7591.ClientInformation)


# --- through the engine: nothing saved, or a record that loads ---------------------------------------------

def make_client(**spec: Any) -> OAuthClient:
    doc = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                          "metadata": {"name": "billing", "namespace": "t"},
                          "spec": {"serverRef": {"name": "as"}, "grantTypes": ["client_credentials"], **spec}})
    assert isinstance(doc, OAuthClient)
    return doc


class TamperingAS(FakeAS):
    """The FakeAS, with its registration (and read) answers rewritten by ``tamper``."""

    def __init__(self, tamper: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        super().__init__()
        self.tamper = tamper

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        if request.url.path.startswith("/register") and response.status_code in (200, 201):
            return httpx.Response(response.status_code, json=self.tamper(json.loads(response.content)))
        return response


def run_apply(tamper: Callable[[dict[str, Any]], dict[str, Any]],
              store: LocalStore) -> tuple[Any, ClientregError | None]:
    server = ServerConnection(AuthorizationServerSpec(issuer=ISSUER), TamperingAS(tamper).http(), name="as")
    entry = store.load("t", "billing")

    def save(record: RegistrationRecord | None) -> None:
        store.write(Entry("t", "billing", record, entry.status))

    try:
        return reconcile(Desired.from_client(make_client()), entry.record, server, save), None
    except ClientregError as exc:
        return None, exc


@pytest.mark.parametrize(("name", "tamper"), [
    ("secret-number", lambda d: {**d, "client_secret": 12345}),
    ("secret-dropped", lambda d: {k: v for k, v in d.items() if k != "client_secret"}),
    ("client-id-rlo", lambda d: {**d, "client_id": d["client_id"] + "\u202e"}),
    ("rat-object", lambda d: {**d, "registration_access_token": {"t": 1}}),
    ("uri-javascript", lambda d: {**d, "registration_client_uri": "javascript:x"}),
])
def test_a_refused_registration_saves_nothing(tmp_path: Path, name: str,
                                              tamper: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    store = LocalStore(tmp_path)
    result, error = run_apply(tamper, store)
    assert error is not None, f"accepted: {result}"
    assert_clean(error, "RFC 759")
    assert store.load("t", "billing").record is None and not list(tmp_path.rglob("*.json"))


TIMESTAMPS: list[tuple[Any, int | None]] = [
    (10**30, MAX_TIMESTAMP), (1e308, MAX_TIMESTAMP), ("1e30", MAX_TIMESTAMP), ("9" * 5000, MAX_TIMESTAMP),
    (-1, None), (-1e9, None), (True, None), (False, None), ("never", None), ("", None), ([1], None),
    ({"at": 1}, None), (1.9e9, 1_900_000_000), ("1900000000", 1_900_000_000), ("\u0661\u0662", None),
]


@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS)
def test_absurd_timestamps_are_clamped_at_parse_so_later_runs_work(tmp_path: Path, value: Any,
                                                                   expected: int | None) -> None:
    store = LocalStore(tmp_path)
    _, error = run_apply(lambda d: {**d, "client_secret_expires_at": value, "client_id_issued_at": value},
                              store)
    assert error is None, error
    record = store.load("t", "billing").record
    assert record is not None
    assert record.client_secret_expires_at == expected and record.client_id_issued_at == expected
    assert record.expires_at() is None or record.expires_at() <= datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    # The next run (plan, apply) reads the stored record without crashing.
    _, error = run_apply(lambda d: {**d, "client_secret_expires_at": value}, store)
    assert error is None, error


def test_a_nan_timestamp_literal_reads_as_not_said() -> None:
    body = json.dumps(GOOD).encode()[:-1] + b', "client_id_issued_at": NaN, "client_secret_expires_at": Infinity}'
    body = body.replace(b'"client_secret_expires_at": 0, ', b"")
    info = OPERATIONS["register"](mock_http(lambda _r: httpx.Response(201, content=body)))
    assert isinstance(info, rfc7591.ClientInformation)
    assert info.client_id_issued_at is None and info.client_secret_expires_at is None


POISONED: list[Any] = [10**30, 1e308, -5, "never", "1e400", True, [1], {"x": 1}, 2**64, "  42 "]


def _poisoned_state(tmp_path: Path, value: Any, uri: str = URI) -> Path:
    record = RegistrationRecord(client_id="c1", client_secret=SecretStr(LEAK), issuer=ISSUER,
                                registration_client_uri=uri, registration_access_token=SecretStr("rat-1"))
    data = record.to_storage()
    data["client_secret_expires_at"] = value
    data["client_id_issued_at"] = value
    path = tmp_path / "records" / "t" / "billing.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"record": data, "status": {"ready": True, "reason": "Ready",
                                                           "message": "[/red] [link=https://evil.test]x"}}))
    return path


@pytest.mark.parametrize("value", POISONED)
def test_an_already_poisoned_state_file_loads_and_every_command_runs(tmp_path: Path, value: Any) -> None:
    _poisoned_state(tmp_path, value)
    record = LocalStore(tmp_path).load("t", "billing").record
    assert record is not None
    assert record.client_secret_expires_at is None or 0 <= record.client_secret_expires_at <= MAX_TIMESTAMP
    record.expires_at()
    for args in (["get"], ["get", "-o", "json"], ["get", "-o", "yaml"], ["get", "t/billing"]):
        result = CliRunner().invoke(main, [*args, "--state-dir", str(tmp_path)])
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert "Traceback" not in result.output and LEAK not in result.output


def test_a_state_file_that_is_not_a_record_is_a_state_error(tmp_path: Path) -> None:
    path = _poisoned_state(tmp_path, 0)
    data = json.loads(path.read_text())
    data["record"]["client_id"] = {"nested": "object"}
    path.write_text(json.dumps(data))
    with pytest.raises(StateError, match="unreadable state"):
        LocalStore(tmp_path).load("t", "billing")


def test_a_poisoned_registration_access_token_is_a_clear_error_not_a_crash() -> None:
    http = mock_http(lambda _r: httpx.Response(200, json=GOOD))
    for token in ("tök", "a b", "a\r\nb", ""):
        with pytest.raises(ConfigurationError) as caught:
            rfc7592.read(http, URI, SecretStr(token))
        assert_clean(caught.value, "RFC 6750 §2.1")


# --- token answers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "words"), [
    (b"[" * 100_000, ("token request",)),
    (json.dumps({"access_token": 5}).encode(), ("no access_token string",)),
    (json.dumps({"access_token": {"t": "x"}}).encode(), ("no access_token string",)),
    (json.dumps({"error": "invalid_client", "error_description": f"bad {LEAK}"}).encode(), ("invalid_client",)),
])
def test_hostile_token_answers_are_clear_errors(body: bytes, words: tuple[str, ...]) -> None:
    status = 400 if b"error" in body else 200
    with pytest.raises(ProtocolError) as caught:
        OPERATIONS["token"](mock_http(lambda _r: httpx.Response(status, content=body)))
    assert_clean(caught.value, *words)


@pytest.mark.parametrize(("expires_in", "expected"), [("9" * 5000, None), ("\u00b2", None), (1e308, None),
                                                     (True, None), ("3600", 3600), (3600.5, 3600)])
def test_token_lifetimes_are_read_boundedly(expires_in: Any, expected: int | None) -> None:
    answer = {"access_token": "at", "token_type": "Bearer\x1b[2J" + "x" * 100, "scope": "[/red]",
              "expires_in": expires_in}
    result = OPERATIONS["token"](mock_http(lambda _r: httpx.Response(200, json=answer)))
    assert result.expires_in == expected  # type: ignore[attr-defined]
    assert "\x1b" not in result.token_type and len(result.token_type) <= 41  # type: ignore[attr-defined]


# --- the CLI's output --------------------------------------------------------------------------------------

HOSTILE_TEXT = "[/red] [link=https://evil.test/phish]click[/link] :warning: \x1b[2J\x1b]8;;https://x\x07 \u202egnp.exe"


@pytest.fixture
def hostile_as() -> Iterator[str]:
    """A loopback AS whose discovery works and whose registration fails with a hostile description."""
    state: dict[str, str] = {}

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/.well-known/"):
            body = {"issuer": state["issuer"], "registration_endpoint": state["issuer"] + "/register",
                    "token_endpoint": state["issuer"] + "/token", "service_documentation": HOSTILE_TEXT}
            status = 200
        else:
            body = {"error": "invalid_client_metadata", "error_description": HOSTILE_TEXT}
            status = 400
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    for url in serve_once(answer):
        state["issuer"] = url
        yield url


def _folder(tmp_path: Path, issuer: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "all.yaml").write_text(f"""
apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: as, namespace: t}}
spec: {{issuer: '{issuer}'}}
---
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: billing, namespace: t}}
spec: {{serverRef: {{name: as}}, grantTypes: [client_credentials]}}
""")
    return folder


def assert_inert(output: str) -> None:
    assert "Traceback" not in output and "MarkupError" not in output
    assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output
    assert "\u26a0" not in output, "an emoji code was rendered"


@pytest.mark.parametrize("output", ["table", "json", "yaml"])
def test_a_hostile_error_description_is_printed_inert(tmp_path: Path, hostile_as: str, output: str) -> None:
    folder = _folder(tmp_path, hostile_as)
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(tmp_path / "s"), "-o", output])
    assert result.exit_code == 4, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert_inert(result.output)
    assert "RegistrationRejected" in result.output and "invalid_client_metadata" in result.output
    # The failure is remembered for `get`, which prints it just as inertly.
    shown = CliRunner().invoke(main, ["get", "--state-dir", str(tmp_path / "s")])
    assert_inert(shown.output)


def test_a_hostile_discovery_document_is_printed_inert(hostile_as: str) -> None:
    result = CliRunner().invoke(main, ["discover", hostile_as, "-o", "table"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert_inert(result.output)
    assert "[link=https://evil.test/phish]" in result.output


def test_a_hostile_error_on_plan_is_printed_inert(tmp_path: Path, hostile_as: str) -> None:
    _poisoned_state(tmp_path / "s", 10**30, uri=f"{hostile_as}/register/c1")
    folder = _folder(tmp_path, hostile_as)
    result = CliRunner().invoke(main, ["plan", "-f", str(folder), "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 4, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert_inert(result.output)
    assert "RegistrationRejected" in result.output


def test_credentials_env_output_escapes_what_is_not_a_secret(tmp_path: Path) -> None:
    path = _poisoned_state(tmp_path, 0)
    data = json.loads(path.read_text())
    data["record"]["client_id"] = "c1\x1b[2J\u202e"
    data["record"]["token_endpoint"] = f"{ISSUER}/token\x1b]8;;x\x07"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["credentials", "billing", "-o", "env", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert f"CLIENT_SECRET='{LEAK}'" in result.output


def test_the_console_prints_markup_emoji_and_escapes_as_plain_text() -> None:
    from rich.table import Table

    from clientreg._render import console, error_line

    screen = console()
    screen.file = buffer = io.StringIO()
    table = Table(title=HOSTILE_TEXT)
    table.add_column("MESSAGE", overflow="fold")
    table.add_row(HOSTILE_TEXT)
    for renderable in (HOSTILE_TEXT, table, error_line(HOSTILE_TEXT)):
        screen.print(renderable)
    screen.print_json(json.dumps({"m": HOSTILE_TEXT}))
    text = buffer.getvalue()
    assert_inert(text)
    assert text.count("[link=https://evil.test/phish]click[/link] :warning: \\x1b[2J\\x1b]8;;https://x\\x07 "
                      "\\u202egnp.exe") == 4  # print, title, cell, error line
    assert "\\u202e" in text.splitlines()[-2]  # the JSON, escaped by JSON's own rules
