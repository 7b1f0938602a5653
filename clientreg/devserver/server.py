"""Running the dev server: :class:`DevServer` in a background thread, :func:`serve` in the foreground."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, make_server

from .._addresses import is_loopback_host
from .app import DEV_PREFIX, create_app
from .counters import RequestCounter
from .settings import Deployment, DevServerSettings
from .storage import Storage

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

_READY_TIMEOUT_SECONDS = 5.0
# How often the serving loop looks for stop(): tests start and stop many servers.
_POLL_SECONDS = 0.05


def _not_ready(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("the dev server app is set right after the socket is bound")


def _allow_plain_http_when_reached_by_name(deployment: Deployment) -> None:
    # Authlib refuses token requests over http unless the URL names a loopback host. A dev server
    # reached through another name (a container, a LAN address, a proxy) is plain http on purpose.
    # The switch is process-wide, so it is only thrown in that case, never for a loopback-only server.
    issuer_host = urlsplit(deployment.issuer).hostname or ""
    if is_loopback_host(deployment.settings.host) and is_loopback_host(issuer_host):
        return
    if "AUTHLIB_INSECURE_TRANSPORT" not in os.environ:
        log.warning("dev server reachable as %s: allowing plain-http OAuth in this process", issuer_host)
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"


class DevServer:
    """The embedded authorization server, served from a background thread.

    ``with DevServer(settings) as server: ...`` starts it and stops it; ``server.issuer`` is the URL
    to discover it by.
    """

    def __init__(self, settings: DevServerSettings | None = None) -> None:
        self.settings = settings or DevServerSettings()
        self.requests = RequestCounter()
        self._http: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._storage: Storage | None = None
        self._deployment: Deployment | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> DevServer:
        if self._http is not None:
            raise RuntimeError("the dev server is already running")
        storage = Storage(self.settings.db_path, self.settings.clock)
        http: BaseWSGIServer | None = None
        try:
            # The issuer names the port, and port 0 is only known once bound: bind first, then build
            # the app and hand it to the bound server.
            http = make_server(self.settings.host, self.settings.port, _not_ready, threaded=True)
            deployment = Deployment(self.settings, http.server_port)
            _allow_plain_http_when_reached_by_name(deployment)
            http.app = create_app(deployment, storage, self.requests)
        except BaseException:
            if http is not None:
                http.server_close()
            storage.close()
            raise
        self._http, self._storage, self._deployment = http, storage, deployment
        self._thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": _POLL_SECONDS},
                                        daemon=True, name=f"clientreg-dev-server:{http.server_port}")
        self._thread.start()
        self._wait_until_accepting()
        return self

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        host = self.settings.host if self.settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        while True:
            try:
                with socket.create_connection((host.strip("[]"), self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        http, thread, storage = self._http, self._thread, self._storage
        self._http = self._thread = self._storage = None
        if http is not None:
            http.shutdown()
            http.server_close()
        if thread is not None:
            thread.join(timeout=_READY_TIMEOUT_SECONDS)
        if storage is not None:
            storage.close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- where it is ------------------------------------------------------------------------------

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise RuntimeError("the dev server has not been started")
        return self._deployment

    @property
    def port(self) -> int:
        return self.deployment.port

    @property
    def issuer(self) -> str:
        return self.deployment.issuer

    @property
    def registration_endpoint(self) -> str:
        return self.deployment.registration_endpoint

    @property
    def token_endpoint(self) -> str:
        return self.deployment.token_endpoint

    @property
    def dev_url(self) -> str:
        """Base URL of the ``/_dev/`` helpers: at the server's root even when the issuer has a path."""
        issuer = urlsplit(self.issuer)
        return f"{issuer.scheme}://{issuer.netloc}{DEV_PREFIX}"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(settings: DevServerSettings, *, out: TextIO | None = None) -> None:
    """Run the dev server in the foreground until Ctrl-C (or SIGTERM), telling ``out`` where it is."""
    out = out or sys.stdout
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl-C may land anywhere, even while starting or printing: every place ends the same quiet way.
    try:
        with DevServer(settings) as server:
            _announce(server, out)
            # Short sleeps, not one untimed wait: a signal delivered to the serving thread is only
            # handled when the main thread next wakes up.
            while True:
                time.sleep(_POLL_SECONDS * 10)
    except KeyboardInterrupt:
        print("stopped", file=out, flush=True)


def _announce(server: DevServer, out: TextIO) -> None:
    deployment, settings = server.deployment, server.settings
    print(f"clientreg dev server: issuer {deployment.issuer}", file=out)
    print(f"  registration endpoint {deployment.registration_endpoint}", file=out)
    if settings.initial_access_token is not None:
        print("  registration requires the initial access token you set (as a Bearer token)", file=out)
    else:
        print("  registration is open (no initial access token)", file=out)
    print(f"  storage: {settings.db_path or 'in memory, lost on exit'}", file=out)
    if deployment.serves_dev_endpoints:
        print(f"  test helpers under {server.dev_url}/ (clients, requests, reset-counters)", file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)
