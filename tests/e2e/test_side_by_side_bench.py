"""bench/side_by_side.py compares like with like: at N = 3, both controllers' Secrets hold working credentials
for clients that Hydra really holds (no more, no fewer), and the audit-log figures of each controller are its
own requests, not the bench's nor the other controller's. Nothing is timed here; the bench prints the times."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cache import unavailable
from support.hydra import hydra_binary_or_skip
from support.hydra_maester import ensure_hydra_maester
from support.kube import ComponentUnavailable

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from side_by_side import run_side_by_side  # a bench script, found on the path set just above

N = 3


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.environ.get("KUBECONFIG"):
        pytest.skip("the bench counts requests in the audit log of a control plane it starts itself")
    hydra_binary_or_skip()
    try:
        ensure_hydra_maester()
    except ComponentUnavailable as exc:
        unavailable("ory/hydra-maester", str(exc))
    return run_side_by_side(N, threads=N, work=tmp_path_factory.mktemp("side-by-side"))


@pytest.mark.parametrize("controller", ["hydra-maester", "clientreg"])
def test_each_controller_leaves_one_working_hydra_client_per_resource(results: dict[str, Any],
                                                                      controller: str) -> None:
    figures = results[controller]
    assert figures["new_clients_at_hydra"] == N
    assert figures["duplicate_client_ids_at_hydra"] == 0
    assert figures["secrets"] == N
    assert figures["secrets_match_new_hydra_clients"] is True
    assert figures["secrets_with_working_token"] == N


def test_writes_are_attributed_to_the_controller_that_made_them(results: dict[str, Any]) -> None:
    theirs = results["hydra-maester"]["kubernetes_writes_per_client_by_verb_and_resource"]
    ours = results["clientreg"]["kubernetes_writes_per_client_by_verb_and_resource"]
    # Each writes its own kind of credentials Secret, one per client...
    assert theirs["create secrets"] == 1
    assert ours.get("create secrets", 0) >= 1
    # ...and its own resources' status, never the other controller's resources.
    assert any(key.endswith(" oauth2clients") or key.endswith(" oauth2clients/status") for key in theirs)
    assert not any("oauthclients" in key for key in theirs)
    assert any("oauthclients" in key for key in ours)
    assert not any("oauth2clients" in key for key in ours)
    # The bench created the resources as the cluster admin: those creates are no controller's writes.
    assert "create oauth2clients" not in theirs
    assert "create oauthclients" not in ours


def test_reads_are_counted_for_both_controllers(results: dict[str, Any]) -> None:
    # Every controller watches what it reconciles (client-go 0.36 streams its initial list through the watch,
    # so hydra-maester makes no separate list): no watch would mean the audit policy dropped reads.
    assert "watch oauth2clients" in results["hydra-maester"]["kubernetes_reads"]
    assert "watch oauthclients" in results["clientreg"]["kubernetes_reads"]
