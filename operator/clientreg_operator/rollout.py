"""Restarting consumers after a rotation, for workloads that read their Secret only at start.

A Deployment opts in with the annotation ``clientreg.dev/restart-on-rotation: <secret>[,<secret>…]``;
after the operator published new credentials in one of those Secrets (a new client ID or secret, or a
new private key under the same client ID) it bumps a pod-template annotation, exactly like
``kubectl rollout restart``. The old client (or key) keeps working for the rotation's grace period, so the
rollout has that long to finish. (stakater Reloader does the same for any change of
a Secret; use one or the other.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from clientreg_kube.cluster import Cluster
from clientreg_kube.conventions import RESTART_ON_ROTATION_ANNOTATION, ROTATED_CLIENT_ANNOTATION

log = logging.getLogger(__name__)


def restart_consumers(cluster: Cluster, namespace: str, secret_name: str, client_id: str) -> list[str]:
    """Restart the Deployments of ``namespace`` that asked for it; returns their names."""
    restarted = []
    for deployment in cluster.list_deployments(namespace):
        annotations = deployment.get("metadata", {}).get("annotations") or {}
        wanted = {s.strip() for s in annotations.get(RESTART_ON_ROTATION_ANNOTATION, "").split(",") if s.strip()}
        if secret_name not in wanted:
            continue
        name = deployment["metadata"]["name"]
        cluster.patch_deployment(namespace, name, {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            ROTATED_CLIENT_ANNOTATION: client_id,
        }}}}})
        log.info("restarted Deployment %s/%s after the credentials in Secret %s were rotated",
                 namespace, name, secret_name)
        restarted.append(name)
    return restarted
