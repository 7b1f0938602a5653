"""An informer: list a resource, then watch it from the list's resourceVersion, keeping a local cache.

client-go's reflector in small: a paged list fills the cache (and tells the handler what appeared,
changed or went since the last list), a watch with bookmarks carries on from the list's
resourceVersion, a watch that ends (the server's ``timeoutSeconds``, a dropped connection) is
started again from the last resourceVersion seen, and only ``410 Gone`` (that version is compacted
away) costs a new list. The handler runs on the event loop and must be quick: it enqueues work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from clientreg_kube.cluster import Body

from .kubeapi import ApiError, AsyncKube

log = logging.getLogger(__name__)

Key = tuple[str, str]
#: (event type: ADDED, MODIFIED or DELETED; the object as the API server sent it; the cached one before)
Handler = Callable[[str, Body, Body | None], None]
LIST_PAGE = 500
#: Seconds the API server keeps one watch request open (it ends it then; the informer starts the next).
WATCH_SECONDS = 300


def key_of(obj: Body) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _whole(obj: Body) -> Body:
    return obj


class Gone(Exception):
    """The resourceVersion to watch from is too old (HTTP 410): list again."""


class Informer:
    """``keep`` trims what the cache holds of each object (only what the handlers compare), to keep memory
    flat at thousands of objects; the handler always gets the whole object of the event."""

    def __init__(self, api: AsyncKube, path: str, handler: Handler, *, label_selector: str | None = None,
                 keep: Callable[[Body], Body] = _whole, watch_seconds: int = WATCH_SECONDS,
                 retry_max: float = 30.0) -> None:
        self.api, self.path, self.handler = api, path, handler
        self.label_selector = label_selector
        self.keep = keep
        self.watch_seconds = watch_seconds
        self.retry_max = retry_max
        self.store: dict[Key, Body] = {}
        #: Set once the first list is in the cache.
        self.synced = asyncio.Event()

    def _params(self) -> dict[str, str]:
        return {"labelSelector": self.label_selector} if self.label_selector else {}

    async def run(self) -> None:
        """List and watch until cancelled; API errors and dropped connections are retried with backoff."""
        version: str | None = None
        first_delay = delay = min(0.5, self.retry_max)
        loop = asyncio.get_running_loop()
        while True:
            try:
                if version is None:
                    version = await self._list()
                started = loop.time()
                version = await self._watch(version)
                if loop.time() - started > 1.0:
                    delay = first_delay  # a watch that ran and ended normally: start the next one at once
                else:  # ended as soon as it began (a proxy, a server going away): not in a tight loop
                    await asyncio.sleep(delay)
                    delay = min(self.retry_max, delay * 2)
            except Gone:
                version = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unreachable, restarting (5xx), 403 until RBAC settles: later
                # ApiError's text is method, path, status and reason; nothing else is quoted (bodies hold Secrets).
                text = str(exc) if isinstance(exc, ApiError) else type(exc).__name__
                log.warning("watch of %s failed (%s); again in %.1fs", self.path, text, delay)
                await asyncio.sleep(delay)
                delay = min(self.retry_max, delay * 2)

    async def _list(self) -> str:
        seen: dict[Key, Body] = {}
        params = {**self._params(), "limit": str(LIST_PAGE)}
        while True:
            try:
                page = await self.api.request("GET", self.path, params=params)
            except ApiError as exc:
                if exc.status == 410 and "continue" in params:  # the continue token expired: start over
                    params.pop("continue")
                    seen.clear()
                    continue
                raise
            for item in page.get("items") or []:
                seen[key_of(item)] = item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            params["continue"] = token
        version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        gone = [key for key in self.store if key not in seen]
        for key, item in seen.items():
            old = self.store.get(key)
            if old is not None and _version(old) == _version(item):
                continue
            self.store[key] = self.keep(item)
            self._deliver("ADDED" if old is None else "MODIFIED", item, old)
        for key in gone:
            old = self.store.pop(key)
            self._deliver("DELETED", old, old)
        self.synced.set()
        return version

    async def _watch(self, version: str) -> str:
        params = {**self._params(), "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(self.watch_seconds)}
        try:
            async for event in self.api.watch(self.path, params, timeout=self.watch_seconds + 30):
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiError(int(obj.get("code") or 500), "WATCH", self.path, str(obj.get("reason") or ""))
                version = _version(obj) or version
                if kind == "BOOKMARK":
                    continue
                key = key_of(obj)
                old = self.store.get(key)
                if kind == "DELETED":
                    self.store.pop(key, None)
                else:
                    self.store[key] = self.keep(obj)
                self._deliver(kind, obj, old)
        except ApiError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise
        return version

    def _deliver(self, kind: str, obj: Body, old: Body | None) -> None:
        try:
            self.handler(kind, obj, old)
        except Exception:  # one bad object must not stop the watch of all the others
            log.exception("handling %s of %s/%s failed", kind, *key_of(obj))


def _version(obj: Body) -> str:
    meta: Any = obj.get("metadata") or {}
    return str(meta.get("resourceVersion") or "")
