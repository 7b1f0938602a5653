"""The operator's asynchronous line to the API server: the informers' lists and watch streams.

aiohttp (the endpoints server's library) over the same credentials as the reconciler's synchronous
transport (clientreg_kube/transport.py, from a ``kubernetes.client.Configuration``: a kubeconfig, or the
in-cluster ServiceAccount whose token the configuration's refresh hook re-reads). The reconciles themselves
stay synchronous in worker threads (see reconciler.py), and so do the controller's finalizer patches; only what
must not hold a thread (watch streams that stay open for minutes, and the lists they start from) goes through here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from clientreg_kube.cluster import Body
from clientreg_kube.transport import authorization, ssl_context

#: Connections besides the watch streams, for the lists (each informer's first, and one after a 410 Gone): the
#: informers start together, but each connection keeps a 256 KiB buffer (asyncio) and the high-water mark stays.
REQUEST_CONNECTIONS = 2


#: Seconds between two runs of the client configuration's token refresh hook.
TOKEN_REFRESH_SECONDS = 30.0


def throttle_token_refresh(configuration: Any, every: float = TOKEN_REFRESH_SECONDS) -> None:
    """Run the configuration's ``refresh_api_key_hook`` at most once every ``every`` seconds, not before every
    request. The kubernetes client calls it whenever a request asks for the token; the kubeconfig loader's hook
    then re-applies the whole kubeconfig (the host setter scans the environment for proxies): 5.5 % of the
    operator's CPU at 1,000 clients (docs/performance.md). What the hook is for still happens: a token with
    an expiry is renewed 5 minutes before it (the loader's margin), the in-cluster token file is re-read
    every minute or so (the loader's own period), both far longer than ``every``."""
    hook: Callable[[Any], None] | None = configuration.refresh_api_key_hook
    if hook is None:
        return
    inner: list[Callable[[Any], None]] = [hook]
    last = [float("-inf")]

    def refresh(conf: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= every:  # two threads at once may both run it: harmless
            last[0] = now
            inner[0](conf)
            # The kubeconfig loader's hook installs itself again each time it runs: call that one next time.
            installed = conf.refresh_api_key_hook
            if installed is not None and installed is not refresh:
                inner[0] = installed
            conf.refresh_api_key_hook = refresh

    configuration.refresh_api_key_hook = refresh


class ApiError(Exception):
    """The API server answered a status other than 2xx (the body is not kept: it may echo an object)."""

    def __init__(self, status: int, method: str, path: str, reason: str = "") -> None:
        super().__init__(f"{method} {path}: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason


def _status_reason(data: bytes) -> str:
    try:
        found = json.loads(data)
    except ValueError:
        return ""
    return str(found.get("reason") or "") if isinstance(found, dict) else ""


class AsyncKube:
    def __init__(self, configuration: Any, *, watch_streams: int) -> None:
        self.configuration = configuration
        self.server = str(configuration.host).rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._limit = watch_streams + REQUEST_CONNECTIONS

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = authorization(self.configuration)  # asked for each time: see transport.authorization
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=ssl_context(self.configuration)))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, content_type: str | None = None, timeout: float = 60.0) -> Body:
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(method, self.server + path, params=params, data=data,
                                        headers=self._headers(content_type if data is not None else None),
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            raw = await response.read()
            if not 200 <= response.status <= 299:
                raise ApiError(response.status, method, path, _status_reason(raw))
            result: Body = json.loads(raw) if raw else {}
            return result

    async def watch(self, path: str, params: dict[str, str], *, timeout: float) -> AsyncIterator[Body]:
        """The events of one watch request, one JSON object a line, until the server ends it (its
        ``timeoutSeconds``) or ``timeout`` seconds pass without a byte (a silently dropped connection)."""
        query = {**params, "watch": "true"}
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout)
        async with self.session.get(self.server + path, params=query, headers=self._headers(),
                                    timeout=client_timeout) as response:
            if response.status != 200:
                raise ApiError(response.status, "WATCH", path, _status_reason(await response.read()))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
