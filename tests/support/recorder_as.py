"""A minimal RFC 7591/7592 authorization server on 127.0.0.1 that keeps every request it receives.

The tenancy e2e suite plays a hostile tenant whose own AS is the exfiltration channel: to prove that a
victim Secret's value never left the cluster, it asks this AS whether the value ever arrived, in any
header or body. The dev AS counts requests by route but does not keep what they carried; this one keeps
everything (tests only: it stores tokens in memory on purpose).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def carries(self, value: str) -> bool:
        text = value.encode()
        return text in self.body or text in self.path.encode() or any(
            text in f"{k}: {v}".encode() for k, v in self.headers.items())


class RecorderAS:
    """``with RecorderAS(initial_access_token="...") as rec:`` serves at ``rec.issuer`` until the block ends.

    Registration needs the initial access token when one is given (401 otherwise, as RFC 7591 §3 allows);
    registered clients answer RFC 7592 reads, updates and deletes with their registration access token.
    Discovery advertises CIMD support so ``registration: cimd`` clients may use it too.
    """

    def __init__(self, *, initial_access_token: str | None = None, name: str = "recorder") -> None:
        self.initial_access_token = initial_access_token
        self.name = name
        self.arrivals: list[Arrival] = []
        self.clients: dict[str, dict[str, Any]] = {}
        #: client_id → registration access token it was issued (what an attacker would like to steal).
        self.rats: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"recorder-{name}", daemon=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what the tests ask ----------------------------------------------------------------------

    def saw(self, value: str) -> bool:
        """True when any request carried ``value`` anywhere (path, a header, the body)."""
        with self._lock:
            return any(a.carries(value) for a in self.arrivals)

    def registrations(self) -> list[dict[str, Any]]:
        """The bodies of every registration request that arrived, accepted or not."""
        with self._lock:
            found = [a for a in self.arrivals if a.method == "POST" and a.path == "/register"]
        return [json.loads(a.body or b"{}") for a in found]

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> RecorderAS:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the server --------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "registration_endpoint": f"{self.issuer}/register",
                "token_endpoint": f"{self.issuer}/token", "client_id_metadata_document_supported": True,
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "none", "private_key_jwt"]}

    def _answer(self, client_id: str) -> dict[str, Any]:
        return {**self.clients[client_id], "registration_access_token": self.rats[client_id],
                "registration_client_uri": f"{self.issuer}/register/{client_id}"}

    def serve(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            self.arrivals.append(Arrival(method, path, headers, body))
            if method == "GET" and path in ("/.well-known/oauth-authorization-server",
                                            "/.well-known/openid-configuration"):
                return 200, self._metadata()
            bearer = headers.get("authorization", "")
            if method == "POST" and path == "/register":
                if self.initial_access_token and bearer != f"Bearer {self.initial_access_token}":
                    return 401, {"error": "invalid_token"}
                try:
                    metadata = json.loads(body)
                except ValueError:
                    return 400, {"error": "invalid_client_metadata"}
                client_id = f"{self.name}-{secrets.token_hex(6)}"
                self.clients[client_id] = {**metadata, "client_id": client_id, "client_id_issued_at": 0,
                                           "client_secret": secrets.token_urlsafe(18), "client_secret_expires_at": 0}
                self.rats[client_id] = f"RAT-{self.name}-{secrets.token_hex(12)}"
                return 201, self._answer(client_id)
            if path.startswith("/register/"):
                client_id = path.removeprefix("/register/")
                if client_id not in self.clients or bearer != f"Bearer {self.rats[client_id]}":
                    return 401, {"error": "invalid_token"}
                if method == "GET":
                    return 200, self._answer(client_id)
                if method == "DELETE":
                    del self.clients[client_id]
                    return 204, None
                if method == "PUT":
                    update = json.loads(body)
                    keep = {k: self.clients[client_id][k] for k in ("client_secret", "client_id_issued_at",
                                                                     "client_secret_expires_at")}
                    self.clients[client_id] = {**update, **keep, "client_id": client_id}
                    return 200, self._answer(client_id)
            return 404, {"error": "not_found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1024 * 1024)) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = recorder.serve(self.command, self.path, headers, body)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                if answer is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests carry tokens: nothing goes to stderr

        return Handler
