"""The kopf glue that the e2e suite found wanting: login with --kubeconfig, and AuthorizationServer status
without kopf bookkeeping on the server objects (which would need patch on them)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import kopf
from clientreg_operator.handlers import (
    REQUEST_CONNECTIONS,
    ServerChecker,
    connection_info,
    limited_session,
    register,
    watch_streams_for,
)
from kubernetes import client as k8s

SERVER = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
          "metadata": {"name": "dev", "namespace": "t", "generation": 1},
          "spec": {"issuer": "https://as.example", "initialAccessToken": {"secretKeyRef": {"name": "iat",
                                                                                          "key": "token"}}}}


def test_login_uses_the_given_client_configuration() -> None:
    configuration = k8s.Configuration(host="https://127.0.0.1:6443", api_key={"BearerToken": "sa-token"},
                                      api_key_prefix={"BearerToken": "Bearer"})
    configuration.ssl_ca_cert = "/tmp/ca.crt"
    info = connection_info(configuration)
    assert info.server == "https://127.0.0.1:6443" and info.scheme == "Bearer" and info.token == "sa-token"
    assert info.ca_path == "/tmp/ca.crt" and not info.insecure


def test_kopf_session_has_a_bounded_pool_with_room_for_every_watch() -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", scheme="Bearer", token="sa-token", insecure=True)

    async def scenario() -> tuple[int, str, str]:
        context = limited_session(info, watch_streams=watch_streams_for(("a", "b")))
        session = context.aiohttp_session
        try:
            return session.connector.limit if session.connector else 0, session.headers["Authorization"], context.server
        finally:
            await session.close()

    limit, authorization, server = asyncio.run(scenario())
    # 3 namespaced watches in each of 2 namespaces, 1 cluster-wide one, and room for requests.
    assert limit == 7 + REQUEST_CONNECTIONS
    assert authorization == "Bearer sa-token" and server == "https://127.0.0.1:6443"


def test_server_handlers_never_need_kopf_bookkeeping() -> None:
    registry = kopf.OperatorRegistry()
    runtime: Any = SimpleNamespace(reconciler=SimpleNamespace(cluster=None))
    register(registry, runtime)
    changing = registry._changing.get_all_handlers()
    assert {str(h.id) for h in changing} == {"reconcile", "delete"}
    server_ids = {str(h.id) for h in changing if "server" in str(h.id)}
    assert not server_ids, f"(Cluster)AuthorizationServers must only have event handlers: {server_ids}"


def _watched(registry: kopf.OperatorRegistry) -> set[str]:
    selectors = registry._watching.get_all_selectors() | registry._changing.get_all_selectors() | \
        registry._spawning.get_all_selectors()
    return {str(s.any_name) for s in selectors}


def test_without_watch_credentials_nothing_watches_secrets() -> None:
    """The chart's secrets.watchCredentials=false drops list/watch on Secrets: kopf must then not start a
    Secret watch (it would fail with 403 and never heal anything)."""
    runtime: Any = SimpleNamespace(reconciler=SimpleNamespace(cluster=None))
    default, strict = kopf.OperatorRegistry(), kopf.OperatorRegistry()
    register(default, runtime)
    register(strict, runtime, watch_credentials=False)
    assert "secrets" in _watched(default)
    assert _watched(strict) == {"oauthclients", "authorizationservers", "clusterauthorizationservers"}
    assert watch_streams_for(("a", "b"), watch_credentials=False) == 5


def test_cli_passes_no_watch_credentials_through() -> None:
    from clientreg_operator.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "-A"]).watch_credentials is True
    assert parser.parse_args(["run", "-A", "--no-watch-credentials"]).watch_credentials is False


class _Cluster:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], Any] = {}
        self.patches: list[Any] = []

    def get_secret(self, namespace: str, name: str) -> Any:
        return self.secrets.get((namespace, name))

    def get_server(self, kind: str, namespace: str | None, name: str) -> Any:
        return SERVER

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Any) -> None:
        self.patches.append(patch)


def test_a_waiting_server_is_looked_at_again_and_a_deleted_one_is_not() -> None:
    cluster = _Cluster()
    checker = ServerChecker(SimpleNamespace(reconciler=SimpleNamespace(cluster=cluster)),  # type: ignore[arg-type]
                            cluster_resource_namespace="clientreg", retry_after=0.01)

    async def scenario() -> None:
        await checker.on_event("ADDED", SERVER)
        assert cluster.patches[-1]["conditions"][0]["reason"] == "Waiting"
        assert len(checker._retries) == 1
        # Looked at again, still waiting: another retry is pending. Waited for, not slept on: under load the
        # first retry may take longer than any fixed pause.
        for _ in range(1000):
            if len(cluster.patches) > 1:
                break
            await asyncio.sleep(0.01)
        assert len(cluster.patches) > 1 and len(checker._retries) == 1
        await checker.on_event("DELETED", SERVER)
        assert not checker._retries

    asyncio.run(scenario())


def test_a_rotate_annotation_value_starts_one_prompt_reconcile_only() -> None:
    from clientreg_operator.runtime import Runtime

    runtime = Runtime(SimpleNamespace(), workers=1)  # type: ignore[arg-type]

    async def scenario() -> tuple[bool, bool, bool]:
        runtime.request_rotation("t", "billing", "2026-11-28T10:00:00Z")
        schedule = runtime._schedule(("t", "billing"))
        first = schedule.requested and schedule.changed.is_set()
        schedule.requested = False
        schedule.changed.clear()
        # The same value again (another watch event of the same object): a failing rotation must follow its
        # backoff, not restart on every event.
        runtime.request_rotation("t", "billing", "2026-11-28T10:00:00Z")
        repeated = schedule.requested or schedule.changed.is_set()
        runtime.request_rotation("t", "billing", "2026-11-28T11:00:00Z")
        return first, repeated, schedule.requested

    try:
        assert asyncio.run(scenario()) == (True, False, True)
    finally:
        runtime.executor.shutdown(wait=False)
