"""What the OAuthClient controller does with watch events: which ones reconcile, which heal, which do
nothing; the finalizer in the same pass; deletion retried until the client is gone."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from clientreg_operator.controller import ClientController
from clientreg_operator.result import Result

from clientreg_kube.conventions import CLIENT_FINALIZER, ROTATE_ANNOTATION

RECORDS = "ops"


def _client(*, generation: int = 1, finalizers: tuple[str, ...] = (CLIENT_FINALIZER,), deleting: bool = False,
            rotate: str | None = None, done: str | None = None, rv: str = "1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "app", "namespace": "t", "uid": "u1", "generation": generation,
                            "resourceVersion": rv, "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    if rotate:
        meta["annotations"] = {ROTATE_ANNOTATION: rotate}
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": meta,
            "status": {"lastRotationRequest": done} if done else {}}


class _Reconciler:
    backoff_max = 300.0

    def __init__(self, result: Result | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.result = result or Result(requeue_after=600.0)
        self.forgotten: list[tuple[str, str]] = []
        self.connections = SimpleNamespace(close=lambda: None)

    def reconcile(self, namespace: str, name: str) -> Result:
        self.calls.append(("reconcile", namespace, name))
        return self.result

    def heal(self, namespace: str, name: str) -> None:
        self.calls.append(("heal", namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


class _Cluster:
    """The two calls the controller makes itself (its finalizer), from a reconcile thread."""

    def __init__(self, finalizers: list[str]) -> None:
        self.patches: list[dict[str, Any]] = []
        self.finalizers = finalizers

    def patch_client(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        assert (namespace, name) == ("t", "app")
        self.patches.append(patch)
        self.finalizers = patch["metadata"]["finalizers"]
        return _client(finalizers=tuple(self.finalizers), rv="2")

    def get_client(self, namespace: str, name: str) -> dict[str, Any]:
        return _client(finalizers=tuple(self.finalizers), deleting=True, rv="3")


def _controller(reconciler: _Reconciler, api: _Cluster | None = None) -> ClientController:
    if api is not None or not hasattr(reconciler, "cluster"):
        reconciler.cluster = api or _Cluster([])  # type: ignore[attr-defined]
    return ClientController(reconciler, workers=1, records_namespace=RECORDS)  # type: ignore[arg-type]


def _drain(controller: ClientController) -> None:
    """Process whatever is queued, as the workers would."""
    async def scenario() -> None:
        while len(controller.queue):
            key = await controller.queue.get()
            try:
                await controller.process(key)
            finally:
                controller.queue.done(key)

    asyncio.run(scenario())
    controller.executor.shutdown(wait=True)


def test_a_new_client_is_reconciled_once_and_its_own_status_writes_trigger_nothing() -> None:
    reconciler = _Reconciler()
    controller = _controller(reconciler)
    controller.on_client("ADDED", _client(), None)
    old = controller.clients[("t", "app")]
    # Our status patch and the finalizer patch come back as MODIFIED with the same generation.
    controller.on_client("MODIFIED", _client(rv="2"), old)
    controller.on_client("MODIFIED", _client(rv="3"), controller.clients[("t", "app")])
    _drain(controller)
    assert reconciler.calls == [("reconcile", "t", "app")]


def test_a_spec_change_a_deletion_and_a_new_rotate_value_each_reconcile() -> None:
    for changed in (_client(generation=2), _client(deleting=True), _client(rotate="r1")):
        reconciler = _Reconciler()
        controller = _controller(reconciler)
        controller.on_client("ADDED", _client(), None)
        _drain(controller)
        controller.executor = type(controller.executor)(max_workers=1)
        controller.on_client("MODIFIED", changed, controller.clients[("t", "app")])
        assert len(controller.queue) == 1, changed


def test_a_rotate_annotation_value_starts_one_prompt_reconcile_only() -> None:
    controller = _controller(_Reconciler())
    controller.on_client("ADDED", _client(), None)
    asyncio.run(controller.queue.get())  # taken by a worker
    controller.queue.done(("t", "app"))
    controller.on_client("MODIFIED", _client(rotate="r1"), controller.clients[("t", "app")])
    first = len(controller.queue)
    asyncio.run(controller.queue.get())
    controller.queue.done(("t", "app"))
    # The same value again (another event while that rotation fails and backs off): no prompt reconcile.
    controller.on_client("MODIFIED", _client(rotate="r1", rv="5"), controller.clients[("t", "app")])
    repeated = len(controller.queue)
    # Done already (status says so): nothing either; a new value: again.
    controller.on_client("MODIFIED", _client(rotate="r2", done="r2"), controller.clients[("t", "app")])
    honoured = len(controller.queue)
    controller.on_client("MODIFIED", _client(rotate="r3", done="r2"), controller.clients[("t", "app")])
    assert (first, repeated, honoured, len(controller.queue)) == (1, 0, 0, 1)
    controller.executor.shutdown()


def test_an_owned_secret_change_heals_without_asking_the_authorization_server() -> None:
    reconciler = _Reconciler()
    controller = _controller(reconciler)
    controller.on_client("ADDED", _client(), None)
    _drain(controller)
    controller.executor = type(controller.executor)(max_workers=1)
    owned = {"metadata": {"name": "app-oauth", "namespace": "t",
                          "ownerReferences": [{"kind": "OAuthClient", "name": "app", "controller": True}]}}
    controller.on_owned_secret("ADDED", owned, None)  # our own write
    assert len(controller.queue) == 0
    controller.on_owned_secret("DELETED", owned, None)
    stranger = {"metadata": {"name": "x", "namespace": "t",
                             "ownerReferences": [{"kind": "OAuthClient", "name": "other", "controller": True}]}}
    controller.on_owned_secret("MODIFIED", stranger, None)  # not in the cache: not served (another shard)
    # A tenant's Secret labelled like a record, in its own namespace, naming another namespace's client.
    forged = {"metadata": {"name": "y", "namespace": "t", "labels": {"clientreg.dev/role": "record"},
                           "annotations": {"clientreg.dev/oauthclient": "t/app"}}}
    controller.on_owned_secret("MODIFIED", forged, None)
    _drain(controller)
    assert reconciler.calls == [("reconcile", "t", "app"), ("heal", "t", "app")]


def test_the_finalizer_is_added_in_the_same_pass_and_only_when_missing() -> None:
    reconciler = _Reconciler()
    api = _Cluster([])
    controller = _controller(reconciler, api)
    controller.on_client("ADDED", _client(finalizers=("other.example/keep",)), None)
    _drain(controller)
    assert api.patches == [{"metadata": {"finalizers": ["other.example/keep", CLIENT_FINALIZER]}}]
    assert reconciler.calls == [("reconcile", "t", "app")]
    assert controller.queue.due(("t", "app")) is not None  # the next drift check is scheduled

    reconciler, api = _Reconciler(), _Cluster([CLIENT_FINALIZER])
    controller = _controller(reconciler, api)
    controller.on_client("ADDED", _client(), None)
    _drain(controller)
    assert api.patches == [] and reconciler.calls == [("reconcile", "t", "app")]


def test_a_deletion_keeps_the_finalizer_until_the_client_is_gone_at_the_server() -> None:
    pending = _Reconciler(Result(finished=False, requeue_after=7.0, reason="ServerUnreachable"))
    api = _Cluster([CLIENT_FINALIZER, "other.example/keep"])
    controller = _controller(pending, api)
    controller.on_client("ADDED", _client(deleting=True, finalizers=(CLIENT_FINALIZER, "other.example/keep")),
                         None)
    _drain(controller)
    assert api.patches == [] and controller.queue.due(("t", "app")) is not None  # tried again later

    done = _Reconciler(Result(finished=True))
    controller = _controller(done, api)
    controller.on_client("ADDED", _client(deleting=True, finalizers=(CLIENT_FINALIZER, "other.example/keep")),
                         None)
    _drain(controller)
    assert api.patches == [{"metadata": {"finalizers": ["other.example/keep"], "resourceVersion": "3"}}]
    assert done.forgotten == [("t", "app")]


def test_a_client_gone_from_the_watch_is_forgotten_and_not_reconciled() -> None:
    """DELETED also comes when a client's labels leave this shard's selector: it is another shard's now."""
    reconciler = _Reconciler()
    controller = _controller(reconciler)
    controller.on_client("ADDED", _client(), None)
    controller.on_client("DELETED", _client(), controller.clients[("t", "app")])
    _drain(controller)
    assert reconciler.calls == [] and reconciler.forgotten == [("t", "app")]


def test_a_reconcile_reads_the_cache_except_while_the_cache_lacks_its_own_last_status_write() -> None:
    reconciler = _Reconciler()
    gets: list[tuple[str, str]] = []

    def get_client(namespace: str, name: str) -> dict[str, Any]:
        gets.append((namespace, name))
        return _client(rv="7")

    reconciler.cluster = SimpleNamespace(get_client=get_client)  # type: ignore[attr-defined]
    controller = _controller(reconciler)
    controller.on_client("ADDED", {**_client(rv="5"), "metadata": {**_client(rv="5")["metadata"],
                                                                  "managedFields": [{"manager": "kubectl"}]}}, None)
    cached = controller.read_client("t", "app")
    assert cached is not None and cached["metadata"]["resourceVersion"] == "5" and not gets
    assert "managedFields" not in cached["metadata"]  # the cache does not hold what no reconcile reads

    controller.status_written("t", "app", "6")  # our status write: the cache (rv 5) does not hold it yet
    assert controller.read_client("t", "app")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    assert gets == [("t", "app")]
    controller.status_written("t", "app", "8")
    controller.on_client("MODIFIED", _client(rv="8"), controller.clients[("t", "app")])  # the watch brings it back
    assert controller.read_client("t", "app")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
    assert gets == [("t", "app")]
    assert controller.read_client("t", "gone") is not None and gets[-1] == ("t", "gone")  # not cached: asked
