"""One HTTP/1.1 connection: a request out, its answer in (RFC 9112), and nothing more.

The API server is the only peer (a Go ``net/http`` server, perhaps behind a proxy reached with CONNECT), and
every exchange is a small JSON request and a JSON answer framed by Content-Length or chunked coding. That
is the whole job, so it is done here in a few lines instead of through ``http.client``, whose header
parsing goes through the ``email`` package: at 1,000 new OAuthClients ``http.client`` cost the operator
twice the CPU of this for the same requests (``python bench/kube_requests.py``).

Failures raise ``http.client``'s own exception classes (``RemoteDisconnected``, ``IncompleteRead``,
``BadStatusLine``, ``LineTooLong``: all ``http.client.HTTPException``) or ``OSError``, so callers tell "no
answer" from an answer the way they would with the standard library.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from dataclasses import dataclass

#: Longest status or header line accepted (http.client's own limit).
MAX_LINE = 65536
#: Most header lines accepted in one answer (http.client's own limit).
MAX_HEADERS = 100


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes
    #: False when the server said Connection: close, spoke HTTP/1.0, or framed the body by closing.
    reusable: bool


class Connection:
    """A socket to the server (TLS when a context is given) with a buffered reader on it. One request at a
    time; not thread-safe (the transport hands a connection to one thread at a time)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        #: Exchanges completed on this connection: a failure on a used one may be a server's idle close.
        self.exchanges = 0

    @classmethod
    def open(cls, address: tuple[str, int], *, timeout: float, context: ssl.SSLContext | None,
             server_hostname: str | None, tunnel: tuple[str, int, dict[str, str]] | None = None) -> Connection:
        """Connect to ``address`` (or to a proxy first, then CONNECT through it to ``address``) and start TLS
        with SNI and certificate name ``server_hostname`` (the address's host when None)."""
        host, port = address
        target = tunnel[:2] if tunnel else address
        sock = socket.create_connection(target, timeout=timeout)
        try:
            if tunnel:
                _connect_through(sock, host, port, tunnel[2])
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=server_hostname or host)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def exchange(self, head: bytes, payload: bytes) -> Answer:
        """Send a request (``head`` ends with the empty line) and read its answer."""
        self.sock.sendall(head + payload)
        method = head.split(b" ", 1)[0]
        while True:
            version, status, reason = _status_line(self._reader)
            headers = _headers(self._reader)
            if not 100 <= status < 200:
                break  # an interim answer (100 Continue, 103 Early Hints) is followed by the real one
        body, framed = _body(self._reader, headers, status, head_request=method == b"HEAD")
        connection = headers.get(b"connection", b"").lower()
        reusable = framed and version == b"HTTP/1.1" and b"close" not in connection
        self.exchanges += 1
        return Answer(status, reason, body, reusable)


def _readline(reader: io.BufferedReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("header line")
    return line


def _status_line(reader: io.BufferedReader) -> tuple[bytes, int, str]:
    line = _readline(reader)
    if not line:
        raise http.client.RemoteDisconnected("the server closed the connection without an answer")
    version, _, rest = line.rstrip(b"\r\n").partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(line[:80].decode("latin-1"))
    return version, int(code), reason.decode("latin-1")


def _headers(reader: io.BufferedReader) -> dict[bytes, bytes]:
    """The header fields by lower-case name (a repeated field's values joined with commas, RFC 9110 §5.3)."""
    fields: dict[bytes, bytes] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _readline(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise http.client.IncompleteRead(b"", None)
        name, colon, value = line.partition(b":")
        if not colon:
            # Not quoted: a header line may carry a cookie or a token a proxy added.
            raise http.client.HTTPException(f"a header line without ':' ({len(line)} bytes)")
        key, value = name.strip().lower(), value.strip()
        fields[key] = fields[key] + b", " + value if key in fields else value
    raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")


def _body(reader: io.BufferedReader, headers: dict[bytes, bytes], status: int, *,
          head_request: bool) -> tuple[bytes, bool]:
    """The body and whether its end was framed (so the connection can carry another exchange)."""
    if head_request or status in (204, 304):
        return b"", True
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return _chunked(reader), True
    if b"content-length" in headers:
        try:
            length = int(headers[b"content-length"])
        except ValueError:
            raise http.client.HTTPException("malformed Content-Length") from None
        if length < 0:
            raise http.client.HTTPException("malformed Content-Length")
        return _exactly(reader, length), True
    return reader.read(), False  # framed by the server closing the connection


def _exactly(reader: io.BufferedReader, length: int) -> bytes:
    data = reader.read(length)
    if len(data) < length:
        raise http.client.IncompleteRead(data, length - len(data))
    return data


def _chunked(reader: io.BufferedReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = _readline(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size == 0:
            while _readline(reader) not in (b"\r\n", b"\n", b""):  # trailer fields: not used
                pass
            return b"".join(parts)
        parts.append(_exactly(reader, size))
        _readline(reader)  # the CRLF after the chunk


def _connect_through(sock: socket.socket, host: str, port: int, proxy_headers: dict[str, str]) -> None:
    """Ask an HTTP proxy for a tunnel to host:port (RFC 9110 §9.3.6); raise unless it answers 2xx."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}",
             *(f"{name}: {value}" for name, value in proxy_headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = sock.makefile("rb")
    try:
        _, status, reason = _status_line(reader)
        _headers(reader)
    finally:
        reader.close()
    if not 200 <= status <= 299:
        raise OSError(f"the proxy refused a tunnel to {authority}: HTTP {status} {reason}".rstrip())
