"""The one way clientreg talks HTTP: URL policy, TLS, retries, rate limits and bounded bodies.

Every request to an authorization server goes through :class:`HttpClient`, so the rules live
in one place: a URL is checked before any connection is opened, redirects are never followed,
bodies are capped, and secrets travel only in the ``Authorization`` header.

The helpers at the bottom read what servers send back when things go wrong (OAuth error
bodies, ``WWW-Authenticate`` challenges, HTML pages) without trusting any of it, and never let
a credential reach a message.
"""

from __future__ import annotations

import ipaddress
import json as _json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import httpcore
import httpx
from pydantic import SecretStr

from ._bodies import ACCEPT_ENCODING, BodyRefused, BodyTooLarge, decode_json, read_bounded
from .errors import (
    ConfigurationError,
    PolicyViolation,
    ProtocolError,
    RateLimited,
    TransportError,
    is_unprintable,
    redact,
)
from .headers import Challenge, bearer_params, parse_challenges, parse_retry_after

if TYPE_CHECKING:  # ssrf imports this module: the runtime import happens where the guard is built
    from .ssrf import AddressPolicy, Resolver

__all__ = [
    "USER_AGENT",
    "Challenge",
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

USER_AGENT: Final = "clientreg/0.1"

# RFC 9110 §9.2.2: repeating these has the same effect as sending them once, so a retry after
# a lost answer is safe. POST (RFC 7591 registration) is not: see HttpClient.request.
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_STATUSES: Final = frozenset({500, 502, 503, 504})

# Keys whose values are credentials wherever they appear in a body we quote.
_SECRET_KEYS: Final = frozenset({"client_secret", "registration_access_token", "access_token",
                                 "refresh_token", "initial_access_token", "id_token", "password",
                                 "private_key"})
# Shorter values are not worth masking and would mangle ordinary words in a message.
_MIN_SCRUB_LEN: Final = 4


class _NotJSON:
    """Marker for a body that is not JSON (a distinct type so that ``null`` stays ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJSON()


@dataclass(frozen=True)
class HttpSettings:
    """How patient, how fast and how trusting one :class:`HttpClient` is."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    # PEM text, not a path: it comes from AuthorizationServer.spec.caBundle. Not in repr: long.
    ca_bundle: str | None = field(default=None, repr=False)
    requests_per_second: float | None = None
    allow_insecure_loopback: bool = True
    max_body_bytes: int = 1_000_000
    #: Seconds one attempt may take from sending to the last byte of the body. ``timeout`` bounds each
    #: read, so without this a server dripping a byte every few seconds would hold a reconcile forever.
    deadline: float = 60.0
    #: Which addresses connections may go to, checked after resolving and before connecting
    #: (:mod:`clientreg.ssrf`). None: any address (and proxies from the environment are honoured).
    address_policy: AddressPolicy | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "backoff_base", "backoff_max", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"must not be negative, got {getattr(self, name)}", field=name)
        if self.retries < 0:
            raise ConfigurationError(f"must not be negative, got {self.retries}", field="retries")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ConfigurationError(f"must be positive, got {self.requests_per_second}",
                                     field="requestsPerSecond")
        if self.max_body_bytes <= 0:
            raise ConfigurationError(f"must be positive, got {self.max_body_bytes}", field="max_body_bytes")
        if self.deadline <= 0:
            raise ConfigurationError(f"must be positive, got {self.deadline}", field="deadline")


# --- URL policy -----------------------------------------------------------------------------

def is_loopback_host(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: the only hosts where plain http is tolerated."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show_url(url: str) -> str:
    """A URL fit for a message: bounded, and with credential-looking query values masked."""
    return redact(url, 200)


def check_url(url: str, *, allow_insecure_loopback: bool = True) -> httpx.URL:
    """Refuse a URL before anything is sent to it.

    https is required (RFC 7591 §3, RFC 7592 §2, RFC 8414 §3 all demand TLS because bearer
    tokens and client secrets travel on these requests); plain http is accepted for loopback
    hosts only, and only when ``allow_insecure_loopback`` is set, so local development servers
    work. Userinfo is refused (RFC 9110 §4.2.4 forbids it in http(s) URIs and it would put a
    password in logs); a fragment is refused because it means the URL was pasted from a browser
    and is not what the AS published.
    """
    shown = show_url(url)
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"'{shown}' is not a URL", rule="url")
    if len(url) > 8192:
        raise ConfigurationError(f"'{shown}' is {len(url)} characters long, more than the 8192 accepted", rule="url")
    if any(c.isspace() or is_unprintable(c) for c in url):
        raise ConfigurationError(f"'{shown}' contains whitespace, control or bidi characters", rule="url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ConfigurationError(f"'{shown}' is not a valid URL", rule="url") from None
    if parsed.userinfo:
        # Do not echo the URL: the userinfo is the very thing that must not be shown.
        raise ConfigurationError(
            f"'{parsed.scheme}://…@{parsed.host}…' carries userinfo (user:password@): RFC 9110 §4.2.4 "
            "forbids it in http(s) URIs; pass credentials as tokens instead", rule="no-userinfo")
    if parsed.fragment or "#" in url:
        raise ConfigurationError(f"'{shown}' has a fragment (#…): an endpoint URL never has one",
                                 rule="no-fragment")
    if not parsed.host:
        raise ConfigurationError(f"'{shown}' has no host", rule="url")
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http":
        if is_loopback_host(parsed.host):
            if allow_insecure_loopback:
                return parsed
            raise PolicyViolation(
                f"'{shown}' uses plain http: https is required (RFC 7591 §3, RFC 8414 §3 demand TLS) and "
                "insecure loopback URLs are disabled here", rule="https-required")
        raise PolicyViolation(
            f"'{shown}' uses plain http: https is required (RFC 7591 §3, RFC 8414 §3 demand TLS); plain "
            "http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost)", rule="https-required")
    raise ConfigurationError(f"'{shown}' has scheme '{parsed.scheme}': only https is supported",
                             rule="https-required")


# --- bodies (Retry-After and WWW-Authenticate parsing live in clientreg.headers) ---------------

def parse_json(content: bytes) -> Any:
    """The decoded JSON value, or :data:`NOT_JSON` (also when too deeply nested or with a repeated member:
    see :func:`clientreg._bodies.decode_json`); never raises on hostile input."""
    if not content.strip():
        return NOT_JSON
    try:
        return decode_json(content)
    except BodyRefused:
        return NOT_JSON


def _secret_values(data: Any, depth: int = 0) -> list[str]:
    """String values under credential keys anywhere in a JSON value, to scrub them from text."""
    found: list[str] = []
    if depth > 50:
        return found
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _SECRET_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_secret_values(value, depth + 1))
    elif isinstance(data, list):
        for item in data:
            found.extend(_secret_values(item, depth + 1))
    return found


def _mask(data: Any, depth: int = 0) -> Any:
    if depth > 50:
        return "…"
    if isinstance(data, dict):
        return {k: ("***" if k in _SECRET_KEYS else _mask(v, depth + 1)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v, depth + 1) for v in data]
    return data


def scrub(text: str, secrets: Iterable[SecretStr | str | None]) -> str:
    """Replace every occurrence of each known secret value in ``text``."""
    values = sorted({(s.get_secret_value() if isinstance(s, SecretStr) else s) for s in secrets if s},
                    key=len, reverse=True)
    for value in values:
        if len(value) >= _MIN_SCRUB_LEN:
            text = text.replace(value, "***")
    return text


_TAG_RE = re.compile(r"<[^>]{0,500}>")


def body_excerpt(response: httpx.Response, secrets: Iterable[SecretStr | str | None] = ()) -> str | None:
    """A short, redacted excerpt of a body for an error message; ``None`` when it is empty."""
    content = response.content
    if not content.strip():
        return None
    data = parse_json(content)
    extra: list[str] = []
    if data is NOT_JSON:
        text = content[:20_000].decode("utf-8", errors="replace")
        if "<" in text[:200]:
            # An HTML error page: the words matter, the markup does not.
            text = _TAG_RE.sub(" ", text)
    else:
        extra = _secret_values(data)
        try:
            text = _json.dumps(_mask(data), ensure_ascii=False)[:20_000]
        except (ValueError, RecursionError):
            text = "<unprintable JSON>"
    return redact(scrub(text, [*secrets, *extra]))


@dataclass(frozen=True)
class OAuthError:
    """What an error answer said, read leniently (RFC 6749 §5.2, RFC 6750 §3, RFC 7591 §3.2.2).

    ``error`` is kept only when it looks like an error code; a sentence in ``error`` (Hydra does
    that) is moved into ``error_description`` so the text is not lost.
    """

    error: str | None
    error_description: str | None
    body: str | None


_ERROR_CODE_RE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,64}")


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


# ProtocolError keeps 200 characters of a description, from the start. Servers put boilerplate
# first and the specific cause last (Hydra: "The value of one of the Client Metadata fields is
# invalid … 'metadata' cannot be set"), so a long description keeps both ends.
_DESCRIPTION_LIMIT: Final = 200


def _head_and_tail(text: str) -> str:
    if len(text) <= _DESCRIPTION_LIMIT:
        return text
    head = _DESCRIPTION_LIMIT // 3
    return f"{text[:head].rstrip()} … {text[-(_DESCRIPTION_LIMIT - head - 3):].lstrip()}"


def read_oauth_error(response: httpx.Response, *,
                     secrets: Iterable[SecretStr | str | None] = ()) -> OAuthError:
    """Extract ``error``/``error_description`` from a body or a Bearer challenge, whatever its shape."""
    secrets = list(secrets)
    data = parse_json(response.content)
    error: str | None = None
    description: str | None = None
    if isinstance(data, dict):
        raw_error = data.get("error")
        description = _as_text(data.get("error_description"))
        if isinstance(raw_error, dict):
            # Some servers nest a structured error: {"error": {"code": 400, "message": "…"}}.
            error = _as_text(raw_error.get("id")) or _as_text(raw_error.get("error"))
            nested = _as_text(raw_error.get("message")) or _as_text(raw_error.get("reason"))
            description = description or nested
        else:
            error = _as_text(raw_error)
        secrets.extend(_secret_values(data))
    challenge = bearer_params(response)
    error = error or challenge.get("error") or None
    description = description or challenge.get("error_description") or None
    if error is not None and not _ERROR_CODE_RE.fullmatch(error):
        description = f"{error}: {description}" if description else error
        error = None
    if error is not None:
        error = scrub(error, secrets)
    if description is not None:
        description = _head_and_tail(redact(scrub(description, secrets), 2000))
    return OAuthError(error=error, error_description=description, body=body_excerpt(response, secrets))


# --- the client -----------------------------------------------------------------------------

class _TokenBucket:
    """Requests per second for one HttpClient; callers reserve a slot and sleep outside the lock."""

    def __init__(self, rate: float, monotonic: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._monotonic = monotonic
        self._tokens = self.capacity
        self._last = monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token, possibly borrowed from the future; return how long to wait for it."""
        with self._lock:
            now = self._monotonic()
            # max(0, …): a clock that went backwards must not drain the bucket.
            self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        # Monotonic clocks of two processes are unrelated: start full on this side.
        self._tokens = self.capacity
        self._last = self._monotonic()


def _is_tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        current = current.__cause__ or current.__context__
    return bool(re.search(r"\bSSL\b|\bTLS\b|CERTIFICATE_VERIFY_FAILED|certificate verify", str(exc)))


# httpx's own defaults (httpx._config.DEFAULT_LIMITS), so that guarding a client changes nothing else.
_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with every TCP connection made by :class:`clientreg.ssrf.GuardedBackend`.

    httpx.HTTPTransport takes no network backend, so its connection pool is built here the way it
    builds one without a proxy. TLS is unchanged by the guard: the backend dials the vetted address,
    and httpcore then starts TLS with ``server_hostname`` set to the URL's host, so SNI and certificate
    verification are against the name in the URL, never the address.
    """

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True, trust_env: bool = True,
                 resolver: Resolver | None = None, network_backend: httpcore.NetworkBackend | None = None,
                 limits: httpx.Limits = _LIMITS) -> None:
        from .ssrf import GuardedBackend

        self.backend = GuardedBackend(policy, resolver=resolver, inner=network_backend)
        # trust_env here only means SSL_CERT_FILE / SSL_CERT_DIR, as it does for an unguarded client.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=trust_env),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False, retries=0,
            network_backend=self.backend)


_HELD_LOCATION: Final = "clientreg.held_location"


def _hold_location(response: httpx.Response) -> None:
    """Take ``Location`` off a redirect before httpx sees it. Even when it will not follow a redirect, httpx
    parses the Location to prepare one, and a hostile value (``javascript:x``, control characters) makes it
    raise from deep inside ``send``; clientreg only ever quotes the value in an error."""
    if 300 <= response.status_code < 400:
        raw = [(k, v) for k, v in response.headers.raw if k.lower() != b"location"]
        if len(raw) != len(response.headers.raw):
            response.extensions[_HELD_LOCATION] = next(
                v for k, v in response.headers.raw if k.lower() == b"location")
            response.headers = httpx.Headers(raw)


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
        self._bucket = _TokenBucket(rps, monotonic) if rps else None
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
            event_hooks={"response": [_hold_location]},
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
        # Full jitter (AWS architecture blog): spreads the retries of many reconcilers apart.
        cap = min(self.settings.backoff_max, self.settings.backoff_base * (2 ** attempt))
        return self._random.uniform(0, cap)

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
            if _is_tls_failure(exc):
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
        held = streamed.extensions.get(_HELD_LOCATION)
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
            return read_bounded(_raw_chunks(response), content_encoding=response.headers.get("content-encoding"),
                                limit=limit, on_chunk=on_chunk)
        except BodyTooLarge as exc:
            raise ProtocolError(f"{method} {shown}: the body exceeds the {limit} bytes clientreg reads ({exc} size)",
                                status=response.status_code, url=shown) from None
        except BodyRefused as exc:
            raise ProtocolError(f"{method} {shown}: {exc}", status=response.status_code, url=shown) from None


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_raw()
    except httpx.StreamConsumed:
        # Only a response built with content= (a test's MockTransport) is read before it is returned;
        # its stream still holds the bytes as given, so they are decoded under the cap all the same.
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        yield from stream

