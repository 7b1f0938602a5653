"""HttpClient: URL policy, retries, Retry-After, redirects, TLS, body limits, rate limit, helpers."""

from __future__ import annotations

import gzip
import pickle
import ssl
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from clientreg.errors import (
    ClientregError,
    ConfigurationError,
    PolicyViolation,
    ProtocolError,
    RateLimited,
    TransportError,
)
from clientreg.http import (
    HttpClient,
    HttpSettings,
    body_excerpt,
    check_url,
    is_loopback_host,
    parse_challenges,
    parse_retry_after,
    read_oauth_error,
    scrub,
)

SECRET = "s3cr3t-value-0123456789"
NOW = 1_700_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and remembers every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def client(recorder: Recorder, sleeps: list[float] | None = None, *, clock: float = NOW,
           **settings: Any) -> HttpClient:
    return HttpClient(HttpSettings(**settings), transport=httpx.MockTransport(recorder),
                      sleep=(sleeps.append if sleeps is not None else lambda _s: None),
                      clock=lambda: clock)


# --- URL policy -----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://as.example.com/register", "http://10.0.0.1/register",
                                 "http://127.0.0.1.nip.io/register"])
def test_plain_http_to_a_remote_host_is_refused_before_anything_is_sent(url: str) -> None:
    rec = Recorder(httpx.Response(200))
    with pytest.raises(PolicyViolation) as info:
        client(rec).request("POST", url, json={})
    assert rec.requests == []
    assert url in str(info.value) and "https" in str(info.value)
    assert info.value.rule == "https-required"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/r", "http://127.9.9.9/r", "http://localhost:1/r",
                                 "http://[::1]:8080/r", "http://LOCALHOST/r"])
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    rec = Recorder(httpx.Response(200))
    assert client(rec).request("GET", url).status_code == 200
    with pytest.raises(PolicyViolation):
        client(rec, allow_insecure_loopback=False).request("GET", url)


def test_userinfo_is_refused_without_echoing_the_password() -> None:
    rec = Recorder(httpx.Response(200))
    with pytest.raises(ConfigurationError) as info:
        client(rec).request("GET", f"https://user:{SECRET}@as.example.com/x")
    assert rec.requests == []
    assert SECRET not in str(info.value) and "userinfo" in str(info.value)


@pytest.mark.parametrize("url,rule", [("https://as.example.com/x#frag", "no-fragment"),
                                      ("ftp://as.example.com/x", "https-required"),
                                      ("not a url", "url"), ("", "url"), ("https:///nohost", "url"),
                                      ("https://as.example.com/a\nb", "url")])
def test_malformed_urls_are_refused(url: str, rule: str) -> None:
    rec = Recorder(httpx.Response(200))
    with pytest.raises(ConfigurationError) as info:
        client(rec).request("GET", url)
    assert rec.requests == []
    assert info.value.rule == rule


def test_is_loopback_host() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("[::1]")
    assert not is_loopback_host("128.0.0.1") and not is_loopback_host("localhost.example.com")
    assert check_url("https://as.example.com/x?y=1").host == "as.example.com"


# --- retries --------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_for_get(status: int) -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(status), httpx.Response(status), httpx.Response(200, json={"ok": True}))
    response = client(rec, sleeps, backoff_base=0.5).request("GET", "https://as.example.com/x")
    assert response.json() == {"ok": True}
    assert len(rec.requests) == 3
    # Full jitter: each wait lies between 0 and the exponential cap.
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(503))
    response = client(rec, sleeps, retries=8, backoff_base=1, backoff_max=3).request("GET", "https://a.test/")
    assert response.status_code == 503  # retries exhausted: the answer is handed back
    assert len(rec.requests) == 9 and all(0 <= s <= 3 for s in sleeps)


def test_retry_false_sends_once() -> None:
    rec = Recorder(httpx.Response(503))
    assert client(rec).request("GET", "https://a.test/", retry=False).status_code == 503
    assert len(rec.requests) == 1


def test_retry_after_seconds_is_honoured_exactly() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200))
    assert client(rec, sleeps).request("GET", "https://a.test/").status_code == 200
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured_exactly() -> None:
    sleeps: list[float] = []
    when = formatdate(NOW + 42, usegmt=True)
    rec = Recorder(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200))
    assert client(rec, sleeps).request("GET", "https://a.test/").status_code == 200
    assert sleeps == [42.0]


def test_retry_after_on_503_is_honoured() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200))
    assert client(rec, sleeps).request("GET", "https://a.test/").status_code == 200
    assert sleeps == [3.0]


def test_too_long_retry_after_raises_rate_limited_at_once() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200))
    with pytest.raises(RateLimited) as info:
        client(rec, sleeps, max_retry_after=120).request("GET", "https://a.test/")
    assert info.value.retry_after == 3600 and sleeps == [] and len(rec.requests) == 1


def test_persistent_429_ends_in_rate_limited() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimited) as info:
        client(rec, sleeps, retries=2).request("GET", "https://a.test/")
    assert sleeps == [1.0, 1.0] and len(rec.requests) == 3 and info.value.retry_after == 1.0
    assert isinstance(info.value, TransportError)


def test_429_without_retry_after_backs_off() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429), httpx.Response(200))
    client(rec, sleeps, backoff_base=2).request("GET", "https://a.test/")
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_is_not_retried_after_a_server_error(status: int) -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(status), httpx.Response(201, json={"client_id": "second"}))
    response = client(rec, sleeps).request("POST", "https://a.test/register", json={})
    assert response.status_code == status
    assert len(rec.requests) == 1 and sleeps == []


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.WriteTimeout("slow"),
                                 httpx.RemoteProtocolError("server hung up"), httpx.ReadError("reset")])
def test_post_is_not_retried_when_it_may_have_reached_the_server(exc: Exception) -> None:
    rec = Recorder(exc, httpx.Response(201, json={"client_id": "second"}))
    with pytest.raises(TransportError) as info:
        client(rec).request("POST", "https://a.test/register", json={})
    assert len(rec.requests) == 1
    assert "second client" in str(info.value)


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                                 httpx.PoolTimeout("busy")])
def test_post_is_retried_when_it_never_left(exc: Exception) -> None:
    sleeps: list[float] = []
    rec = Recorder(exc, httpx.Response(201, json={"client_id": "c"}))
    assert client(rec, sleeps).request("POST", "https://a.test/register", json={}).status_code == 201
    assert len(rec.requests) == 2 and len(sleeps) == 1


def test_post_is_retried_after_429() -> None:
    # 429 means the AS refused to process the request: repeating it cannot create a second client.
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(201))
    assert client(rec, sleeps).request("POST", "https://a.test/register", json={}).status_code == 201
    assert sleeps == [2.0]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_idempotent_requests_are_retried_after_timeouts(method: str) -> None:
    rec = Recorder(httpx.ReadTimeout("slow"), httpx.Response(200))
    assert client(rec).request(method, "https://a.test/c/1", json={} if method == "PUT" else None) \
        .status_code == 200
    assert len(rec.requests) == 2


def test_connect_errors_exhaust_into_transport_error() -> None:
    rec = Recorder(httpx.ConnectError("connection refused"))
    with pytest.raises(TransportError) as info:
        client(rec, retries=2).request("GET", "https://a.test/x")
    assert len(rec.requests) == 3
    assert "a.test" in str(info.value) and "3 attempt" in str(info.value)


# --- redirects, TLS, bodies -----------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(status: int) -> None:
    rec = Recorder(httpx.Response(status, headers={"Location": "https://elsewhere.test/steal"}),
                   httpx.Response(200))
    with pytest.raises(ProtocolError) as info:
        client(rec).request("POST", "https://a.test/register", json={}, bearer=SecretStr(SECRET))
    assert len(rec.requests) == 1
    assert info.value.status == status
    assert "redirect" in str(info.value) and "elsewhere.test" in str(info.value)


def test_tls_failure_names_the_host_and_suggests_ca_bundle() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer")
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.__cause__ = cause
    rec = Recorder(exc)
    with pytest.raises(TransportError) as info:
        client(rec).request("GET", "https://private-ca.test/.well-known/openid-configuration")
    assert len(rec.requests) == 1  # a TLS failure does not heal by retrying
    assert "private-ca.test" in str(info.value) and "caBundle" in str(info.value)


def test_invalid_ca_bundle_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        HttpClient(HttpSettings(ca_bundle="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"))
    assert info.value.field == "caBundle"


def test_declared_oversized_body_is_refused() -> None:
    rec = Recorder(httpx.Response(200, content=b"x" * 2000))
    with pytest.raises(ProtocolError) as info:
        client(rec, max_body_bytes=1000).request("GET", "https://a.test/")
    assert "1000 bytes" in str(info.value)


def test_streamed_oversized_body_is_refused() -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"y" * 100

    rec = Recorder(lambda _r: httpx.Response(200, content=chunks()))
    with pytest.raises(ProtocolError):
        client(rec, max_body_bytes=1000).request("GET", "https://a.test/")


def test_compressed_bodies_are_decoded_once() -> None:
    rec = Recorder(httpx.Response(200, content=gzip.compress(b'{"a": 1}'),
                                  headers={"Content-Encoding": "gzip"}))
    assert client(rec).request("GET", "https://a.test/").json() == {"a": 1}


def test_broken_compression_is_a_protocol_error() -> None:
    rec = Recorder(lambda _r: httpx.Response(200, stream=httpx.ByteStream(b"not gzip"),
                                             headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ProtocolError):
        client(rec).request("GET", "https://a.test/")


# --- headers, hooks, rate limit, pickling ---------------------------------------------------

def test_bearer_and_json_are_sent_and_secret_stays_out_of_reprs() -> None:
    rec = Recorder(httpx.Response(201))
    client(rec).request("POST", "https://a.test/register", json={"client_name": "x"},
                        bearer=SecretStr(SECRET))
    sent = rec.requests[0]
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"
    assert SECRET not in repr(sent) and SECRET not in repr(sent.headers)


def test_form_bodies_are_urlencoded() -> None:
    rec = Recorder(httpx.Response(200))
    client(rec).request("POST", "https://a.test/token",
                        form={"grant_type": "client_credentials", "scope": "a b"})
    assert rec.requests[0].content == b"grant_type=client_credentials&scope=a+b"
    assert rec.requests[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_unserialisable_json_is_a_configuration_error_without_the_value() -> None:
    rec = Recorder(httpx.Response(200))
    with pytest.raises(ConfigurationError) as info:
        client(rec).request("POST", "https://a.test/", json={"client_secret": SecretStr(SECRET)})
    assert SECRET not in str(info.value) and rec.requests == []


def test_on_response_sees_every_attempt_and_cannot_break_a_request() -> None:
    seen: list[tuple[str, str, int]] = []

    def hook(method: str, url: str, status: int) -> None:
        seen.append((method, url, status))
        raise RuntimeError("metrics backend down")

    rec = Recorder(httpx.Response(503), httpx.Response(200))
    http = HttpClient(transport=httpx.MockTransport(rec), sleep=lambda _s: None, on_response=hook)
    assert http.request("GET", "https://a.test/x").status_code == 200
    assert seen == [("GET", "https://a.test/x", 503), ("GET", "https://a.test/x", 200)]


def test_token_bucket_spaces_requests() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(200))
    http = HttpClient(HttpSettings(requests_per_second=2), transport=httpx.MockTransport(rec),
                      sleep=sleeps.append, monotonic=lambda: 100.0)
    for _ in range(4):
        http.request("GET", "https://a.test/")
    # A burst of one second's worth, then one slot every 0.5s (reserved ahead, so waits add up).
    assert sleeps == [0.5, 1.0]


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    rec = Recorder(httpx.Response(200))
    http = HttpClient(HttpSettings(requests_per_second=1), transport=httpx.MockTransport(rec),
                      sleep=sleep, monotonic=lambda: now[0])
    http.request("GET", "https://a.test/")
    http.request("GET", "https://a.test/")
    now[0] += 5
    http.request("GET", "https://a.test/")
    assert sleeps == [1.0]


def test_http_client_pickles_and_works_afterwards() -> None:
    http = HttpClient(HttpSettings(requests_per_second=5, timeout=3))
    clone = pickle.loads(pickle.dumps(http))
    assert clone.settings == http.settings
    clone.close()
    http.close()


def test_context_manager_closes() -> None:
    rec = Recorder(httpx.Response(200))
    with client(rec) as http:
        http.request("GET", "https://a.test/")


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        HttpSettings(retries=-1)
    with pytest.raises(ConfigurationError):
        HttpSettings(requests_per_second=0)
    assert "BEGIN" not in repr(HttpSettings(ca_bundle="-----BEGIN CERTIFICATE-----"))


# --- helpers --------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [("5", 5.0), (" 0 ", 0.0), ("-3", 0.0), ("1.5", 1.5),
                                            (None, None), ("", None), ("soon", None), ("nan", None),
                                            (formatdate(NOW + 10, usegmt=True), 10.0),
                                            (formatdate(NOW - 10, usegmt=True), 0.0),
                                            ("Sun, 06 Nov 1994 08:49:37 -0000", 0.0)])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_challenges() -> None:
    [bearer] = parse_challenges('Bearer realm="r", error="invalid_token", error_description="a \\"b\\""')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "r", "error": "invalid_token", "error_description": 'a "b"'}
    many = parse_challenges('Basic realm="x", Negotiate abc==, Bearer resource_metadata="https://r/.wk"')
    assert [c.scheme for c in many] == ["basic", "negotiate", "bearer"]
    assert many[2].params["resource_metadata"] == "https://r/.wk"
    assert parse_challenges("") == [] and parse_challenges('"""') == []


def test_read_oauth_error_moves_a_sentence_out_of_error() -> None:
    response = httpx.Response(400, json={"error": "The request was malformed or contained invalid parameters",
                                         "error_description": "scope foo is not allowed"})
    said = read_oauth_error(response)
    assert said.error is None
    assert said.error_description is not None and "malformed" in said.error_description
    assert "scope foo" in said.error_description


def test_read_oauth_error_reads_nested_errors_and_challenges() -> None:
    nested = httpx.Response(400, json={"error": {"code": 400, "message": "bad things"}})
    assert read_oauth_error(nested).error_description == "bad things"
    header = httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                              'error_description="expired"'})
    said = read_oauth_error(header)
    assert (said.error, said.error_description, said.body) == ("invalid_token", "expired", None)


def test_read_oauth_error_never_repeats_a_secret() -> None:
    response = httpx.Response(400, json={"error": "invalid_client_metadata",
                                         "error_description": f"token {SECRET} is odd",
                                         "client_secret": "other-secret-999"},
                              headers={"WWW-Authenticate": f'Bearer error_description="{SECRET}"'})
    said = read_oauth_error(response, secrets=[SecretStr(SECRET)])
    text = f"{said.error} {said.error_description} {said.body}"
    assert SECRET not in text and "other-secret-999" not in text


def test_body_excerpt_strips_html_and_masks_secrets() -> None:
    html = httpx.Response(502, text="<html><body><h1>Bad   Gateway</h1></body></html>")
    assert body_excerpt(html) == "Bad Gateway"
    masked = body_excerpt(httpx.Response(200, json={"registration_access_token": ["x", SECRET]}))
    assert masked is not None and SECRET not in masked
    assert body_excerpt(httpx.Response(204)) is None


def test_scrub() -> None:
    assert scrub(f"a {SECRET} b", [SecretStr(SECRET), None, "ab"]) == "a *** b"


def test_every_error_is_a_clientreg_error() -> None:
    assert issubclass(TransportError, ClientregError) and issubclass(PolicyViolation, ConfigurationError)
