"""The one way clientreg talks HTTP: URL policy, TLS, retries, rate limits and bounded bodies.

Every request to an authorization server goes through :class:`HttpClient`, so the rules live
in one place: a URL is checked before any connection is opened, redirects are never followed,
bodies are capped, and secrets travel only in the ``Authorization`` header.

This module is the facade: the client and its retry policy live here; the pieces underneath are
private modules re-exported from here: settings (:mod:`clientreg._http_settings`), the URL policy
(:mod:`clientreg._urls`), reading what servers send back (:mod:`clientreg._responses`), pacing
(:mod:`clientreg._ratelimit`), the guarded httpx transport (:mod:`clientreg._transport`) and address
classification (:mod:`clientreg._addresses`, shared with :mod:`clientreg.ssrf`).
"""

from __future__ import annotations

import json as _json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

import httpcore
import httpx
from pydantic import SecretStr

from ._addresses import is_loopback_host
from ._bodies import ACCEPT_ENCODING, BodyRefused, BodyTooLarge, read_bounded
from ._http_settings import USER_AGENT, HttpSettings
from ._ratelimit import TokenBucket, full_jitter
from ._responses import NOT_JSON, OAuthError, body_excerpt, parse_json, read_oauth_error, scrub
from ._transport import DEFAULT_LIMITS, HELD_LOCATION, GuardedTransport, hold_location, is_tls_failure, raw_chunks
from ._urls import check_url, show_url
from .errors import ConfigurationError, PolicyViolation, ProtocolError, RateLimited, TransportError, redact
from .headers import Challenge, parse_challenges, parse_retry_after
from .ssrf import Resolver

__all__ = [
    "DEFAULT_LIMITS",
    "NOT_JSON",
    "USER_AGENT",
    "Challenge",
    "GuardedTransport",
    "HttpClient",
    "HttpSettings",
    "OAuthError",
    "body_excerpt",
    "check_url",
    "is_loopback_host",
    "parse_challenges",
    "parse_json",
    "parse_retry_after",
    "read_oauth_error",
    "scrub",
    "show_url",
]

log = logging.getLogger(__name__)

# RFC 9110 §9.2.2: repeating these has the same effect as sending them once, so a retry after
# a lost answer is safe. POST (RFC 7591 registration) is not: see HttpClient.request.
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_STATUSES: Final = frozenset({500, 502, 503, 504})


class _Failure(Exception):
    """An attempt failed without an HTTP answer; ``delivered`` says whether the server may have acted."""

    def __init__(self, what: str, *, delivered: bool) -> None:
        super().__init__(what)
        self.what = what
        self.delivered = delivered


class HttpClient:
    """A synchronous HTTP client with clientreg's rules baked in. Safe to share between threads.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``); ``sleep``,
    ``clock`` (wall time, for HTTP-date ``Retry-After``) and ``monotonic`` (for the rate limit)
    make timing deterministic; ``on_response(method, url, status)`` sees every HTTP answer,
    retried ones included.
    """

    def __init__(self, settings: HttpSettings | None = None, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_response: Callable[[str, str, int], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 resolver: Resolver | None = None,
                 network_backend: httpcore.NetworkBackend | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._transport = transport
        # Under the address policy only (tests): how names resolve and what finally opens a socket.
        self._resolver = resolver
        self._network_backend = network_backend
        self._sleep = sleep
        self._on_response = on_response
        self._clock = clock
        self._monotonic = monotonic
        self._random = rng or random.Random()
        rps = self.settings.requests_per_second
        self._bucket = TokenBucket(rps, monotonic) if rps else None
        self._client = self._build_client()

    def _build_client(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = True
        pem = (self.settings.ca_bundle or "").strip()
        if pem:
            try:
                # Only the bundle is trusted: a caBundle names the CA that signs this AS.
                verify = ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigurationError(f"not a usable PEM certificate bundle: {exc}", field="caBundle",
                                         rule="pem") from None
        s = self.settings
        transport = self._transport
        if transport is None and s.address_policy is not None:
            # No proxy from the environment either: a proxy resolves and connects on its own, out of
            # the guard's sight, and could reach exactly the addresses the policy refuses.
            transport = GuardedTransport(s.address_policy, verify=verify, resolver=self._resolver,
                                         network_backend=self._network_backend)
        return httpx.Client(
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            follow_redirects=False,
            verify=verify,
            transport=transport,
            # An injected transport must see every request: no proxy from the environment.
            trust_env=transport is None,
            # Only encodings whose decoding clientreg can bound (clientreg._bodies).
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            event_hooks={"response": [hold_location]},
        )

    # Pickling (Pulumi serialises dynamic providers): the connection pool and SSL context are
    # rebuilt on the other side.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_client"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = self._build_client()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests --

    def request(self, method: str, url: str, *, json: Any = None, bearer: SecretStr | None = None,
                headers: Mapping[str, str] | None = None, retry: bool = True,
                form: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request, retrying what is safe to retry; return the final answer.

        ``json`` or ``form`` (application/x-www-form-urlencoded, for token requests) is the body.

        Any status is returned except: a 3xx (ProtocolError, never followed), a final 429
        (RateLimited), an oversized body (ProtocolError). Network failures raise TransportError.
        """
        method = method.upper()
        target = check_url(url, allow_insecure_loopback=self.settings.allow_insecure_loopback)
        shown = show_url(url)
        content: bytes | None = None
        send_headers = {"Accept": "application/json"}
        if json is not None:
            try:
                content = _json.dumps(json, ensure_ascii=False, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                # The message names the type only: the value could be a secret.
                raise ConfigurationError(
                    f"the body for {method} {shown} is not JSON-serialisable ({type(exc).__name__})",
                    rule="json") from None
            send_headers["Content-Type"] = "application/json"
        elif form is not None:
            content = urlencode(list(form.items())).encode("ascii")
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if headers:
            send_headers.update(headers)
        if bearer is not None:
            token = bearer.get_secret_value()
            if not token or not all("\x21" <= c <= "\x7e" for c in token):
                # httpx would crash encoding it (or h11 refuse it); the value itself is never shown.
                raise ConfigurationError(f"the bearer token for {method} {shown} is empty or holds characters an "
                                         "HTTP header cannot carry (RFC 6750 §2.1)", rule="bearer-token")
            send_headers["Authorization"] = f"Bearer {token}"

        idempotent = method in _IDEMPOTENT
        attempt = 0
        while True:
            if self._bucket is not None:
                wait = self._bucket.reserve()
                if wait > 0:
                    self._sleep(wait)
            try:
                response = self._send_once(method, target, shown, send_headers, content)
            except _Failure as failure:
                # A POST is retried only when the request cannot have reached the server (connect
                # errors): after a timeout or a dropped connection the AS may have registered the
                # client already, and a second POST would register a second one we never hear of.
                if retry and attempt < self.settings.retries and (idempotent or not failure.delivered):
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                note = ""
                if failure.delivered and not idempotent:
                    note = (" (not retried: the AS may have acted on it, and repeating a registration"
                            " could create a second client)")
                raise TransportError(f"{method} {shown}: {failure.what} after {attempt + 1} attempt(s){note}",
                                     url=url) from None

            status = response.status_code
            if 300 <= status < 400:
                location = response.headers.get("location", "")
                raise ProtocolError(
                    f"{method} {shown} answered with a redirect to '{show_url(location)}', which clientreg "
                    "never follows (a redirect could carry the token or the request body elsewhere): "
                    "configure the final URL", status=status, url=url)

            if status == 429 or status in _RETRY_STATUSES:
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
                # 429 means the AS refused to process the request, so even a POST may be repeated;
                # a 5xx after a POST may hide a registration that happened, so it is returned as is.
                retriable = retry and attempt < self.settings.retries and (idempotent or status == 429)
                if retry_after is not None and retry_after > self.settings.max_retry_after:
                    if status == 429:
                        raise RateLimited(
                            f"{method} {shown}: the AS asks to wait {retry_after:.0f}s (HTTP 429), more than "
                            f"the {self.settings.max_retry_after:.0f}s clientreg waits in place",
                            url=url, retry_after=retry_after)
                    retriable = False
                if retriable:
                    self._sleep(retry_after if retry_after is not None else self._backoff(attempt))
                    attempt += 1
                    continue
                if status == 429:
                    raise RateLimited(f"{method} {shown}: HTTP 429 Too Many Requests after {attempt + 1} "
                                      "attempt(s)", url=url, retry_after=retry_after)
            return response

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, base=self.settings.backoff_base, cap=self.settings.backoff_max,
                           rng=self._random)

    def _send_once(self, method: str, target: httpx.URL, shown: str, headers: Mapping[str, str],
                   content: bytes | None) -> httpx.Response:
        host = target.host
        request = self._client.build_request(method, target, headers=headers, content=content)
        started = self._monotonic()
        try:
            streamed = self._client.send(request, stream=True)
            try:
                body = self._read_bounded(streamed, method, shown, started)
            finally:
                streamed.close()
        except PolicyViolation as exc:
            # The address guard refused the connection: nothing was sent, and repeating cannot help.
            raise type(exc)(f"{method} {shown}: {exc.message}", rule=exc.rule) from None
        except httpx.ConnectError as exc:
            if is_tls_failure(exc):
                raise TransportError(
                    f"{method} {shown}: TLS with {host} failed ({redact(str(exc), 160)}); if the AS "
                    "uses a private CA, put its PEM certificate in the AuthorizationServer's "
                    "spec.caBundle", url=str(target)) from None
            raise _Failure(f"cannot connect to {host} ({redact(str(exc), 160) or type(exc).__name__})",
                           delivered=False) from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Failure(f"{type(exc).__name__} reaching {host}", delivered=False) from None
        except httpx.ProxyError as exc:
            raise _Failure(f"proxy refused the request to {host} ({redact(str(exc), 160)})",
                           delivered=False) from None
        except httpx.TimeoutException as exc:
            raise _Failure(f"{type(exc).__name__} waiting for {host}", delivered=True) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Failure(f"{type(exc).__name__} talking to {host} ({redact(str(exc), 160)})",
                           delivered=True) from None
        except httpx.DecodingError as exc:
            raise ProtocolError(f"{method} {shown}: the body could not be decoded ({redact(str(exc), 160)})",
                                url=str(target)) from None
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {shown}: {type(exc).__name__} ({redact(str(exc), 160)})",
                                 url=str(target)) from None
        if self._on_response is not None:
            try:
                self._on_response(method, str(target), streamed.status_code)
            except Exception:
                # A metrics hook must never lose an answer from the AS (it may carry new credentials).
                log.exception("on_response hook failed")
        log.debug("%s %s -> %s", method, shown, streamed.status_code)
        # Rebuild a plain response around the bytes already read; the encoding headers no longer
        # describe them (they are decoded) and would make httpx decode twice.
        # Raw bytes: a header that is not ASCII (a UTF-8 Location, a stray \xff) survives as sent.
        kept = [(k, v) for k, v in streamed.headers.raw
                if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")]
        held = streamed.extensions.get(HELD_LOCATION)
        if held is not None:
            kept.append((b"location", held))
        return httpx.Response(streamed.status_code, headers=kept, content=body, request=request)

    def _read_bounded(self, response: httpx.Response, method: str, shown: str, started: float) -> bytes:
        limit, deadline = self.settings.max_body_bytes, self.settings.deadline
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"{method} {shown}: the AS announced a {declared}-byte body, more than the "
                                f"{limit} bytes clientreg reads", status=response.status_code, url=shown)

        def on_chunk(total: int) -> None:
            if self._monotonic() - started > deadline:
                # Checked per chunk: a drip of one byte per read never trips the per-read timeout.
                raise _Failure(f"the answer from {response.request.url.host} was not complete after "
                               f"{deadline:g}s ({total} bytes so far)", delivered=True)
        try:
            # Raw bytes, decoded under the cap: httpx's iter_bytes would inflate a whole chunk first.
            return read_bounded(raw_chunks(response), content_encoding=response.headers.get("content-encoding"),
                                limit=limit, on_chunk=on_chunk)
        except BodyTooLarge as exc:
            raise ProtocolError(f"{method} {shown}: the body exceeds the {limit} bytes clientreg reads ({exc} size)",
                                status=response.status_code, url=shown) from None
        except BodyRefused as exc:
            raise ProtocolError(f"{method} {shown}: {exc}", status=response.status_code, url=shown) from None
