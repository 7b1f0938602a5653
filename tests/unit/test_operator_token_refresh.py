"""The client configuration's token refresh hook runs once in a while, not before every request."""

from __future__ import annotations

from typing import Any

from clientreg_operator.kubeapi import throttle_token_refresh
from kubernetes import client as k8s


def test_the_token_refresh_hook_runs_once_per_period_however_many_requests_ask_for_the_token() -> None:
    configuration = k8s.Configuration()
    configuration.api_key["BearerToken"] = "t0"
    configuration.api_key_prefix["BearerToken"] = "Bearer"
    runs: list[int] = []

    def hook(conf: Any) -> None:
        runs.append(1)
        conf.api_key["BearerToken"] = f"t{len(runs)}"
        conf.refresh_api_key_hook = hook  # as the kubeconfig loader's hook does, each time it runs

    configuration.refresh_api_key_hook = hook
    throttle_token_refresh(configuration, every=3600.0)
    tokens = {configuration.get_api_key_with_prefix("BearerToken") for _ in range(100)}
    assert len(runs) == 1 and tokens == {"Bearer t1"}  # refreshed at the first request, then not again

    again = k8s.Configuration()
    again.refresh_api_key_hook = hook
    throttle_token_refresh(again, every=0.0)  # a period that has always passed: every request
    for _ in range(3):
        again.get_api_key_with_prefix("BearerToken")
    assert len(runs) == 4


def test_a_configuration_without_a_hook_is_left_alone() -> None:
    configuration = k8s.Configuration()
    throttle_token_refresh(configuration)
    assert configuration.refresh_api_key_hook is None
