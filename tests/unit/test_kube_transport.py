"""The operator's and the Pulumi provider's line to the API server (clientreg_kube/transport.py, http1.py),
against scripted servers on 127.0.0.1: framing, kept-alive connections, a server's idle close, errors that
say there was no answer, credentials, TLS names and a CONNECT proxy."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from support.kube import Pki

from clientreg_kube.cluster import unavailable
from clientreg_kube.transport import KubeTransport, UnsupportedConfiguration, bypasses_proxy

#: What a connection handler gets: the socket's reader and writer; it returns when the connection should end.
Handler = Callable[[Any, socket.socket], None]


def ok(body: dict[str, Any], *, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(data)}\r\n\r\n"
            .encode() + data)


def read_request(reader: Any) -> tuple[str, dict[str, str], bytes] | None:
    line = reader.readline()
    if not line:
        return None
    headers: dict[str, str] = {}
    while (header := reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return line.decode().rstrip("\r\n"), headers, body


class Server:
    """Accepts connections on 127.0.0.1 and gives each to the next handler (the last one repeats)."""

    def __init__(self, *handlers: Handler, context: ssl.SSLContext | None = None) -> None:
        self.handlers, self.context = list(handlers), context
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            handler = self.handlers[min(self.connections, len(self.handlers) - 1)]
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, handler), daemon=True).start()

    def _serve(self, sock: socket.socket, handler: Handler) -> None:
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True)
            with sock, sock.makefile("rb") as reader:
                handler(reader, sock)
        except (OSError, ssl.SSLError):
            pass

    def answering(self, *answers: bytes) -> Handler:
        """A handler that reads one request per answer, records it and writes the answer."""

        def handle(reader: Any, sock: socket.socket) -> None:
            for answer in answers:
                request = read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                sock.sendall(answer)
        return handle

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def configuration(url: str, **settings: Any) -> k8s.Configuration:
    conf = k8s.Configuration(host=url, api_key={"authorization": "Bearer sa-token"})
    for name, value in settings.items():
        setattr(conf, name, value)
    return conf


def test_a_json_answer_is_read_and_the_connection_is_kept_for_the_next_request(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({"kind": "Secret"}), ok({"n": 2}))]
    servers.append(server)
    transport = KubeTransport(configuration(f"http://127.0.0.1:{server.port}"))
    assert transport.request("GET", "/api/v1/namespaces/a/secrets/s") == {"kind": "Secret"}
    assert transport.request("PATCH", "/api/v1/namespaces/a/secrets/s", body={"data": {"k": "dg=="}},
                             content_type="application/merge-patch+json") == {"n": 2}
    assert server.connections == 1
    (first_line, first, _), (second_line, second, body) = server.requests
    assert first_line == "GET /api/v1/namespaces/a/secrets/s HTTP/1.1"
    assert first["host"] == f"127.0.0.1:{server.port}" and first["authorization"] == "Bearer sa-token"
    assert first["accept"] == "application/json" and "content-type" not in first
    assert second_line.startswith("PATCH ") and second["content-type"] == "application/merge-patch+json"
    assert json.loads(body) == {"data": {"k": "dg=="}} and second["content-length"] == str(len(body))


def test_a_chunked_answer_is_joined_and_its_trailer_skipped(servers: list[Server]) -> None:
    data = json.dumps({"items": [{"metadata": {"name": f"s{i}"}} for i in range(50)]}).encode()
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(data[i:i + 100]), data[i:i + 100]) for i in range(0, len(data), 100))
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\nX-Trailer: t\r\n\r\n"
    server = Server()
    server.handlers = [server.answering(answer, ok({"again": True}))]
    servers.append(server)
    transport = KubeTransport(configuration(f"http://127.0.0.1:{server.port}"))
    assert len(transport.request("GET", "/api/v1/namespaces/a/secrets")["items"]) == 50
    assert transport.request("GET", "/x") == {"again": True} and server.connections == 1


def test_an_error_answer_raises_api_exception_with_the_status_text(servers: list[Server]) -> None:
    status = json.dumps({"kind": "Status", "reason": "NotFound", "message": "secrets \"s\" not found"}).encode()
    server = Server()
    server.handlers = [server.answering(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s"
                                        % (len(status), status))]
    servers.append(server)
    with pytest.raises(ApiException) as raised:
        KubeTransport(configuration(f"http://127.0.0.1:{server.port}")).request("GET", "/api/v1/namespaces/a/secrets/s")
    assert raised.value.status == 404 and raised.value.reason == "Not Found"
    assert json.loads(raised.value.body or "")["reason"] == "NotFound" and not unavailable(raised.value)


def test_connection_close_is_honoured(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({"n": 1}, extra="Connection: close\r\n"))]
    servers.append(server)
    transport = KubeTransport(configuration(f"http://127.0.0.1:{server.port}"))
    assert [transport.request("GET", "/x")["n"] for _ in range(3)] == [1, 1, 1]
    assert server.connections == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once(servers: list[Server]) -> None:
    server = Server()
    # The first connection answers once and is then closed by the server (an idle timeout); the second serves on.
    server.handlers = [server.answering(ok({"n": 1})), server.answering(ok({"n": 2}), ok({"n": 3}))]
    servers.append(server)
    transport = KubeTransport(configuration(f"http://127.0.0.1:{server.port}"))
    assert transport.request("GET", "/x") == {"n": 1}
    assert transport.request("POST", "/api/v1/namespaces/a/secrets", body={"metadata": {"name": "s"}}) == {"n": 2}
    assert server.connections == 2
    assert [line.split()[0] for line, _, _ in server.requests] == ["GET", "POST"]  # the POST reached it once


def test_a_new_connection_closed_without_an_answer_is_not_retried(servers: list[Server]) -> None:
    seen: list[bytes] = []

    def hang_up(reader: Any, sock: socket.socket) -> None:
        seen.append(reader.readline())

    server = Server(hang_up)
    servers.append(server)
    with pytest.raises(http.client.RemoteDisconnected) as raised:
        KubeTransport(configuration(f"http://127.0.0.1:{server.port}")).request("POST", "/x", body={})
    assert unavailable(raised.value) and len(seen) == 1 and server.connections == 1


def test_a_body_cut_short_is_an_error_that_says_there_was_no_answer(servers: list[Server]) -> None:
    def cut(reader: Any, sock: socket.socket) -> None:
        read_request(reader)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")

    server = Server(cut)
    servers.append(server)
    with pytest.raises(http.client.IncompleteRead) as raised:
        KubeTransport(configuration(f"http://127.0.0.1:{server.port}")).request("GET", "/x")
    assert unavailable(raised.value)


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n",
                                    b"HTTP/1.1 200 OK\r\nX" + b"x" * 70000 + b"\r\n\r\n"],
                         ids=["not-http", "bad-status", "negative-length", "too-many-headers", "line-too-long"])
def test_a_malformed_answer_raises_an_http_exception(servers: list[Server], answer: bytes) -> None:
    server = Server()
    server.handlers = [server.answering(answer)]
    servers.append(server)
    with pytest.raises(http.client.HTTPException):
        KubeTransport(configuration(f"http://127.0.0.1:{server.port}")).request("GET", "/x")


def test_the_token_is_asked_for_on_every_request(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({}), ok({}))]
    servers.append(server)
    conf = configuration(f"http://127.0.0.1:{server.port}")
    rotations = iter(range(10))

    def refresh(config: Any) -> None:  # what the in-cluster loader's hook does with a rotated token file
        config.api_key["authorization"] = f"Bearer token-{next(rotations)}"

    conf.refresh_api_key_hook = refresh
    transport = KubeTransport(conf)
    transport.request("GET", "/x")
    transport.request("GET", "/x")
    first, second = (headers["authorization"] for _, headers, _ in server.requests)
    assert first.startswith("Bearer token-") and second.startswith("Bearer token-") and first != second


def test_a_path_prefix_in_the_server_address_and_the_query_are_kept(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({}))]
    servers.append(server)
    transport = KubeTransport(configuration(f"http://127.0.0.1:{server.port}/k8s/clusters/c-1/"))
    transport.request("GET", "/api/v1/namespaces/ops/secrets", query={"labelSelector": "a=b,c in (d)", "limit": "1"})
    assert server.requests[0][0] == ("GET /k8s/clusters/c-1/api/v1/namespaces/ops/secrets"
                                     "?labelSelector=a%3Db%2Cc+in+%28d%29&limit=1 HTTP/1.1")


def test_an_http_proxy_is_asked_for_a_tunnel_with_its_headers(servers: list[Server]) -> None:
    api = Server()
    servers.append(api)

    def proxy(reader: Any, sock: socket.socket) -> None:
        api.requests.append(read_request(reader) or ("", {}, b""))
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        api.answering(ok({"through": "proxy"}))(reader, sock)  # the "tunnel" ends here: plain HTTP in tests

    proxy_server = Server(proxy)
    servers.append(proxy_server)
    conf = configuration("http://127.0.0.1:6443", proxy=f"http://127.0.0.1:{proxy_server.port}",
                         proxy_headers={"Proxy-Authorization": "Basic cHJveHk6cA=="})
    assert KubeTransport(conf).request("GET", "/version") == {"through": "proxy"}
    (connect, connect_headers, _), (get, get_headers, _) = api.requests
    assert connect == "CONNECT 127.0.0.1:6443 HTTP/1.1"
    assert connect_headers["proxy-authorization"] == "Basic cHJveHk6cA=="
    assert get == "GET /version HTTP/1.1" and get_headers["host"] == "127.0.0.1:6443"


def test_proxy_credentials_in_the_proxy_url_are_sent_as_proxy_authorization(servers: list[Server]) -> None:
    seen: list[dict[str, str]] = []

    def proxy(reader: Any, sock: socket.socket) -> None:
        connect = read_request(reader)
        seen.append(connect[1] if connect else {})
        sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")

    server = Server(proxy)
    servers.append(server)
    conf = configuration("http://127.0.0.1:6443", proxy=f"http://ops%40corp:p%3Ass@127.0.0.1:{server.port}")
    with pytest.raises(OSError, match="HTTP 407"):
        KubeTransport(conf).request("GET", "/version")
    assert seen[0]["proxy-authorization"] == "Basic b3BzQGNvcnA6cDpzcw=="  # base64 of ops@corp:p:ss


def test_a_token_with_a_line_break_is_refused_before_it_is_sent(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({}))]
    servers.append(server)
    conf = configuration(f"http://127.0.0.1:{server.port}")
    conf.api_key = {"authorization": "Bearer t\r\nX-Injected: 1"}
    with pytest.raises(UnsupportedConfiguration, match="line break"):
        KubeTransport(conf).request("GET", "/version")
    assert server.requests == []


def test_a_proxy_that_refuses_the_tunnel_is_an_error_that_names_it(servers: list[Server]) -> None:
    proxy = Server()
    proxy.handlers = [proxy.answering(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")]
    servers.append(proxy)
    conf = configuration("http://127.0.0.1:6443", proxy=f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(OSError, match=re.escape("proxy refused a tunnel to 127.0.0.1:6443: HTTP 407")):
        KubeTransport(conf).request("GET", "/version")


def test_no_proxy_and_unsupported_proxies(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(ok({"direct": True}))]
    servers.append(server)
    conf = configuration(f"http://127.0.0.1:{server.port}", proxy="http://127.0.0.1:9", no_proxy="127.0.0.0/8")
    assert KubeTransport(conf).request("GET", "/version") == {"direct": True}
    with pytest.raises(UnsupportedConfiguration, match="socks5"):
        KubeTransport(configuration("https://127.0.0.1:6443", proxy="socks5://127.0.0.1:1080"))


@pytest.mark.parametrize(("url", "no_proxy", "bypassed"), [
    ("https://10.0.0.1:6443", "10.0.0.0/8", True),
    ("https://10.0.0.1:6443", "192.168.0.0/16,.example.com", False),
    ("https://api.prod.example.com:6443", ".example.com", True),
    ("https://api.prod.example.com:6443", "example.com", True),
    ("https://notexample.com:6443", "example.com", False),
    ("https://api.example.com:6443", "api.example.com:6443", True),
    ("https://api.example.com:6443", "api.example.com:443", False),
    ("https://[fd00::1]:6443", "fd00::/8", True),
    ("https://anything:6443", " * ", True),
    ("https://anything:6443", "", False),
])
def test_no_proxy_entries_are_read_as_client_go_reads_them(url: str, no_proxy: str, bypassed: bool) -> None:
    assert bypasses_proxy(url, no_proxy) is bypassed


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as files."""
    folder = tmp_path_factory.mktemp("tls")
    pki = Pki.create()
    files = {}
    for name, (cert, key) in {"server": pki.issue("apiserver", server=True),
                              "client": pki.issue("system:serviceaccount:ops:clientreg")}.items():
        (folder / f"{name}.crt").write_bytes(cert)
        (folder / f"{name}.key").write_bytes(key)
        files[name], files[f"{name}-key"] = folder / f"{name}.crt", folder / f"{name}.key"
    files["ca"] = folder / "ca.crt"
    files["ca"].write_bytes(_pem(pki))
    return files


def _pem(pki: Pki) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pki.ca_cert.public_bytes(serialization.Encoding.PEM)


def _tls_server(tls: dict[str, Path], *answers: bytes) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls["ca"]))
    context.load_cert_chain(tls["server"], tls["server-key"])
    context.verify_mode = ssl.CERT_REQUIRED  # the operator's client certificate, as a kubeconfig may give
    server = Server(context=context)
    server.handlers = [server.answering(*answers)]
    return server


def test_tls_with_the_kubeconfig_ca_and_client_certificate(servers: list[Server], tls: dict[str, Path]) -> None:
    server = _tls_server(tls, ok({"secure": True}))
    servers.append(server)
    conf = configuration(f"https://127.0.0.1:{server.port}", ssl_ca_cert=str(tls["ca"]), cert_file=str(tls["client"]),
                         key_file=str(tls["client-key"]))
    assert KubeTransport(conf).request("GET", "/version") == {"secure": True}


def test_tls_checks_the_certificate_against_tls_server_name(servers: list[Server], tls: dict[str, Path]) -> None:
    server = _tls_server(tls, ok({}))
    servers.append(server)
    conf = configuration(f"https://127.0.0.1:{server.port}", ssl_ca_cert=str(tls["ca"]), cert_file=str(tls["client"]),
                         key_file=str(tls["client-key"]), tls_server_name="kubernetes.default.svc")
    # The certificate names localhost and 127.0.0.1, not the tls-server-name: refused, so the name was checked.
    with pytest.raises(ssl.SSLCertVerificationError, match=re.escape("kubernetes.default.svc")):
        KubeTransport(conf).request("GET", "/version")
    conf.tls_server_name = "localhost"
    assert KubeTransport(conf).request("GET", "/version") == {}


def test_tls_refuses_a_server_the_ca_did_not_sign(servers: list[Server], tls: dict[str, Path]) -> None:
    server = _tls_server(tls, ok({}))
    servers.append(server)
    conf = configuration(f"https://127.0.0.1:{server.port}")  # the system CAs only
    with pytest.raises(ssl.SSLCertVerificationError) as raised:
        KubeTransport(conf).request("GET", "/version")
    assert unavailable(raised.value)  # an OSError: the reconciler's "API server away" path, not a crash


def test_a_malformed_header_line_is_not_quoted_in_the_error(servers: list[Server]) -> None:
    server = Server()
    server.handlers = [server.answering(b"HTTP/1.1 200 OK\r\nBearer sekrit-token-value\r\n\r\n")]
    servers.append(server)
    with pytest.raises(http.client.HTTPException) as raised:
        KubeTransport(configuration(f"http://127.0.0.1:{server.port}")).request("GET", "/x")
    assert "sekrit" not in str(raised.value) and "without ':'" in str(raised.value)
