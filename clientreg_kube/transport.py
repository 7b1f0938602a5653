"""JSON over HTTP/1.1 to the API server, synchronously: kept-alive connections (http1.py) and a client
configuration's credentials.

Every request :class:`~clientreg_kube.cluster.KubeCluster` makes goes through here, with the credentials of a
``kubernetes.client.Configuration`` (a kubeconfig, exec plugins included, or the in-cluster ServiceAccount):
TLS context, client certificate, bearer token (asked for on every request, so the configuration's refresh
hook still rotates it), ``tls-server-name`` and an HTTP proxy from the kubeconfig.

Why not the official client's own transport: each request through it passes ``ApiClient.param_serialize``,
urllib3's pool manager (URL parsing, retry objects, header dicts) and then ``http.client``. At 1,000 new
OAuthClients that layering was 31 % of the operator's CPU for four or five requests per client (py-spy,
docs/performance.md); ``bench/kube_requests.py`` prints the CPU per request of each.

Connections are kept alive and reused (LIFO, one thread at a time per connection). A reused connection that
the server closed while idle fails before any answer; the request is then sent once more on a new connection,
as Go's ``net/http`` does. For a POST this could in principle repeat a create the server did act on: the
repeat answers 409 (a Secret or a Lease, both handled as "exists") or posts an Event twice.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import ssl
import threading
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from kubernetes.client.exceptions import ApiException

from .http1 import Answer, Connection

Body = dict[str, Any]

#: Seconds a connect or one read may take by default (a request that hangs must not hold a worker forever).
DEFAULT_TIMEOUT = 60.0
#: Idle connections kept per transport: the reconcile workers plus a few.
MAX_IDLE = 16
#: Errors of a kept-alive connection the server closed while it was idle: nothing was answered.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
          ssl.SSLEOFError)
#: Characters left as they are in a request path (RFC 3986 pchar and "/"): the names in it are DNS labels.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class UnsupportedConfiguration(ValueError):
    """A kubeconfig asks for something this transport does not do (a SOCKS proxy)."""


def ssl_context(configuration: Any) -> ssl.SSLContext:
    """The TLS context of a client configuration: its CA (file or data), its client certificate, and no
    verification only when the kubeconfig says ``insecure-skip-tls-verify``."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None,
                                         cadata=getattr(configuration, "ca_cert_data", None) or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


def authorization(configuration: Any) -> str | None:
    """The Authorization header value. Asked for on every request: an in-cluster configuration's refresh hook
    re-reads the rotated ServiceAccount token file, a kubeconfig's renews an exec plugin's token."""
    # "authorization" is where the kubeconfig and in-cluster loaders put it; "BearerToken" a hand-made one's.
    token = (configuration.get_api_key_with_prefix("authorization")
             or configuration.get_api_key_with_prefix("BearerToken"))
    if token:
        return str(token) if " " in token else f"Bearer {token}"
    if configuration.username:
        basic: str = configuration.get_basic_auth_token()
        return basic
    return None


def bypasses_proxy(url: str, no_proxy: str) -> bool:
    """Whether the kubeconfig's ``no_proxy`` (comma-separated hosts, domain suffixes, host:port, CIDRs or
    ``*``) covers ``url``, as client-go and the official Python client read it."""
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    if not host:
        return True
    authority = f"{host}:{parsed.port}" if parsed.port else host
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip(".")
        if entry in (host, authority) or host.endswith("." + entry) or authority.endswith("." + entry):
            return True
    return False


class KubeTransport:
    """Requests to one API server with one configuration's credentials, from any number of threads."""

    def __init__(self, configuration: Any, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.configuration = configuration
        self.timeout = timeout
        server = urlsplit(str(configuration.host))
        if server.scheme not in ("http", "https") or not server.hostname:
            raise UnsupportedConfiguration(f"the API server address {configuration.host!r} is not an http(s) URL")
        https = server.scheme == "https"
        self._address = (server.hostname, server.port or (443 if https else 80))
        self._authority = server.netloc.rpartition("@")[2].encode("idna")
        self._prefix = server.path.rstrip("/")  # an API server behind a path (a proxy such as Rancher's)
        self._context = ssl_context(configuration) if https else None
        self._server_hostname = (getattr(configuration, "tls_server_name", None)
                                 or (configuration.assert_hostname if isinstance(configuration.assert_hostname, str)
                                     else None))
        self._tunnel = self._proxy(configuration)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    @staticmethod
    def _proxy(configuration: Any) -> tuple[str, int, dict[str, str]] | None:
        # The kubeconfig's proxy-url, or (kubernetes >= 34) HTTPS_PROXY / NO_PROXY read by the Configuration.
        proxy = configuration.proxy
        if not proxy or bypasses_proxy(str(configuration.host), getattr(configuration, "no_proxy", None) or ""):
            return None
        parsed = urlsplit(proxy)
        if parsed.scheme != "http" or not parsed.hostname:
            raise UnsupportedConfiguration(f"the proxy {parsed.scheme}://... (the kubeconfig's proxy-url, or "
                                           "HTTPS_PROXY from the environment) is not supported: only an http:// "
                                           "proxy (CONNECT) is")
        headers = dict(configuration.proxy_headers or {})
        if parsed.username is not None and not any(k.lower() == "proxy-authorization" for k in headers):
            credentials = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        return parsed.hostname, parsed.port or 80, headers

    def _connect(self) -> Connection:
        return Connection.open(self._address, timeout=self.timeout, context=self._context,
                               server_hostname=self._server_hostname, tunnel=self._tunnel)

    def _take(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Body | None = None,
                content_type: str = "application/json") -> Body:
        """The JSON answer to one request; ApiException for an answer other than 2xx (status, reason and the
        server's Status text as the body), OSError or http.client.HTTPException when there was no answer."""
        target = self._prefix + quote(path, safe=_PATH_SAFE)  # segments were validated (path_segment) by the caller
        if query:
            target += "?" + urlencode(query)
        lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: " + self._authority, b"Accept: application/json"]
        token = authorization(self.configuration)
        if token:
            if "\r" in token or "\n" in token:  # would end the header and start another
                raise UnsupportedConfiguration("the credentials' token holds a line break")
            lines.append(b"Authorization: " + token.encode("latin-1"))
        payload = b""
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            lines.append(b"Content-Type: " + content_type.encode())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(payload)).encode())
        answer = self._exchange(b"\r\n".join(lines) + b"\r\n\r\n", payload)
        if not 200 <= answer.status <= 299:
            error = ApiException(status=answer.status, reason=answer.reason)
            error.body = answer.body.decode("utf-8", "replace")  # set, not passed: older clients take no body=
            raise error
        result: Body = json.loads(answer.body) if answer.body else {}
        return result

    def _exchange(self, head: bytes, payload: bytes) -> Answer:
        connection = self._take()
        try:
            try:
                answer = connection.exchange(head, payload)
            except _STALE:
                if not connection.exchanges:
                    raise
                connection.close()  # closed by the server while idle: once more on a new connection
                connection = self._connect()
                answer = connection.exchange(head, payload)
        except BaseException:
            connection.close()
            raise
        if answer.reusable:
            self._give_back(connection)
        else:
            connection.close()
        return answer
