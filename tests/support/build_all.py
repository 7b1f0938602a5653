"""Build or fetch every real component the suite uses, into the cache, before pytest starts.

    cd tests && python -m support.build_all [NAME ...]

Doing it up front makes build time visible in CI logs (and keeps it out of test timeouts). Each
component is reused from ``~/.cache/clientreg`` when complete. Outside CI a component that cannot
be had is reported and its tests skip; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable

from .cache import in_ci

#: name → (module, function). Order: cheap first, so a broken toolchain shows early.
COMPONENTS: dict[str, tuple[str, str]] = {
    "oidc-provider": ("support.oidc_provider", "ensure_oidc_provider"),
    "kstatus": ("support.kstatus_tool", "ensure_kstatus"),
    "keycloak": ("support.keycloak", "ensure_keycloak"),
    "helm": ("support.kube", "ensure_helm"),
    "kube": ("support.kube", "ensure_kube_assets"),
    # The CLI, the Python shims and the Python language host (support.pulumi_python_host).
    "pulumi": ("support.pulumi_engine", "ensure_pulumi"),
    # The YAML and Node.js language hosts, for `pulumi up` in a project folder (support.pulumi_hosts).
    "pulumi-hosts": ("support.pulumi_hosts", "ensure_hosts"),
    # The Go SDK generator of the provider plugin's schema (support.pulumi_sdks).
    "pulumi-sdkgen-go": ("support.pulumi_sdks", "ensure_go_sdkgen"),
    "hydra": ("support.hydra", "ensure_hydra"),
    # From the source in /work/shared/peers (CLIENTREG_HYDRA_MAESTER_SRC): bench/side_by_side.py's other column.
    "hydra-maester": ("support.hydra_maester", "ensure_hydra_maester"),
    # mmdebstrap + the project's wheels; apt-gets mmdebstrap, umoci, podman and runc when missing.
    "operator-image": ("support.image", "ensure_operator_image"),
    # kubelet + kube-scheduler (same module as "kube"), containerd/runc/CNI plugins by apt-get, a pause image.
    "kube-node": ("support.node", "ensure_node"),
}


def build(names: list[str]) -> int:
    failed = []
    for name in names or list(COMPONENTS):
        module, func = COMPONENTS[name]
        started = time.monotonic()
        try:
            ensure: Callable[[], object] = getattr(importlib.import_module(module), func)
            where = ensure()
        except Exception as exc:  # each component's own error says what is missing
            failed.append(name)
            print(f"  {name:14s} FAILED after {time.monotonic() - started:6.1f}s: {exc}", flush=True)
            traceback.print_exc(limit=3, file=sys.stderr)
            continue
        print(f"  {name:14s} ready in {time.monotonic() - started:6.1f}s: {where}", flush=True)
    if failed and in_ci():
        print(f"components unavailable in CI: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(build(sys.argv[1:]))
