"""A fault-injecting reverse proxy for loopback tests: put it in front of the dev AS and throw switches.

Every switch is driven by counts, never by the clock, so a test that uses it is deterministic:

* :meth:`FaultProxy.fail_next` answers the next N matching requests with a 5xx without forwarding them;
* :meth:`FaultProxy.down` / :meth:`FaultProxy.up` close and reopen the listening socket (connection
  refused), and :meth:`FaultProxy.down_after_registrations` goes down right after the K-th registration;
* :meth:`FaultProxy.delay` holds every request for a while before forwarding it (a slow AS);
* :meth:`FaultProxy.rate_limit` answers the first N arrivals of every distinct request with 429 and
  ``Retry-After``;
* :meth:`FaultProxy.hold_registrations_after` lets K registrations through, then holds the rest (and, in
  ``window`` mode, forwards one more but holds the AS's answer to it) until :meth:`FaultProxy.release`
  drops them: a way to SIGKILL a client at a known point.

Every request's arrival is logged (monotonic time, method, path, a key naming "the same request" across
retries, the status answered). The proxy never logs bodies, so no credential lands in a test's output.
Loopback only; one connection per request (``Connection: close``), so "down" really means refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer",
                         "upgrade", "proxy-connection"})
_HOLD_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class Arrival:
    at: float
    method: str
    path: str
    key: str
    status: int
    retry_after: float | None = None


@dataclass
class Registration:
    """What the AS answered to one forwarded registration (kept in memory only, for cleanup)."""

    client_id: str
    registration_client_uri: str | None = field(repr=False)
    registration_access_token: str | None = field(repr=False)
    client_secret: str | None = field(repr=False)
    delivered: bool = False


class FaultProxy:
    def __init__(self, upstream_port: int | None = None, *, port: int = 0) -> None:
        self.upstream_port = upstream_port
        # Reentrant: wait_for's predicate runs under the lock and may use the locked properties
        # (forwarded_registrations, count, issued_secrets).
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.arrivals: list[Arrival] = []
        self.registrations: list[Registration] = []
        self._fail: list[int] = []
        self._fail_only_registration = False
        self._delay = 0.0
        self._limit_n = 0
        self._limit_retry_after = 0.0
        self._seen: Counter[str] = Counter()
        self._admitted = 0
        self._going_down = False
        self._down_after: int | None = None
        self._hold_after: int | None = None
        self._hold_window = False
        self._window_used = False
        self.window_answer: Registration | None = None
        self.held = 0
        self._released = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.up()

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listen (again) on the same port."""
        if self._server is not None:
            return
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._going_down = False
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"faultproxy:{self.port}")
        self._thread.start()

    def down(self) -> None:
        """Stop listening: new connections are refused until :meth:`up`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def close(self) -> None:
        self.release()
        self.down()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- switches --------------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, *, only_registration: bool = False) -> None:
        with self._lock:
            self._fail = [status] * n
            self._fail_only_registration = only_registration

    def delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def rate_limit(self, n: int, retry_after: float) -> None:
        """429 with Retry-After for the first ``n`` arrivals of every distinct request (see ``key``)."""
        with self._lock:
            self._limit_n, self._limit_retry_after = n, retry_after
            self._seen.clear()

    def down_after_registrations(self, k: int) -> None:
        """Go down (refusing connections) once ``k`` more registrations have been forwarded."""
        with self._lock:
            self._admitted = len(self.registrations)
            self._down_after = self._admitted + k

    def hold_registrations_after(self, k: int, *, window: bool = False) -> None:
        with self._lock:
            k += len(self.registrations)
            self._hold_after, self._hold_window, self._window_used = k, window, False
            self._admitted = len(self.registrations)
            self._released = False

    def release(self) -> None:
        """Held requests are dropped (never forwarded): their client is gone."""
        with self._changed:
            self._released = True
            self._changed.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._fail, self._delay, self._limit_n, self._down_after = [], 0.0, 0, None
            self._hold_after = None
            self._released = True
            self._changed.notify_all()

    # --- what happened ---------------------------------------------------------------------------------

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        """Block until ``predicate(self)`` is true (a bound on waiting, not an assertion on time)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fault proxy: condition not reached in {timeout}s")
                self._changed.wait(min(left, 0.1))

    def count(self, method: str, path_prefix: str, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for a in self.arrivals if a.method == method and a.path.startswith(path_prefix)
                       and (status is None or a.status == status))

    @property
    def forwarded_registrations(self) -> int:
        with self._lock:
            return len(self.registrations)

    def issued_secrets(self) -> list[str]:
        with self._lock:
            return [s for r in self.registrations for s in (r.client_secret, r.registration_access_token) if s]

    # --- the handler's side ----------------------------------------------------------------------------

    def _log(self, method: str, path: str, key: str, status: int, at: float,
             retry_after: float | None = None) -> None:
        with self._changed:
            self.arrivals.append(Arrival(at, method, path, key, status, retry_after))
            self._changed.notify_all()


def request_key(method: str, path: str, body: bytes) -> str:
    """The same request across retries: method, path and body (a registration's body names its client)."""
    return f"{method} {path} {hashlib.sha256(body).hexdigest()[:16]}"


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET

    def _handle(self) -> None:
        at = time.monotonic()
        proxy = self.owner
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        method, path = self.command, self.path
        key = request_key(method, path, body)
        if path.startswith("/_dev/"):
            self._forward(method, path, body, at, key, log=False)
            return
        registration = method == "POST" and path.rstrip("/").endswith("/register")
        with proxy._changed:
            if proxy._fail and (registration or not proxy._fail_only_registration):
                status = proxy._fail.pop(0)
                self._answer(status, {"error": "server_error", "error_description": "injected fault"})
                proxy.arrivals.append(Arrival(at, method, path, key, status))
                proxy._changed.notify_all()
                return
            if proxy._limit_n:
                proxy._seen[key] += 1
                if proxy._seen[key] <= proxy._limit_n:
                    retry_after = proxy._limit_retry_after
                    self._answer(429, {"error": "slow_down"}, {"Retry-After": f"{retry_after:g}"})
                    proxy.arrivals.append(Arrival(at, method, path, key, 429, retry_after))
                    proxy._changed.notify_all()
                    return
            delay = proxy._delay
            hold_answer = go_down = False
            if proxy._going_down:
                # Between the decision to go down and the socket closing: as good as down, never forwarded.
                proxy.arrivals.append(Arrival(at, method, path, key, 0))
                self.close_connection = True
                return
            if registration:
                if proxy._hold_after is not None and proxy._admitted >= proxy._hold_after:
                    if proxy._hold_window and not proxy._window_used:
                        proxy._window_used = True
                        hold_answer = True
                    else:
                        # Held before forwarding: the AS never sees it, whatever happens to the client.
                        proxy.held += 1
                        proxy._changed.notify_all()
                        deadline = time.monotonic() + _HOLD_LIMIT_SECONDS
                        while not proxy._released and time.monotonic() < deadline:
                            proxy._changed.wait(0.1)
                        proxy.arrivals.append(Arrival(at, method, path, key, 0))
                        self.close_connection = True
                        return
                proxy._admitted += 1
                if proxy._down_after is not None and proxy._admitted >= proxy._down_after:
                    proxy._down_after = None
                    proxy._going_down = go_down = True
        if delay:
            time.sleep(delay)
        status, headers, payload = self._upstream(method, path, body)
        if status == 0:
            # The AS is not there at all: the same as being down.
            self.close_connection = True
            proxy._log(method, path, key, 0, at)
            return
        reg: Registration | None = None
        if registration and status == 201:
            data = json.loads(payload)
            reg = Registration(data["client_id"], data.get("registration_client_uri"),
                               data.get("registration_access_token"), data.get("client_secret"))
            with proxy._changed:
                proxy.registrations.append(reg)
                if hold_answer:
                    proxy.held += 1
                    proxy.window_answer = reg
                proxy._changed.notify_all()
        if hold_answer:
            with proxy._changed:
                deadline = time.monotonic() + _HOLD_LIMIT_SECONDS
                while not proxy._released and time.monotonic() < deadline:
                    proxy._changed.wait(0.1)
            proxy._log(method, path, key, 0, at)
            self.close_connection = True
            return
        with contextlib.suppress(OSError):
            self._relay(status, headers, payload)
            if reg is not None:
                reg.delivered = True
        proxy._log(method, path, key, status, at)
        if go_down:
            threading.Thread(target=proxy.down, daemon=True).start()

    def _upstream(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.owner.upstream_port is None:
            return 0, [], b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection("127.0.0.1", self.owner.upstream_port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP], \
                payload
        except OSError:
            return 0, [], b""
        finally:
            conn.close()

    def _forward(self, method: str, path: str, body: bytes, at: float, key: str, *, log: bool) -> None:
        status, headers, payload = self._upstream(method, path, body)
        if status:
            self._relay(status, headers, payload)
        if log:
            self.owner._log(method, path, key, status, at)

    def _relay(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
