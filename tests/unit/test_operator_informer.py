"""The informer against a scripted API server: list, watch from the list's version, carry on after a
watch ends, list again on 410 Gone (telling what vanished meanwhile); and what the operator watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from clientreg_operator.informer import Informer
from clientreg_operator.kubeapi import ApiError


def _obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "t", "resourceVersion": rv}}


class _Server:
    """Lists and watch streams played back in order; records the parameters each was asked with."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[dict[str, Any]] | int]) -> None:
        self.lists, self.watches = lists, watches
        self.asked: list[tuple[str, dict[str, str]]] = []
        self.finished = asyncio.Event()

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      **_: Any) -> dict[str, Any]:
        self.asked.append(("list", dict(params or {})))
        items = self.lists.pop(0)
        return {"metadata": {"resourceVersion": str(10 * len(self.asked))}, "items": items}

    async def watch(self, path: str, params: dict[str, str], *, timeout: float) -> AsyncIterator[dict[str, Any]]:
        self.asked.append(("watch", dict(params)))
        if not self.watches:
            self.finished.set()
            await asyncio.Event().wait()  # stays open, like a quiet watch
        script = self.watches.pop(0)
        if isinstance(script, int):
            raise ApiError(script, "WATCH", path)
        for event in script:
            yield event


def _run(server: _Server, **kwargs: Any) -> tuple[list[tuple[str, str]], Informer]:
    seen: list[tuple[str, str]] = []
    informer = Informer(server, "/apis/x/v1/things", lambda kind, obj, old: seen.append(  # type: ignore[arg-type]
        (kind, obj["metadata"]["name"])), retry_max=0.01, **kwargs)

    async def scenario() -> None:
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(server.finished.wait(), 5)
        task.cancel()

    asyncio.run(scenario())
    return seen, informer


def test_watches_from_the_listed_version_and_carries_on_from_the_last_event() -> None:
    server = _Server([[_obj("a", "5")]], [
        [{"type": "ADDED", "object": _obj("b", "11")}, {"type": "BOOKMARK", "object": _obj("", "12")}],
        [{"type": "MODIFIED", "object": _obj("a", "13")}, {"type": "DELETED", "object": _obj("b", "14")}],
    ])
    seen, informer = _run(server, label_selector="shard=1")
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [params.get("resourceVersion") for what, params in server.asked if what == "watch"]
    assert versions == ["10", "12", "14"]  # the bookmark moved it on; a watch that ended costs no list
    assert all(params["labelSelector"] == "shard=1" for _, params in server.asked)
    assert set(informer.store) == {("t", "a")}


def test_gone_lists_again_and_tells_what_vanished_meanwhile() -> None:
    server = _Server([[_obj("a", "5"), _obj("b", "6")], [_obj("a", "5"), _obj("c", "20")]], [
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}],
    ])
    seen, informer = _run(server)
    # "a" unchanged: nothing to tell; "b" went while nobody watched; "c" came.
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("DELETED", "b")]
    assert [what for what, _ in server.asked] == ["list", "watch", "list", "watch"]
    assert set(informer.store) == {("t", "a"), ("t", "c")}


def test_a_failing_watch_is_retried_from_the_same_version() -> None:
    server = _Server([[_obj("a", "5")]], [503, 403, [{"type": "ADDED", "object": _obj("b", "11")}]])
    seen, _ = _run(server)
    assert seen == [("ADDED", "a"), ("ADDED", "b")]
    assert [params.get("resourceVersion") for what, params in server.asked if what == "watch"] == \
        ["10", "10", "10", "11"]


@pytest.mark.parametrize("watch_credentials", [True, False])
def test_secrets_are_watched_only_with_watch_credentials_and_only_the_operators_own(
        watch_credentials: bool) -> None:
    """The chart's secrets.watchCredentials=false drops list/watch on Secrets: nothing may watch them then
    (the watch would fail with 403 forever)."""
    from clientreg_operator.controller import ClientController
    from clientreg_operator.servers import ServerChecker
    from clientreg_operator.watches import informers, watch_streams_for

    controller = ClientController(type("R", (), {"backoff_max": 1.0})())  # type: ignore[arg-type]
    checker = ServerChecker(None, cluster_resource_namespace="ops")  # type: ignore[arg-type]
    found = informers(None, controller, checker, namespaces=("a", "b"),  # type: ignore[arg-type]
                      label_selector="shard=1", watch_credentials=watch_credentials)
    controller.executor.shutdown()
    paths = {i.path: i.label_selector for i in found}
    secrets = {p: s for p, s in paths.items() if p.endswith("/secrets")}
    assert len(found) == watch_streams_for(("a", "b"), watch_credentials=watch_credentials)
    if watch_credentials:
        assert secrets == {f"/api/v1/namespaces/{ns}/secrets": "app.kubernetes.io/managed-by=clientreg-operator"
                           for ns in ("a", "b")}
    else:
        assert not secrets
    assert paths["/apis/clientreg.dev/v1alpha1/namespaces/a/oauthclients"] == "shard=1"
    assert paths["/apis/clientreg.dev/v1alpha1/clusterauthorizationservers"] is None


def test_cluster_wide_watches_one_stream_per_resource() -> None:
    from clientreg_operator.watches import watch_streams_for

    assert watch_streams_for(()) == 4 and watch_streams_for((), watch_credentials=False) == 3


def test_reconciles_read_servers_from_the_watch_cache_once_it_has_listed() -> None:
    from clientreg_operator.controller import ClientController
    from clientreg_operator.servers import ServerChecker
    from clientreg_operator.watches import ServerCache, informers

    fetched: list[tuple[str, str | None, str]] = []

    def fallback(kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        fetched.append((kind, namespace, name))
        return {"fetched": True}

    cache = ServerCache(fallback)
    controller = ClientController(type("R", (), {"backoff_max": 1.0})())  # type: ignore[arg-type]
    informers(None, controller, ServerChecker(None, cluster_resource_namespace="ops"),  # type: ignore[arg-type]
              namespaces=("a",), label_selector=None, watch_credentials=False, servers=cache)
    controller.executor.shutdown()
    assert cache("AuthorizationServer", "a", "dev") == {"fetched": True}  # not listed yet: read it
    namespaced, cluster_wide = cache.informers["AuthorizationServer", "a"], cache.informers[
        "ClusterAuthorizationServer", None]
    namespaced.store[("a", "dev")] = {"spec": "a/dev"}
    cluster_wide.store[("", "shared")] = {"spec": "shared"}
    namespaced.synced.set()
    cluster_wide.synced.set()
    assert cache("AuthorizationServer", "a", "dev") == {"spec": "a/dev"}
    assert cache("AuthorizationServer", "a", "gone") is None  # listed and absent: no such server
    assert cache("ClusterAuthorizationServer", None, "shared") == {"spec": "shared"}
    assert cache("AuthorizationServer", "unwatched", "dev") == {"fetched": True}  # not a watched namespace
    assert fetched == [("AuthorizationServer", "a", "dev"), ("AuthorizationServer", "unwatched", "dev")]


def test_a_secret_is_known_absent_only_once_its_namespace_was_listed() -> None:
    from clientreg_operator.watches import SecretIndex

    index = SecretIndex()
    assert not index.absent("t", "x")  # nothing watches it: unsure
    informer = Informer(None, "/api/v1/secrets", lambda *_: None)  # type: ignore[arg-type]
    index.informers[None] = informer
    assert not index.absent("t", "x")  # not listed yet: unsure
    informer.store[("t", "here")] = {}
    informer.synced.set()
    assert index.absent("t", "x") and not index.absent("t", "here")


def test_watches_that_end_at_once_are_not_restarted_in_a_tight_loop() -> None:
    server = _Server([[_obj("a", "5")]], [[] for _ in range(1000)])
    informer = Informer(server, "/apis/x/v1/things", lambda *_: None, retry_max=0.2)  # type: ignore[arg-type]

    async def scenario() -> int:
        task = asyncio.create_task(informer.run())
        await asyncio.sleep(0.5)
        task.cancel()
        return sum(1 for what, _ in server.asked if what == "watch")

    assert asyncio.run(scenario()) <= 6  # backing off (0.2 s at most between tries), not hundreds of requests
