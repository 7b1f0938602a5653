"""``kubectl clientreg`` as a user runs it: the real kubectl finding the plugin on PATH, the real API server, the
operator rotating what the plugin marked (issue 15: cmctl parity)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.operator_process import OperatorProcess

pytestmark = pytest.mark.e2e

Kube = Any
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}


@pytest.fixture
def plugin_env(control_plane: Any, tmp_path: Path) -> dict[str, str]:
    """PATH with a ``kubectl-clientreg`` (what the wheel's script does), and a kubeconfig in $KUBECONFIG only."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl-clientreg"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom clientreg_operator.kubectl_plugin import main\n"
                      "sys.exit(main())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(control_plane.kubeconfig, kubeconfig)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": os.pathsep.join(sys.path)}


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_kubectl_clientreg_rotates_every_client_of_a_namespace_and_shows_status(
        kube: Kube, operator: OperatorProcess, dev_server: Any, plugin_env: dict[str, str],
        eventually: Any) -> None:
    namespace = kube.namespace("kubectl-plugin")
    bystander = kube.namespace("kubectl-plugin-other")
    for ns in (namespace, bystander):
        kube.secret(ns, "dev-iat", {"token": "e2e-dev-iat"})
        kube.server(ns, "dev", {"issuer": dev_server.issuer,
                                "initialAccessToken": {"secretKeyRef": {"name": "dev-iat", "key": "token"}}})
    names = ("one", "two", "three")
    for name in names:
        kube.oauth_client(namespace, name, {"serverRef": {"name": "dev"}, **M2M, "rotation": {"gracePeriod": "1s"}})
    kube.oauth_client(bystander, "one", {"serverRef": {"name": "dev"}, **M2M})
    before = {name: kube.wait_ready(namespace, name)["status"]["clientId"] for name in names}
    untouched = kube.wait_ready(bystander, "one")["status"]["clientId"]

    rotated = kubectl(plugin_env, "clientreg", "rotate", "--all", "-n", namespace, "--request", "e2e-all")
    assert rotated.returncode == 0, rotated.stderr
    for name in names:
        assert f"OAuthClient {namespace}/{name}" in rotated.stdout
        eventually(lambda n=name: (b := kube.get_client(namespace, n)) and
                   b["status"].get("lastRotationRequest") == "e2e-all" and
                   b["status"].get("clientId") not in (None, before[n]), f"{name} rotated")
    assert kube.get_client(bystander, "one")["status"]["clientId"] == untouched  # another namespace: not touched

    missing = kubectl(plugin_env, "clientreg", "rotate", f"{namespace}/nope")
    assert missing.returncode == 1 and f"OAuthClient {namespace}/nope not found" in missing.stderr

    # status in the current context's namespace (no -n): conditions, IDs, the outcome-named events.
    set_ns = kubectl(plugin_env, "config", "set-context", "--current", f"--namespace={namespace}")
    assert set_ns.returncode == 0, set_ns.stderr
    body = kube.wait_ready(namespace, "one")
    shown = kubectl(plugin_env, "clientreg", "status", "one")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"{namespace}/one" in out and body["status"]["clientId"] in out and "one-oauth" in out
    assert "Ready: True (InSync)" in out and "AuthorizationServer/dev" in out
    assert "Registered" in out and "Rotated" in out and "NotRegistered" not in out
    assert "Rotation request:  e2e-all (done)" in out
    secret = kube.read_secret(namespace, "one-oauth")
    assert secret is not None and secret["client_secret"] not in out
