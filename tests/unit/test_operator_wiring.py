"""The operator's wiring that the e2e suite found wanting: the watches log in with --kubeconfig's
credentials over a bounded pool, and AuthorizationServer status is written from watch events alone."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clientreg_operator.kubeapi import REQUEST_CONNECTIONS, AsyncKube
from clientreg_operator.servers import ServerChecker
from clientreg_operator.watches import watch_streams_for
from kubernetes import client as k8s

SERVER = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
          "metadata": {"name": "dev", "namespace": "t", "generation": 1},
          "spec": {"issuer": "https://as.example", "initialAccessToken": {"secretKeyRef": {"name": "iat",
                                                                                          "key": "token"}}}}


def test_watches_use_the_given_client_configuration_and_a_bounded_pool() -> None:
    configuration = k8s.Configuration(host="https://127.0.0.1:6443/", api_key={"BearerToken": "sa-token"},
                                      api_key_prefix={"BearerToken": "Bearer"})
    configuration.verify_ssl = False

    async def scenario() -> tuple[int, str, str]:
        api = AsyncKube(configuration, watch_streams=watch_streams_for(("a", "b")))
        try:
            connector = api.session.connector
            return connector.limit if connector else 0, api._headers()["Authorization"], api.server
        finally:
            await api.close()

    limit, authorization, server = asyncio.run(scenario())
    # 3 namespaced watches in each of 2 namespaces, 1 cluster-wide one, and room for requests.
    assert limit == 7 + REQUEST_CONNECTIONS
    assert authorization == "Bearer sa-token" and server == "https://127.0.0.1:6443"


def test_a_kubeconfig_token_is_sent_as_it_is_and_asked_for_on_every_request() -> None:
    """An in-cluster configuration re-reads the projected ServiceAccount token through its refresh hook,
    which runs whenever the key is asked for: the watches must ask each time, not once."""
    configuration = k8s.Configuration(host="https://127.0.0.1:6443", api_key={"authorization": "Bearer one"})
    rotations = iter(range(100))

    def refresh(config: Any) -> None:
        config.api_key["authorization"] = f"Bearer token-{next(rotations)}"

    configuration.refresh_api_key_hook = refresh
    api = AsyncKube(configuration, watch_streams=1)
    first, second = (api._headers()["Authorization"] for _ in range(2))
    assert first.startswith("Bearer token-") and second.startswith("Bearer token-") and first != second


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
    checker = ServerChecker(cluster, cluster_resource_namespace="clientreg", retry_after=0.01)  # type: ignore[arg-type]

    async def scenario() -> None:
        checker.notify("ADDED", SERVER)
        for _ in range(1000):
            if cluster.patches:
                break
            await asyncio.sleep(0.01)
        assert cluster.patches[-1]["conditions"][0]["reason"] == "Waiting"
        # Looked at again, still waiting: another retry is pending. Waited for, not slept on: under load the
        # first retry may take longer than any fixed pause.
        for _ in range(1000):
            if len(cluster.patches) > 1 and checker._retries:
                break
            await asyncio.sleep(0.01)
        assert len(cluster.patches) > 1 and len(checker._retries) == 1
        await checker.on_event("DELETED", SERVER)
        assert not checker._retries
        checker.close()

    asyncio.run(scenario())


def test_a_kubeconfig_with_a_socks_proxy_stops_the_operator_with_exit_2_and_says_why(
        tmp_path: Any, capsys: Any) -> None:
    """The transport does CONNECT through an http:// proxy only: anything else is said at start, not as a
    traceback at the first request."""
    from clientreg_operator.config import OperatorConfig
    from clientreg_operator.runner import run

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', proxy-url: 'socks5://127.0.0.1:1080'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # run() configures the root logger as the process's own: put back pytest's afterwards
        assert run(OperatorConfig(namespaces=("a",), kubeconfig=str(kubeconfig), log_format="text")) == 2
    finally:
        root.handlers[:], root.level = handlers, level
    assert "the proxy socks5://... (the kubeconfig's proxy-url" in capsys.readouterr().err  # its own log line
